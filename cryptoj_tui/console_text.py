"""Texts the console builds from a snapshot for its dialogs and its event log.

Kept out of the App so they can be read and tested on their own: what a cancel names, what a
flatten dialog lists, where a screenshot goes.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from core.model import ExchangeOrder
from core.snapshot import EngineSnapshot


def describe_order(order: ExchangeOrder) -> str:
    """An open order for the event log: "BUY 0.05 BTC-USD LIMIT @ 64,241.50 (stop 64,000)"."""
    size = order.base_size if order.base_size is not None else order.quote_size
    parts = [order.side.value, "—" if size is None else format(size, "f"), order.product_id]
    parts.append(order.order_type)
    if order.limit_price is not None:
        parts.append(f"@ {format(order.limit_price, ',f')}")
    if order.stop_price is not None:
        parts.append(f"(stop {format(order.stop_price, ',f')})")
    return " ".join(parts)


def flatten_preview(snapshot: EngineSnapshot | None) -> str:
    """What a flatten would sell, per product: size and notional at the mark."""
    positions = None if snapshot is None else snapshot.positions
    if positions is None:
        return "Positions are not known yet: the flatten sizes its orders from fresh balances."
    held = [position for position in positions if position.size != 0]
    if not held:
        return "Nothing is held: there is nothing to sell."
    lines = []
    total = Decimal(0)
    known = True
    for position in held:
        verb = "sell" if position.size > 0 else "buy back"
        size = format(abs(position.size).normalize(), "f")
        if position.mark is None:
            known = False
            notional = "notional —"
        else:
            value = abs(position.size) * position.mark
            total += value
            notional = f"≈ {value:,.2f} at {position.mark:,.2f}"
        lines.append(f"  {position.product_id}: {verb} {size}  {notional}")
    lines.append(f"  total ≈ {total:,.2f}" if known else "  total —")
    return "\n".join(lines)


def screenshot_dir(engine: object) -> Path:
    """Where screenshots go: ``<data dir>/screenshots`` (the engine's, else the default)."""
    settings = getattr(engine, "settings", None)
    storage = getattr(settings, "storage", None)
    data_dir = getattr(storage, "data_dir", None)
    if not isinstance(data_dir, Path):
        import platformdirs

        data_dir = Path(platformdirs.user_data_dir("cryptoj"))
    return data_dir / "screenshots"
