"""CryptoJ's engine: UI-free. Nothing under ``core`` may import textual, rich, widgets or cryptoj_tui."""

__version__ = "0.1.0"
