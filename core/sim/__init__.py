"""The simulated exchange: a Coinbase-like venue that runs in-process with no network.

``types`` is the contract between the engine and the server; ``products``, ``matching``,
``accounts`` and ``exchange`` are the engine; ``agents`` makes a believable live market on it.
Everything here is synchronous and deterministic given (seed, clock, call order).
"""
