"""Textual widgets of the CryptoJ console.

Widgets read ``core.snapshot`` view types and nothing else of the engine: each is fed plain
values by its screen and skips the work when what it shows did not change.
"""

from widgets.balances import BalancesPanel
from widgets.event_log import EventLog
from widgets.open_orders import OpenOrdersTable
from widgets.order_book import OrderBookLadder
from widgets.positions import PositionsPanel
from widgets.price_chart import PriceChart
from widgets.risk_gauges import RiskGauges
from widgets.status_bar import StatusBar
from widgets.trades_tape import TradesTape
from widgets.trading_banner import TradingBanner

__all__ = [
    "BalancesPanel",
    "EventLog",
    "OpenOrdersTable",
    "OrderBookLadder",
    "PositionsPanel",
    "PriceChart",
    "RiskGauges",
    "StatusBar",
    "TradesTape",
    "TradingBanner",
]
