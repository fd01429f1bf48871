"""The loopback fixtures of ``tests/integration/loopback.py`` (an in-process simulated
exchange and clients over real sockets), for the fault-injection tests."""

from tests.integration.loopback import (  # noqa: F401  (fixtures pytest finds by name)
    endpoints,
    rest,
    server_options,
    sim_clock,
    sim_exchange,
    sim_server,
    ws_connect,
)
