"""What the serving benchmarks share: a local server, requests built from one array per input, and load from
keep-alive REST clients or concurrent gRPC ``Predict`` loops, every answer handed to one callback."""

from __future__ import annotations

import asyncio
import functools
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
OnAnswer = Callable[[Any, "str | None", Any, float], None]  # (client, error text or None, answer, seconds)


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
    """One keep-alive connection sending ``request`` again as soon as an answer is complete while ``running()``;
    ``done`` resolves with how the connection ended (``None`` when this side closed it)."""

    def __init__(self, request: bytes, running: Callable[[], bool], on_answer: OnAnswer) -> None:
        self.request, self.running, self.on_answer, self.buffer = request, running, on_answer, b""
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
            error = None if status == b"200" else f"{status.decode()}: {payload[:200]!r}"
            self.on_answer(self, error, payload, time.perf_counter() - self.sent)
            if not self.running():
                return self.transport.close()
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(exc)


async def load(
    transport: str,
    server: Any,
    columns: dict[str, np.ndarray] | predict_pb2.PredictRequest,
    clients: int,
    running: Callable[[], bool],
    on_answer: OnAnswer,
    pause: float = 0.0,
) -> None:
    """``clients`` REST keep-alive connections or gRPC ``Predict`` loops on one channel sending the rows of
    ``columns`` (or a ready gRPC request) to ``server`` (anything with ``port`` and ``grpc_target``) while
    ``running()``, ``pause`` seconds between a gRPC answer and the next call. Each answer goes to ``on_answer(client,
    error text or None, REST payload or gRPC response, seconds)``; a REST connection the server drops is an error."""
    if transport == "rest":
        request, loop = post_request(server.port, rest_body(columns)), asyncio.get_running_loop()

        client = functools.partial(KeepAliveClient, request, running, on_answer)
        conns = [(await loop.create_connection(client, "127.0.0.1", server.port))[1] for _ in range(clients)]
        for conn, lost in zip(conns, await asyncio.gather(*(c.done for c in conns)), strict=True):
            if lost is not None:
                on_answer(conn, f"connection lost: {lost}", None, 0.0)
        return
    request = columns if isinstance(columns, predict_pb2.PredictRequest) else grpc_request(columns)
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        async def calls(index: int) -> None:
            while running():
                sent = time.perf_counter()
                try:
                    answer, error = await stub.Predict(request, timeout=30), None
                except grpc.aio.AioRpcError as err:
                    answer, error = err, f"{err.code().name}: {err.details()}"
                on_answer(index, error, answer, time.perf_counter() - sent)
                if pause:
                    await asyncio.sleep(pause)

        await asyncio.gather(*(calls(i) for i in range(clients)))
