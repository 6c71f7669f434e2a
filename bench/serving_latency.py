"""Serving latency and throughput of an export: REST and gRPC of the local server against the in-process call.

Serves ``--base-path`` (an export base holding ``mmoe/<version>``, e.g. the quick start's ``output/export``; without
it the small test model of ``serving.testing``) from two servers, without and with batching, and builds its requests
from the export itself (the rows of its warm-up records, else values of its signature's dtypes). Per alternated
round: sequential latencies at batch 1 and 64 interleaved with the in-process floor, then throughput at 1 / 8 / 32
clients with the server's CPU per request (``docs/serving.md``, "Performance"). A server-side stage breakdown of one
REST predict is printed first. The last printed line is one JSON object with all figures and ratios.

Usage:
    .venv/bin/python bench/serving_latency.py --base-path output/export --out docs/bench/serving_latency.json
    .venv/bin/python bench/serving_latency.py --rounds 1 --seconds 0.3 --requests 20   # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import grpc
import harness
import numpy as np
import psutil
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.event_loop import run_on
from serving.model_store import WARMUP_FILE, numeric_versions
from serving.tensor_proto import from_ndarray, to_ndarray
from serving.testing import MODEL_NAME, ServerProcess, cached_export

CONCURRENCY = (1, 8, 32)
BATCHES = (1, 64)
PATH = f"/v1/models/{MODEL_NAME}:predict"
_COLUMNS: dict[int, dict[str, np.ndarray]] = {}  # batch size -> one array per input, set by load_requests


def load_requests(version_dir: Path) -> dict[str, np.ndarray]:
    """One array per ``serving_default`` input of the export at ``version_dir``, from its warm-up records' rows
    (values of the inputs' dtypes when there are none), cycled to each of :data:`BATCHES`."""
    from serving.model_store import Servable

    dtypes = Servable(MODEL_NAME, 1, version_dir, warmup=False).signature_inputs("serving_default")
    columns: dict[str, np.ndarray] = {}
    if (version_dir / WARMUP_FILE).exists():
        from serving.warmup import read_warmup_file

        for entry in read_warmup_file(version_dir / WARMUP_FILE):
            request = entry.predict_log.request
            if (request.model_spec.signature_name or "serving_default") == "serving_default":
                columns = {k: to_ndarray(v, k) for k, v in request.inputs.items()}
                break
    if set(columns) != set(dtypes):
        fill = {"string": b"a", "bool": True}
        columns = {k: np.array([fill.get(d, 1)] * 8, dtype=object if d == "string" else d) for k, d in dtypes.items()}
    for batch in BATCHES:
        _COLUMNS[batch] = {k: np.resize(v, (batch, *v.shape[1:])) for k, v in columns.items()}
    return dtypes


def _rows(batch: int) -> list[dict]:
    """The request's rows as JSON instances (bytes decoded, numpy scalars as Python values)."""
    columns = _COLUMNS[batch]
    as_json = {k: [x.decode() if isinstance(x, bytes) else x for x in v.tolist()] for k, v in columns.items()}
    return [{k: v[i] for k, v in as_json.items()} for i in range(batch)]


def _body(batch: int) -> bytes:
    return json.dumps({"instances": _rows(batch)}).encode()


def _grpc_request(batch: int) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    for name, values in _COLUMNS[batch].items():
        request.inputs[name].CopyFrom(from_ndarray(values, content=values.dtype != object))
    return request


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(samples_ms, 50)), 3),
        "p99_ms": round(float(np.percentile(samples_ms, 99)), 3),
    }


def _point(latencies: list[float], errors: int, elapsed: float) -> dict[str, float]:
    """A throughput point: answered requests/s, errors, latency percentiles and its duration."""
    rps = round(len(latencies) / elapsed, 1)
    return {"rps": rps, "errors": errors, **_percentiles(latencies or [float("nan")]), "seconds": elapsed}


def _timed(fn, n: int, warmup: int = 10) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return _percentiles(times)


# --- in process -------------------------------------------------------------------------------------------------


def in_process_calls(version_dir: Path) -> dict[str, Callable[[], object]]:
    """``serving_default`` called directly on the loaded SavedModel (no transport, no JSON), at batch 1 and 64, with
    the server's TensorFlow thread settings (set in :func:`main`): the floor."""
    import tensorflow as tf

    fn = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    calls = {}
    for batch in BATCHES:
        feats = {k: tf.constant(v) for k, v in _COLUMNS[batch].items()}
        calls[f"batch{batch}"] = lambda f=feats: {k: v.numpy() for k, v in fn(**f).items()}
    return calls


def session_calls(runner) -> dict[str, Callable[[], object]]:
    """The same call through :class:`serving.session_runner.SessionRunner` (what the server runs)."""
    columns = {batch: _COLUMNS[batch] for batch in BATCHES}
    return {f"batch{b}": (lambda f=columns[b]: runner.run("serving_default", f)) for b in BATCHES}


def breakdown(version_dir: Path, n: int) -> dict[str, dict[str, float]]:
    """Median µs of each server-side stage of a REST predict, run in process on the server's own code."""
    from serving.json_codec import decode_request, encode_json, encode_predictions, loads_request, predictions_json
    from serving.model_store import Servable

    servable = Servable(MODEL_NAME, 1, version_dir, warmup=False)
    dtypes = servable.signature_inputs("serving_default")
    out = {}
    for batch in BATCHES:
        body = _body(batch)
        data = loads_request(body)
        fmt, inputs, _ = decode_request(data, dtypes)
        outputs = servable.run("serving_default", inputs, validate=False)
        clean = body.replace(b"NaN", b"0.5")  # the same request without missing values
        stages = {
            "json_parse": lambda b=body: loads_request(b),
            "json_parse, standard library": lambda b=body: json.loads(b),
            "json_parse, body without NaN": lambda b=clean: loads_request(b),
            "json_parse, body without NaN, standard library": lambda b=clean: json.loads(b),
            "decode_to_numpy": lambda d=data: decode_request(d, dtypes),
            "check_shapes": lambda i=inputs: servable.check_shapes("serving_default", i),
            "tensors_and_signature_call": lambda i=inputs: servable.run("serving_default", i, validate=False),
            "encode_response (predictions_json)": lambda o=outputs, f=fmt: predictions_json(o, f),
            "encode_response, standard library": lambda o=outputs, f=fmt: encode_json(encode_predictions(o, f)),
        }
        times: dict[str, list[float]] = {k: [] for k in stages}
        for _ in range(5):  # stages alternate in blocks; the figure is the median of the blocks' medians
            for name, fn in stages.items():
                times[name].append(_timed(fn, max(n // 5, 20))["p50_ms"] * 1e3)
        out[f"batch{batch}"] = {k: round(float(np.median(v)), 1) for k, v in times.items()}
    return out


# --- clients ----------------------------------------------------------------------------------------------------


def rest_calls(conn: http.client.HTTPConnection) -> dict[str, Callable[[], object]]:
    """Sequential requests on one keep-alive ``http.client`` connection: predict at batch 1 and 64, and a bare
    ``GET`` of the model status (the HTTP round trip alone: no JSON body, no TensorFlow, no thread hand-off)."""
    headers = {"Content-Type": "application/json"}

    def predict(body: bytes) -> object:
        conn.request("POST", PATH, body, headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{resp.status}: {data[:200]!r}")
        return json.loads(data)

    def status() -> None:
        conn.request("GET", f"/v1/models/{MODEL_NAME}")
        conn.getresponse().read()

    bodies = {batch: _body(batch) for batch in BATCHES}
    calls = {f"batch{b}": (lambda body=bodies[b]: predict(body)) for b in BATCHES}
    return {**calls, "status_get": status}


def grpc_calls(channel: grpc.Channel) -> dict[str, Callable[[], object]]:
    """Sequential ``Predict`` calls at batch 1 and 64 (grpcio sync stub on ``channel``)."""
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    requests_ = {batch: _grpc_request(batch) for batch in BATCHES}
    return {f"batch{b}": (lambda r=requests_[b]: stub.Predict(r, timeout=30)) for b in BATCHES}


def interleaved(calls: dict[str, Callable[[], object]], n: int, block: int = 20) -> dict[str, dict[str, float]]:
    """p50/p99 (ms) of every call in ``calls``, measured in alternating blocks of ``block`` calls (the order
    reversed every other block) until each has ``n`` timings: the floor and the servers see the same machine
    state, which on a shared VM drifts within seconds."""
    for fn in calls.values():
        for _ in range(10):
            fn()
    times: dict[str, list[float]] = {k: [] for k in calls}
    names = list(calls)
    for i in range(-(-n // block)):
        for name in names if i % 2 == 0 else reversed(names):
            fn = calls[name]
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {k: _percentiles(v) for k, v in times.items()}


def post_request(port: int, body: bytes) -> bytes:
    """The bytes of one HTTP/1.1 keep-alive ``POST`` of ``body`` to the predict URL."""
    head = f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class KeepAliveClient(asyncio.Protocol):
    """One keep-alive connection sending ``request`` again as soon as the previous answer is complete.

    ``on_answer(client, status, payload, seconds)`` sees each answer; when it returns False the connection closes.
    ``done`` resolves with the exception the connection was lost with (None when closed cleanly).
    """

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


async def rest_throughput(port: int, concurrency: int, seconds: float) -> dict[str, float]:
    """Requests/s at batch 1 with ``concurrency`` keep-alive connections, each sending back to back."""
    latencies, errors = [], 0
    start = time.perf_counter()

    def on_answer(_client: KeepAliveClient, status: bytes, _payload: bytes, spent: float) -> bool:
        nonlocal errors
        if status == b"200":
            latencies.append(spent * 1e3)
        else:
            errors += 1
        return time.perf_counter() < start + seconds

    loop, request = asyncio.get_running_loop(), post_request(port, _body(1))
    conns = [
        (await loop.create_connection(lambda: KeepAliveClient(request, on_answer), "127.0.0.1", port))[1]
        for _ in range(concurrency)
    ]
    await asyncio.wait_for(asyncio.gather(*(c.done for c in conns)), seconds + 30)
    return _point(latencies, errors, time.perf_counter() - start)


async def grpc_throughput(target: str, concurrency: int, seconds: float) -> dict[str, float]:
    """Requests/s at batch 1 with ``concurrency`` concurrent ``Predict`` loops on one asyncio channel."""
    request = _grpc_request(1)
    latencies, errors = [], 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        await stub.Predict(request, timeout=30)
        start = time.perf_counter()
        deadline = start + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    await stub.Predict(request, timeout=30)
                    latencies.append((time.perf_counter() - t0) * 1e3)
                except grpc.aio.AioRpcError:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return _point(latencies, errors, time.perf_counter() - start)


# --- driver -----------------------------------------------------------------------------------------------------


def _with_server_cpu(server: ServerProcess, measure) -> dict[str, float]:
    """Run a throughput point and add the server process's CPU time per answered request (µs): a figure that,
    unlike requests/s on a shared machine, does not depend on what else runs; and the CPU the benchmark's own
    process (the load generator) spent per request, which shares the machine's cores with the server."""
    proc = psutil.Process(server.proc.pid)

    def main_thread_seconds() -> float:
        return next((t.user_time + t.system_time for t in proc.threads() if t.id == proc.pid), float("nan"))

    before, main_before = sum(proc.cpu_times()[:2]), main_thread_seconds()
    load_before = time.process_time()
    point = measure()
    spent, main_spent = sum(proc.cpu_times()[:2]) - before, main_thread_seconds() - main_before
    load_spent = time.process_time() - load_before
    answered = point["rps"] * point.pop("seconds")
    for name, seconds in (("server", spent), ("event_loop", main_spent), ("load_generator", load_spent)):
        point[f"{name}_cpu_us_per_request"] = round(seconds / answered * 1e6, 1) if answered else float("nan")
    return point


def latency_round(floor_calls: dict, servers: dict[str, ServerProcess], n: int) -> dict:
    """One round of sequential latency for the floors and every server and transport, interleaved."""
    calls = {("in_process", k): fn for k, fn in floor_calls["in_process"].items()}
    calls.update({("in_process_session", k): fn for k, fn in floor_calls["in_process_session"].items()})
    conns, channels = [], []
    for mode, server in servers.items():
        conns.append(http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]), timeout=30))
        channels.append(grpc.insecure_channel(server.grpc_target))
        calls.update({(mode, "rest", k): fn for k, fn in rest_calls(conns[-1]).items()})
        calls.update({(mode, "grpc", k): fn for k, fn in grpc_calls(channels[-1]).items()})
    try:
        measured = interleaved(calls, n)
    finally:
        for conn in conns:
            conn.close()
        for channel in channels:
            channel.close()
    out: dict = {"in_process": {}, "in_process_session": {}}
    for key, value in measured.items():
        if len(key) == 2:
            out[key[0]][key[1]] = value
        else:
            out.setdefault(key[0], {}).setdefault(key[1], {}).setdefault("latency", {})[key[2]] = value
    return out


def throughput_round(server: ServerProcess, args: argparse.Namespace) -> dict:
    """One round of throughput points (REST and gRPC, each concurrency) for a server."""
    port = int(server.url.rsplit(":", 1)[1])
    load = {"rest": lambda c: rest_throughput(port, c, args.seconds)}
    load["grpc"] = lambda c: grpc_throughput(server.grpc_target, c, args.seconds)
    return {
        transport: {
            "throughput": {f"c{c}": _with_server_cpu(server, lambda c=c, fn=fn: run_on(fn(c))) for c in CONCURRENCY}
        }
        for transport, fn in load.items()
    }


def _median_tree(rounds: list) -> dict:
    """Element-wise median of nested dicts of numbers (errors are summed)."""
    first = rounds[0]
    if isinstance(first, dict):
        return {
            k: (sum(r[k] for r in rounds) if k == "errors" else _median_tree([r[k] for r in rounds])) for k in first
        }
    return round(float(statistics.median(rounds)), 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    harness.add_common_args(parser, rounds=3)
    parser.add_argument("--base-path", type=Path, default=None, help="export base holding mmoe/<version>")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each throughput point")
    parser.add_argument("--requests", type=int, default=200, help="sequential requests per latency point")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    load_before = round(os.getloadavg()[0], 2)
    from serving.server import configure_tensorflow
    from serving.server_config import ServerConfig

    configure_tensorflow(ServerConfig())  # the floor runs with the server's op thread pools (1 and 1)
    with tempfile.TemporaryDirectory(prefix="mmoe-bench-") as tmp:
        base = cached_export(Path(tmp) / "export").base_path if args.base_path is None else args.base_path
        version_dir = base / MODEL_NAME / str(numeric_versions(base / MODEL_NAME)[-1])
        inputs = load_requests(version_dir)
        print(f"serving {version_dir} (inputs {inputs})", flush=True)
        stages = breakdown(version_dir, args.requests)
        print(f"server-side stages (median µs): {stages}", flush=True)
        cli = ["--base-path", str(base), "--model-name", MODEL_NAME]
        batching = ["--enable-batching", "--max-batch-size", "64", "--batch-timeout-micros", "2000"]
        servers = {"no_batching": ServerProcess(cli), "batching": ServerProcess(cli + batching)}
        try:
            for server in servers.values():
                server.start()
            from serving.session_runner import SessionRunner

            runner = SessionRunner(version_dir)
            floor_calls = {"in_process": in_process_calls(version_dir), "in_process_session": session_calls(runner)}
            floors, session_floors, rounds = [], [], {mode: [] for mode in servers}
            for r in range(args.rounds):
                latency = latency_round(floor_calls, servers, args.requests)
                floors.append(latency["in_process"])
                session_floors.append(latency["in_process_session"])
                print(f"round {r + 1} latency: {json.dumps(latency)}", flush=True)
                order = list(servers) if r % 2 == 0 else list(reversed(servers))
                for mode in order:
                    point = throughput_round(servers[mode], args)
                    for transport in ("rest", "grpc"):
                        point[transport]["latency"] = latency[mode][transport]["latency"]
                    rounds[mode].append(point)
                    print(f"round {r + 1} {mode}: {json.dumps(point)}", flush=True)
            runner.close()
        finally:
            for server in servers.values():
                server.stop()
    floor = _median_tree(floors)
    session_floor = _median_tree(session_floors)
    results = {mode: _median_tree(rs) for mode, rs in rounds.items()}
    nb = results["no_batching"]
    ratios = {}
    for transport in ("rest", "grpc"):
        for key in (f"batch{batch}" for batch in BATCHES):
            ratios[f"{transport}_over_inprocess_p50_{key}"] = round(
                nb[transport]["latency"][key]["p50_ms"] / floor[key]["p50_ms"], 2
            )
            # paired: each round's latency over the floor timed beside it (both see the same machine state)
            ratios[f"{transport}_over_inprocess_p50_{key}_paired"] = round(
                statistics.median(
                    r[transport]["latency"][key]["p50_ms"] / f[key]["p50_ms"]
                    for r, f in zip(rounds["no_batching"], floors, strict=True)
                ),
                2,
            )
        for c in CONCURRENCY:
            per_round = [  # the two servers' points of one round ran back to back (order alternated)
                rb[transport]["throughput"][f"c{c}"]["rps"] / rn[transport]["throughput"][f"c{c}"]["rps"]
                for rb, rn in zip(rounds["batching"], rounds["no_batching"], strict=True)
            ]
            ratios[f"{transport}_batching_over_no_batching_rps_c{c}_paired"] = round(statistics.median(per_round), 2)
            ratios[f"{transport}_batching_over_no_batching_rps_c{c}_rounds"] = [round(x, 2) for x in per_round]
    print(f"ratios: {json.dumps(ratios)}", flush=True)
    summary = {
        "benchmark": "serving_latency",
        "server_stages_us": stages,
        "in_process": floor,
        "in_process_session": session_floor,
        **results,
        "ratios": ratios,
        "export": {"version_dir": str(version_dir), "inputs": inputs},
        **harness.run_facts(load_before, started, rounds=args.rounds),
    }
    harness.emit(summary, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
