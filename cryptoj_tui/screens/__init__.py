"""The console's screens: the main market screen and the help."""

from cryptoj_tui.screens.help import HelpRow, HelpScreen, help_rows
from cryptoj_tui.screens.main import MainScreen

__all__ = ["HelpRow", "HelpScreen", "MainScreen", "help_rows"]
