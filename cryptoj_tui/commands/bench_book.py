"""``cryptoj bench-book FILE``: time the live market-data path over a level2 recording."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

_DESCRIPTION = """\
Read a JSONL recording of raw market-data WebSocket frames (from `cryptoj record` or
scripts/make_l2_recording.py) into memory, then push every line through the same on_frame path
the live socket uses (decoding, sequence checks, book updates, integrity checks) and print
messages/s, level updates/s and a checksum of each product's final book (top 50 levels a side).
File reading is not timed."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench-book",
        help="benchmark order book decoding + updates on a recorded level2 feed",
        description=_DESCRIPTION,
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="JSONL recording")
    parser.add_argument(
        "--repeat",
        type=_positive_int,
        default=1,
        metavar="N",
        help="run N times and report the fastest run (default: 1)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Any) -> int:
    from core.bench_book import read_lines, run_bench_lines

    path: Path = args.file
    if not path.is_file():
        print(f"cryptoj bench-book: no such file: {path}")
        return 2
    lines = read_lines(path)
    if not lines:
        print(f"cryptoj bench-book: {path} is empty")
        return 1
    results = [run_bench_lines(lines) for _ in range(args.repeat)]
    best = min(results, key=lambda result: result.seconds)
    print(f"file          {path}")
    print(f"messages      {best.messages:,}")
    print(f"level updates {best.updates:,}")
    print(f"seconds       {best.seconds:.3f}")
    print(f"messages/s    {best.messages_per_s:,.0f}")
    print(f"updates/s     {best.updates_per_s:,.0f}")
    print(f"gaps          {best.gaps}")
    bad = ", ".join(f"{kind}={count}" for kind, count in sorted(best.bad_input.items()))
    print(f"bad input     {bad or 'none'}")
    for product_id, checksum in best.checksums.items():
        print(f"checksum      {product_id} {checksum}  (top 50 levels a side)")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value
