"""HTTP/1.1 for the REST API: ``httptools`` (llhttp, the parser behind uvicorn) parses, one asyncio protocol per
connection answers its requests in order.

With an empty JSON handler at concurrency 32, a request cost the server ≈ 14 µs of CPU on a bare protocol like this
one, against ≈ 50–62 µs through aiohttp's web application (``docs/serving.md``). What this module owns, and tests
(``tests/test_serving_http.py``): keep-alive and ``Connection: close`` (HTTP/1.0 included), pipelined requests
answered in order, chunked request bodies, ``Expect: 100-continue``, a body limit (413 from the declared length or
while a chunked body arrives, then the connection closes), malformed requests (400, then close), ``HEAD`` answered
without a body, back-pressure (reading pauses while answers wait to be written or too many requests are queued), and
idle keep-alive connections closed after ``idle_timeout`` seconds. Bodies are read whole before the handler runs.

Example:
    >>> async def handler(request: HttpRequest) -> tuple[int, bytes]:
    ...     return 200, b'{"path": "%s"}' % request.path.encode()
    >>> server = await start_http_server(handler, "127.0.0.1", 0, max_body_bytes=1 << 20)  # doctest: +SKIP
    >>> server.port, await server.close()  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import http
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

import httptools

log = logging.getLogger("serving")

MAX_URL_BYTES = 8190  # as aiohttp's default request-line limit
MAX_HEAD_BYTES = 64 * 1024  # request line and headers together
IDLE_TIMEOUT_SECONDS = 75.0  # an idle keep-alive connection is closed after this long (aiohttp's default)
MAX_QUEUED_REQUESTS = 32  # pipelined requests read ahead of the one being answered, before reading pauses
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
JSON_TYPE = b"application/json"


@dataclasses.dataclass(frozen=True)
class HttpRequest:
    """One parsed request.

    Args:
        method: ``GET``, ``POST``, ...
        path: The URL's path, percent-decoded, without the query string.
        body: The whole body (chunked bodies joined).
    """

    method: str
    path: str
    body: bytes = b""


Answer = tuple[int, bytes]  # or (status, body, content type) for a body that is not JSON (e.g. the metrics text)


class Reply:
    """An answer a handler sends later, written the moment it is sent (an ``asyncio.Future`` would run the write one
    event-loop iteration later, with a poll for I/O in between).

    Example:
        >>> reply = Reply()
        >>> reply.when_sent(print)
        >>> reply.send(200, b"{}")
        (200, b'{}')
        True
    """

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


def _head(status: int, length: int, keep_alive: bool, http_10: bool, content_type: bytes = JSON_TYPE) -> bytes:
    """The status line and headers of a JSON answer (HTTP/1.1 keeps connections open unless told otherwise;
    HTTP/1.0 closes them unless the client asked for keep-alive)."""
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


def _error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


@dataclasses.dataclass
class _Pending:
    """A request waiting its turn, or an answer decided while parsing (``reply``), then the connection closes."""

    request: HttpRequest | None
    keep_alive: bool
    http_10: bool
    reply: tuple[int, bytes] | None = None


class _Connection(asyncio.Protocol):
    """One client connection: parse what arrives, answer queued requests one at a time, in arrival order."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._last_active = self._loop.time()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._queue: deque[_Pending] = deque()
        self._busy = False  # a request is with the handler
        self._write_paused = False
        self._read_paused = False
        self._closing = False  # answer what is queued, then close
        self._broken = False  # the parser stopped: nothing more is read
        self._head_bytes = 0  # bytes read while a request's line and headers were incomplete
        self._task: asyncio.Future | None = None  # the request with the handler (a reference keeps it alive)
        self._continue_when_idle = False
        self._reset()

    # --- httptools callbacks (called from feed_data) ---------------------------------------------------------------

    def _reset(self) -> None:
        self._url = b""
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._too_large = False
        self._expect_continue = False
        self._in_headers = True

    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_URL_BYTES and not self._broken:
            self._refuse(400, f"Malformed request: URL longer than {MAX_URL_BYTES} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" and value.strip().isdigit():
            if int(value) > self._server.max_body_bytes:
                self._too_large = True
        elif name == b"expect" and value.strip().lower() == b"100-continue":
            self._expect_continue = True

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._head_bytes = 0
        if self._broken:
            return
        if self._too_large:  # refuse before reading the body; the connection cannot continue after that
            self._refuse(413, self._too_large_message())
        elif self._expect_continue and not self._busy and not self._queue and self._transport is not None:
            self._transport.write(CONTINUE)
        elif self._expect_continue:
            self._continue_when_idle = True

    def on_body(self, chunk: bytes) -> None:
        if self._too_large or self._broken:
            return
        self._body_bytes += len(chunk)
        if self._body_bytes > self._server.max_body_bytes:  # a chunked body growing past the limit
            self._too_large = True
            self._body = []
            self._refuse(413, self._too_large_message())
            return
        self._body.append(chunk)

    def on_message_complete(self) -> None:
        if self._broken:
            return
        path = unquote(httptools.parse_url(self._url).path.decode("utf-8", "replace")) if self._url else "/"
        method = self._parser.get_method().decode("ascii", "replace")
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        keep_alive = self._parser.should_keep_alive()
        self._queue.append(_Pending(HttpRequest(method, path, body), keep_alive, self._http_10()))
        self._reset()
        if len(self._queue) > MAX_QUEUED_REQUESTS and not self._read_paused and self._transport is not None:
            self._read_paused = True
            self._transport.pause_reading()
        self._next()

    # --- asyncio.Protocol ----------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self._last_active = self._loop.time()
        if self._broken:
            return
        if self._in_headers:  # a head still incomplete after this many bytes is refused (a body may share a read)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(400, f"Malformed request: request line and headers longer than {MAX_HEAD_BYTES} bytes")
                return
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "Malformed request: protocol upgrades are not supported")
        except httptools.HttpParserError as err:
            if not self._broken:
                self._refuse(400, f"Malformed request: {err}")

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._transport = None
        self._queue.clear()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._next()

    # --- answering -----------------------------------------------------------------------------------------------

    def _too_large_message(self) -> str:
        return f"Request body is larger than the limit of {self._server.max_body_bytes} bytes"

    def _http_10(self) -> bool:
        return self._parser.get_http_version() == "1.0"

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``message`` after the requests already queued, read nothing more, then close."""
        self._broken = True
        if self._transport is not None:
            self._transport.pause_reading()
        self._queue.append(_Pending(None, False, False, reply=(status, _error_body(message))))
        self._next()

    def _next(self) -> None:
        """Start the oldest queued request, unless one is running or the client is not reading its answers."""
        if self._transport is None or self._busy or self._write_paused:
            return
        if self._queue:
            pending = self._queue.popleft()
            if pending.reply is not None:
                self._write(pending, *pending.reply)
            else:
                self._busy = True
                self._start(pending)
            return
        if self._closing:
            self._transport.close()
            return
        if self._read_paused and not self._broken:  # the read-ahead queue has drained
            self._read_paused = False
            self._transport.resume_reading()
        if self._continue_when_idle:  # a request waiting to send its body now heads the line
            self._continue_when_idle = False
            self._transport.write(CONTINUE)

    def _start(self, pending: _Pending) -> None:
        """Hand ``pending`` to the handler; answer now if it answered at once, else when its future is done."""
        try:
            answer = self._server.handler(pending.request)
        except Exception as err:  # the handler answers its own errors; this is a last resort
            answer = self._internal_error(pending, err)
        if isinstance(answer, tuple):
            self._answered(pending, answer)
            return
        if isinstance(answer, Reply):
            self._task = None
            answer.when_sent(functools.partial(self._answered, pending))
            return
        if not isinstance(answer, asyncio.Future):
            answer = self._loop.create_task(answer)
        self._task = answer
        answer.add_done_callback(functools.partial(self._done, pending))

    def _done(self, pending: _Pending, answer: asyncio.Future) -> None:
        if answer.cancelled():
            self._answered(pending, (503, _error_body("The server is shutting down")))
        elif answer.exception() is not None:
            self._answered(pending, self._internal_error(pending, answer.exception()))
        else:
            self._answered(pending, answer.result())

    @staticmethod
    def _internal_error(pending: _Pending, err: BaseException) -> Answer:
        log.error("internal error on %s %s", pending.request.method, pending.request.path, exc_info=err)
        return 500, _error_body(f"Internal error: {type(err).__name__}")

    def _answered(self, pending: _Pending, answer: Answer) -> None:
        self._busy = False
        self._task = None
        self._write(pending, *answer)

    def _write(self, pending: _Pending, status: int, body: bytes, content_type: bytes = JSON_TYPE) -> None:
        transport = self._transport
        if transport is None:
            return
        self._last_active = self._loop.time()
        keep_alive = pending.keep_alive and not (self._closing and not self._queue)
        head = _head(status, len(body), keep_alive, pending.http_10, content_type)
        is_head = pending.request is not None and pending.request.method == "HEAD"
        transport.write(head if is_head else head + body)
        if not keep_alive:
            self._queue.clear()
            transport.close()
            return
        self._next()

    def idle_seconds(self, now: float) -> float:
        """Seconds since the connection last read or wrote, or 0 while a request is being answered (a client stalled
        part-way through sending a request counts as idle)."""
        if self._busy or self._queue:
            return 0.0
        return now - self._last_active

    def shut_down(self) -> None:
        """Close now if idle, else after the requests already read."""
        self._closing = True
        if self._transport is not None:
            self._transport.pause_reading()
            if not self._busy and not self._queue:
                self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


class HttpServer:
    """A listening HTTP server; see :func:`start_http_server`.

    Attributes:
        port: The bound port (the one the OS chose when asked for port 0).
    """

    def __init__(self, handler: Handler, max_body_bytes: int, idle_timeout: float = IDLE_TIMEOUT_SECONDS) -> None:
        self.handler = handler
        self.max_body_bytes = max_body_bytes
        self.idle_timeout = idle_timeout
        self.connections: set[_Connection] = set()
        self._server: asyncio.base_events.Server | None = None
        self._sweeper: asyncio.Task | None = None
        self.port = 0

    async def _close_idle_connections(self) -> None:
        """Every quarter of ``idle_timeout``, close the keep-alive connections idle for longer than it."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.idle_timeout / 4)
            now = loop.time()
            for connection in list(self.connections):
                if connection.idle_seconds(now) > self.idle_timeout:
                    connection.shut_down()

    async def close(self, timeout: float = 2.0) -> None:
        """Stop listening, let connections finish the requests they have read (up to ``timeout`` s), then close."""
        if self._server is None:
            return
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._server.close()
        for connection in list(self.connections):
            connection.shut_down()
        deadline = asyncio.get_running_loop().time() + timeout
        while self.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self.connections):
            connection.abort()
        await self._server.wait_closed()
        self._server = None


async def start_http_server(
    handler: Handler, host: str, port: int, max_body_bytes: int, idle_timeout: float = IDLE_TIMEOUT_SECONDS
) -> HttpServer:
    """Listen on ``host:port`` and answer every request with ``handler(request)`` → ``(status, json_body)``.

    Args:
        handler: Returns the HTTP status and the JSON body, at once, as a :class:`Reply`, a future or a coroutine; it
            should answer its own errors.
        host: Interface to bind.
        port: Port to bind (0 = any free port; read it back from ``server.port``).
        max_body_bytes: Larger bodies are refused with 413 before the handler runs.
        idle_timeout: Seconds after which a keep-alive connection with nothing in flight is closed.

    Returns:
        The running :class:`HttpServer`.
    """
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
    if idle_timeout <= 0:
        raise ValueError(f"idle_timeout must be > 0, got {idle_timeout}")
    server = HttpServer(handler, max_body_bytes, idle_timeout)
    loop = asyncio.get_running_loop()
    server._server = await loop.create_server(lambda: _Connection(server), host, port, reuse_address=True)
    server.port = server._server.sockets[0].getsockname()[1]
    server._sweeper = loop.create_task(server._close_idle_connections())
    return server
