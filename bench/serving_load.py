"""Load against a local server, shared by ``serving_latency.py`` and ``serving_soak.py``: requests built from one
array per input, keep-alive REST clients and concurrent gRPC ``Predict`` loops, each answer handed to a callback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.tensor_proto import from_ndarray
from serving.testing import MODEL_NAME, ServerProcess

PATH = f"/v1/models/{MODEL_NAME}:predict"


def start_server(base: Path, *flags: str) -> ServerProcess:
    """A local server of the ``mmoe`` model under ``base``, started on free REST and gRPC ports."""
    return ServerProcess(["--base-path", str(base), "--model-name", MODEL_NAME, *flags]).start()


def rest_body(columns: dict[str, np.ndarray]) -> bytes:
    """A REST predict body holding the rows of ``columns`` as ``instances`` (bytes decoded, numpy as Python)."""
    as_json = {k: [x.decode() if isinstance(x, bytes) else x for x in v.tolist()] for k, v in columns.items()}
    rows = [dict(zip(as_json, row, strict=True)) for row in zip(*as_json.values(), strict=True)]
    return json.dumps({"instances": rows}).encode()


def post_request(port: int, body: bytes) -> bytes:
    """The bytes of one HTTP/1.1 keep-alive ``POST`` of ``body`` to the predict URL."""
    head = f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def grpc_request(columns: dict[str, np.ndarray]) -> predict_pb2.PredictRequest:
    """A ``Predict`` request of the rows of ``columns`` (numbers as ``tensor_content``)."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    for name, values in columns.items():
        request.inputs[name].CopyFrom(from_ndarray(values, content=values.dtype != object))
    return request


class KeepAliveClient(asyncio.Protocol):
    """One keep-alive connection sending ``request`` again as soon as an answer is complete, until
    ``on_answer(client, status, payload, seconds)`` returns False; ``done`` resolves with how it ended."""

    def __init__(self, request: bytes, on_answer: Callable[..., bool]) -> None:
        self.request, self.on_answer, self.buffer = request, on_answer, b""
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        self.sent = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].split(b"\r\n")
            length = next((int(h.split(b":")[1]) for h in head[1:] if h.lower().startswith(b"content-length:")), 0)
            if len(self.buffer) < end + 4 + length:
                return
            status, payload = head[0].split(b" ")[1], self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            if not self.on_answer(self, status, payload, time.perf_counter() - self.sent):
                self.transport.close()
                return
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(exc)


async def rest_load(
    port: int, request: bytes, clients: int, on_answer: Callable[..., bool], timeout: float | None = None
) -> list[Exception | None]:
    """``clients`` :class:`KeepAliveClient` connections until ``on_answer`` stops each; how each one ended."""
    loop = asyncio.get_running_loop()
    conns = [
        (await loop.create_connection(lambda: KeepAliveClient(request, on_answer), "127.0.0.1", port))[1]
        for _ in range(clients)
    ]
    return await asyncio.wait_for(asyncio.gather(*(c.done for c in conns)), timeout)


async def grpc_load(
    target: str, request: Any, clients: int, running: Callable[[], bool], on_answer: Callable[[int, Any, float], None]
) -> None:
    """``clients`` concurrent ``Predict`` loops on one channel while ``running()``; each answer (a response or an
    ``AioRpcError``) goes to ``on_answer(loop index, answer, seconds)``."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        async def calls(index: int) -> None:
            while running():
                sent = time.perf_counter()
                try:
                    answer = await stub.Predict(request, timeout=30)
                except grpc.aio.AioRpcError as err:
                    answer = err
                on_answer(index, answer, time.perf_counter() - sent)

        await asyncio.gather(*(calls(i) for i in range(clients)))
