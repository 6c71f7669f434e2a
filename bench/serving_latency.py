"""Serving latency and throughput of an export over REST and gRPC, without and with batching, against the in-process
call (default export: ``serving.testing``'s small model); the protocol is in ``docs/serving.md``, "Performance".

Usage: ``.venv/bin/python bench/serving_latency.py [--base-path output/export] --out docs/bench/serving_latency.json``
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import harness
import numpy as np
import psutil
import serving_load as load
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving.event_loop import run_on
from serving.model_store import WARMUP_FILE, Servable, numeric_versions
from serving.tensor_proto import to_ndarray
from serving.testing import MODEL_NAME, ServerProcess, cached_export

CONCURRENCY = (1, 8, 32)
BATCHES = (1, 64)
BATCHING = ("--enable-batching", "--max-batch-size", "64", "--batch-timeout-micros", "2000")
Calls = dict[tuple[str, ...], Callable[[], object]]


def request_columns(version_dir: Path) -> tuple[dict[str, str], dict[int, dict[str, np.ndarray]]]:
    """The ``serving_default`` input dtypes of an export, and one array per input at each of :data:`BATCHES`."""
    from serving.warmup import read_warmup_file

    dtypes = Servable(MODEL_NAME, 1, version_dir, warmup=False).signature_inputs("serving_default")
    columns: dict[str, np.ndarray] = {}
    if (version_dir / WARMUP_FILE).exists():
        for entry in read_warmup_file(version_dir / WARMUP_FILE):
            request = entry.predict_log.request
            if (request.model_spec.signature_name or "serving_default") == "serving_default":
                columns = {k: to_ndarray(v, k) for k, v in request.inputs.items()}
                break
    if set(columns) != set(dtypes):
        fill = {"string": b"a", "bool": True}
        columns = {k: np.array([fill.get(d, 1)] * 8, dtype=object if d == "string" else d) for k, d in dtypes.items()}
    return dtypes, {b: {k: np.resize(v, (b, *v.shape[1:])) for k, v in columns.items()} for b in BATCHES}


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    return {f"p{q}_ms": round(float(np.percentile(samples_ms, q)), 3) for q in (50, 99)}


def interleaved(calls: dict[Any, Callable[[], object]], n: int, block: int = 20) -> dict[Any, dict[str, float]]:
    """p50/p99 (ms) of every call, timed in blocks of ``block`` calls in an order reversed every other block until
    each has ``n`` timings: every call sees the same machine state, which on a shared VM drifts within seconds."""
    for fn in calls.values():
        for _ in range(10):
            fn()
    times: dict[Any, list[float]] = {k: [] for k in calls}
    for i in range(-(-n // block)):
        for name in calls if i % 2 == 0 else reversed(list(calls)):
            for _ in range(block):
                started = time.perf_counter()
                calls[name]()
                times[name].append((time.perf_counter() - started) * 1e3)
    return {k: percentiles(v) for k, v in times.items()}


def floor_calls(version_dir: Path, runner: Any, columns: dict[int, dict[str, np.ndarray]]) -> Calls:
    """``serving_default`` in process at batch 1 and 64: through ``tf.saved_model.load`` with the server's thread
    settings (the floor) and through the server's own :class:`serving.session_runner.SessionRunner`."""
    import tensorflow as tf

    fn = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    calls: Calls = {}
    for b in BATCHES:
        tensors = {k: tf.constant(v) for k, v in columns[b].items()}
        calls["in_process", f"batch{b}"] = lambda t=tensors: {k: v.numpy() for k, v in fn(**t).items()}
        calls["in_process_session", f"batch{b}"] = lambda c=columns[b]: runner.run("serving_default", c)
    return calls


def client_calls(mode: str, server: ServerProcess, columns: dict, opened: list) -> Calls:
    """Sequential predicts at batch 1 and 64 on one keep-alive ``http.client`` connection and on one gRPC channel."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    channel = grpc.insecure_channel(server.grpc_target)
    opened += [conn, channel]
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

    def rest(body: bytes) -> None:
        conn.request("POST", load.PATH, body, {"Content-Type": "application/json"})
        answer = conn.getresponse()
        data = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"{answer.status}: {data[:200]!r}")

    calls: Calls = {}
    for b in BATCHES:
        body, request = load.rest_body(columns[b]), load.grpc_request(columns[b])
        calls[mode, "rest", "latency", f"batch{b}"] = lambda body=body: rest(body)
        calls[mode, "grpc", "latency", f"batch{b}"] = lambda r=request: stub.Predict(r, timeout=30)
    return calls


def nest(flat: dict[tuple[str, ...], Any]) -> dict[str, Any]:
    """``{("a", "b"): x}`` as ``{"a": {"b": x}}``."""
    out: dict[str, Any] = {}
    for (*path, last), value in flat.items():
        functools.reduce(lambda node, key: node.setdefault(key, {}), path, out)[last] = value
    return out


def throughput(server: ServerProcess, transport: str, clients: int, seconds: float, columns: dict) -> dict:
    """Requests/s at batch 1 with ``clients`` concurrent senders, with the CPU time per answered request (µs) of the
    server, of its event-loop thread and of this process (the load generator, on the same cores)."""
    latencies, failed = [], []  # ms of each answered and each failed request

    def on_answer(_client: Any, error: str | None, _answer: Any, spent: float) -> None:
        (failed if error else latencies).append(spent * 1e3)

    proc = psutil.Process(server.proc.pid)

    def cpu() -> tuple[float, ...]:
        main = next((t.user_time + t.system_time for t in proc.threads() if t.id == proc.pid), float("nan"))
        return sum(proc.cpu_times()[:2]), main, time.process_time()

    before, start = cpu(), time.perf_counter()
    run_on(load.load(transport, server, columns[1], clients, lambda: time.perf_counter() < start + seconds, on_answer))
    elapsed, spent = time.perf_counter() - start, [b - a for a, b in zip(before, cpu(), strict=True)]
    point = {"rps": round(len(latencies) / elapsed, 1), "errors": len(failed), **percentiles(latencies or [np.nan])}
    for name, used in zip(("server", "event_loop", "load_generator"), spent, strict=True):
        point[f"{name}_cpu_us_per_request"] = round(used / len(latencies) * 1e6, 1) if latencies else float("nan")
    return point


def median_tree(rounds: list) -> Any:
    """Element-wise median of nested dicts of numbers (errors are summed)."""
    if not isinstance(rounds[0], dict):
        return round(float(statistics.median(rounds)), 3)
    return {k: sum(r[k] for r in rounds) if k == "errors" else median_tree([r[k] for r in rounds]) for k in rounds[0]}


def ratios(rounds: list[dict], result: dict) -> dict[str, float]:
    """Unbatched p50 latency over the floor's (of the medians), and batched over unbatched requests/s (the median of
    per-round ratios: the two servers' points of one round ran back to back)."""
    out = {}
    for t in ("rest", "grpc"):
        for b in (f"batch{n}" for n in BATCHES):
            p50 = result["no_batching"][t]["latency"][b]["p50_ms"] / result["in_process"][b]["p50_ms"]
            out[f"{t}_over_inprocess_p50_{b}"] = round(p50, 2)
        for c in (f"c{n}" for n in CONCURRENCY):
            rps = [[r[mode][t]["throughput"][c]["rps"] for mode in ("batching", "no_batching")] for r in rounds]
            out[f"{t}_batching_over_no_batching_rps_{c}_paired"] = round(statistics.median(a / b for a, b in rps), 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = harness.parser(__doc__, rounds=3)
    parser.add_argument("--base-path", type=Path, default=None, help="export base holding mmoe/<version>")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each throughput point")
    parser.add_argument("--requests", type=int, default=200, help="sequential requests per latency point")
    args = parser.parse_args(argv)
    started, load_before = time.perf_counter(), round(os.getloadavg()[0], 2)
    from serving.server import configure_tensorflow
    from serving.server_config import ServerConfig
    from serving.session_runner import SessionRunner

    configure_tensorflow(ServerConfig())  # the floor runs with the server's op thread pools
    with tempfile.TemporaryDirectory(prefix="mmoe-bench-") as tmp:
        base = args.base_path or cached_export(Path(tmp) / "export").base_path
        version_dir = base / MODEL_NAME / str(numeric_versions(base / MODEL_NAME)[-1])
        dtypes, columns = request_columns(version_dir)
        print(f"serving {version_dir} (inputs {dtypes})", flush=True)
        runner, servers, rounds = SessionRunner(version_dir), {}, []
        try:
            floors = floor_calls(version_dir, runner, columns)
            servers["no_batching"] = load.start_server(base)
            servers["batching"] = load.start_server(base, *BATCHING)
            for r in range(args.rounds):
                opened: list = []
                calls = dict(floors)
                for mode, server in servers.items():
                    calls.update(client_calls(mode, server, columns, opened))
                point = nest(interleaved(calls, args.requests))
                for conn in opened:
                    conn.close()
                for mode in list(servers) if r % 2 == 0 else reversed(list(servers)):
                    for transport in ("rest", "grpc"):
                        point[mode][transport]["throughput"] = {
                            f"c{c}": throughput(servers[mode], transport, c, args.seconds, columns) for c in CONCURRENCY
                        }
                print(f"round {r + 1}: {json.dumps(point)}", flush=True)
                rounds.append(point)
        finally:
            runner.close()
            for server in servers.values():
                server.stop()
    result = median_tree(rounds)
    summary = {
        "benchmark": "serving_latency",
        **result,
        "ratios": ratios(rounds, result),
        "export": {"version_dir": str(version_dir), "inputs": dtypes},
        **harness.run_facts(load_before, started, rounds=args.rounds),
    }
    harness.emit(summary, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
