"""TF Serving's gRPC API (``shared/specs/tf-serving-grpc.md``) on grpcio's thread-pool server, for the local server.

``tensorflow.serving.PredictionService`` (``Predict``, ``GetModelMetadata``; ``Classify``/``Regress``/
``MultiInference`` refused like REST ``:classify``/``:regress``) and ``tensorflow.serving.ModelService``
(``GetModelStatus``; ``HandleReloadConfigRequest`` is UNIMPLEMENTED), built on the stubs and messages that
``tensorflow-serving-api`` ships. Model specs resolve through the same :class:`ModelStore` as REST, inference goes
through the same :class:`Inference` (so REST and gRPC requests share batches), errors carry the canonical status
code with the REST error text, and the client's deadline is honoured (DEADLINE_EXCEEDED).

Each call runs in a thread of grpcio's synchronous server, as TF Serving runs each call in a gRPC thread: the
request is checked and turned into arrays there, handed to the event loop only to join the batcher, and its answer
is written there (``docs/serving.md`` has the measurement against grpcio's asyncio server: the asyncio server cost
more server CPU per call and delivered calls to the batcher one per loop iteration, so they seldom shared batches).

Imports neither ``mmoe_tf`` nor ``data``.

Example:
    >>> server = await start_grpc_server(store, engine, "127.0.0.1", 8500, max_message_bytes=64 << 20)  # doctest: +SKIP
    >>> await server.stop(grace=1.0)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    status_pb2,
)

from serving.errors import RequestError, ServingError
from serving.inference import Inference
from serving.model_store import DEFAULT_SIGNATURE, ModelStore, Servable
from serving.tensor_proto import dtype_name, from_ndarray, to_ndarray

if TYPE_CHECKING:
    from serving.metrics import ServingMetrics

log = logging.getLogger("serving")

GRPC_THREADS = 64  # calls answered at once (TF Serving's --grpc_max_threads); further calls wait for a thread

_SIGNATURE_METHODS = ("predict", "classify", "regress")
METHOD_NAMES = {"classify": "tensorflow/serving/classify", "regress": "tensorflow/serving/regress"}
_STATE = get_model_status_pb2.ModelVersionStatus.State
_ERROR_CODE = status_pb2.StatusProto.DESCRIPTOR.fields_by_name["error_code"].enum_type.values_by_name


def _braces(names: set[str] | list[str]) -> str:
    return "{" + ",".join(sorted(names)) + "}"


def resolve_spec(store: ModelStore, spec: Any) -> Servable:
    """The servable a ``ModelSpec`` names (version, version label, or the newest); NOT_FOUND as over REST."""
    if not spec.name:
        raise RequestError("Missing ModelSpec name: model_spec.name is required")
    choice = spec.WhichOneof("version_choice")
    version = spec.version.value if choice == "version" else None
    label = spec.version_label if choice == "version_label" else None
    return store.resolve(spec.name, version, label)


def _check_method(servable: Servable, signature: str, verb: str) -> None:
    """INVALID_ARGUMENT (REST's text) when ``signature`` is unknown or its method_name is not ``verb``'s."""
    servable.signature_inputs(signature)
    method = servable.metadata["signature_def"][signature].get("method_name", "")
    if method != METHOD_NAMES[verb]:
        kind = "classification" if verb == "classify" else "regression"
        raise RequestError(f"Expected {kind} signature method_name to be {METHOD_NAMES[verb]}. Was: {method}")


def _unimplemented(what: str) -> ServingError:
    return ServingError("UNIMPLEMENTED", f"{what} with tf.Example inputs is not supported by this server")


def predict_response(
    servable: Servable, signature: str, outputs: dict[str, Any], output_filter: Any
) -> predict_pb2.PredictResponse:
    """The ``PredictResponse`` of ``outputs`` (only the aliases in ``output_filter`` when it names any)."""
    response = predict_pb2.PredictResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.model_spec.signature_name = signature
    wanted = set(output_filter) or outputs.keys()
    for name, array in outputs.items():
        if name in wanted:
            response.outputs[name].CopyFrom(from_ndarray(array))
    return response


class GrpcApi(prediction_service_pb2_grpc.PredictionServiceServicer, model_service_pb2_grpc.ModelServiceServicer):
    """The servicers of both services, bound to a model store and an inference engine; called in gRPC threads.

    Args:
        store: The served models.
        inference: Runs predictions (shared with the REST API).
        loop: The event loop the inference engine (and its batcher) belongs to.
        metrics: Counts every call (``serving.metrics``), or ``None``.
    """

    def __init__(
        self,
        store: ModelStore,
        inference: Inference,
        loop: asyncio.AbstractEventLoop,
        metrics: ServingMetrics | None = None,
    ) -> None:
        self.store = store
        self.inference = inference
        self.loop = loop
        self.metrics = metrics
        self._incoming: list[tuple] = []  # requests handed over by gRPC threads, not yet taken by the loop
        self._incoming_lock = threading.Lock()

    def _answer(
        self, context: grpc.ServicerContext, handler: Callable[[float | None], Any], method: str, spec: Any = None
    ) -> Any:
        """``handler(seconds left before the client's deadline)``; failures abort with their canonical code and text.

        ``method`` and the request's ``spec`` (ModelSpec) label the request in the metrics.
        """
        start = time.perf_counter()
        try:
            result = handler(context.time_remaining())
            self._observe(method, spec, "OK", start)
            return result
        except ServingError as err:
            code, message = grpc.StatusCode[err.code], err.message
        except TimeoutError:
            code, message = grpc.StatusCode.DEADLINE_EXCEEDED, "Request timed out"
        except Exception as err:  # never let a request take the server down
            log.exception("internal error in a gRPC call")
            code, message = grpc.StatusCode.INTERNAL, f"Internal error: {type(err).__name__}: {err}"
        self._observe(method, spec, code.name, start)
        context.abort(code, message)

    def _observe(self, method: str, spec: Any, status: str, start: float) -> None:
        if self.metrics is not None:
            model = spec.name if spec is not None else ""
            signature = (spec.signature_name or DEFAULT_SIGNATURE) if method in _SIGNATURE_METHODS else ""
            seconds = time.perf_counter() - start
            self.metrics.observe_request("grpc", model, signature, method, status, seconds)  # thread-safe

    def Predict(self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._answer(context, lambda left: self._predict(request, left), "predict", request.model_spec)

    def _predict(self, request: predict_pb2.PredictRequest, seconds_left: float | None) -> predict_pb2.PredictResponse:
        servable, signature, inputs = self.prepare_predict(request)
        outputs = self._infer(servable, signature, inputs, seconds_left)
        return predict_response(servable, signature, outputs, request.output_filter)

    def _infer(self, servable: Servable, signature: str, inputs: dict[str, Any], seconds_left: float | None) -> dict:
        """Run ``inputs`` through the shared inference engine on the event loop; wait here for the outputs.

        Requests handed over while the loop is busy are taken in one loop callback (:meth:`_take_incoming`): one
        wake-up for all of them, and they reach the batcher in the same iteration, so they can share a batch.

        Raises:
            TimeoutError: ``seconds_left`` passed first (the request is dropped from its batch).
        """
        done: concurrent.futures.Future = concurrent.futures.Future()
        with self._incoming_lock:
            self._incoming.append((done, servable, signature, inputs))
            wake = len(self._incoming) == 1
        if wake:
            self.loop.call_soon_threadsafe(self._take_incoming)
        try:
            return done.result(timeout=seconds_left)
        except concurrent.futures.TimeoutError:
            done.cancel()  # the loop side sees it and cancels the request
            raise TimeoutError from None

    def _take_incoming(self) -> None:
        """On the event loop: queue every request handed over since the last call."""
        with self._incoming_lock:
            incoming, self._incoming = self._incoming, []
        for done, servable, signature, inputs in incoming:
            self._submit(done, servable, signature, inputs)

    def _submit(
        self, done: concurrent.futures.Future, servable: Servable, signature: str, inputs: dict[str, Any]
    ) -> None:
        """On the event loop: queue one request; its outputs (or error) complete ``done``."""
        if done.cancelled():
            return
        try:
            outputs = self.inference.submit(servable, signature, inputs)
        except Exception as err:  # batch limits, a full queue
            done.set_exception(err)
            return
        outputs.add_done_callback(lambda finished: _relay(finished, done))
        done.add_done_callback(lambda waited: waited.cancelled() and self.loop.call_soon_threadsafe(outputs.cancel))

    def prepare_predict(self, request: predict_pb2.PredictRequest) -> tuple[Servable, str, dict[str, Any]]:
        """The servable, signature and checked numpy inputs of a ``PredictRequest`` (INVALID_ARGUMENT, NOT_FOUND
        with REST's texts); safe to call from any thread."""
        servable = resolve_spec(self.store, request.model_spec)
        signature = request.model_spec.signature_name or DEFAULT_SIGNATURE
        servable.signature_inputs(signature)
        specs = servable.input_specs[signature]
        sent, expected = set(request.inputs), set(specs)
        if len(sent) != len(expected):
            raise RequestError(
                f"input size does not match signature: {len(sent)}!={len(expected)} len({_braces(sent)}) != "
                f"len({_braces(expected)}). Sent extra: {_braces(sent - expected)}. "
                f"Missing but required: {_braces(expected - sent)}."
            )
        unknown = sorted(sent - expected)
        if unknown:
            raise RequestError(
                f"input tensor alias not found in signature: {unknown[0]}. Inputs expected to be in the set "
                f"{_braces(expected)}."
            )
        inputs = {}
        for name, spec in specs.items():
            proto = request.inputs[name]
            if proto.dtype != spec.dtype.as_datatype_enum:
                raise RequestError(
                    f"Input '{name}' has dtype {dtype_name(proto.dtype)} but signature '{signature}' expects "
                    f"{dtype_name(spec.dtype.as_datatype_enum)}"
                )
            inputs[name] = to_ndarray(proto, name)
        servable.check_shapes(signature, inputs)
        sizes = {n: (a.shape[0] if a.ndim else None) for n, a in inputs.items()}
        if len(set(sizes.values())) > 1:
            raise RequestError(f"Inputs must have the same size along dimension 0; got {sizes}")
        declared = servable.signature_defs[signature].outputs
        for alias in request.output_filter:
            if alias not in declared:
                raise RequestError(
                    f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                    f"{_braces(list(declared))}."
                )
        return servable, signature, inputs

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._answer(context, lambda _: self._metadata(request), "metadata", request.model_spec)

    def _metadata(self, request: Any) -> get_model_metadata_pb2.GetModelMetadataResponse:
        if not request.metadata_field:
            raise RequestError("GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != "signature_def":
                raise RequestError(f"Metadata field {field} is not supported")
        servable = resolve_spec(self.store, request.model_spec)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        for name, sig in servable.signature_defs.items():
            sig_map.signature_def[name].CopyFrom(sig)
        response.metadata["signature_def"].Pack(sig_map)
        return response

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return self._answer(context, lambda _: self._status(request), "status", request.model_spec)

    def _status(self, request: Any) -> get_model_status_pb2.GetModelStatusResponse:
        spec = request.model_spec
        if not spec.name:
            raise RequestError("Missing ModelSpec name: model_spec.name is required")
        choice = spec.WhichOneof("version_choice")
        version = spec.version.value if choice == "version" else None
        label = spec.version_label if choice == "version_label" else None
        response = get_model_status_pb2.GetModelStatusResponse()
        for entry in self.store.status(spec.name, version, label):
            status = response.model_version_status.add()
            status.version = int(entry["version"])
            status.state = _STATE.Value(entry["state"])
            status.status.error_code = _ERROR_CODE[entry["status"]["error_code"]].number
            status.status.error_message = entry["status"]["error_message"]
        return response

    def Classify(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        spec = request.model_spec
        return self._answer(context, lambda _: self._refuse(spec, "classify"), "classify", spec)

    def Regress(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        spec = request.model_spec
        return self._answer(context, lambda _: self._refuse(spec, "regress"), "regress", spec)

    def _refuse(self, spec: Any, verb: str) -> None:
        _check_method(resolve_spec(self.store, spec), spec.signature_name or DEFAULT_SIGNATURE, verb)
        raise _unimplemented(verb)

    def MultiInference(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        def refuse(_: float | None) -> None:
            verbs = {v: k for k, v in METHOD_NAMES.items()}
            for task in request.tasks:
                if task.method_name not in verbs:
                    raise RequestError(f"Unsupported signature method name: {task.method_name}")
                spec = task.model_spec
                _check_method(
                    resolve_spec(self.store, spec), spec.signature_name or DEFAULT_SIGNATURE, verbs[task.method_name]
                )
            raise _unimplemented("MultiInference")

        return self._answer(context, refuse, "multi_inference")

    def HandleReloadConfigRequest(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        def refuse(_: float | None) -> None:
            raise ServingError("UNIMPLEMENTED", "HandleReloadConfigRequest is not supported by this server")

        return self._answer(context, refuse, "reload_config")


def _relay(finished: asyncio.Future, done: concurrent.futures.Future) -> None:
    """Copy an asyncio future's outcome into the concurrent future a gRPC thread waits on."""
    if done.done():  # the gRPC thread gave up (deadline)
        return
    if finished.cancelled():
        done.set_exception(ServingError("UNAVAILABLE", "The server is shutting down"))
    elif finished.exception() is not None:
        done.set_exception(finished.exception())
    else:
        done.set_result(finished.result())


class GrpcServer:
    """A running gRPC server; see :func:`start_grpc_server`.

    Attributes:
        port: The bound port.
    """

    def __init__(self, server: grpc.Server, pool: concurrent.futures.ThreadPoolExecutor, port: int) -> None:
        self._server = server
        self._pool = pool
        self.port = port

    async def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, let the running ones finish for up to ``grace`` seconds, then cancel them."""
        stopped = self._server.stop(grace)
        await asyncio.get_running_loop().run_in_executor(None, stopped.wait)
        self._pool.shutdown(wait=False)


async def start_grpc_server(
    store: ModelStore,
    inference: Inference,
    host: str,
    port: int,
    max_message_bytes: int,
    metrics: ServingMetrics | None = None,
    threads: int = GRPC_THREADS,
) -> tuple[GrpcServer, int]:
    """Bind the gRPC API on ``host:port`` (insecure, like TF Serving's default) and start it.

    Must be called from the event loop that ``inference`` runs on.

    Args:
        store: The served models.
        inference: The engine shared with REST.
        host: Interface to bind.
        port: Port (0 = any free port).
        max_message_bytes: Largest request/response message; bigger ones fail with RESOURCE_EXHAUSTED.
        metrics: Counts every call (``serving.metrics``), or ``None``.
        threads: Calls answered at once; further calls wait for a thread.

    Returns:
        The running server and the bound port.
    """
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="grpc")
    server = grpc.server(pool, options=options)
    api = GrpcApi(store, inference, asyncio.get_running_loop(), metrics)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(api, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(api, server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # grpcio raises instead of returning 0 when the port is taken
        bound = 0
    if bound == 0:
        raise OSError(f"cannot bind the gRPC port {host}:{port} (in use? --grpc-port 0 picks a free one)")
    server.start()
    return GrpcServer(server, pool, bound), bound
