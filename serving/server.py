"""The local model server: TF Serving's REST API (``serving.http_server``) and gRPC API (grpcio) for exported models.

Endpoints (paths matched case-insensitively, as TF Serving does):
``GET /v1/models/{name}[/versions/{v}|/labels/{l}]`` (status), ``.../metadata`` (SignatureDefs as proto-JSON),
``POST .../{name}[...]:predict`` (row ``instances`` or columnar ``inputs``), ``:classify``/``:regress`` (answered
with TF Serving's error for predict signatures). Failures answer ``{"error": ...}`` with the contract's HTTP code.

The gRPC API (``serving.grpc_server``) listens on ``grpc_port`` in the same process and event loop, over the same
model store and inference engine. The newest version of each model is served; a poller picks up new versions without
a restart. Inference runs in a thread pool (the event loop never blocks) and optionally through the adaptive
:class:`serving.batching.Batcher`.

Imports neither ``mmoe_tf`` nor ``data``: an exported model stands alone, as inside TF Serving.

Example:
    >>> config = ServerConfig(port=8501)
    >>> asyncio.run(serve([ModelSource("mmoe", "/tmp/export")], config))  # doctest: +SKIP
    serving mmoe version 1 at http://127.0.0.1:8501 and grpc 127.0.0.1:8500
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import re
import signal
import sys
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from serving.batching import BatchingOptions, BatchSlice
from serving.errors import RequestError, ServingError, log_safe
from serving.event_loop import loop_factory, loop_name, run_on
from serving.http_server import Answer, HttpLimits, HttpRequest, Reply, start_http_server
from serving.inference import Inference
from serving.json_codec import decode_request, encode_json, loads_request, one_row_answers, predictions_json
from serving.model_store import DEFAULT_SIGNATURE, ModelSource, ModelStore

log = logging.getLogger("serving")

# Matched against the raw (still percent-encoded) path, whole: an encoded "/" or ":" stays inside the name, a
# version is 1-19 ASCII digits (int64), and nothing may follow (no trailing newline, encoded or not).
URL_PATTERN = re.compile(
    r"/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[0-9]{1,19})|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:predict|:classify|:regress)?",
    re.IGNORECASE | re.ASCII,
)
MAX_VERSION = 2**63 - 1
OFFLOAD_BODY_BYTES = 256 * 1024  # predict bodies larger than this are parsed in a thread, off the event loop
METHOD_NAMES = {":classify": "tensorflow/serving/classify", ":regress": "tensorflow/serving/regress"}


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


def _json_response(body: Any, status: int = 200) -> tuple[int, bytes]:
    return status, encode_json(body).encode()


class RestApi:
    """The request handlers, bound to a :class:`ModelStore`.

    A request is handled without a coroutine or task of its own: status and metadata are answered at once, a predict
    returns a :class:`serving.http_server.Reply` that the inference future's callback sends (one timer per request
    enforces ``rest_timeout_seconds``). Per request this saves the task, its coroutine and ``asyncio.timeout``
    (``docs/serving.md``).

    Args:
        store: The served models.
        config: Server options.
        inference: Runs predictions (shared with the gRPC API).
    """

    def __init__(self, store: ModelStore, config: ServerConfig, inference: Inference) -> None:
        self.store = store
        self.config = config
        self.inference = inference
        self._decoder: ThreadPoolExecutor | None = None  # parses large bodies off the event loop

    def close(self) -> None:
        """Stop the thread parsing large bodies."""
        if self._decoder is not None:
            self._decoder.shutdown(wait=False, cancel_futures=True)

    def handle(self, request: HttpRequest) -> Answer | Reply:
        """Dispatch by URL and method; every failure becomes ``{"error": ...}`` with its HTTP status.

        Must be called from the running event loop.

        Returns:
            The HTTP status and the JSON body, or (predict) a :class:`serving.http_server.Reply` sending them.
        """
        try:
            return self._dispatch(request)
        except Exception as err:
            return self._error_answer(request, err)

    def _error_answer(self, request: HttpRequest, err: BaseException) -> Answer:
        if isinstance(err, ServingError):
            return _json_response({"error": err.message}, err.http_status)
        # never let a request take the server down; what the client sent is escaped before it reaches the log
        log.error("internal error on %s %s", log_safe(request.method), log_safe(request.path), exc_info=err)
        return _json_response({"error": f"Internal error: {type(err).__name__}: {err}"}, 500)

    def _dispatch(self, request: HttpRequest) -> Answer | Reply:
        match = URL_PATTERN.fullmatch(request.path)
        suffix = (match["suffix"] or "").lower() if match else ""
        reads = suffix in ("", "/metadata")  # status and metadata (GET, or HEAD) vs predict & co. (POST)
        if match is None or request.method not in (("GET", "HEAD") if reads else ("POST",)):
            raise RequestError(f"Malformed request: {request.method} {request.path}")
        name, label = _unquoted(match["name"], "model name"), match["label"] and _unquoted(match["label"], "label")
        version = int(match["version"]) if match["version"] else None
        if version is not None and version > MAX_VERSION:
            raise RequestError(f"Malformed request: version {match['version']} is larger than {MAX_VERSION}")
        if suffix == "":
            return _json_response({"model_version_status": self.store.status(name, version, label)})
        servable = self.store.resolve(name, version, label)
        if suffix == "/metadata":
            return _json_response(
                {
                    "model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
                    "metadata": {"signature_def": servable.metadata},
                }
            )
        if len(request.body) <= OFFLOAD_BODY_BYTES:
            return self._submit(request, *self._decode(servable, suffix, request.body))
        if self._decoder is None:
            self._decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
        reply = Reply()
        decoded = asyncio.get_running_loop().run_in_executor(
            self._decoder, self._decode, servable, suffix, request.body
        )
        decoded.add_done_callback(functools.partial(self._decoded, request, reply))
        return reply

    def _decode(self, servable: Any, suffix: str, body: bytes) -> tuple[Any, str, str, Any]:
        """Parse and check a predict body: ``(servable, signature, format, inputs)``, where format ``example`` means
        one instance of bare scalars made into arrays with its batch."""
        data = loads_request(body)
        signature = data.pop("signature_name", DEFAULT_SIGNATURE)
        if not isinstance(signature, str):
            raise RequestError(f"'signature_name' must be a string; got {signature!r}")
        input_dtypes = servable.signature_inputs(signature)
        if suffix in METHOD_NAMES:
            method = servable.metadata["signature_def"][signature].get("method_name", "")
            if method != METHOD_NAMES[suffix]:
                kind = "classification" if suffix == ":classify" else "regression"
                raise RequestError(f"Expected {kind} signature method_name to be {METHOD_NAMES[suffix]}. Was: {method}")
            raise ServingError("UNIMPLEMENTED", f"{suffix[1:]} with tf.Example inputs is not supported by this server")
        reader = servable.instance_readers.get(signature)
        example = reader.read(data) if reader is not None else None
        if example is not None:  # one instance of bare scalars: checked here, made into arrays with its batch
            return servable, signature, "example", example
        fmt, inputs, _ = decode_request(data, input_dtypes)
        servable.check_shapes(signature, inputs)
        return servable, signature, fmt, inputs

    def _decoded(self, request: HttpRequest, reply: Reply, decoded: asyncio.Future) -> None:
        """Submit a body parsed off the event loop; its answer goes out through ``reply``."""
        if decoded.cancelled():  # the decode thread was stopped: the server is shutting down
            reply.send(*_json_response({"error": "The server is shutting down"}, 503))
            return
        try:
            answer = self._submit(request, *decoded.result())
        except Exception as err:
            answer = self._error_answer(request, err)
        if isinstance(answer, Reply):
            answer.when_sent(lambda sent: reply.send(*sent))
        else:
            reply.send(*answer)

    def _submit(self, request: HttpRequest, servable: Any, signature: str, fmt: str, inputs: Any) -> Reply:
        if fmt == "example":
            fmt, outputs = "row", self.inference.submit_example(servable, signature, inputs)
        else:
            outputs = self.inference.submit(servable, signature, inputs)
        reply = Reply()
        timer = outputs.get_loop().call_later(self.config.rest_timeout_seconds, self._time_out, reply, outputs)
        outputs.add_done_callback(functools.partial(self._predicted, request, fmt, reply, timer))
        return reply

    @staticmethod
    def _time_out(reply: Reply, outputs: asyncio.Future) -> None:
        reply.send(*_json_response({"error": "Request timed out"}, 504))
        outputs.cancel()  # a batch drops this request's slice; a request not yet running is not run

    def _predicted(
        self, request: HttpRequest, fmt: str, reply: Reply, timer: asyncio.TimerHandle, outputs: asyncio.Future
    ) -> None:
        timer.cancel()
        if reply.sent:  # timed out
            return
        if outputs.cancelled():
            reply.send(*_json_response({"error": "The server is shutting down"}, 503))
            return
        err = outputs.exception()
        try:
            answer = self._error_answer(request, err) if err else (200, _answer_body(outputs.result(), fmt))
        except Exception as encode_err:
            answer = self._error_answer(request, encode_err)
        reply.send(*answer)


def _unquoted(part: str, what: str) -> str:
    """A percent-encoded path part, decoded (UTF-8); ``RequestError`` when it is not valid UTF-8."""
    try:
        return urllib.parse.unquote(part, errors="strict")
    except UnicodeDecodeError:
        raise RequestError(f"Malformed request: the {what} is not valid percent-encoded UTF-8") from None


def _answer_body(outputs: dict[str, np.ndarray], fmt: str) -> bytes:
    """The predict answer; a one-instance request of a merged batch takes its row of answers written for the whole
    batch at once (``json_codec.one_row_answers``)."""
    if fmt == "row" and isinstance(outputs, BatchSlice) and outputs.size == 1:
        answers = outputs.per_batch("one_row_answers", one_row_answers)
        if answers is not None:
            return answers[outputs.start]
    return predictions_json(outputs, fmt)


def configure_tensorflow(config: ServerConfig) -> None:
    """Apply the op thread-pool sizes; must run before TensorFlow executes its first op in this process."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(config.intra_op_threads)
        tf.config.threading.set_inter_op_parallelism_threads(config.inter_op_threads)
    except RuntimeError as err:  # TensorFlow already initialised (e.g. embedded after other TF work)
        log.warning("TensorFlow thread pools already set up; keeping them (%s)", err)


def _announce(store: ModelStore, events: list[tuple[str, int, str]], where: str) -> None:
    for name, version, state in events:
        if state == "AVAILABLE":
            if store.resolve(name).version == version:
                print(f"serving {name} version {version} at {where}", flush=True)
        else:
            status = store.status(name, version)[0]["status"]
            detail = f" ({status['error_message']})" if status["error_code"] != "OK" else ""
            print(f"model {name} version {version} END{detail}", flush=True)


async def serve(sources: list[ModelSource], config: ServerConfig, ready: asyncio.Event | None = None) -> None:
    """Load the models, bind ``config.host:config.port`` and serve until SIGINT/SIGTERM.

    Args:
        sources: Models to serve.
        config: Server options.
        ready: Set once the port is bound (for embedding in tests or benchmarks).
    """
    loop = asyncio.get_running_loop()
    configure_tensorflow(config)
    store = ModelStore(sources)
    loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loader")
    initial = await loop.run_in_executor(loader, store.poll)
    inference = Inference(config.num_threads, config.batching)
    api = RestApi(store, config, inference)
    handler, metrics = api.handle, None
    if config.monitoring_path is not None:  # metrics: counts every REST request, answers the metrics path
        from serving.metrics import ServingMetrics

        metrics = ServingMetrics(store, inference, config.monitoring_path)
        handler = metrics.rest_handler(api.handle)
    http_server = await start_http_server(handler, config.host, config.port, config.http_limits())
    if metrics is not None:
        metrics.watch_http(http_server)
    where = f"http://{config.host}:{http_server.port}"
    grpc_server, grpc_port = None, None
    if config.grpc_port is not None:
        from serving.grpc_server import start_grpc_server

        grpc_server, grpc_port = await start_grpc_server(
            store, inference, config.host, config.grpc_port, config.grpc_max_message_bytes, metrics=metrics
        )
        where += f" and grpc {config.host}:{grpc_port}"
    # ports: the bound ports on one line for scripts (``--port 0`` / ``--grpc-port 0`` ask the OS for free ones)
    print(f"ports rest={http_server.port} grpc={grpc_port if grpc_server else 'off'}", flush=True)
    print(f"listening at {where} for models {store.model_names()} ({loop_name(loop)} event loop)", flush=True)
    if metrics is not None:
        print(f"metrics at http://{config.host}:{http_server.port}{metrics.path}", flush=True)
    _announce(store, initial, where)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), config.poll_seconds)
            except TimeoutError:
                try:
                    events = await loop.run_in_executor(loader, store.poll)
                except Exception:  # e.g. an unreadable base path: keep serving what is loaded
                    log.exception("polling the model base paths failed")
                    continue
                _announce(store, events, where)
    finally:
        if grpc_server is not None:
            await grpc_server.stop(grace=1.0)
        await http_server.close(timeout=2.0)
        api.close()
        inference.close()
        loader.shutdown(wait=False, cancel_futures=True)


def main(sources: list[ModelSource], config: ServerConfig) -> int:
    """Run :func:`serve` with logging to stderr; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    run_on(serve(sources, config), config.event_loop)
    return 0
