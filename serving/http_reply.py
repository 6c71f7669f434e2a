"""What the REST API's HTTP layer sends: the request a handler gets, its answer, and the bytes of a response head.

Example:
    >>> reply = Reply()
    >>> reply.when_sent(print)
    >>> reply.send(200, b"{}")
    (200, b'{}')
    True
    >>> response_head(404, 2, keep_alive=False, http_10=False).splitlines()[0]
    b'HTTP/1.1 404 Not Found'
"""

from __future__ import annotations

import dataclasses
import http
import json
from collections.abc import Awaitable, Callable

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclasses.dataclass(frozen=True)
class HttpRequest:
    """One parsed request.

    Args:
        method: ``GET``, ``HEAD``, ``POST``, ...
        path: The URL's path as sent (still percent-encoded), without the query string: route on it, then decode
            the parts that name things.
        body: The whole body (chunked bodies joined).
    """

    method: str
    path: str
    body: bytes = b""


JSON_TYPE = b"application/json"

Answer = tuple[int, bytes]  # or (status, body, content type) for a body that is not JSON (e.g. the metrics text)


class Reply:
    """An answer a handler sends later, written the moment it is sent (an ``asyncio.Future`` would run the write one
    event-loop iteration later, with a poll for I/O in between)."""

    __slots__ = ("_answer", "_callback")

    def __init__(self) -> None:
        self._answer: Answer | None = None
        self._callback: Callable[[Answer], None] | None = None

    @property
    def sent(self) -> bool:
        return self._answer is not None

    def send(self, status: int, body: bytes) -> bool:
        """Send the answer; returns ``False`` (and sends nothing) if an answer was already sent."""
        if self._answer is not None:
            return False
        self._answer = (status, body)
        if self._callback is not None:
            self._callback(self._answer)
        return True

    def when_sent(self, callback: Callable[[Answer], None]) -> None:
        """Call ``callback(answer)`` when the answer is sent (now if it already was); one callback."""
        self._callback = callback
        if self._answer is not None:
            callback(self._answer)


Handler = Callable[[HttpRequest], Answer | Reply | Awaitable[Answer]]
"""Returns the HTTP status and JSON body: at once, as a :class:`Reply` or an ``asyncio.Future`` (no task is made for
either), or as a coroutine (run as a task)."""

_REASONS = {status.value: status.phrase.encode() for status in http.HTTPStatus}


def response_head(status: int, length: int, keep_alive: bool, http_10: bool, content_type: bytes = JSON_TYPE) -> bytes:
    """The status line and headers of an answer, JSON unless ``content_type`` says otherwise (HTTP/1.1 keeps
    connections open unless told otherwise; HTTP/1.0 closes them unless the client asked for keep-alive)."""
    if not keep_alive:
        connection = b"Connection: close\r\n"
    elif http_10:
        connection = b"Connection: keep-alive\r\n"
    else:
        connection = b""
    reason = _REASONS.get(status, b"Unknown")
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (
        status,
        reason,
        content_type,
        length,
        connection,
    )


def error_body(message: str) -> bytes:
    """``{"error": message}`` as JSON bytes."""
    return json.dumps({"error": message}).encode()


def closing_answer(status: int, message: str) -> bytes:
    """A whole response (head and body) that closes the connection."""
    body = error_body(message)
    return response_head(status, len(body), keep_alive=False, http_10=False) + body
