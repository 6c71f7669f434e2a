"""Hostile gRPC requests: a few bytes declaring a huge tensor must be INVALID_ARGUMENT before any allocation.

The real gRPC API (``serving.grpc_server``) runs in-process over a stand-in model store whose model records every
call, and the client sends raw ``PredictRequest`` messages through the stock ``PredictionServiceStub``.
"""

from __future__ import annotations

import asyncio
import tracemalloc
import types

import grpc
import numpy as np
import pytest
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.errors import RequestError, not_found
from serving.inference import Inference
from serving.tensor_proto import to_ndarray


def _tensor(dtype: int, shape: list[int], **values) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtype, **values)
    for size in shape:
        proto.tensor_shape.dim.add().size = size
    return proto


ATTACKS = {
    "string [60,000,000] without values": _tensor(types_pb2.DT_STRING, [60_000_000]),
    "string [500,000] without values": _tensor(types_pb2.DT_STRING, [500_000]),
    "float [1e11] without values": _tensor(types_pb2.DT_FLOAT, [100_000_000_000]),
    "float [500,000] with one value": _tensor(types_pb2.DT_FLOAT, [500_000], float_val=[1.0]),
    "int64 [2**40, 2**40] (int64 product overflows)": _tensor(types_pb2.DT_INT64, [2**40, 2**40]),
    "half [1e9] (TensorFlow's converter)": _tensor(types_pb2.DT_HALF, [1_000_000_000]),
    "float [4] with 3 values of content": _tensor(types_pb2.DT_FLOAT, [4], tensor_content=b"\0" * 12),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_declared_sizes_are_checked_against_the_message_before_any_allocation(name):
    tracemalloc.start()
    try:
        with pytest.raises(RequestError, match="tensor parsing error: x"):
            to_ndarray(ATTACKS[name], "x")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak


def test_small_tensors_keep_tensorflows_shorthand():
    assert to_ndarray(_tensor(types_pb2.DT_FLOAT, [3], float_val=[2.0]), "x").tolist() == [2.0, 2.0, 2.0]
    assert to_ndarray(_tensor(types_pb2.DT_INT64, [2, 2]), "x").tolist() == [[0, 0], [0, 0]]
    assert to_ndarray(_tensor(types_pb2.DT_STRING, [2], string_val=[b"a", b"b"]), "x").tolist() == [b"a", b"b"]


class _Servable:
    name, version = "m", 1

    def __init__(self, dtypes: dict[str, int]) -> None:
        spec = {n: types.SimpleNamespace(dtype=types.SimpleNamespace(as_datatype_enum=d)) for n, d in dtypes.items()}
        self.input_specs = {"serving_default": spec}
        self.signature_defs = {"serving_default": types.SimpleNamespace(outputs={"y": None})}
        self.calls = 0

    def signature_inputs(self, signature):
        return dict(self.input_specs[signature])

    def check_shapes(self, signature, inputs):
        pass

    def run(self, signature, inputs, validate=True):
        self.calls += 1
        return {"y": np.zeros(len(next(iter(inputs.values()))), np.float32)}


class _Store:
    def __init__(self, servable: _Servable) -> None:
        self.servable = servable

    def resolve(self, name, version=None, label=None):
        if name != "m":
            raise not_found(f"Servable not found for request: Latest({name})")
        return self.servable


def test_raw_grpc_requests_declaring_huge_tensors_are_invalid_argument_and_never_run():
    from serving.grpc_server import start_grpc_server

    dtypes = {"s": types_pb2.DT_STRING, "f": types_pb2.DT_FLOAT}
    attacks = {
        "string [60,000,000]": {"s": _tensor(types_pb2.DT_STRING, [60_000_000]), "f": _tensor(1, [60_000_000])},
        "all inputs [500,000]": {"s": _tensor(types_pb2.DT_STRING, [500_000]), "f": _tensor(1, [500_000])},
        "float [1e11]": {"s": _tensor(types_pb2.DT_STRING, [1], string_val=[b"a"]), "f": _tensor(1, [10**11])},
    }

    async def main():
        servable = _Servable(dtypes)
        inference = Inference(num_threads=1)
        server, port = await start_grpc_server(_Store(servable), inference, "127.0.0.1", 0, 1 << 20)
        out = {}
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                for key, inputs in attacks.items():
                    request = predict_pb2.PredictRequest()
                    request.model_spec.name = "m"
                    for n, proto in inputs.items():
                        request.inputs[n].CopyFrom(proto)
                    try:
                        await stub.Predict(request, timeout=10)
                        out[key] = ("OK", request.ByteSize())
                    except grpc.aio.AioRpcError as err:
                        out[key] = (err.code().name, err.details())
                ok = predict_pb2.PredictRequest()
                ok.model_spec.name = "m"
                ok.inputs["s"].CopyFrom(_tensor(types_pb2.DT_STRING, [2], string_val=[b"a", b"b"]))
                ok.inputs["f"].CopyFrom(_tensor(types_pb2.DT_FLOAT, [2], float_val=[1.0, 2.0]))
                answer = await stub.Predict(ok, timeout=10)
        finally:
            await server.stop(grace=None)
            inference.close()
        return out, servable.calls, list(answer.outputs["y"].float_val)

    out, calls, answer = asyncio.run(main())
    assert {code for code, _ in out.values()} == {"INVALID_ARGUMENT"}, out
    assert all("tensor parsing error" in details for _, details in out.values()), out
    assert calls == 1 and answer == [0.0, 0.0]  # only the well-formed request ran
