"""TF Serving's gRPC API (``shared/specs/tf-serving-grpc.md``) on grpcio's asyncio server, for the local server.

``tensorflow.serving.PredictionService`` (``Predict``, ``GetModelMetadata``; ``Classify``/``Regress``/
``MultiInference`` refused like REST ``:classify``/``:regress``) and ``tensorflow.serving.ModelService``
(``GetModelStatus``; ``HandleReloadConfigRequest`` is UNIMPLEMENTED), built on the stubs and messages that
``tensorflow-serving-api`` ships. Model specs resolve through the same :class:`ModelStore` as REST, inference goes
through the same :class:`Inference` (so REST and gRPC requests share batches), errors carry the canonical status
code with the REST error text, and the client's deadline is honoured (DEADLINE_EXCEEDED).

Imports neither ``mmoe_tf`` nor ``data``.

Example:
    >>> server = await start_grpc_server(store, engine, "127.0.0.1", 8500, max_message_bytes=64 << 20)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
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
    """The servicers of both services, bound to a model store and an inference engine.

    Args:
        store: The served models.
        inference: Runs predictions (shared with the REST API).
    """

    def __init__(self, store: ModelStore, inference: Inference, metrics: ServingMetrics | None = None) -> None:
        self.store = store
        self.inference = inference
        self.metrics = metrics

    async def _answer(
        self,
        context: grpc.aio.ServicerContext,
        handler: Callable[[], Awaitable[Any]],
        method: str,
        spec: Any = None,
    ) -> Any:
        """Run ``handler`` within the client's deadline; failures abort with their canonical code and text.

        ``method`` and the request's ``spec`` (ModelSpec) label the request in the metrics.
        """
        start = time.perf_counter()
        try:
            async with asyncio.timeout(context.time_remaining()):
                result = await handler()
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
        await context.abort(code, message)

    def _observe(self, method: str, spec: Any, status: str, start: float) -> None:
        if self.metrics is not None:
            model = spec.name if spec is not None else ""
            signature = (spec.signature_name or DEFAULT_SIGNATURE) if method in _SIGNATURE_METHODS else ""
            seconds = time.perf_counter() - start
            self.metrics.observe_request("grpc", model, signature, method, status, seconds)

    async def Predict(self, request: predict_pb2.PredictRequest, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        return await self._answer(context, lambda: self._predict(request), "predict", request.model_spec)

    async def _predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        servable, signature, inputs = self.prepare_predict(request)
        outputs = await self.inference.predict(servable, signature, inputs)
        return predict_response(servable, signature, outputs, request.output_filter)

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

    async def GetModelMetadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        return await self._answer(context, lambda: self._metadata(request), "metadata", request.model_spec)

    async def _metadata(self, request: Any) -> get_model_metadata_pb2.GetModelMetadataResponse:
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

    async def GetModelStatus(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        return await self._answer(context, lambda: self._status(request), "status", request.model_spec)

    async def _status(self, request: Any) -> get_model_status_pb2.GetModelStatusResponse:
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

    async def Classify(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        return await self._answer(
            context, lambda: self._refuse(request.model_spec, "classify"), "classify", request.model_spec
        )

    async def Regress(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        return await self._answer(
            context, lambda: self._refuse(request.model_spec, "regress"), "regress", request.model_spec
        )

    async def _refuse(self, spec: Any, verb: str) -> None:
        _check_method(resolve_spec(self.store, spec), spec.signature_name or DEFAULT_SIGNATURE, verb)
        raise _unimplemented(verb)

    async def MultiInference(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        async def refuse() -> None:
            verbs = {v: k for k, v in METHOD_NAMES.items()}
            for task in request.tasks:
                if task.method_name not in verbs:
                    raise RequestError(f"Unsupported signature method name: {task.method_name}")
                spec = task.model_spec
                _check_method(
                    resolve_spec(self.store, spec), spec.signature_name or DEFAULT_SIGNATURE, verbs[task.method_name]
                )
            raise _unimplemented("MultiInference")

        return await self._answer(context, refuse, "multi_inference")

    async def HandleReloadConfigRequest(self, request: Any, context: grpc.aio.ServicerContext) -> Any:  # noqa: N802
        async def refuse() -> None:
            raise ServingError("UNIMPLEMENTED", "HandleReloadConfigRequest is not supported by this server")

        return await self._answer(context, refuse, "reload_config")


async def start_grpc_server(
    store: ModelStore,
    inference: Inference,
    host: str,
    port: int,
    max_message_bytes: int,
    metrics: ServingMetrics | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Bind the gRPC API on ``host:port`` (insecure, like TF Serving's default) and start it.

    Args:
        store: The served models.
        inference: The engine shared with REST.
        host: Interface to bind.
        port: Port (0 = any free port).
        max_message_bytes: Largest request/response message; bigger ones fail with RESOURCE_EXHAUSTED.
        metrics: Counts every call (``serving.metrics``), or ``None``.

    Returns:
        The running server and the bound port.
    """
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(options=options)
    api = GrpcApi(store, inference, metrics)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(api, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(api, server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # grpcio raises instead of returning 0 when the port is taken
        bound = 0
    if bound == 0:
        raise OSError(f"cannot bind the gRPC port {host}:{port} (in use? --grpc-port 0 picks a free one)")
    await server.start()
    return server, bound
