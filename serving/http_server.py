"""HTTP/1.1 for the REST API: ``httptools`` (llhttp, the parser behind uvicorn) parses, one asyncio protocol per
connection answers its requests in order, within the bounds of :class:`serving.http_limits.HttpLimits`.

What this module owns, and tests (``tests/test_serving_http.py``, ``tests/test_serving_hostile_http.py``,
``tests/test_serving_fuzz.py``): keep-alive and ``Connection: close`` (HTTP/1.0 included), pipelined requests
answered in order and each exactly once, chunked request bodies, ``Expect: 100-continue``, ``HEAD`` answered
without a body, and every client mistake answered 4xx (or 501) before the connection closes:

- sizes: body (413, from the declared length or while a chunked body arrives), request target (414), request
  line + headers and chunked trailers, counted header by header and across reads (431);
- time: a head must arrive within ``head_timeout`` and a body within ``body_timeout`` of its head (408), so a
  client sending a byte at a time cannot hold a connection; idle keep-alive connections close after
  ``idle_timeout``, and so do connections whose client stops reading its answers;
- memory: reading pauses while the requests read ahead plus the answers not yet taken by the client exceed
  ``max_pending_bytes`` (back-pressure), and at most ``max_connections`` are open (one more gets 503);
- framing: HTTP/1.1 needs exactly one ``Host`` (400); a ``Transfer-Encoding`` other than ``chunked`` is 501; an
  ``Upgrade`` request (websocket, h2c) is answered once as plain HTTP/1.1 with its body read (RFC 9110 §7.8 lets a
  server ignore ``Upgrade``); ``CONNECT`` is 405.

Bodies are read whole before the handler runs.

Example:
    >>> async def handler(request: HttpRequest) -> tuple[int, bytes]:
    ...     return 200, b'{"path": "%s"}' % request.path.encode()
    >>> server = await start_http_server(handler, "127.0.0.1", 0, HttpLimits(max_body_bytes=1 << 20))  # doctest: +SKIP
    >>> server.port, await server.close()  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections import deque

from serving.errors import log_safe
from serving.http_limits import HttpLimits
from serving.http_parsing import RequestReader
from serving.http_reply import (
    CONTINUE,
    JSON_TYPE,
    Answer,
    Handler,
    HttpRequest,
    Reply,
    closing_answer,
    error_body,
    response_head,
)

__all__ = ["Answer", "Handler", "HttpLimits", "HttpRequest", "HttpServer", "Reply", "start_http_server"]

log = logging.getLogger("serving")

LINGER_SECONDS = 2.0  # after refusing a request, read and drop what the client still sends, so it gets the answer


@dataclasses.dataclass
class _Pending:
    """A request waiting its turn, or an answer decided while parsing (``reply``), then the connection closes."""

    request: HttpRequest | None
    keep_alive: bool
    http_10: bool
    reply: Answer | None = None


class _Connection(RequestReader, asyncio.Protocol):
    """One client connection: parse what arrives, answer queued requests one at a time, in arrival order."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._init_reader(server.limits, asyncio.get_running_loop())
        self._last_active = self._loop.time()  # last answer written or request read
        self._transport: asyncio.Transport | None = None
        self._queue: deque[_Pending] = deque()
        self._queued_bytes = 0  # bodies of queued requests
        self._busy = False  # a request is with the handler
        self._write_paused = False
        self._read_paused = False
        self._closing = False  # answer what is queued, then close
        self._task: asyncio.Future | None = None  # the request with the handler (a reference keeps it alive)
        self._continue_when_idle = False

    def _request_read(self, request: HttpRequest, keep_alive: bool, http_10: bool) -> None:
        self._queue.append(_Pending(request, keep_alive, http_10))
        self._queued_bytes += len(request.body)
        self._last_active = self._loop.time()
        self._update_reading()
        self._next()

    def _continue_asked(self) -> None:
        if not self._busy and not self._queue and self._transport is not None:
            self._transport.write(CONTINUE)
        else:  # sent when the requests before it are answered
            self._continue_when_idle = True

    # --- asyncio.Protocol ----------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        if len(self._server.connections) >= self._limits.max_connections:
            self._broken = True
            message = f"The server is at its limit of {self._limits.max_connections} connections; retry later"
            self._transport.write(closing_answer(503, message))
            self._close_lingering()
            return
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._transport = None
        self._queue.clear()
        self._queued_bytes = 0

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._last_active = self._loop.time()
        self._update_reading()
        self._next()

    # --- answering -----------------------------------------------------------------------------------------------

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``message`` after the requests already queued, read nothing more, then close."""
        self._broken = True
        if self._transport is not None:
            self._transport.pause_reading()
        self._queue.append(_Pending(None, False, False, reply=(status, error_body(message))))
        self._next()

    def _update_reading(self) -> None:
        """Pause reading while the client leaves answers unread or too much is read ahead; resume when it catches up
        (a request caught part-way restarts its deadlines then)."""
        transport = self._transport
        if transport is None or self._broken or self._closing:
            return
        limits = self._limits
        over = (
            self._write_paused
            or len(self._queue) > limits.max_queued_requests
            or self._queued_bytes + transport.get_write_buffer_size() > limits.max_pending_bytes
        )
        if over and not self._read_paused:
            self._read_paused = True
            transport.pause_reading()
        elif not over and self._read_paused:
            self._read_paused = False
            now = self._loop.time()
            self._started = now if self._started is not None else None
            self._body_started = now
            transport.resume_reading()

    def _next(self) -> None:
        """Start the oldest queued request, unless one is running or the client is not reading its answers."""
        if self._transport is None or self._busy or self._write_paused:
            return
        if self._queue:
            pending = self._queue.popleft()
            if pending.reply is not None:
                self._write(pending, *pending.reply)
            else:
                self._queued_bytes -= len(pending.request.body)
                self._busy = True
                self._start(pending)
            return
        if self._closing:
            self._transport.close()
            return
        self._update_reading()
        if self._continue_when_idle:  # a request waiting to send its body now heads the line
            self._continue_when_idle = False
            self._body_started = self._loop.time()
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
            self._answered(pending, (503, error_body("The server is shutting down")))
        elif answer.exception() is not None:
            self._answered(pending, self._internal_error(pending, answer.exception()))
        else:
            self._answered(pending, answer.result())

    @staticmethod
    def _internal_error(pending: _Pending, err: BaseException) -> Answer:
        request = pending.request
        log.error("internal error on %s %s", log_safe(request.method), log_safe(request.path), exc_info=err)
        return 500, error_body(f"Internal error: {type(err).__name__}")

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
        head = response_head(status, len(body), keep_alive, pending.http_10, content_type)
        is_head = pending.request is not None and pending.request.method == "HEAD"
        transport.write(head if is_head else head + body)
        if not keep_alive:
            self._queue.clear()
            if self._broken:  # the client may still be sending
                self._close_lingering()
            else:
                transport.close()
            return
        self._next()

    def _close_lingering(self) -> None:
        """Close after a refusal without losing it: half-close, then read and drop what the client still sends for
        ``LINGER_SECONDS`` (closing with unread data would reset the connection, and the client would see the reset
        instead of the answer)."""
        transport = self._transport
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        transport.resume_reading()
        self._loop.call_later(LINGER_SECONDS, transport.abort)

    def sweep(self, now: float) -> None:
        """Enforce the deadlines: a request arriving too slowly gets 408 and the connection closes; a connection
        idle (or whose client has not taken its answers) for ``idle_timeout`` closes."""
        if self._transport is None:
            return
        limits = self._limits
        if self._started is not None and not self._read_paused and not self._broken:
            if self._in_head and now - self._started > limits.head_timeout:
                self._refuse(408, f"Request head not received within {limits.head_timeout:g} s")
            elif not self._in_head and not self._continue_when_idle and now - self._body_started > limits.body_timeout:
                self._refuse(408, f"Request body not received within {limits.body_timeout:g} s")
            return
        if self._busy or now - self._last_active <= limits.idle_timeout:
            return
        if self._write_paused or self._broken:  # the client stopped taking its answers, or a refusal lingers
            self.abort()
        else:
            self.shut_down()

    def pending_bytes(self) -> int:
        """Bytes held for this client: requests read ahead and answers it has not taken yet."""
        transport = self._transport
        return self._queued_bytes + (transport.get_write_buffer_size() if transport is not None else 0)

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
        limits: The bounds every connection is held to.
    """

    def __init__(self, handler: Handler, limits: HttpLimits) -> None:
        self.handler = handler
        self.limits = limits
        self.connections: set[_Connection] = set()
        self._server: asyncio.base_events.Server | None = None
        self._sweeper: asyncio.Task | None = None
        self.port = 0

    def pending_bytes(self) -> int:
        """Bytes held for all clients in requests read ahead and answers not yet taken."""
        return sum(connection.pending_bytes() for connection in self.connections)

    async def _sweep(self) -> None:
        """Every :attr:`HttpLimits.sweep_interval` seconds, enforce every connection's deadlines."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.limits.sweep_interval)
            now = loop.time()
            for connection in list(self.connections):
                connection.sweep(now)

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
    handler: Handler, host: str, port: int, limits: HttpLimits | None = None, **overrides: float
) -> HttpServer:
    """Listen on ``host:port`` and answer every request with ``handler(request)`` → ``(status, json_body)``.

    Args:
        handler: Returns the HTTP status and the JSON body, at once, as a :class:`Reply`, a future or a coroutine; it
            should answer its own errors.
        host: Interface to bind.
        port: Port to bind (0 = any free port; read it back from ``server.port``).
        limits: The per-client bounds (default :class:`HttpLimits`).
        **overrides: Fields of ``limits`` to replace, e.g. ``max_body_bytes=1 << 20``.

    Returns:
        The running :class:`HttpServer`.
    """
    limits = dataclasses.replace(limits or HttpLimits(), **overrides)
    server = HttpServer(handler, limits)
    loop = asyncio.get_running_loop()
    server._server = await loop.create_server(lambda: _Connection(server), host, port, reuse_address=True)
    server.port = server._server.sockets[0].getsockname()[1]
    server._sweeper = loop.create_task(server._sweep())
    return server
