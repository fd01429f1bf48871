"""Compare CryptoJ's level2 path with cryptofeed's C order book and with bare orjson.

    python scripts/compare_book.py --messages 200000          # generate (seed 1) and compare
    python scripts/compare_book.py --file recording.jsonl      # compare on a recording

All three run on the same lines, already in memory, in the same process, interleaved
``--repeat`` times; the fastest run of each counts:

1. CryptoJ: every line through ``MarketDataService.on_frame`` (the live path: msgspec decode,
   sequence check, L2Book update, crossed-book check, health);
2. cryptofeed: ``orjson.loads`` + the C ``order_book.OrderBook``, applied as cryptofeed's
   Coinbase feed does (float prices, set or delete per level, one sequence counter);
3. ``orjson.loads`` alone (no book at all).

Targets: (a) CryptoJ at least as fast as (2); (b) at least half as fast as (3). The two books'
checksums (top 50 levels a side) must agree. Exit status 0 only if both targets hold and the
books agree.

Timing uses this process's CPU time by default (``--timer cpu``): on a shared machine, time
spent waiting for a core is noise that says nothing about the code. ``--timer wall`` is there.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from core.bench_book import (
    BaselineResult,
    BenchBookResult,
    discover_products,
    read_lines,
    run_bench_lines,
    run_cryptofeed_baseline,
    run_orjson_baseline,
)
from core.synthetic_l2 import SyntheticL2Config, generate_l2_lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000, help="l2 update frames")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--products", default="BTC-USD", help="comma-separated product ids")
    parser.add_argument("--file", type=Path, help="use this JSONL recording instead")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each (best counts)")
    parser.add_argument("--timer", choices=("cpu", "wall"), default="cpu")
    args = parser.parse_args(argv)

    if args.file is not None:
        lines = read_lines(args.file)
        source = str(args.file)
    else:
        products = tuple(p.strip() for p in args.products.split(",") if p.strip())
        config = SyntheticL2Config(messages=args.messages, seed=args.seed, products=products)
        lines = generate_l2_lines(config)
        source = f"synthetic, {args.messages:,} update messages, seed {args.seed}, {products}"
    timer = time.process_time if args.timer == "cpu" else time.perf_counter
    product_ids = discover_products(lines)

    ours: BenchBookResult | None = None
    cryptofeed: BaselineResult | None = None
    bare: BaselineResult | None = None
    for _ in range(max(1, args.repeat)):
        run = run_orjson_baseline(lines, timer=timer)
        bare = run if bare is None or run.seconds < bare.seconds else bare
        run = run_cryptofeed_baseline(lines, timer=timer)
        cryptofeed = run if cryptofeed is None or run.seconds < cryptofeed.seconds else cryptofeed
        mine = run_bench_lines(lines, products=product_ids, timer=timer)
        ours = mine if ours is None or mine.seconds < ours.seconds else ours
    assert ours is not None and cryptofeed is not None and bare is not None

    updates = ours.updates
    print(f"recording: {source}")
    print(f"lines: {len(lines):,}   level updates applied: {updates:,}   timer: {args.timer}")
    print(f"best of {max(1, args.repeat)} runs each\n")
    print(f"{'':34} {'seconds':>8} {'messages/s':>12} {'updates/s':>12}")
    for name, seconds in (
        ("cryptoj (on_frame, live path)", ours.seconds),
        ("orjson + cryptofeed order_book", cryptofeed.seconds),
        ("orjson.loads alone", bare.seconds),
    ):
        print(f"{name:34} {seconds:8.3f} {len(lines) / seconds:12,.0f} {updates / seconds:12,.0f}")

    vs_cryptofeed = cryptofeed.seconds / ours.seconds
    vs_orjson = bare.seconds / ours.seconds
    target_a = vs_cryptofeed >= 1.0
    target_b = vs_orjson >= 0.5
    print()
    print(
        f"(a) cryptoj speed / cryptofeed speed = {vs_cryptofeed:.2f}x "
        f"(target >= 1.00)  {'PASS' if target_a else 'FAIL'}"
    )
    print(
        f"(b) cryptoj speed / orjson.loads speed = {vs_orjson:.2f} "
        f"(target >= 0.50)  {'PASS' if target_b else 'FAIL'}"
    )

    agree = True
    for product_id in product_ids:
        mine_sum = ours.checksums.get(product_id)
        theirs = cryptofeed.checksums.get(product_id)
        same = mine_sum == theirs
        agree = agree and same
        print(
            f"checksum {product_id}: cryptoj {mine_sum}  cryptofeed {theirs}  "
            f"{'agree' if same else 'DIFFER'}"
        )
    if ours.gaps or ours.bad_input:
        print(f"note: gaps={ours.gaps} bad_input={ours.bad_input}")
    return 0 if target_a and target_b and agree else 1


if __name__ == "__main__":
    sys.exit(main())
