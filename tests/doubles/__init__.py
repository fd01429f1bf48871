"""Test doubles shared by the test packages: stand-ins for the engine, the venue, the risk gate
and listeners. They live here, not in the product, so nothing test-only ships in the wheel."""
