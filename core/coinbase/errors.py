"""Typed errors of the Coinbase REST client.

Each error keeps what the exchange said (HTTP status, its error code, message and details) so
callers can branch on the type and show the exchange's own words. ``str()`` is one readable
line. No error ever carries a token or key material: messages are built from status lines and
response bodies only, never from request headers.
"""

from __future__ import annotations


class CoinbaseError(Exception):
    """Base of every error the REST client raises."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details

    def __str__(self) -> str:
        parts: list[str] = []
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code:
            parts.append(self.code)
        head = " ".join(parts)
        text = self.message
        if self.details and self.details != self.message:
            text = f"{text} ({self.details})"
        line = f"{head}: {text}" if head else text
        # One line, whatever the exchange put in its body.
        return " ".join(line.split())

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status={self.status!r}, "
            f"code={self.code!r}, details={self.details!r})"
        )


class AuthenticationError(CoinbaseError):
    """401: the JWT was refused (bad signature, expired, clock skew, wrong uri), or no key."""


class PermissionDeniedError(CoinbaseError):
    """403: the key lacks a scope ("Missing required scopes") or the portfolio is not allowed."""


class NotFoundError(CoinbaseError):
    """404: no such order, product or account."""


class InvalidRequestError(CoinbaseError):
    """400 (and other 4xx without a more precise type): the request itself was wrong."""


class RateLimitedError(CoinbaseError):
    """429: throttled. The body may be an HTML page; ``retry_after_s`` comes from a header."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 429,
        code: str | None = None,
        details: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, details=details)
        self.retry_after_s = retry_after_s


class ServerError(CoinbaseError):
    """5xx: the exchange failed. For a request that changes state the outcome is unknown."""


class TransportError(CoinbaseError):
    """No HTTP answer: timeout, connection refused or reset, TLS failure."""

    def __init__(self, message: str, *, timed_out: bool) -> None:
        super().__init__(message, code="TIMEOUT" if timed_out else "TRANSPORT")
        self.timed_out = timed_out


class DecodeError(CoinbaseError):
    """A 2xx answer whose body is not the shape we expect (names the field at fault)."""


class ImpossibleDataError(DecodeError):
    """A value no real exchange sends (a balance of 1e400, a zero increment, a fill past its
    order): refused, counted under ``kind`` in ``core.bad_input.REFUSED_EXCHANGE_DATA``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ResponseTooLargeError(DecodeError):
    """An answer body larger than the client accepts: refused unread, never retried (the
    same request would get the same answer). Memory stays bounded by the cap."""


def error_for_status(
    status: int,
    *,
    code: str | None,
    message: str,
    details: str | None,
    retry_after_s: float | None = None,
) -> CoinbaseError:
    """The typed error for a non-2xx HTTP status, keeping the exchange's code and words."""
    if status == 429:
        return RateLimitedError(
            message, status=status, code=code, details=details, retry_after_s=retry_after_s
        )
    error_type: type[CoinbaseError]
    if status == 401:
        error_type = AuthenticationError
    elif status == 403:
        error_type = PermissionDeniedError
    elif status == 404:
        error_type = NotFoundError
    elif status >= 500:
        error_type = ServerError
    else:
        error_type = InvalidRequestError
    return error_type(message, status=status, code=code, details=details)
