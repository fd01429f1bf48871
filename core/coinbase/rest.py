"""``CoinbaseRestClient``: the Advanced Trade REST API (``/api/v3/brokerage``) over httpx.

One pooled ``httpx.AsyncClient`` with explicit timeouts; a fresh JWT per request; client-side
pacing with separate private/public token buckets; typed errors (``core.coinbase.errors``);
answers decoded into ``core.model`` types by ``core.coinbase.rest_decode``.

Retry policy, and why:
- Idempotent GETs retry on 429, 5xx and transport errors with exponential backoff and jitter,
  up to ``retry_attempts`` times. A 401 on a GET is retried once with a fresh token: Coinbase
  sometimes answers throttling or a token it did not like with a spurious 401.
- POSTs (create and cancel orders) are never retried here. A create that timed out or got a
  5xx may have placed the order; sending it again is the caller's decision, after
  reconciliation, and always with the SAME client_order_id (the exchange deduplicates on it).

Bounds, and why: every call has a TOTAL deadline (``deadline_s``: all attempts, the answer
read to its last byte), because httpx's timeouts are per read and a server trickling one byte
at a time would hold a kill switch forever; and every answer body is capped
(``max_response_bytes``, checked while streaming, so memory stays flat whatever the server
sends).

Works against the real exchange (``https://api.coinbase.com``) and the simulated one
(``http://127.0.0.1:PORT``): the JWT ``uri`` host is whatever the base URL names.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Final, Self, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from core.clock import Clock
from core.coinbase.auth import JwtSigner, rest_host_from_url
from core.coinbase.errors import (
    AuthenticationError,
    CoinbaseError,
    DecodeError,
    RateLimitedError,
    ResponseTooLargeError,
    ServerError,
    TransportError,
    error_for_status,
)
from core.coinbase.ratelimit import RestRateLimits, SleepFn
from core.coinbase.rest_decode import (
    BookSnapshot,
    JsonObject,
    KeyPermissions,
    ServerTime,
    decode_accounts_page,
    decode_cancel_results,
    decode_candles,
    decode_create_order,
    decode_error_body,
    decode_fills_page,
    decode_get_order,
    decode_key_permissions,
    decode_orders_page,
    decode_product,
    decode_product_book,
    decode_products,
    decode_server_time,
    parse_json_object,
)
from core.config import ExchangeSettings
from core.model import (
    Balance,
    Candle,
    ExchangeOrder,
    ExchangeOrderStatus,
    Fill,
    OrderSpec,
    OrderType,
    Page,
    Product,
    TimeInForce,
    decimal_str,
)
from core.order_rules import shape_problems
from core.venue import (
    CancelResult,
    CreateOrderOutcome,
    OrderAccepted,
    OrderOutcomeUnknown,
    OrderRejected,
)

__all__ = [
    "BookSnapshot",
    "CancelResult",
    "CoinbaseRestClient",
    "CreateOrderOutcome",
    "KeyPermissions",
    "OrderAccepted",
    "OrderOutcomeUnknown",
    "OrderRejected",
    "ServerTime",
    "build_create_order_body",
    "is_coinbase_host",
]

logger = logging.getLogger(__name__)

API_PREFIX: Final = "/api/v3/brokerage"
MAX_CANCEL_BATCH: Final = 100  # the exchange rejects larger batch_cancel requests
ACCOUNTS_PAGE_LIMIT: Final = 250
MAX_CLIENT_ORDER_ID_LENGTH: Final = 128
# A cursor chain longer than this is a server bug, not data: stop instead of looping forever.
MAX_PAGES: Final = 1000
# Retry-After values above this are capped: a GET caller would rather fail and decide.
MAX_RETRY_AFTER_S: Final = 30.0
# Statuses that are still live on the book or cancelable but hidden by order_status=OPEN.
OPEN_STATUSES_BESIDES_OPEN: Final = (
    ExchangeOrderStatus.PENDING,
    ExchangeOrderStatus.QUEUED,
    ExchangeOrderStatus.CANCEL_QUEUED,
    ExchangeOrderStatus.EDIT_QUEUED,
)
# Default error codes for create-order refusals whose body names none (e.g. plain "Unauthorized").
_STATUS_CODES: Final = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
}

QueryValue = str | int | Sequence[str]
T = TypeVar("T")


def is_coinbase_host(host: str | None) -> bool:
    """True for coinbase.com and its subdomains, where TLS checks may never be turned off."""
    if not host:
        return False
    host = host.lower().rstrip(".")
    return host == "coinbase.com" or host.endswith(".coinbase.com")


def _verification_disabled(verify: ssl.SSLContext | bool) -> bool:
    if isinstance(verify, ssl.SSLContext):
        return verify.verify_mode == ssl.CERT_NONE or not verify.check_hostname
    return verify is False


class CoinbaseRestClient:
    """Async client for the endpoints CryptoJ uses. Use as ``async with`` or call ``aclose()``.

    Without a signer only the public endpoints work (``/time`` and the ``/market/...`` mirrors,
    which the market-data methods then use); private ones raise ``AuthenticationError`` before
    anything is sent. With a signer, market data comes from the authenticated paths, which
    have the larger (private) budget.
    """

    def __init__(
        self,
        base_url: str,
        signer: JwtSigner | None,
        *,
        clock: Clock,
        timeout_s: float = 10,
        connect_timeout_s: float = 5,
        deadline_s: float = 20,
        max_response_bytes: int = 8 * 1024 * 1024,
        private_rate_per_s: float = 25,
        public_rate_per_s: float = 8,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
        sleep: SleepFn = asyncio.sleep,
        retry_attempts: int = 3,
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 8.0,
        rng: random.Random | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        parts = urlsplit(base)
        if is_coinbase_host(parts.hostname):
            if parts.scheme != "https":
                raise ValueError(f"{parts.hostname} must be reached over https, not {parts.scheme}")
            if _verification_disabled(verify):
                raise ValueError(
                    f"TLS certificate verification cannot be disabled for {parts.hostname}"
                )
        host = rest_host_from_url(base)
        if signer is not None and signer.rest_host != host:
            raise ValueError(
                f"the signer signs for host {signer.rest_host!r} but the base URL is {host!r}; "
                "every request would be refused with 401"
            )
        if retry_attempts < 0:
            raise ValueError(f"retry_attempts must be >= 0, got {retry_attempts}")
        if deadline_s <= 0 or max_response_bytes <= 0:
            raise ValueError("deadline_s and max_response_bytes must be positive")
        self._deadline_s = deadline_s
        self._max_response_bytes = max_response_bytes
        self._signer = signer
        self._clock = clock
        self._sleep = sleep
        self._retry_attempts = retry_attempts
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._rng = rng or random.Random()
        self._limits = RestRateLimits.create(
            clock,
            private_rate_per_s=private_rate_per_s,
            public_rate_per_s=public_rate_per_s,
            sleep=sleep,
        )
        self._http = httpx.AsyncClient(
            base_url=f"{base}{API_PREFIX}",
            timeout=httpx.Timeout(
                connect=connect_timeout_s, read=timeout_s, write=timeout_s, pool=timeout_s
            ),
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
            transport=transport,
            verify=verify,
            follow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": "cryptoj"},
        )

    @classmethod
    def from_settings(
        cls,
        exchange: ExchangeSettings,
        signer: JwtSigner | None,
        *,
        clock: Clock,
        **options: Any,
    ) -> CoinbaseRestClient:
        """A client with the URL, timeouts and rates of ``settings.exchange``."""
        return cls(
            exchange.rest_url,
            signer,
            clock=clock,
            timeout_s=exchange.request_timeout_s,
            connect_timeout_s=exchange.connect_timeout_s,
            deadline_s=exchange.request_deadline_s,
            max_response_bytes=exchange.max_response_bytes,
            private_rate_per_s=exchange.private_rate_per_s,
            public_rate_per_s=exchange.public_rate_per_s,
            **options,
        )

    @property
    def signer(self) -> JwtSigner | None:
        return self._signer

    @property
    def rate_limits(self) -> RestRateLimits:
        return self._limits

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ----------------------------------------------------------------------- public data

    async def get_server_time(self) -> ServerTime:
        return decode_server_time(await self._get("/time", private=False))

    async def measure_clock_offset(self) -> float:
        """Server clock minus local clock (seconds), against the request's midpoint.

        Also sets ``signer.clock_offset_s`` so token ``nbf``/``exp`` follow the server.
        """
        timing: list[float] = []
        data = await self._call("GET", "/time", private=False, idempotent=True, timing=timing)
        server = decode_server_time(data)
        sent, received = timing
        offset = server.epoch_seconds - (sent + received) / 2
        if self._signer is not None:
            self._signer.clock_offset_s = offset
        return offset

    async def list_products(self, product_ids: Sequence[str] | None = None) -> list[Product]:
        params: dict[str, QueryValue | None] = {"product_ids": _list_param(product_ids)}
        return decode_products(await self._market_get("/products", params))

    async def get_product(self, product_id: str) -> Product:
        return decode_product(await self._market_get(f"/products/{_segment(product_id)}"))

    async def get_product_book(self, product_id: str, limit: int | None = None) -> BookSnapshot:
        params: dict[str, QueryValue | None] = {"product_id": product_id, "limit": limit}
        return decode_product_book(await self._market_get("/product_book", params))

    async def get_candles(
        self, product_id: str, start: int, end: int, granularity: str
    ) -> list[Candle]:
        """Candles between ``start`` and ``end`` (unix seconds), oldest first (≤350 a call)."""
        params: dict[str, QueryValue | None] = {
            "start": str(start),
            "end": str(end),
            "granularity": granularity,
        }
        path = f"/products/{_segment(product_id)}/candles"
        return decode_candles(await self._market_get(path, params), product_id)

    # ----------------------------------------------------------------------- account

    async def list_accounts(self) -> list[Balance]:
        """Every account's balance, following ``cursor`` until ``has_next`` is false."""
        return await self._collect_pages(
            "/accounts", {"limit": ACCOUNTS_PAGE_LIMIT}, decode_accounts_page, limit=None
        )

    async def get_key_permissions(self) -> KeyPermissions:
        return decode_key_permissions(await self._get("/key_permissions", private=True))

    # ----------------------------------------------------------------------- orders

    async def create_order(self, spec: OrderSpec, client_order_id: str) -> CreateOrderOutcome:
        """Place one order. Never raises for an exchange answer; returns the outcome.

        - ``OrderAccepted``: ``success: true`` (``failure_reason`` on a success is ignored).
        - ``OrderRejected``: ``success: false``, a 4xx refusal, or a 429 (code RATE_LIMITED):
          the exchange refused before placing anything.
        - ``OrderOutcomeUnknown``: timeout, transport error, 5xx or an unreadable answer.
          The order may exist. Reconcile first; to try again call ``retry_create_order`` (or
          this method) with the SAME ``client_order_id`` so the exchange can deduplicate. This
          method never re-sends by itself.

        Raises ``ValueError`` for a spec that cannot be expressed (nothing is sent) and
        ``AuthenticationError`` when no key is configured.
        """
        body = build_create_order_body(spec, client_order_id)
        self._require_signer(private=True)
        try:
            data = await self._call("POST", "/orders", json_body=body, private=True)
        except RateLimitedError as error:
            return OrderRejected("RATE_LIMITED", error.message, error.details or "")
        except (TransportError, ServerError) as error:
            return OrderOutcomeUnknown(str(error))
        except DecodeError as error:
            return OrderOutcomeUnknown(f"unreadable create-order answer: {error}")
        except CoinbaseError as error:
            if error.status == 408:  # the server gave up reading: it may have acted on it
                return OrderOutcomeUnknown(str(error))
            code = error.code or _STATUS_CODES.get(error.status or 0, f"HTTP_{error.status}")
            return OrderRejected(code, error.message, error.details or "")
        return decode_create_order(
            data, client_order_id=client_order_id, product_id=spec.product_id, side=spec.side
        )

    async def retry_create_order(self, spec: OrderSpec, client_order_id: str) -> CreateOrderOutcome:
        """Send an order again after an unknown outcome: the same request, the SAME id.

        The caller decides when (after reconciliation found no such order); nothing in this
        client re-sends an order on its own.
        """
        return await self.create_order(spec, client_order_id)

    async def cancel_orders(self, order_ids: Sequence[str]) -> list[CancelResult]:
        """Cancel orders in batches of at most 100 (``POST /orders/batch_cancel``).

        The batches are sent concurrently. Best effort across batches: a batch whose request
        fails yields a failed result per id
        (``failure_reason`` = the error code, e.g. TIMEOUT or HTTP_500) and the other batches
        still go out, so a kill switch never stops half way. Ids missing from an answer are
        reported as failed (MISSING_FROM_RESPONSE). Cancels are asynchronous on the exchange:
        list the orders again to confirm.
        """
        self._require_signer(private=True)
        unique_ids = list(dict.fromkeys(order_ids))
        batches = [
            unique_ids[first : first + MAX_CANCEL_BATCH]
            for first in range(0, len(unique_ids), MAX_CANCEL_BATCH)
        ]
        # Every batch at once (the pool holds connections for them): a kill switch's 200
        # cancels take one round trip, not two.
        answers = await asyncio.gather(*(self._cancel_batch(batch) for batch in batches))
        return [result for answer in answers for result in answer]

    async def _cancel_batch(self, batch: list[str]) -> list[CancelResult]:
        """One ``batch_cancel`` request; never raises for an exchange answer or a failure."""
        try:
            data = await self._call(
                "POST", "/orders/batch_cancel", json_body={"order_ids": batch}, private=True
            )
            answered = decode_cancel_results(data)
        except CoinbaseError as error:
            reason = _error_code(error)
            return [CancelResult(order_id, False, reason) for order_id in batch]
        seen = {result.order_id for result in answered}
        return [
            *answered,
            *(
                CancelResult(order_id, False, "MISSING_FROM_RESPONSE")
                for order_id in batch
                if order_id not in seen
            ),
        ]

    async def get_order(self, order_id: str) -> ExchangeOrder:
        path = f"/orders/historical/{_segment(order_id)}"
        return decode_get_order(await self._get(path, private=True))

    async def list_orders(
        self,
        *,
        product_ids: Sequence[str] | None = None,
        order_status: Sequence[ExchangeOrderStatus | str] | None = None,
        order_ids: Sequence[str] | None = None,
        start_date: datetime | None = None,
        limit: int | None = None,
    ) -> list[ExchangeOrder]:
        """Orders matching the filters, following cursors. ``limit`` caps the total returned
        (and is the page size asked for); None means all of them."""
        params: dict[str, QueryValue | None] = {
            "product_ids": _list_param(product_ids),
            "order_status": _list_param([str(status) for status in order_status or ()]),
            "order_ids": _list_param(order_ids),
            "start_date": _rfc3339(start_date) if start_date is not None else None,
            "limit": limit,
        }
        return await self._collect_pages(
            "/orders/historical/batch", params, decode_orders_page, limit=limit
        )

    async def list_open_orders(
        self, product_ids: Sequence[str] | None = None
    ) -> list[ExchangeOrder]:
        """Every order still live or cancelable: OPEN, PENDING, QUEUED, CANCEL_QUEUED, EDIT_QUEUED.

        Not just ``order_status=OPEN``: that filter hides PENDING and QUEUED orders, which are
        still cancelable and which a kill switch must sweep. So two queries: OPEN alone (kept
        separate in case the exchange refuses OPEN combined with other statuses), then the
        other open-ish statuses explicitly. Merged by order id and filtered with
        ``ExchangeOrderStatus.is_open`` (an order may change status between the two calls).
        """
        open_orders = await self.list_orders(
            product_ids=product_ids, order_status=[ExchangeOrderStatus.OPEN]
        )
        others = await self.list_orders(
            product_ids=product_ids, order_status=OPEN_STATUSES_BESIDES_OPEN
        )
        merged: dict[str, ExchangeOrder] = {}
        for order in [*open_orders, *others]:
            merged.setdefault(order.order_id, order)
        return [order for order in merged.values() if order.status.is_open]

    async def list_fills(
        self,
        *,
        order_ids: Sequence[str] | None = None,
        product_ids: Sequence[str] | None = None,
        start_sequence_timestamp: datetime | None = None,
        limit: int | None = None,
    ) -> list[Fill]:
        """Fills matching the filters, following cursors; ``limit`` caps the total."""
        params: dict[str, QueryValue | None] = {
            "order_ids": _list_param(order_ids),
            "product_ids": _list_param(product_ids),
            "start_sequence_timestamp": (
                _rfc3339(start_sequence_timestamp) if start_sequence_timestamp else None
            ),
            "limit": limit,
        }
        return await self._collect_pages(
            "/orders/historical/fills", params, decode_fills_page, limit=limit
        )

    # ----------------------------------------------------------------------- plumbing

    async def _market_get(
        self, path: str, params: Mapping[str, QueryValue | None] | None = None
    ) -> JsonObject:
        if self._signer is None:
            return await self._get(f"/market{path}", params, private=False)
        return await self._get(path, params, private=True)

    async def _get(
        self,
        path: str,
        params: Mapping[str, QueryValue | None] | None = None,
        *,
        private: bool,
    ) -> JsonObject:
        return await self._call("GET", path, params=params, private=private, idempotent=True)

    async def _collect_pages(
        self,
        path: str,
        params: Mapping[str, QueryValue | None],
        decode: Callable[[JsonObject], Page[T]],
        *,
        limit: int | None,
    ) -> list[T]:
        items: list[T] = []
        cursors_seen: set[str] = set()
        cursor = ""
        for _ in range(MAX_PAGES):
            page_params = {**params, "cursor": cursor or None}
            page = decode(await self._get(path, page_params, private=True))
            items.extend(page.items)
            if limit is not None and len(items) >= limit:
                return items[:limit]
            if not page.has_next or not page.cursor:
                return items
            if page.cursor in cursors_seen:
                raise DecodeError(f"GET {path}: the exchange repeated cursor {page.cursor!r}")
            cursors_seen.add(page.cursor)
            cursor = page.cursor
        raise DecodeError(f"GET {path}: more than {MAX_PAGES} pages")

    def _require_signer(self, *, private: bool) -> None:
        if private and self._signer is None:
            raise AuthenticationError("no API key configured", code="NO_API_KEY")

    async def _call(
        self,
        method: str,
        path: str,
        *,
        private: bool,
        params: Mapping[str, QueryValue | None] | None = None,
        json_body: Mapping[str, object] | None = None,
        idempotent: bool = False,
        timing: list[float] | None = None,
    ) -> JsonObject:
        """One logical request: pacing, signing, the retry policy in the module docstring, all
        within the call's total deadline."""
        self._require_signer(private=private)
        try:
            async with asyncio.timeout(self._deadline_s):
                return await self._call_with_retries(
                    method, path, private, params, json_body, idempotent, timing
                )
        except TimeoutError:
            logger.warning("%s %s: no complete answer within %g s", method, path, self._deadline_s)
            raise TransportError(
                f"{method} {path}: no complete answer within the {self._deadline_s:g} s deadline",
                timed_out=True,
            ) from None

    async def _call_with_retries(
        self,
        method: str,
        path: str,
        private: bool,
        params: Mapping[str, QueryValue | None] | None,
        json_body: Mapping[str, object] | None,
        idempotent: bool,
        timing: list[float] | None,
    ) -> JsonObject:
        retries_left = self._retry_attempts if idempotent else 0
        auth_retries_left = 1 if idempotent and private else 0
        attempt = 0
        while True:
            try:
                return await self._send_once(method, path, params, json_body, private, timing)
            except CoinbaseError as error:
                if isinstance(error, AuthenticationError) and auth_retries_left:
                    auth_retries_left -= 1
                elif retries_left and _retryable(error):
                    retries_left -= 1
                else:
                    logger.warning(
                        "%s %s failed after %d attempt(s): %s", method, path, attempt + 1, error
                    )
                    raise
                delay = self._backoff_delay(attempt, error)
                logger.info("%s %s: %s; retrying in %.2f s", method, path, error, delay)
                attempt += 1
                await self._sleep(delay)

    async def _send_once(
        self,
        method: str,
        path: str,
        params: Mapping[str, QueryValue | None] | None,
        json_body: Mapping[str, object] | None,
        private: bool,
        timing: list[float] | None,
    ) -> JsonObject:
        await self._limits.bucket(private=private).acquire()
        query = {key: value for key, value in (params or {}).items() if value is not None}
        request = self._http.build_request(method, path, params=query or None, json=json_body)
        if private and self._signer is not None:
            # Signed after the URL is built, from its path (prefix included, query excluded),
            # so the token's uri always matches what goes on the wire.
            token = self._signer.rest_token(method, request.url.path)
            request.headers["Authorization"] = f"Bearer {token}"
        sent_at = self._clock.time()
        try:
            response = await self._http.send(request, stream=True)
            try:
                content = await self._read_capped(response, f"{method} {path}")
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise TransportError(
                f"{method} {path}: no answer in time ({type(exc).__name__})", timed_out=True
            ) from None
        except httpx.TransportError as exc:
            raise TransportError(
                f"{method} {path}: {type(exc).__name__}: {exc}", timed_out=False
            ) from None
        if timing is not None:
            timing[:] = [sent_at, self._clock.time()]
        if response.is_success:
            return parse_json_object(content, f"{method} {path}")
        body = decode_error_body(content, response.headers.get("content-type"))
        raise error_for_status(
            response.status_code,
            code=body.code,
            message=body.message,
            details=body.details,
            retry_after_s=_retry_after(response.headers.get("retry-after")),
        )

    async def _read_capped(self, response: httpx.Response, what: str) -> bytes:
        """The (decompressed) body, refused as soon as it passes ``max_response_bytes``."""
        cap = self._max_response_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise ResponseTooLargeError(
                f"{what}: answer of {int(declared)} bytes refused (limit {cap} bytes)"
            )
        chunks: list[bytes] = []
        received = 0
        async for chunk in response.aiter_bytes():
            received += len(chunk)
            if received > cap:
                raise ResponseTooLargeError(
                    f"{what}: answer passed {cap} bytes and was refused (limit {cap} bytes)"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _backoff_delay(self, attempt: int, error: CoinbaseError) -> float:
        ceiling = min(self._backoff_max_s, self._backoff_initial_s * 2.0**attempt)
        # "Equal jitter": at least half the exponential step, so retries from many clients
        # spread out without ever retrying immediately.
        delay = ceiling * (0.5 + 0.5 * self._rng.random())
        if isinstance(error, RateLimitedError) and error.retry_after_s is not None:
            delay = max(delay, min(error.retry_after_s, MAX_RETRY_AFTER_S))
        return delay


def _retryable(error: CoinbaseError) -> bool:
    return isinstance(error, RateLimitedError | ServerError | TransportError)


def _error_code(error: CoinbaseError) -> str:
    if isinstance(error, RateLimitedError):
        return "RATE_LIMITED"
    if error.code:
        return error.code
    if error.status is not None:
        return f"HTTP_{error.status}"
    return type(error).__name__


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header; the HTTP-date form is ignored (backoff applies)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _list_param(values: Sequence[str] | None) -> list[str] | None:
    # Sent as repeated keys (product_ids=A&product_ids=B); an empty list means "no filter".
    return list(values) if values else None


def _segment(identifier: str) -> str:
    """An id as one path segment: a '/' or '?' in it must not change the endpoint."""
    if not identifier:
        raise ValueError("an id in a URL path cannot be empty")
    return quote(identifier, safe="-_.~")


def _rfc3339(moment: datetime) -> str:
    """UTC, 'Z', whole seconds: the form Coinbase shows (``2024-05-31T09:59:59Z``)."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime is ambiguous; pass a timezone-aware one")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- request bodies


def build_create_order_body(spec: OrderSpec, client_order_id: str) -> dict[str, object]:
    """The ``POST /orders`` body for a spec (docs/coinbase-protocol.md §2.2). Raises ``ValueError``
    for a spec the exchange cannot express, so nothing malformed is ever sent."""
    if not client_order_id or len(client_order_id) > MAX_CLIENT_ORDER_ID_LENGTH:
        raise ValueError(
            f"client_order_id must be 1 to {MAX_CLIENT_ORDER_ID_LENGTH} characters long"
        )
    return {
        "client_order_id": client_order_id,
        "product_id": spec.product_id,
        "side": spec.side.value,
        "order_configuration": order_configuration(spec),
    }


def order_configuration(spec: OrderSpec) -> dict[str, dict[str, object]]:
    """Exactly one ``order_configuration`` entry for the spec's type and time in force.

    Raises ``ValueError`` only for a spec the shared order rules refuse (core/order_rules.py);
    the risk gate refuses those first, with a named denial, so an order it allowed encodes.
    """
    problems = shape_problems(spec)
    if problems:
        raise ValueError(f"order refused by the order rules: {problems[0]}")
    if spec.order_type is OrderType.MARKET:
        return {"market_market_ioc": _market_sizes(spec)}
    if spec.order_type is OrderType.LIMIT:
        return _limit_configuration(spec)
    if spec.order_type is OrderType.STOP_LIMIT:
        return _stop_limit_configuration(spec)
    raise ValueError(f"unsupported order type {spec.order_type!r}")  # pragma: no cover


def _market_sizes(spec: OrderSpec) -> dict[str, object]:
    # Spot market orders are always IOC on Coinbase (market FOK is derivatives-only), so the
    # spec's time in force does not select a configuration here.
    if (spec.base_size is None) == (spec.quote_size is None):
        raise ValueError("a market order needs exactly one of base_size or quote_size")
    if spec.base_size is not None:
        return {"base_size": _positive(spec.base_size, "base_size")}
    assert spec.quote_size is not None
    return {"quote_size": _positive(spec.quote_size, "quote_size")}


def _limit_configuration(spec: OrderSpec) -> dict[str, dict[str, object]]:
    fields = _base_and_limit(spec)
    tif = spec.time_in_force
    if tif is TimeInForce.GTC:
        return {"limit_limit_gtc": {**fields, "post_only": spec.post_only}}
    if tif is TimeInForce.GTD:
        return {
            "limit_limit_gtd": {**fields, "end_time": _end_time(spec), "post_only": spec.post_only}
        }
    if tif is TimeInForce.IOC:
        return {"sor_limit_ioc": fields}
    return {"limit_limit_fok": fields}


def _stop_limit_configuration(spec: OrderSpec) -> dict[str, dict[str, object]]:
    assert spec.stop_price is not None and spec.stop_direction is not None  # order rules
    fields = {
        **_base_and_limit(spec),
        "stop_price": _positive(spec.stop_price, "stop_price"),
        "stop_direction": spec.stop_direction.value,
    }
    if spec.time_in_force is TimeInForce.GTC:
        return {"stop_limit_stop_limit_gtc": fields}
    if spec.time_in_force is TimeInForce.GTD:
        return {"stop_limit_stop_limit_gtd": {**fields, "end_time": _end_time(spec)}}
    raise ValueError(f"stop-limit orders are GTC or GTD, not {spec.time_in_force.name}")


def _base_and_limit(spec: OrderSpec) -> dict[str, object]:
    if spec.base_size is None or spec.quote_size is not None:
        raise ValueError(f"a {spec.order_type.value} order is sized in base_size only")
    if spec.limit_price is None:
        raise ValueError(f"a {spec.order_type.value} order needs limit_price")
    return {
        "base_size": _positive(spec.base_size, "base_size"),
        "limit_price": _positive(spec.limit_price, "limit_price"),
    }


def _end_time(spec: OrderSpec) -> str:
    if spec.end_time is None:
        raise ValueError("a GTD order needs end_time")
    return _rfc3339(spec.end_time)


def _positive(value: Decimal, name: str) -> str:
    if not value.is_finite() or value <= 0:
        raise ValueError(f"{name} must be a positive finite decimal, got {value}")
    return decimal_str(value)
