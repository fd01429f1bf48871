"""Order book hot path benchmarks (pytest-benchmark): CryptoJ's live on_frame path against
orjson + cryptofeed's C order book and against bare orjson.loads, on the same lines.

Run the figures with ``pytest tests/performance/test_book_benchmark.py --benchmark-enable``
(the default run has ``--benchmark-disable``: each benchmark then executes once, as a test).
The 200k-message comparison with the targets is ``scripts/compare_book.py``.
"""

from __future__ import annotations

from typing import Any

from core.bench_book import (
    BaselineResult,
    BenchBookResult,
    run_bench_lines,
    run_cryptofeed_baseline,
    run_orjson_baseline,
)


def test_cryptoj_on_frame_path(benchmark: Any, l2_recording_lines: list[bytes]) -> None:
    result: BenchBookResult = benchmark.pedantic(
        run_bench_lines, args=(l2_recording_lines,), kwargs={"products": ["BTC-USD"]}, rounds=3
    )
    assert result.messages == len(l2_recording_lines)
    assert result.gaps == 0
    assert result.bad_input == {}
    assert result.updates > 20_000


def test_orjson_plus_cryptofeed_order_book(benchmark: Any, l2_recording_lines: list[bytes]) -> None:
    result: BaselineResult = benchmark.pedantic(
        run_cryptofeed_baseline, args=(l2_recording_lines,), rounds=3
    )
    assert set(result.checksums) == {"BTC-USD"}


def test_orjson_loads_alone(benchmark: Any, l2_recording_lines: list[bytes]) -> None:
    result: BaselineResult = benchmark.pedantic(
        run_orjson_baseline, args=(l2_recording_lines,), rounds=3
    )
    assert result.seconds > 0


def test_books_agree(l2_recording_lines: list[bytes]) -> None:
    ours = run_bench_lines(l2_recording_lines, products=["BTC-USD"])
    theirs = run_cryptofeed_baseline(l2_recording_lines)
    assert ours.checksums == theirs.checksums
    assert len(ours.checksums["BTC-USD"]) == 8
