"""Tests of the simulated exchange (core.sim)."""
