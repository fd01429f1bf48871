"""Tests of the strategies (core.strategy)."""
