"""Write a seeded, synthetic Coinbase level2 recording (JSONL of raw WebSocket frames).

    python scripts/make_l2_recording.py --messages 200000 --seed 1 --out btc.jsonl
    python scripts/make_l2_recording.py --messages 50000 --products BTC-USD,ETH-USD --out two.jsonl

The file replays with ``cryptoj bench-book FILE`` and in replay mode; see core/synthetic_l2.py
for what it contains.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.synthetic_l2 import SyntheticL2Config, write_l2_recording


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000, help="l2 update frames")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True, metavar="FILE")
    parser.add_argument(
        "--products", default="BTC-USD", help="comma-separated product ids (default: BTC-USD)"
    )
    parser.add_argument("--levels", type=int, default=1_000, help="levels a side in the snapshot")
    args = parser.parse_args(argv)
    products = tuple(p.strip() for p in args.products.split(",") if p.strip())
    try:
        config = SyntheticL2Config(
            messages=args.messages, seed=args.seed, products=products, levels_per_side=args.levels
        )
    except ValueError as exc:
        parser.error(str(exc))
    lines = write_l2_recording(args.out, config)
    print(f"wrote {lines:,} frames ({args.messages:,} l2 update messages) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
