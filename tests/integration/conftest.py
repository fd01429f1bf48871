"""The loopback fixtures (an in-process simulated exchange and clients over real sockets);
they and their helpers are defined in ``tests/integration/loopback.py``."""

from tests.integration.loopback import (  # noqa: F401  (fixtures pytest finds by name)
    endpoints,
    rest,
    server_options,
    sim_clock,
    sim_exchange,
    sim_server,
    ws_connect,
)
