"""How the local model server listens and runs models: :class:`ServerConfig`, one field per ``serve`` flag.

Example:
    >>> ServerConfig(port=0, grpc_port=None).http_limits().max_connections
    1024
"""

from __future__ import annotations

import dataclasses

from serving.batching import BatchingOptions
from serving.event_loop import loop_factory
from serving.http_limits import HttpLimits


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """How the server listens and runs models.

    Args:
        host: Interface to bind (loopback by default).
        port: REST port (TF Serving's ``--rest_api_port``).
        grpc_port: gRPC port (TF Serving's ``--port``; 0 = any free port), or ``None`` for no gRPC API.
        grpc_max_message_bytes: Largest gRPC request/response; bigger ones fail with RESOURCE_EXHAUSTED.
        max_body_bytes: Largest accepted request body; larger ones get 413.
        batching: Server-side batching options, or ``None`` to run each request on its own.
        num_threads: Threads running inference (TF Serving's ``num_batch_threads``).
        poll_seconds: Interval between scans of the base paths for new versions.
        rest_timeout_seconds: Requests taking longer answer 504 (TF Serving's ``--rest_api_timeout_in_ms``).
        intra_op_threads: Threads one TensorFlow op may use (TF Serving's ``--tensorflow_intra_op_parallelism``;
            0 = TensorFlow's choice, all cores). 1 by default: small ranking models run faster without handing
            work between threads, and ``num_threads`` already runs requests in parallel.
        inter_op_threads: Threads running independent ops (``--tensorflow_inter_op_parallelism``; 0 = all cores).
            -1 by default: TensorFlow's negative value, every op of a request runs in the inference thread that
            called the session, which saves two thread hand-offs per call (``docs/serving.md``).
        event_loop: ``auto`` (uvloop when installed), ``uvloop`` or ``asyncio`` (``serving.event_loop``).
        max_head_bytes: Largest REST request line + headers (and chunked trailers); larger ones get 431.
        head_timeout_seconds: A REST request's headers must arrive within this long of its first byte (else 408).
        body_timeout_seconds: A REST request's body must arrive within this long of its headers (else 408).
        idle_timeout_seconds: Idle keep-alive REST connections, and those whose client stops reading its answers,
            close after this long.
        max_pending_bytes_per_connection: Bytes of requests read ahead plus answers not yet taken by the client,
            past which the server stops reading that connection.
        max_connections: Open REST connections; one more is answered 503 and closed.
        monitoring_path: URL path of the Prometheus metrics on the REST port (TF Serving's
            ``/monitoring/prometheus/metrics``), or ``None`` for no metrics (``serving.metrics``).

    ``docs/serving_security.md`` explains the REST bounds.
    """

    host: str = "127.0.0.1"
    port: int = 8501
    grpc_port: int | None = 8500
    grpc_max_message_bytes: int = 64 * 1024 * 1024
    max_body_bytes: int = 16 * 1024 * 1024
    batching: BatchingOptions | None = None
    num_threads: int = 2
    poll_seconds: float = 1.0
    rest_timeout_seconds: float = 30.0
    intra_op_threads: int = 1
    inter_op_threads: int = -1
    event_loop: str = "auto"
    max_head_bytes: int = HttpLimits.max_head_bytes
    head_timeout_seconds: float = HttpLimits.head_timeout
    body_timeout_seconds: float = HttpLimits.body_timeout
    idle_timeout_seconds: float = HttpLimits.idle_timeout
    max_pending_bytes_per_connection: int = HttpLimits.max_pending_bytes
    max_connections: int = HttpLimits.max_connections
    monitoring_path: str | None = None

    def __post_init__(self) -> None:
        loop_factory(self.event_loop)  # an unknown name, or uvloop asked for but missing, fails here
        for name in ("max_head_bytes", "max_pending_bytes_per_connection", "max_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"ServerConfig: field '{name}' must be >= 1, got {getattr(self, name)}")
        for name in ("head_timeout_seconds", "body_timeout_seconds", "idle_timeout_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ServerConfig: field '{name}' must be > 0, got {getattr(self, name)}")
        if self.grpc_max_message_bytes < 1:
            raise ValueError(
                f"ServerConfig: field 'grpc_max_message_bytes' must be >= 1, got {self.grpc_max_message_bytes}"
            )
        if self.max_body_bytes < 1:
            raise ValueError(f"ServerConfig: field 'max_body_bytes' must be >= 1, got {self.max_body_bytes}")
        if self.intra_op_threads < 0:
            raise ValueError(f"ServerConfig: field 'intra_op_threads' must be >= 0, got {self.intra_op_threads}")
        if self.inter_op_threads < -1:
            raise ValueError(f"ServerConfig: field 'inter_op_threads' must be >= -1, got {self.inter_op_threads}")
        if self.num_threads < 1:
            raise ValueError(f"ServerConfig: field 'num_threads' must be >= 1, got {self.num_threads}")
        if self.poll_seconds <= 0:
            raise ValueError(f"ServerConfig: field 'poll_seconds' must be > 0, got {self.poll_seconds}")

    def http_limits(self) -> HttpLimits:
        """The REST API's per-client bounds (``serving.http_limits``)."""
        return HttpLimits(
            max_body_bytes=self.max_body_bytes,
            max_head_bytes=self.max_head_bytes,
            head_timeout=self.head_timeout_seconds,
            body_timeout=self.body_timeout_seconds,
            idle_timeout=self.idle_timeout_seconds,
            max_pending_bytes=self.max_pending_bytes_per_connection,
            max_connections=self.max_connections,
        )
