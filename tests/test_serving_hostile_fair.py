"""A REST client that pipelines 1,024-row predicts and never reads its answers must not starve a well-behaved client,
and the server must hold a bounded number of bytes for it (``serving.http_server``'s back-pressure).

Raw loopback sockets against a real server process (the session's test export, batching on), bounded in time: the
well-behaved client's latencies are taken alone, then beside the flooding client; the server's own gauges
(``serving_rest_connection_pending_bytes_max``, ``serving_requests_total``) show what it holds for the flooding
connection and that it stops answering that connection's predicts once its answers pile up.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.testing import MODEL_NAME, ServerProcess, sample_frame, to_instances

CAP = 1 << 20  # --max-pending-bytes-per-connection
HOSTILE_ROWS = 1024
GOOD_ROWS = 4
GOOD_TIMEOUT = 5.0  # seconds: a well-behaved request taking longer counts as timed out
PREDICT = f"/v1/models/{MODEL_NAME}:predict"
METRICS = "/monitoring/prometheus/metrics"


@pytest.fixture(scope="module")
def server(export):
    args = ["--base-path", str(export.base_path), "--model-name", MODEL_NAME, "--monitoring", "--no-grpc"]
    args += ["--enable-batching", "--max-batch-size", str(HOSTILE_ROWS)]
    args += ["--max-pending-bytes-per-connection", str(CAP), "--idle-timeout-seconds", "60"]
    with ServerProcess(args) as running:
        yield running
        assert running.alive(), "\n".join(running.lines[-20:])


def _post(body: bytes) -> bytes:
    head = f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return status, await reader.readexactly(length)


async def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    """One scrape of the server's metrics on a connection of its own: ``{(name, sorted labels): value}``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {METRICS} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    status, body = await asyncio.wait_for(_read_answer(reader), GOOD_TIMEOUT)
    writer.close()
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def _answered_ok(samples: dict) -> float:
    return sum(
        v for (name, labels), v in samples.items() if name == "serving_requests_total" and ("status", "OK") in labels
    )


class _GoodClient:
    """Sequential 4-row predicts on one keep-alive connection; records each latency and checks each answer."""

    def __init__(self, export, port: int) -> None:
        self.port = port
        self.requests = [
            (_post(json.dumps({"instances": to_instances(export.samples.iloc[s : s + GOOD_ROWS])}).encode()), s)
            for s in range(8, 40, GOOD_ROWS)  # rows without NaN
        ]
        self.expected = export.expected["click"].to_numpy()
        self.done = 0
        self.failures: list[str] = []

    async def run(self, seconds: float) -> list[float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        latencies, deadline = [], time.perf_counter() + seconds
        try:
            while time.perf_counter() < deadline:
                request, start = self.requests[len(latencies) % len(self.requests)]
                t0 = time.perf_counter()
                writer.write(request)
                try:
                    status, body = await asyncio.wait_for(_read_answer(reader), GOOD_TIMEOUT)
                except TimeoutError:
                    self.failures.append("timed out")
                    break
                latencies.append(time.perf_counter() - t0)
                self.done += 1
                if status != 200:
                    self.failures.append(f"{status}: {body[:200]!r}")
                    continue
                got = np.array([p["click"] for p in json.loads(body)["predictions"]], np.float32)
                if np.max(np.abs(got - self.expected[start : start + GOOD_ROWS])) > 1e-6:
                    self.failures.append(f"wrong answer for rows {start}:{start + GOOD_ROWS}")
        finally:
            writer.close()
        return latencies


async def _flood(port: int, request: bytes, sent: list[int]) -> None:
    """Pipeline ``request`` for ever, never reading an answer (a small receive buffer, so answers pile up at once)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    _, writer = await asyncio.open_connection(sock=sock)
    try:
        while True:
            writer.write(request)
            await writer.drain()  # waits while the server does not read (back-pressure)
            sent[0] += 1
    finally:
        writer.transport.abort()


def test_a_client_never_reading_its_1024_row_answers_does_not_starve_others_and_is_bounded(server, export):
    frame = sample_frame(HOSTILE_ROWS, seed=3)
    frame.loc[3, "price"] = 1.0  # no NaN: plain JSON
    hostile = _post(json.dumps({"instances": to_instances(frame)}).encode())

    async def scenario():
        good = _GoodClient(export, server.port)
        await good.run(0.5)  # warm-up
        alone = await good.run(2.0)
        sent = [0]
        flooding = asyncio.ensure_future(_flood(server.port, hostile, sent))
        scrapes = []

        async def watch():
            while True:
                await asyncio.sleep(0.25)
                scrapes.append((await _scrape(server.port), good.done))

        watching = asyncio.ensure_future(watch())
        beside = await good.run(4.0)  # from the flood's first request on
        watching.cancel()
        still_open = not flooding.done()
        flooding.cancel()
        await asyncio.sleep(0.5)
        after = await _scrape(server.port)
        return good.failures, alone, beside, scrapes, sent[0], still_open, after

    failures, alone, beside, scrapes, sent, still_open, after = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert not failures, failures[:5]
    p95_alone, p95_beside = np.percentile(alone, 95), np.percentile(beside, 95)
    assert len(beside) >= 20, (len(beside), p95_alone)
    assert p95_beside <= max(0.5, 10 * p95_alone), (p95_beside, p95_alone)
    # bounded: what the server holds for the flooding connection stays under the cap plus one read and one answer
    answer_bytes = 200 * HOSTILE_ROWS
    held = max(s["serving_rest_connection_pending_bytes_max", ()] for s, _ in scrapes)
    assert held <= CAP + len(hostile) + answer_bytes, (held, CAP)
    # the flood is throttled: once its answers pile up, the server answers none of its predicts (each well-behaved
    # request is answered; the one in flight at a scrape may be counted already)
    hostile_answered = [_answered_ok(s) - done for s, done in scrapes]
    assert hostile_answered[-1] - hostile_answered[2 * len(hostile_answered) // 3] <= 1, hostile_answered
    assert still_open  # paused, not dropped: the flooding client's writes were still pending
    assert after["serving_rest_connections", ()] <= 1  # the flooding connection is gone; the scrape's own remains
    print(
        f"good p95 alone {p95_alone * 1e3:.1f} ms, beside {p95_beside * 1e3:.1f} ms; held {held}; "
        f"flood sent {sent}, answered {hostile_answered}"
    )
