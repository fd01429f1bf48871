"""A small scriptable WebSocket server on loopback, for testing WebSocket clients.

The test drives every connection by hand: ``await server.accept()`` returns the next accepted
connection as a ``ServerSide``; the test reads what the client sent (``next_json``), sends
frames (``send``), closes with any code (``close``) or cuts the TCP connection without a close
frame (``drop``). ``server.reject_with`` makes handshakes fail with an HTTP status, and every
handshake request (accepted or not) is kept in ``server.requests`` so tests can check headers.
"""

from __future__ import annotations

import asyncio
import http
import socket
import ssl
from typing import Any, Self

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

DEFAULT_WAIT_S = 5.0


class ServerSide:
    """The server's end of one accepted connection."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.inbox: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.closed = asyncio.Event()

    @property
    def headers(self) -> Headers:
        assert self.ws.request is not None
        return self.ws.request.headers

    async def next_message(self, wait_s: float = DEFAULT_WAIT_S) -> str | bytes:
        async with asyncio.timeout(wait_s):
            return await self.inbox.get()

    async def next_json(self, wait_s: float = DEFAULT_WAIT_S) -> dict[str, Any]:
        message = orjson.loads(await self.next_message(wait_s))
        assert isinstance(message, dict)
        return message

    async def receive_json(
        self, count: int, wait_s: float = DEFAULT_WAIT_S
    ) -> list[dict[str, Any]]:
        return [await self.next_json(wait_s) for _ in range(count)]

    async def send(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code, reason)

    def drop(self) -> None:
        """Cut the TCP connection: no close frame, like a crashed server or a dead link."""
        transport = self.ws.transport
        assert isinstance(transport, asyncio.Transport)
        transport.abort()

    async def wait_closed(self, wait_s: float = DEFAULT_WAIT_S) -> None:
        async with asyncio.timeout(wait_s):
            await self.closed.wait()

    @property
    def close_code(self) -> int | None:
        """The code of the close frame the client sent or echoed (None if none was received)."""
        return self.ws.protocol.close_code

    @property
    def close_reason(self) -> str | None:
        return self.ws.protocol.close_reason


class ScriptedWsServer:
    """``async with ScriptedWsServer() as server:`` — a WebSocket server on 127.0.0.1."""

    def __init__(
        self,
        *,
        max_size: int | None = 64 * 1024 * 1024,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._max_size = max_size
        self._ssl_context = ssl_context
        self._server: Server | None = None
        self._accepted: asyncio.Queue[ServerSide] = asyncio.Queue()
        self.requests: list[Request] = []
        # When set, every handshake is answered with this HTTP status instead of upgrading.
        self.reject_with: http.HTTPStatus | None = None
        self.handshake_seen = asyncio.Event()

    async def __aenter__(self) -> Self:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            compression=None,
            max_size=self._max_size,
            ping_interval=None,
            ssl=self._ssl_context,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(next(iter(self._server.sockets)).getsockname()[1])

    @property
    def url(self) -> str:
        scheme = "wss" if self._ssl_context is not None else "ws"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def accept(self, wait_s: float = DEFAULT_WAIT_S) -> ServerSide:
        async with asyncio.timeout(wait_s):
            return await self._accepted.get()

    def retry_counters(self) -> list[str | None]:
        """The x-cb-retry-counter header of every handshake so far, in order."""
        return [request.headers.get("x-cb-retry-counter") for request in self.requests]

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.requests.append(request)
        self.handshake_seen.set()
        if self.reject_with is not None:
            return connection.respond(self.reject_with, "rejected by the test server\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        side = ServerSide(ws)
        self._accepted.put_nowait(side)
        try:
            async for message in ws:
                side.inbox.put_nowait(message)
        except ConnectionClosed:
            pass
        finally:
            side.closed.set()


def unused_port() -> int:
    """A loopback port nobody listens on (bound and released just now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
