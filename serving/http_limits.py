"""The bounds the REST API's HTTP layer puts on every client: sizes, deadlines, buffered bytes and connections.

Each bound is a ``ServerConfig`` field and a ``serve`` flag (``docs/serving_security.md`` lists them). Memory held
for one connection is at most about ``max_body_bytes`` (the request being read) + ``max_pending_bytes`` (requests
read ahead and answers the client has not taken) + one answer; the server holds at most ``max_connections`` of them.

Example:
    >>> HttpLimits(head_timeout=5.0).max_head_bytes
    65536
    >>> HttpLimits(max_connections=0)
    Traceback (most recent call last):
    ...
    ValueError: HttpLimits: field 'max_connections' must be >= 1, got 0
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class HttpLimits:
    """Per-client bounds of :func:`serving.http_server.start_http_server`.

    Args:
        max_body_bytes: Largest request body (declared or chunked); larger ones get 413 and the connection closes.
        max_head_bytes: Largest request line + headers, and, separately, largest chunked trailer section; larger
            ones get 431 and the connection closes.
        max_url_bytes: Longest request target; longer ones get 414.
        head_timeout: Seconds from a request's first byte to the end of its headers; slower heads get 408 and the
            connection closes (a client sending a byte at a time cannot hold a connection open).
        body_timeout: Seconds from the end of the headers (or the ``100 Continue``) to the end of the body.
        idle_timeout: Seconds a keep-alive connection may sit with nothing in flight, or with answers its client
            does not read, before it is closed.
        max_pending_bytes: Bytes one connection may hold in requests read ahead of the one being answered plus
            answers written but not yet taken by the client; past it the server stops reading that connection
            until its client catches up.
        max_connections: Open connections; one more is answered 503 and closed.
        max_queued_requests: Pipelined requests read ahead of the one being answered before reading pauses.
    """

    max_body_bytes: int = 16 * 1024 * 1024
    max_head_bytes: int = 64 * 1024
    max_url_bytes: int = 8190
    head_timeout: float = 10.0
    body_timeout: float = 60.0
    idle_timeout: float = 75.0
    max_pending_bytes: int = 16 * 1024 * 1024
    max_connections: int = 1024
    max_queued_requests: int = 32

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "int" and value < 1:
                raise ValueError(f"HttpLimits: field '{field.name}' must be >= 1, got {value}")
            if field.type == "float" and not value > 0:
                raise ValueError(f"HttpLimits: field '{field.name}' must be > 0, got {value}")

    @property
    def sweep_interval(self) -> float:
        """How often deadlines are checked: a quarter of the shortest one."""
        return min(self.head_timeout, self.body_timeout, self.idle_timeout) / 4
