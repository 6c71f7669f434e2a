"""Prometheus metrics of the local server, exposed like TF Serving's (``--monitoring_config_file``).

TF Serving serves Prometheus text at ``/monitoring/prometheus/metrics`` on its REST port when its monitoring config
says ``prometheus_config { enable: true }``; this server does the same (``serve --monitoring-config-file FILE`` or
``serve --monitoring``), through ``prometheus_client`` with a registry of its own per server (several servers in one
process do not share series). Exported:

- ``serving_requests_total{api, model_name, signature_name, method, status}``: requests answered, ``api`` ``rest`` or
  ``grpc``, ``method`` ``predict``/``metadata``/``status``/``classify``/``regress``/``multi_inference``/..., ``status``
  the canonical code (``OK``, ``INVALID_ARGUMENT``, ``NOT_FOUND``, ...; a REST status without one is ``HTTP_<n>``).
- ``serving_request_latency_seconds{api, model_name, signature_name, method}``: histogram, arrival to answer.
- ``serving_batch_size{model_name, signature_name}``: histogram of examples per TensorFlow run (a merged batch with
  batching on, one request otherwise).
- ``serving_batch_queue_depth``: batches waiting for an inference thread (open batches included), the quantity
  ``max_enqueued_batches`` bounds; ``serving_batches_running``: batches in the inference threads.
- ``serving_model_version_state{model_name, version, state}``: 1 for each version's current state
  (``START``/``LOADING``/``AVAILABLE``/``UNLOADING``/``END``), 0 for the others.
- ``serving_rest_connections``: open REST connections (what ``max_connections`` bounds);
  ``serving_rest_pending_bytes``: bytes held for all REST clients in requests read ahead and answers not yet taken;
  ``serving_rest_connection_pending_bytes_max``: the most held for one connection (what
  ``max_pending_bytes_per_connection`` bounds, give or take one read and one answer).

Label values come from the server, never verbatim from a client: a model the server does not serve is counted as
``model_name=""`` and an unknown signature as ``signature_name=""``, so a client cannot grow the series without bound.

Example:
    >>> metrics = ServingMetrics(store, inference)  # doctest: +SKIP
    >>> handler = metrics.rest_handler(api.handle)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.protobuf import text_format
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from serving.errors import HTTP_STATUS
from serving.tf_serving.protos import PROMETHEUS_DEFAULT_PATH, MonitoringConfig

if TYPE_CHECKING:
    from serving.http_server import HttpRequest, HttpServer
    from serving.inference import Inference
    from serving.model_store import ModelStore

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
VERSION_STATES = ("START", "LOADING", "AVAILABLE", "UNLOADING", "END")
# the classic text format (every metric name here is a legacy-valid one), which every Prometheus version scrapes
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
_CODE_OF_HTTP = {status: code for code, status in reversed(list(HTTP_STATUS.items()))} | {
    413: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
}
_REST_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/[^/:]+|/labels/[^/:]+)?(?P<suffix>/metadata|:[a-z]+)?$", re.IGNORECASE
)
_SIGNATURE_IN_BODY = re.compile(rb'"signature_name"\s*:\s*"([^"\\]{0,256})"')


def read_monitoring_config(path: str | Path) -> str | None:
    """The Prometheus path a TF Serving ``--monitoring_config_file`` (``MonitoringConfig`` text proto) enables.

    Returns:
        The metrics path (``/monitoring/prometheus/metrics`` when ``path`` is empty), or ``None`` when
        ``prometheus_config.enable`` is false.

    Raises:
        ValueError: unreadable file, not a ``MonitoringConfig``, or a path that does not start with ``/``.

    Example:
        >>> read_monitoring_config("serving/tf_serving/monitoring.config")  # doctest: +SKIP
        '/monitoring/prometheus/metrics'
    """
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ValueError(f"monitoring config file {path}: {err.strerror}") from None
    config = MonitoringConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as err:
        raise ValueError(f"monitoring config file {path} is not a MonitoringConfig text proto: {err}") from None
    prometheus = config.prometheus_config
    if not prometheus.enable:
        return None
    metrics_path = prometheus.path or PROMETHEUS_DEFAULT_PATH
    if not metrics_path.startswith("/") or any(c in metrics_path for c in "?# \t\r\n"):
        raise ValueError(f"monitoring config file {path}: prometheus_config.path must be a URL path: {metrics_path!r}")
    return metrics_path


class ServingMetrics:
    """The server's metrics in their own ``CollectorRegistry``.

    Args:
        store: The served models (label values are checked against it; version states are read from it).
        inference: The inference engine (queue depth, running batches, batch sizes).
        path: The URL path answering the metrics text.
    """

    def __init__(self, store: ModelStore, inference: Inference, path: str = PROMETHEUS_DEFAULT_PATH) -> None:
        self.store = store
        self.inference = inference
        self.path = path
        self._path_lower = path.lower()
        self.registry = CollectorRegistry(auto_describe=True)
        self._models = set(store.model_names())
        self._signatures: dict[str, set[str]] = {}
        self._children: dict[tuple[str, ...], tuple[Any, Any]] = {}  # label values -> (counter, histogram) series
        labels = ("api", "model_name", "signature_name", "method")
        self.requests = Counter(
            "serving_requests",
            "Requests answered, by API, model, signature, method and status",
            (*labels, "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "serving_request_latency_seconds",
            "Arrival to answer, seconds",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "serving_batch_size", "Examples per TensorFlow run (merged batch or single request)",
            ("model_name", "signature_name"), buckets=BATCH_BUCKETS, registry=self.registry,
        )  # fmt: skip
        Gauge(
            "serving_batch_queue_depth", "Batches waiting for an inference thread", registry=self.registry
        ).set_function(inference.queue_depth)
        Gauge("serving_batches_running", "Batches in the inference threads", registry=self.registry).set_function(
            inference.running
        )
        self.registry.register(_VersionStates(store))
        inference.on_run = self.observe_batch

    def watch_http(self, server: HttpServer) -> None:
        """Export the REST connections of ``server`` and the bytes held for them (gauges read at scrape time)."""
        Gauge("serving_rest_connections", "Open REST connections", registry=self.registry).set_function(
            lambda: len(server.connections)
        )
        Gauge(
            "serving_rest_pending_bytes",
            "Bytes held for REST clients: requests read ahead and answers not yet taken",
            registry=self.registry,
        ).set_function(server.pending_bytes)
        Gauge(
            "serving_rest_connection_pending_bytes_max",
            "Most bytes held for one REST connection: requests read ahead and answers not yet taken",
            registry=self.registry,
        ).set_function(lambda: max((c.pending_bytes() for c in list(server.connections)), default=0))

    # --- label values -------------------------------------------------------------------------------------------

    def _model_label(self, name: str) -> str:
        return name if name in self._models else ""

    def _signature_label(self, model: str, signature: str) -> str:
        known = self._signatures.get(model)
        if known is None or signature not in known:
            try:
                known = self._signatures[model] = set(self.store.resolve(model).signature_defs)
            except Exception:  # no version loaded yet
                return ""
        return signature if signature in known else ""

    # --- recording ----------------------------------------------------------------------------------------------

    def observe_request(self, api: str, model: str, signature: str, method: str, status: str, seconds: float) -> None:
        """Count one answered request and its latency (``model`` and ``signature`` as the client sent them); callable
        from any thread (gRPC calls are counted in their threads)."""
        model = self._model_label(model)
        signature = self._signature_label(model, signature) if model and signature else ""
        key = (api, model, signature, method, status)  # server-checked values only: the cache stays bounded
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(*key),
                self.latency.labels(api, model, signature, method),
            )
        children[0].inc()
        children[1].observe(seconds)

    def observe_batch(self, model: str, signature: str, size: int) -> None:
        """Record one TensorFlow run of ``size`` examples (called by :class:`serving.inference.Inference`)."""
        self.batch_size.labels(model, signature).observe(size)

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)

    # --- REST ---------------------------------------------------------------------------------------------------

    def rest_handler(self, handle: Callable[[HttpRequest], Any]) -> Callable[[HttpRequest], Any]:
        """``handle`` that also answers ``GET``/``HEAD`` on :attr:`path` with the metrics and counts every request."""

        def handler(request: HttpRequest) -> Any:
            if request.path.lower() == self._path_lower and request.method in ("GET", "HEAD"):
                return 200, self.render(), CONTENT_TYPE
            start = time.perf_counter()
            answer = handle(request)
            if isinstance(answer, tuple):
                self._rest_answered(request, start, answer)
                return answer
            if isinstance(answer, asyncio.Future):
                answer.add_done_callback(lambda done: self._rest_future_done(request, start, done))
                return answer
            when_sent = getattr(answer, "when_sent", None)
            if when_sent is None:  # a coroutine: counted when it returns
                return self._rest_coroutine(request, start, answer)
            relay = type(answer)()

            def sent(result: tuple) -> None:
                self._rest_answered(request, start, result)
                relay.send(*result)

            when_sent(sent)
            return relay

        return handler

    def _rest_future_done(self, request: HttpRequest, start: float, done: asyncio.Future) -> None:
        failed = done.cancelled() or done.exception() is not None
        self._rest_answered(request, start, (500,) if failed else done.result())

    async def _rest_coroutine(self, request: HttpRequest, start: float, answer: Any) -> Any:
        status = 500
        try:
            result = await answer
            status = result[0]
            return result
        finally:
            self._rest_answered(request, start, (status,))

    def _rest_answered(self, request: HttpRequest, start: float, answer: tuple) -> None:
        seconds = time.perf_counter() - start
        status = answer[0]
        code = _CODE_OF_HTTP.get(status, f"HTTP_{status}")
        route = _REST_ROUTE.match(request.path)
        if route is None:
            self.observe_request("rest", "", "", "other", code, seconds)
            return
        suffix = (route["suffix"] or "").lower()
        method = {"": "status", "/metadata": "metadata"}.get(suffix, suffix[1:])
        signature = ""
        if method in ("predict", "classify", "regress"):
            signature = "serving_default"
            body = request.body
            if b'"signature_name"' in body:
                found = _SIGNATURE_IN_BODY.search(body)
                signature = found[1].decode("utf-8", "replace") if found else ""
        self.observe_request("rest", route["name"], signature, method, code, seconds)


class _VersionStates:
    """Collector of ``serving_model_version_state``, read from the model store at scrape time."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "serving_model_version_state",
            "1 for each model version's current state (TF Serving's ModelVersionStatus.State), 0 for the others",
            labels=("model_name", "version", "state"),
        )
        for name in self.store.model_names():
            try:
                entries = self.store.status(name)
            except Exception:  # no version known yet
                continue
            for entry in entries:
                for state in VERSION_STATES:
                    family.add_metric((name, str(entry["version"]), state), 1.0 if entry["state"] == state else 0.0)
        yield family
