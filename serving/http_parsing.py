"""Reading HTTP/1.1 requests off a connection with ``httptools`` (llhttp) within :class:`HttpLimits`: the parser
callbacks and the checks made while a request arrives, for :mod:`serving.http_server`.

Head bytes are counted header by header (so one read holding 10,000 headers is refused at the limit) and across
reads while a line is incomplete (so httptools never gathers more than the limit plus one read); trailers have a
budget of their own. What a request's head decides (413, 501, a missing ``Host``) is answered before its body is
read. An ``Upgrade`` request is read as plain HTTP/1.1: llhttp stops at it, so a fresh parser reads its body
behind a synthetic head that gives the body's framing, then goes on with the next requests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import httptools

from serving.errors import log_safe
from serving.http_limits import HttpLimits
from serving.http_reply import HttpRequest

log = logging.getLogger("serving")


class _StopParsingError(Exception):
    """Raised from a parser callback after the request was refused: stops the parser at once."""


@dataclasses.dataclass
class _Continuation:
    """An ``Upgrade`` request whose body llhttp leaves unread: read by a fresh parser, then answered as sent."""

    method: str
    path: str
    keep_alive: bool
    http_10: bool
    framing: bytes  # the synthetic head that makes the fresh parser read the body


class RequestReader:
    """The parsing half of a connection: feed it bytes with :meth:`data_received`; it calls :meth:`_request_read`
    for each whole request, :meth:`_continue_asked` for ``Expect: 100-continue`` and :meth:`_refuse` for a request
    it refuses (after which nothing more is read).

    Attributes:
        _started: Loop time the request being read began to arrive (``None`` between requests).
        _body_started: Loop time its head ended (deadlines of :mod:`serving.http_server` count from these).
    """

    def _init_reader(self, limits: HttpLimits, loop: asyncio.AbstractEventLoop) -> None:
        self._limits = limits
        self._loop = loop
        self._parser = httptools.HttpRequestParser(self)
        self._broken = False  # the parser stopped: nothing more is read
        self._started: float | None = None
        self._body_started = 0.0
        self._continuation: _Continuation | None = None
        self._unparsed = 0  # head or trailer bytes read without a completed line
        self._progress = False
        self._reset()

    # --- for the connection ----------------------------------------------------------------------------------------

    def _request_read(self, request: HttpRequest, keep_alive: bool, http_10: bool) -> None:
        raise NotImplementedError

    def _continue_asked(self) -> None:
        raise NotImplementedError

    def _refuse(self, status: int, message: str) -> None:
        raise NotImplementedError

    # --- httptools callbacks (called from feed_data) ---------------------------------------------------------------

    def _reset(self) -> None:
        self._url = b""
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._head_bytes = 0  # request line + headers, then the trailers, so far
        self._in_head = True
        self._in_chunk_head = False  # a chunk's size line, or the trailers after the last chunk
        self._hosts = 0
        self._content_length = 0
        self._chunked = False
        self._refusal: tuple[int, str] | None = None  # decided from a header, sent when the head is complete
        self._expect_continue = False

    def _stop(self, status: int, message: str) -> None:
        self._refuse(status, message)
        raise _StopParsingError

    def _grow_head(self, size: int) -> None:
        self._progress = True
        self._unparsed = 0
        self._head_bytes += size
        if self._head_bytes > self._limits.max_head_bytes:
            part = "request line and headers" if self._in_head else "trailers"
            self._stop(431, f"Request {part} longer than {self._limits.max_head_bytes} bytes")

    def on_message_begin(self) -> None:
        self._reset()
        self._started = self._loop.time()

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._limits.max_url_bytes:
            self._stop(414, f"Malformed request: URL longer than {self._limits.max_url_bytes} bytes")
        self._grow_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._grow_head(len(name) + len(value) + 4)
        if not self._in_head:  # a trailer: counted, otherwise ignored
            return
        name = name.lower()
        if name == b"host":
            self._hosts += 1
        elif name == b"content-length":
            if value.strip().isdigit():
                self._content_length = int(value)
                if self._content_length > self._limits.max_body_bytes:
                    self._refusal = self._refusal or (413, self._too_large_message())
        elif name == b"transfer-encoding":
            codings = [c.strip().lower() for c in value.split(b",")]
            self._chunked = codings[-1:] == [b"chunked"]
            unknown = [c.decode("latin-1") for c in codings if c != b"chunked"]
            if unknown:
                self._refusal = (501, f"Transfer-Encoding {log_safe(', '.join(unknown))} is not supported")
        elif name == b"expect" and value.strip().lower() == b"100-continue":
            self._expect_continue = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._progress = True
        self._head_bytes = 0  # the trailers have their own budget
        self._body_started = self._loop.time()
        if self._broken:
            return
        if self._refusal is None and (self._hosts > 1 or (self._hosts == 0 and not self._http_10())):
            self._refusal = (400, f"Malformed request: expected one Host header, got {self._hosts}")
        if self._refusal is not None:  # refused before the body is read; the connection cannot continue after that
            self._stop(*self._refusal)
        if self._expect_continue:
            self._continue_asked()

    def on_chunk_header(self) -> None:
        self._in_chunk_head = True
        self._progress = True

    def on_chunk_complete(self) -> None:
        self._in_chunk_head = False
        self._progress = True

    def on_body(self, chunk: bytes) -> None:
        self._in_chunk_head = False
        self._progress = True
        if self._broken:
            return
        self._body_bytes += len(chunk)
        if self._body_bytes > self._limits.max_body_bytes:  # a chunked body growing past the limit
            self._body = []
            self._stop(413, self._too_large_message())
        self._body.append(chunk)

    def on_message_complete(self) -> None:
        self._progress = True
        if self._broken:
            return
        keep_alive, http_10 = self._parser.should_keep_alive(), self._http_10()
        method = self._parser.get_method().decode("ascii", "replace")
        if self._parser.should_upgrade():
            if method == "CONNECT":
                self._stop(405, "Malformed request: CONNECT is not supported")
            if self._content_length or self._chunked:  # llhttp leaves the body unread: a fresh parser reads it
                length = b"Content-Length: %d" % self._content_length
                framing = b"Transfer-Encoding: chunked" if self._chunked else length
                self._continuation = _Continuation(method, self._path(), keep_alive, http_10, framing)
                return
        path = self._path()
        if self._continuation is not None:  # the body of an Upgrade request
            method, path = self._continuation.method, self._continuation.path
            keep_alive, http_10 = self._continuation.keep_alive, self._continuation.http_10
            self._continuation = None
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self._started = None
        self._reset()
        self._request_read(HttpRequest(method, path, body), keep_alive, http_10)

    def _path(self) -> str:
        if not self._url:
            return "/"
        try:
            return httptools.parse_url(self._url).path.decode("ascii")
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            self._stop(400, "Malformed request: the URL is not a valid ASCII request target")
            raise  # unreachable: _stop raises

    def data_received(self, data: bytes) -> None:
        """Parse ``data``; whole requests go to :meth:`_request_read`."""
        if self._broken:
            return
        self._progress = False
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgraded(data[upgrade.args[0] :])
            return
        except httptools.HttpParserCallbackError as err:
            if not self._broken:  # a callback failed on its own: a bug, answered like a malformed request
                log.error("HTTP parser callback failed", exc_info=err.__context__)
                self._refuse(400, "Malformed request")
            return
        except httptools.HttpParserError as err:
            if not self._broken:
                self._refuse(400, f"Malformed request: {err}")
            return
        if self._in_head or self._in_chunk_head:  # a line still incomplete: its bytes count before it completes
            self._unparsed = 0 if self._progress else self._unparsed + len(data)
            if self._head_bytes + self._unparsed > self._limits.max_head_bytes:
                part = "request line and headers" if self._in_head else "chunk size line or trailers"
                self._refuse(431, f"Request {part} longer than {self._limits.max_head_bytes} bytes")

    def _upgraded(self, rest: bytes) -> None:
        """llhttp stops at an ``Upgrade`` request; the server does not switch protocols, so a fresh parser goes on
        with what follows: the request's body, if any (behind a synthetic head giving its framing), then the next
        requests."""
        self._parser = httptools.HttpRequestParser(self)
        if self._continuation is not None:
            rest = b"POST / HTTP/1.1\r\nHost: -\r\n" + self._continuation.framing + b"\r\n\r\n" + rest
        if rest:
            self.data_received(rest)

    def _too_large_message(self) -> str:
        return f"Request body is larger than the limit of {self._limits.max_body_bytes} bytes"

    def _http_10(self) -> bool:
        return self._parser.get_http_version() == "1.0"
