"""The trades tape: newest first, buys and sells coloured apart, no work for an old version."""

from __future__ import annotations

from collections.abc import Callable

from textual.strip import Strip

from core.model import Side
from core.snapshot import TapeView
from tests.widgets.helpers import HostApp, make_trade
from widgets.trades_tape import TradesTape


class CountingTape(TradesTape):
    """A tape that counts full refreshes."""

    def __init__(self) -> None:
        self.refreshes = 0
        super().__init__()

    def refresh(self, *regions: object, **options: bool) -> CountingTape:
        self.refreshes += 1
        super().refresh(*regions, **options)  # type: ignore[arg-type]
        return self


def colour(strip: Strip, text: str) -> str | None:
    for segment in strip:
        if text in segment.text and segment.style is not None and segment.style.color:
            return segment.style.color.name
    return None


async def test_newest_trade_on_top_coloured_by_side(host: Callable[..., HostApp]) -> None:
    tape = TradesTape()
    trades = (make_trade(3, Side.SELL, 101.5, 0.25), make_trade(2, Side.BUY, 101.0, 2.0))
    async with host(tape).run_test(size=(40, 8)) as pilot:
        assert tape.update_tape(TapeView("BTC-USD", 1, trades), price_decimals=2, size_decimals=4)
        await pilot.pause()
        lines = [tape.render_line(y) for y in range(4)]
        assert lines[0].text.split() == ["time", "price", "size"]
        assert lines[1].text.split() == ["00:00:03", "101.50", "0.2500"]
        assert lines[2].text.split() == ["00:00:02", "101.00", "2.0000"]
        assert lines[3].text.strip() == ""
        sell_style = tape.get_component_rich_style("trades-tape--sell")
        buy_style = tape.get_component_rich_style("trades-tape--buy")
        assert sell_style.color != buy_style.color
        assert any(seg.style and seg.style.color == sell_style.color for seg in lines[1])
        assert any(seg.style and seg.style.color == buy_style.color for seg in lines[2])


async def test_empty_tape_says_so(host: Callable[..., HostApp]) -> None:
    tape = TradesTape()
    async with host(tape).run_test(size=(40, 8)) as pilot:
        tape.update_tape(TapeView("BTC-USD", 0, ()), price_decimals=2, size_decimals=4)
        await pilot.pause()
        assert tape.render_line(1).text.strip() == "no trades yet"
        assert tape.trades == ()


async def test_same_version_is_skipped_and_lines_are_reused(
    host: Callable[..., HostApp],
) -> None:
    tape = CountingTape()
    first = TapeView("BTC-USD", 1, (make_trade(1, Side.BUY),))
    async with host(tape).run_test(size=(40, 8)) as pilot:
        tape.update_tape(first, price_decimals=2, size_decimals=4)
        await pilot.pause()
        before = tape.refreshes
        assert not tape.update_tape(first, price_decimals=2, size_decimals=4)
        assert tape.refreshes == before
        line = tape.render_line(1)
        newer = TapeView("BTC-USD", 2, (make_trade(2, Side.SELL), make_trade(1, Side.BUY)))
        assert tape.update_tape(newer, price_decimals=2, size_decimals=4)
        await pilot.pause()
        # The old trade moved down a line; its rendered line is the cached one.
        assert tape.render_line(2) is line
        assert tape.tape is newer


async def test_new_version_with_the_same_trades_is_skipped(host: Callable[..., HostApp]) -> None:
    tape = CountingTape()
    trades = (make_trade(2, Side.SELL), make_trade(1, Side.BUY))
    async with host(tape).run_test(size=(40, 8)) as pilot:
        tape.update_tape(TapeView("BTC-USD", 1, trades), price_decimals=2, size_decimals=4)
        await pilot.pause()
        before = tape.refreshes
        bumped = TapeView("BTC-USD", 9, trades)  # e.g. a market-wide version moved
        assert not tape.update_tape(bumped, price_decimals=2, size_decimals=4)
        assert tape.refreshes == before
        assert tape.tape is bumped
        # Same trades but another product: that is a switch, so it repaints.
        other = TapeView("ETH-USD", 9, trades)
        assert tape.update_tape(other, price_decimals=2, size_decimals=4)
