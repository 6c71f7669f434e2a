"""One-off trial: the REST API's HTTP layer, hand-written on httptools (hardened) against h11, by requests/s and
server CPU per request on loopback.

Each contender runs in its own server process (uvloop, a handler answering a small JSON body at once, the
status-URL path); a client process keeps ``--concurrency`` keep-alive connections busy for ``--seconds``.
Contenders alternate for ``--rounds`` rounds; the last line printed is one JSON object of medians.

Contenders: ``httptools`` (serving.http_server as it is), ``h11`` (a minimal asyncio protocol on h11 0.16: keep-alive,
Content-Length bodies, one request at a time; h11 itself does the framing checks), and optionally ``--baseline DIR``
(``serving.http_server`` from another checkout, e.g. before hardening).

    python bench/http_layer_ab.py --rounds 3 --seconds 3 --concurrency 16
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
BODY = b'{"model_version_status": [{"version": "1", "state": "AVAILABLE"}]}'

SERVER_HTTPTOOLS = """
import asyncio, sys, uvloop
from serving.http_server import start_http_server
BODY = %r
async def main():
    server = await start_http_server(lambda request: (200, BODY), "127.0.0.1", %d, max_body_bytes=1 << 24)
    print("ready", flush=True)
    await asyncio.Event().wait()
uvloop.run(main())
"""

SERVER_H11 = """
import asyncio, uvloop, h11
BODY = %r
class Conn(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
    def data_received(self, data):
        self.conn.receive_data(data)
        self.pump()
    def pump(self):
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as err:
                self.t.write(b"HTTP/1.1 %%d Bad Request\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n"
                             %% err.error_status_hint)
                self.t.close()
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                if event is h11.PAUSED and self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
                    self.conn.start_next_cycle()
                    continue
                return
            if isinstance(event, h11.Request):
                self.body = []
            elif isinstance(event, h11.Data):
                self.body.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                headers = [("content-type", "application/json"), ("content-length", str(len(BODY)))]
                out = self.conn.send(h11.Response(status_code=200, headers=headers))
                out += self.conn.send(h11.Data(data=BODY)) + self.conn.send(h11.EndOfMessage())
                self.t.write(out)
                if self.conn.our_state is h11.MUST_CLOSE:
                    self.t.close()
                    return
                self.conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                self.t.close()
                return
async def main():
    loop = asyncio.get_running_loop()
    await loop.create_server(Conn, "127.0.0.1", %d, reuse_address=True)
    print("ready", flush=True)
    await asyncio.Event().wait()
uvloop.run(main())
"""

CLIENT = """
import asyncio, sys, time, uvloop
PORT, CONC, SECONDS = %d, %d, %f
REQUEST = b"GET /v1/models/mmoe HTTP/1.1\\r\\nHost: bench\\r\\n\\r\\n"
async def worker(stop, counts):
    reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
    n = 0
    while time.monotonic() < stop:
        writer.write(REQUEST)
        length = 0
        while (line := await reader.readline()) != b"\\r\\n":
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        n += 1
    counts.append(n)
    writer.close()
async def main():
    counts = []
    stop = time.monotonic() + SECONDS
    await asyncio.gather(*(worker(stop, counts) for _ in range(CONC)))
    print(sum(counts))
uvloop.run(main())
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_round(kind: str, baseline: str | None, seconds: float, concurrency: int) -> dict:
    port = _free_port()
    code = (SERVER_H11 % (BODY, port)) if kind == "h11" else (SERVER_HTTPTOOLS % (BODY, port))
    path = baseline if kind == "baseline" else str(REPO)
    env = {**os.environ, "PYTHONPATH": path}
    server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env, cwd=path)
    try:
        assert server.stdout.readline().strip() == "ready"
        proc = psutil.Process(server.pid)
        before = proc.cpu_times()
        start = time.perf_counter()
        client = subprocess.run(
            [sys.executable, "-c", CLIENT % (port, concurrency, seconds)], capture_output=True, text=True, check=True
        )
        wall = time.perf_counter() - start
        after = proc.cpu_times()
    finally:
        server.terminate()
        server.wait(10)
    requests = int(client.stdout.strip())
    cpu = (after.user - before.user) + (after.system - before.system)
    return {"requests_per_s": requests / seconds, "server_cpu_us_per_request": cpu / requests * 1e6, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--baseline", default=None, help="a checkout whose serving.http_server is the third contender")
    args = parser.parse_args()
    kinds = ["httptools", "h11"] + (["baseline"] if args.baseline else [])
    results: dict[str, list[dict]] = {k: [] for k in kinds}
    for round_ in range(args.rounds):
        order = kinds if round_ % 2 == 0 else kinds[::-1]
        for kind in order:
            results[kind].append(run_round(kind, args.baseline, args.seconds, args.concurrency))
            print(kind, results[kind][-1], flush=True)
    summary = {
        kind: {
            key: round(statistics.median(r[key] for r in rounds), 1)
            for key in ("requests_per_s", "server_cpu_us_per_request")
        }
        for kind, rounds in results.items()
    }
    summary["rounds"] = args.rounds
    summary["seconds"] = args.seconds
    summary["concurrency"] = args.concurrency
    summary["load_average"] = os.getloadavg()[0]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
