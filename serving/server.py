"""The local model server's process: load the models, start the REST and gRPC APIs, poll for new versions.

The REST API (:class:`serving.rest_api.RestApi` on ``serving.http_server``) and the gRPC API
(``serving.grpc_server``, on ``grpc_port``) run in the same process and event loop, over the same model store and
inference engine. The newest version of each model is served; a poller picks up new versions without a restart.
Inference runs in a thread pool (the event loop never blocks) and optionally through the adaptive
:class:`serving.batching.Batcher`.

Imports neither ``mmoe_tf`` nor ``data``: an exported model stands alone, as inside TF Serving.

Example:
    >>> config = ServerConfig(port=8501)
    >>> asyncio.run(serve([ModelSource("mmoe", "/tmp/export")], config))  # doctest: +SKIP
    serving mmoe version 1 at http://127.0.0.1:8501 and grpc 127.0.0.1:8500
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

from serving.event_loop import loop_name, run_on
from serving.http_server import start_http_server
from serving.inference import Inference
from serving.model_store import ModelSource, ModelStore
from serving.rest_api import RestApi
from serving.server_config import ServerConfig

log = logging.getLogger("serving")


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
