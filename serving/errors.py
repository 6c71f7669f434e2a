"""Canonical error codes and their HTTP statuses, as TF Serving's REST server maps them.

Example:
    >>> ServingError("NOT_FOUND", "Servable not found for request: Latest(mmoe)").http_status
    404
"""

from __future__ import annotations

HTTP_STATUS = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}

# Numeric canonical codes (tf.errors.OpError.error_code) by name.
CODE_NAMES = dict(enumerate(HTTP_STATUS))


class ServingError(Exception):
    """A failed request: ``code`` is a canonical status name, answered as ``{"error": message}``.

    Args:
        code: Canonical status name, e.g. ``INVALID_ARGUMENT``.
        message: Human-readable error text (the response's ``error``).
        http_status: Override of the HTTP status mapped from ``code`` (e.g. 413, 503 for a full queue).
    """

    def __init__(self, code: str, message: str, http_status: int | None = None) -> None:
        if code not in HTTP_STATUS:
            raise ValueError(f"ServingError: unknown canonical code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status or HTTP_STATUS[code]


class RequestError(ServingError, ValueError):
    """A malformed request (INVALID_ARGUMENT, HTTP 400)."""

    def __init__(self, message: str) -> None:
        super().__init__("INVALID_ARGUMENT", message)


def not_found(message: str) -> ServingError:
    """A NOT_FOUND error (HTTP 404)."""
    return ServingError("NOT_FOUND", message)


_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))} | {0x2028: "\\u2028", 0x2029: "\\u2029"}


def log_safe(text: object, limit: int = 300) -> str:
    """``text`` fit for one log line: control characters (newlines included) escaped as ``\\xNN``, lone surrogates
    as ``\\udNNN``, and cut to ``limit`` characters, so a client cannot forge or flood log lines.

    Example:
        >>> log_safe("/v1/models/m\\nFORGED")
        '/v1/models/m\\\\x0aFORGED'
    """
    text = str(text)
    if len(text) > limit:
        text = text[:limit] + f"...({len(text) - limit} more)"
    return text.encode("utf-8", "backslashreplace").decode("utf-8").translate(_CONTROL)
