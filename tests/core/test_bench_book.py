"""Tests for core.bench_book, the `cryptoj bench-book` command, the synthetic level2 generator
and scripts/make_l2_recording.py."""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import orjson
import pytest

from core.bench_book import (
    discover_products,
    read_lines,
    run_bench_book,
    run_bench_lines,
    run_cryptofeed_baseline,
    run_orjson_baseline,
)
from core.synthetic_l2 import (
    SyntheticL2Config,
    generate_l2_frames,
    generate_l2_lines,
    write_l2_recording,
)

REPO = Path(__file__).resolve().parents[2]


class StepTimer:
    """A fake perf counter that advances one second per call."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.fixture(scope="module")
def two_product_lines() -> list[bytes]:
    """A small seeded two-product recording (400 update messages, 80 levels a side)."""
    config = SyntheticL2Config(
        messages=400, seed=5, products=("BTC-USD", "ETH-USD"), levels_per_side=80
    )
    return generate_l2_lines(config)


# ----------------------------------------------------------------------------- generator


def test_generator_is_deterministic_and_seeded() -> None:
    config = SyntheticL2Config(messages=50, seed=9, levels_per_side=20)
    assert generate_l2_lines(config) == generate_l2_lines(config)
    assert generate_l2_lines(config) != generate_l2_lines(
        SyntheticL2Config(messages=50, seed=10, levels_per_side=20)
    )


def test_generator_frames_look_like_coinbase(two_product_lines: list[bytes]) -> None:
    frames = [orjson.loads(line) for line in two_product_lines]
    assert frames[0]["channel"] == "subscriptions"
    assert frames[0]["events"][0]["subscriptions"]["level2"] == ["BTC-USD", "ETH-USD"]
    assert [f["sequence_num"] for f in frames] == list(range(len(frames)))
    snapshots = [
        f for f in frames if f["channel"] == "l2_data" and f["events"][0]["type"] == "snapshot"
    ]
    assert [s["events"][0]["product_id"] for s in snapshots] == ["BTC-USD", "ETH-USD"]
    assert len(snapshots[0]["events"][0]["updates"]) == 160
    updates = [
        f for f in frames if f["channel"] == "l2_data" and f["events"][0]["type"] == "update"
    ]
    assert len(updates) == 400
    assert all(1 <= len(f["events"][0]["updates"]) <= 8 for f in updates)
    assert any(f["channel"] == "heartbeats" for f in frames)
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
    for f in frames:
        assert stamp.match(f["timestamp"])
    for f in updates + snapshots:
        for u in f["events"][0]["updates"]:
            assert u["side"] in ("bid", "offer")
            assert stamp.match(u["event_time"])
            assert re.match(r"^\d+\.\d\d$", u["price_level"])
            assert u["new_quantity"] == "0" or re.match(r"^\d+\.\d{8}$", u["new_quantity"])
            assert Decimal(u["price_level"]) > 0


def test_generated_book_never_crosses_and_moves(two_product_lines: list[bytes]) -> None:
    books: dict[str, tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]] = {}
    best_bids: set[Decimal] = set()
    kinds = {"change": 0, "new": 0, "delete": 0}
    for line in two_product_lines:
        frame = orjson.loads(line)
        if frame["channel"] != "l2_data":
            continue
        event = frame["events"][0]
        bids, asks = books.setdefault(event["product_id"], ({}, {}))
        for u in event["updates"]:
            side = bids if u["side"] == "bid" else asks
            price, size = Decimal(u["price_level"]), Decimal(u["new_quantity"])
            if event["type"] == "update":
                kinds["delete" if size == 0 else "change" if price in side else "new"] += 1
            if size == 0:
                del side[price]  # the generator only deletes levels that exist
            else:
                side[price] = size
        assert max(bids) < min(asks)
        if event["product_id"] == "BTC-USD":
            best_bids.add(max(bids))
    assert len(best_bids) > 5
    assert all(count > 100 for count in kinds.values())


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        SyntheticL2Config(messages=-1)
    with pytest.raises(ValueError):
        SyntheticL2Config(products=())
    with pytest.raises(ValueError):
        SyntheticL2Config(levels_per_side=1)
    with pytest.raises(ValueError):
        SyntheticL2Config(max_updates_per_message=0)


def test_custom_start_mid() -> None:
    config = SyntheticL2Config(
        messages=0, products=("ABC-USD",), levels_per_side=2, start_mids={"ABC-USD": 5.0}
    )
    snapshot = orjson.loads(next(f for f in generate_l2_frames(config) if b"l2_data" in f))
    prices = {u["price_level"] for u in snapshot["events"][0]["updates"]}
    assert "4.99" in prices and "5.01" in prices


# ----------------------------------------------------------------------------- bench


def test_bench_lines_counts_and_checksums(two_product_lines: list[bytes]) -> None:
    assert discover_products(two_product_lines) == ["BTC-USD", "ETH-USD"]
    result = run_bench_lines(two_product_lines, timer=StepTimer())
    assert result.messages == len(two_product_lines)
    assert result.seconds == 1.0
    assert result.messages_per_s == len(two_product_lines)
    assert result.updates == result.updates_per_s
    assert result.updates > 160 * 2 + 400  # both snapshots and at least one change per message
    assert set(result.checksums) == {"BTC-USD", "ETH-USD"}
    assert result.gaps == 0
    assert result.bad_input == {}


def test_bench_agrees_with_cryptofeed_order_book(two_product_lines: list[bytes]) -> None:
    ours = run_bench_lines(two_product_lines)
    theirs = run_cryptofeed_baseline(two_product_lines)
    assert theirs.checksums == ours.checksums
    assert theirs.seconds > 0 and theirs.messages_per_s > 0
    bare = run_orjson_baseline(two_product_lines)
    assert bare.seconds > 0 and bare.checksums == {}


def test_bench_reports_gaps_and_bad_input() -> None:
    lines = generate_l2_lines(SyntheticL2Config(messages=30, seed=2, levels_per_side=10))
    del lines[10]  # a dropped frame
    lines.append(b"{broken")
    result = run_bench_lines(lines, timer=StepTimer())
    assert result.gaps == 1
    assert result.bad_input == {"malformed_json": 1}


def test_zero_time_does_not_divide_by_zero() -> None:
    result = run_bench_lines([], products=[], timer=lambda: 5.0)
    assert (result.messages_per_s, result.updates_per_s) == (0.0, 0.0)
    assert run_orjson_baseline([], timer=lambda: 1.0).messages_per_s == 0.0
    assert run_cryptofeed_baseline([], timer=lambda: 1.0).messages_per_s == 0.0


def test_bench_book_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    count = write_l2_recording(path, SyntheticL2Config(messages=40, seed=1, levels_per_side=10))
    with path.open("ab") as out:
        out.write(b"\n   \n")  # blank lines are skipped
    assert len(read_lines(path)) == count
    result = run_bench_book(path, timer=StepTimer())
    assert result.messages == count
    assert list(result.checksums) == ["BTC-USD"]


# ----------------------------------------------------------------------------- CLI + script


def _bench_parser() -> argparse.ArgumentParser:
    from cryptoj_tui.commands import bench_book

    parser = argparse.ArgumentParser()
    bench_book.register(parser.add_subparsers())
    return parser


def test_cli_prints_rates_and_checksums(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rec.jsonl"
    write_l2_recording(
        path,
        SyntheticL2Config(messages=40, seed=1, levels_per_side=10, products=("BTC-USD", "ETH-USD")),
    )
    args = _bench_parser().parse_args(["bench-book", str(path), "--repeat", "2"])
    assert args.handler(args, None) == 0
    out = capsys.readouterr().out
    assert "messages/s" in out and "updates/s" in out
    assert re.search(r"checksum\s+BTC-USD [0-9a-f]{8}", out)
    assert re.search(r"checksum\s+ETH-USD [0-9a-f]{8}", out)
    assert "bad input     none" in out


def test_cli_missing_and_empty_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = _bench_parser()
    args = parser.parse_args(["bench-book", str(tmp_path / "nope.jsonl")])
    assert args.handler(args, None) == 2
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    args = parser.parse_args(["bench-book", str(empty)])
    assert args.handler(args, None) == 1
    with pytest.raises(SystemExit):
        parser.parse_args(["bench-book", str(empty), "--repeat", "0"])
    capsys.readouterr()


def _load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_make_l2_recording_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = _load_script("make_l2_recording")
    out = tmp_path / "made.jsonl"
    assert (
        script.main(
            [
                "--messages",
                "25",
                "--seed",
                "4",
                "--levels",
                "10",
                "--products",
                "BTC-USD,ETH-USD",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    lines = read_lines(out)
    assert discover_products(lines) == ["BTC-USD", "ETH-USD"]
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        script.main(["--messages", "-5", "--out", str(out)])


def test_compare_book_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = _load_script("compare_book")
    path = tmp_path / "rec.jsonl"
    write_l2_recording(path, SyntheticL2Config(messages=200, seed=1, levels_per_side=50))
    status = script.main(["--file", str(path), "--repeat", "1", "--timer", "wall"])
    out = capsys.readouterr().out
    assert "checksum BTC-USD" in out and "agree" in out and "DIFFER" not in out
    assert "(a) cryptoj speed / cryptofeed speed" in out
    assert "(b) cryptoj speed / orjson.loads speed" in out
    # Pass/fail on a tiny file is timing noise; only the exit code's meaning is checked.
    assert status == (0 if "FAIL" not in out else 1)
