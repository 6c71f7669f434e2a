"""How gRPC calls reach the inference engine (``serving.grpc_server`` and ``serving.batching``): concurrent calls
share batches, a call past its deadline is DEADLINE_EXCEEDED and dropped from its batch before it runs, and a full
queue is UNAVAILABLE.

The real gRPC server runs in-process over a stand-in model (``y = 2x``) whose runs can be held back, with the stock
``PredictionServiceStub`` as client.
"""

from __future__ import annotations

import asyncio
import threading
import time
import types

import grpc
import numpy as np
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.batching import BatchingOptions
from serving.errors import not_found
from serving.inference import Inference
from serving.tensor_proto import from_ndarray


class _Servable:
    """``y = 2x``; each run waits for ``release`` and records its batch's ``x``."""

    name, version = "m", 1

    def __init__(self) -> None:
        spec = types.SimpleNamespace(dtype=types.SimpleNamespace(as_datatype_enum=types_pb2.DT_FLOAT))
        self.input_specs = {"serving_default": {"x": spec}}
        self.signature_defs = {"serving_default": types.SimpleNamespace(outputs={"y": None})}
        self.release = threading.Event()
        self.started = threading.Event()
        self.batches: list[list[float]] = []

    def signature_inputs(self, signature):
        return {"x": "float32"}

    def check_shapes(self, signature, inputs):
        pass

    def run(self, signature, inputs, validate=True):
        self.started.set()
        self.release.wait(10)
        self.batches.append(inputs["x"].tolist())
        return {"y": inputs["x"] * 2}


class _Store:
    def __init__(self, servable: _Servable) -> None:
        self.servable = servable

    def resolve(self, name, version=None, label=None):
        if name != "m":
            raise not_found(f"Servable not found for request: Latest({name})")
        return self.servable


def _request(value: float) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    request.inputs["x"].CopyFrom(from_ndarray(np.array([value], np.float32)))
    return request


def _serve(scenario, batching: BatchingOptions):
    """Run ``scenario(stub, servable)`` against an in-process gRPC server with one inference thread."""
    from serving.grpc_server import start_grpc_server

    async def main():
        servable = _Servable()
        inference = servable.inference = Inference(num_threads=1, batching=batching)
        server, port = await start_grpc_server(_Store(servable), inference, "127.0.0.1", 0, 1 << 20)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                return await asyncio.wait_for(scenario(stub, servable), 30), servable
        finally:
            servable.release.set()
            await server.stop(grace=None)
            inference.close()

    return asyncio.run(main())


async def _predict(stub, value: float, timeout: float = 10) -> list[float] | str:
    try:
        return list((await stub.Predict(_request(value), timeout=timeout)).outputs["y"].float_val)
    except grpc.aio.AioRpcError as err:
        return err.code().name


async def _rows_waiting(inference: Inference, rows: int, timeout: float = 10) -> None:
    """Wait until the open batches hold ``rows`` rows (a fixed sleep is too short on a loaded machine)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while sum(batch.size for batch in inference.batcher._open.values()) < rows and loop.time() < deadline:
        await asyncio.sleep(0.01)


def test_concurrent_calls_share_batches_while_the_inference_thread_is_busy():
    async def scenario(stub, servable):
        first = asyncio.ensure_future(_predict(stub, 100.0))
        await asyncio.get_running_loop().run_in_executor(None, servable.started.wait, 10)
        rest = [asyncio.ensure_future(_predict(stub, float(v))) for v in range(16)]
        await _rows_waiting(servable.inference, 16)  # every call reaches the batcher while the first run holds it
        servable.release.set()
        return await first, await asyncio.gather(*rest)

    (first, rest), servable = _serve(scenario, BatchingOptions(max_batch_size=64, batch_timeout_micros=100_000))
    assert first == [200.0] and rest == [[2.0 * v] for v in range(16)]
    assert servable.batches[0] == [100.0] and sorted(servable.batches[1]) == [float(v) for v in range(16)]
    assert len(servable.batches) == 2


def test_a_call_past_its_deadline_is_deadline_exceeded_and_dropped_from_its_batch():
    async def scenario(stub, servable):
        first = asyncio.ensure_future(_predict(stub, 100.0))
        await asyncio.get_running_loop().run_in_executor(None, servable.started.wait, 10)
        start = time.perf_counter()
        late = await _predict(stub, 7.0, timeout=0.3)
        waited = time.perf_counter() - start
        await asyncio.sleep(0.2)  # the cancellation reaches the batch before the thread frees up
        servable.release.set()
        return late, waited, await first, await _predict(stub, 1.0)

    (late, waited, first, after), servable = _serve(scenario, BatchingOptions(batch_timeout_micros=1_000_000))
    assert late == "DEADLINE_EXCEEDED" and waited < 3.0, (late, waited)
    assert first == [200.0] and after == [2.0]
    assert [7.0] not in servable.batches and all(7.0 not in batch for batch in servable.batches), servable.batches


def test_a_full_batch_queue_is_unavailable():
    async def scenario(stub, servable):
        first = asyncio.ensure_future(_predict(stub, 100.0))
        await asyncio.get_running_loop().run_in_executor(None, servable.started.wait, 10)
        queued = asyncio.ensure_future(_predict(stub, 1.0))
        await asyncio.sleep(0.3)
        refused = await _predict(stub, 2.0)
        servable.release.set()
        return await first, await queued, refused

    (first, queued, refused), _ = _serve(scenario, BatchingOptions(max_batch_size=1, max_enqueued_batches=1))
    assert (first, queued, refused) == ([200.0], [2.0], "UNAVAILABLE")
