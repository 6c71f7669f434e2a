"""Soak of the local server at saturation over REST and gRPC at once, with a hot reload and a corrupt version.

One batched server serves version 1 of the small test model under load from two processes; at 25 % of the run
version 2 is exported, once it is AVAILABLE a corrupt version 3 is dropped in (it must END while version 2 answers),
and four hostile clients attack throughout. Every answer is checked against the version that gave it; server RSS is
sampled every second; loopback only, at most ``--max-seconds``. The JSON has a pass/fail per requirement.

Usage: ``.venv/bin/python bench/serving_soak.py --seconds 120 --out docs/bench/serving_soak.json``
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness
import numpy as np
import serving_load as load

from serving.testing import MODEL_NAME, cached_export

ROWS = slice(8, 12)  # the rows every request scores
TOL = 1e-5
DTYPES = {"price": np.float32, "device": object, "category": np.int64}  # the test model's inputs
HOSTILE_FLAGS = ["--head-timeout-seconds", "2", "--idle-timeout-seconds", "10"]  # so each attack ends often
EXPECTED = dict(slowloris="408", oversized_trailer="431", never_reads="closed", grpc_huge_shape="INVALID_ARGUMENT")


def which_version(scores: dict[str, Any], expected: dict[int, dict[str, np.ndarray]]) -> int:
    """The version whose expected scores these are, or 0 when none matches."""
    close = (v for v, want in expected.items() if all(np.allclose(scores[k], want[k], rtol=0, atol=TOL) for k in want))
    return next(close, 0)


class Tally:
    """The answers of one transport: counted by the version that gave them; failures and wrong answers noted."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(("ok", "failed", "wrong", "regressed"), 0)
        self.by_version: dict[int, int] = {}
        self.errors: list[str] = []
        self.newest: dict[Any, int] = {}  # per client: the newest version it has seen

    def failure(self, text: str, kind: str = "failed") -> None:
        self.counts[kind] += 1
        self.errors.append(text)

    def answer(self, client: Any, version: int, if_wrong: str) -> None:
        if version == 0:
            return self.failure(if_wrong, "wrong")
        self.counts["ok"] += 1
        self.by_version[version] = self.by_version.get(version, 0) + 1
        self.counts["regressed"] += version < self.newest.get(client, 0)  # an older version after a newer one
        self.newest[client] = max(self.newest.get(client, 0), version)

    def summary(self) -> dict[str, Any]:
        return {**self.counts, "by_version": self.by_version, "errors": self.errors[:20]}


def rest_clients(port: int, body: bytes, clients: int, expected: dict, stop: Any, out: Any) -> None:
    """Keep-alive clients sending back to back; each answer identified by version (answers' bytes cached)."""
    tally, known = Tally(), {}

    def on_answer(client: load.KeepAliveClient, status: bytes, payload: bytes, _spent: float) -> bool:
        if status != b"200":
            tally.failure(f"{status.decode()}: {payload[:200]!r}")
            return not stop.is_set()
        if payload not in known:
            preds = json.loads(payload)["predictions"]
            known[payload] = which_version({k: [p[k] for p in preds] for k in ("click", "satisfaction")}, expected)
        tally.answer(client, known[payload], f"answer from no known version: {payload[:200]!r}")
        return not stop.is_set()

    for lost in asyncio.run(load.rest_load(port, load.post_request(port, body), clients, on_answer)):
        if lost is not None:
            tally.failure(f"connection lost: {lost}")
    out.put(("rest", tally.summary()))


def grpc_clients(target: str, columns: dict, clients: int, expected: dict, stop: Any, out: Any) -> None:
    """Concurrent ``Predict`` loops; each answer checked against the version it names."""
    import grpc

    from serving.tensor_proto import to_ndarray

    tally = Tally()

    def on_answer(index: int, answer: Any, _spent: float) -> None:
        if isinstance(answer, grpc.aio.AioRpcError):
            return tally.failure(f"{answer.code().name}: {answer.details()}")
        version = answer.model_spec.version.value
        scores = {k: to_ndarray(answer.outputs[k], k) for k in ("click", "satisfaction")}
        found = which_version(scores, {version: expected[version]} if version in expected else {})
        tally.answer(index, found, f"version {version} answered {scores['click'].tolist()}")

    request = load.grpc_request(columns)
    asyncio.run(load.grpc_load(target, request, clients, lambda: not stop.is_set(), on_answer))
    out.put(("grpc", tally.summary()))


def hostile_clients(port: int, target: str, request: bytes, stop: Any, ready: Any, out: Any) -> None:
    """Four hostile clients attacking again as soon as each attempt ends, counting what they got (an HTTP status,
    ``closed``, a gRPC code); ``ready`` is set once every one has ended at least once."""
    import grpc
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    got: dict[str, dict[str, int]] = {name: {} for name in EXPECTED}
    held: list[float] = []  # seconds each never-reading connection stayed open

    def count(name: str, outcome: str) -> None:
        got[name][outcome] = got[name].get(outcome, 0) + 1
        if all(got.values()):
            ready.set()

    async def status(reader: asyncio.StreamReader) -> str:
        try:
            line = await reader.readline()
        except ConnectionError:
            return "closed"
        return line.split()[1].decode() if line else "closed"

    async def attack(name: str, send: Any) -> None:
        while not stop.is_set():
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window, as a slow reader has
            sock.connect(("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=sock)
            if (outcome := await send(reader, writer)) is not None:
                count(name, outcome)
            writer.close()
            await asyncio.sleep(0.1)

    async def slowloris(reader: Any, writer: Any) -> str | None:
        writer.write(f"POST {load.PATH} HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode())
        answer = asyncio.ensure_future(status(reader))
        while not answer.done() and not stop.is_set():
            await asyncio.sleep(0.2)
            writer.write(b"a")
        if answer.done():
            return answer.result()
        answer.cancel()
        return None

    async def oversized_trailer(reader: Any, writer: Any) -> str:
        head = f"POST {load.PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
        writer.write(head.encode() + b"X-Big: " + b"a" * (80 << 10) + b"\r\n\r\n")
        return await status(reader)

    async def never_reads(_reader: Any, writer: Any) -> str | None:
        started = time.perf_counter()
        while not stop.is_set() and not writer.is_closing():
            writer.write(request)
            try:
                await asyncio.wait_for(writer.drain(), 1.0)
            except TimeoutError:
                pass  # paused by the server's back-pressure: keep the connection and its unread answers
            except ConnectionError:
                break
        if stop.is_set():
            return None
        held.append(round(time.perf_counter() - started, 1))
        return "closed"

    async def grpc_huge_shape() -> None:
        huge = predict_pb2.PredictRequest()
        huge.model_spec.name = MODEL_NAME
        for name, dtype in (("price", "DT_FLOAT"), ("device", "DT_STRING"), ("category", "DT_INT64")):
            huge.inputs[name].dtype = getattr(types_pb2, dtype)
            huge.inputs[name].tensor_shape.dim.add().size = 60_000_000
        async with grpc.aio.insecure_channel(target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            while not stop.is_set():
                try:
                    await stub.Predict(huge, timeout=30)
                    count("grpc_huge_shape", "OK")
                except grpc.aio.AioRpcError as err:
                    count("grpc_huge_shape", err.code().name)
                await asyncio.sleep(0.1)

    async def main() -> None:
        http = {"slowloris": slowloris, "oversized_trailer": oversized_trailer, "never_reads": never_reads}
        await asyncio.gather(grpc_huge_shape(), *(attack(name, fn) for name, fn in http.items()))

    asyncio.run(main())
    out.put(("hostile", {**got, "never_reads_held_s": held}))


def version_two(tmp: Path, columns: dict[str, np.ndarray]) -> tuple[Path, dict[str, np.ndarray]]:
    """A second model (other seed) saved as .keras, and its expected scores for the soak rows."""
    import mmoe_tf
    from serving.testing import build_test_model

    model = build_test_model(seed=1)
    mmoe_tf.save_model(model, tmp / "model_v2.keras")
    outputs = model(columns, training=False)
    return tmp / "model_v2.keras", {k: np.asarray(outputs[k])[:, 0] for k in ("click", "satisfaction")}


def model_status(url: str) -> list[dict]:
    import requests

    return requests.get(f"{url}/v1/models/{MODEL_NAME}", timeout=10).json().get("model_version_status", [])


def reload_events(events: dict[str, Any], now: float, seconds: float, exporter: Any, base: Path, url: str) -> None:
    """Advance the reload script by one tick: version 2 exported and AVAILABLE, then a corrupt version 3 ENDed."""
    if "v2_export_exit" not in events and exporter.poll() is not None:
        events["v2_export_exit"] = exporter.returncode
        events["v2_export_output"] = exporter.stdout.read().strip().splitlines()[-1:]
        events["v2_exported_s"] = round(now, 1)
    if "v2_exported_s" in events and "v2_available_s" not in events:
        status = model_status(url)
        if status and status[0]["version"] == "2" and status[0]["state"] == "AVAILABLE":
            events["v2_available_s"] = round(now, 1)
    if "v2_available_s" in events and "v3_dropped_s" not in events and now >= 0.6 * seconds:
        corrupt = base / MODEL_NAME / "3"
        (corrupt / "variables").mkdir(parents=True)
        (corrupt / "saved_model.pb").write_bytes(b"\x00 this is not a SavedModel \xff" * 10)
        events["v3_dropped_s"] = round(now, 1)
    if "v3_dropped_s" in events and "v3_state" not in events:
        three = [s for s in model_status(url) if s["version"] == "3"]
        if three and three[0]["state"] == "END":
            error = three[0]["status"]
            events["v3_state"] = f"END ({error['error_code']}: {error['error_message'][:80]})"
            events["v3_ended_s"] = round(now, 1)


def main(argv: list[str] | None = None) -> int:
    parser = harness.parser(__doc__)
    parser.add_argument("--seconds", type=float, default=120.0, help="soak duration at saturation")
    parser.add_argument("--rest-clients", type=int, default=32)
    parser.add_argument("--grpc-clients", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=None, help="hard cap of the run (default 3x --seconds)")
    args = parser.parse_args(argv)
    import psutil

    started, load_before = time.perf_counter(), round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="mmoe-soak-") as tmp_name:
        tmp = Path(tmp_name)
        export = cached_export(tmp / "export")
        base = tmp / "served"
        shutil.copytree(export.version_dir, base / MODEL_NAME / "1")
        columns = {k: export.samples.iloc[ROWS][k].to_numpy(d) for k, d in DTYPES.items()}
        v2_keras, v2_expected = version_two(tmp, columns)
        expected = {1: {k: export.expected[k].to_numpy()[ROWS] for k in v2_expected}, 2: v2_expected}
        gap = float(np.max(np.abs(expected[1]["click"] - expected[2]["click"])))
        assert gap > 100 * TOL, f"versions 1 and 2 answer too alike ({gap}) to tell apart"
        export_v2 = [sys.executable, "-m", "serving", "export", "--model", str(v2_keras), "--base-path", str(base)]
        export_v2 += ["--model-name", MODEL_NAME, "--version", "2", "--score-weights", "click=1,satisfaction=2"]
        server = load.start_server(base, "--enable-batching", "--poll-seconds", "1", *HOSTILE_FLAGS)
        events: dict[str, Any] = {}
        try:
            server_proc, port = psutil.Process(server.proc.pid), server.port
            ctx = mp.get_context("spawn")
            stop, hostile_ready, out = ctx.Event(), ctx.Event(), ctx.Queue()
            big = load.post_request(port, load.rest_body({k: np.tile(v, 16) for k, v in columns.items()}))  # 64 rows
            rest_args = (port, load.rest_body(columns), args.rest_clients, expected, stop, out)
            grpc_args = (server.grpc_target, columns, args.grpc_clients, expected, stop, out)
            hostile_args = (port, server.grpc_target, big, stop, hostile_ready, out)
            loaders = [
                ctx.Process(target=rest_clients, args=rest_args),
                ctx.Process(target=grpc_clients, args=grpc_args),
                ctx.Process(target=hostile_clients, args=hostile_args),
            ]
            for p in loaders:
                p.start()
            t0, rss, exporter = time.perf_counter(), [], None
            while (now := time.perf_counter() - t0) <= (args.max_seconds or 3 * args.seconds) and server.alive():
                rss.append((now, server_proc.memory_info().rss))
                if exporter is None and now >= 0.25 * args.seconds:
                    events["v2_export_started_s"] = round(now, 1)
                    exporter = subprocess.Popen(
                        export_v2, cwd=harness.REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                    )
                if exporter is not None:
                    reload_events(events, now, args.seconds, exporter, base, server.url)
                done = "v3_state" in events and now >= max(args.seconds, events["v3_ended_s"] + 10)
                if done and hostile_ready.is_set():
                    break
                time.sleep(1.0)
            stop.set()
            results = dict(out.get(timeout=120) for _ in loaders)
            for p in loaders:
                p.join(60)
            elapsed = time.perf_counter() - t0
            final_status = model_status(server.url)
            alive = server.alive()
        finally:
            server.stop()
    warm_end = 0.15 * args.seconds
    baseline = statistics.median([r for t, r in rss if warm_end <= t <= warm_end + 10] or [rss[0][1]])
    growth = round(100 * (rss[-1][1] - baseline) / baseline, 2)
    rest, grpc_, hostile = results["rest"], results["grpc"], results["hostile"]
    three = [st for st in final_status if st["version"] == "3"]
    checks = {
        "no_failed_or_wrong_request": rest["failed"] + rest["wrong"] + grpc_["failed"] + grpc_["wrong"] == 0,
        "hostile_clients_refused": all(set(hostile[n]) == {want} for n, want in EXPECTED.items()),
        "memory_growth_le_5pct": growth <= 5.0,
        "v2_exported_and_served": events.get("v2_export_exit") == 0
        and all(r["by_version"].get(2, 0) > 0 for r in (rest, grpc_)),
        "no_older_answer_after_newer": rest["regressed"] == grpc_["regressed"] == 0,
        "corrupt_v3_ended_v2_kept_serving": bool(three)
        and three[0]["state"] == "END"
        and three[0]["status"]["error_code"] != "OK"
        and [st["version"] for st in final_status if st["state"] == "AVAILABLE"] == ["2"],
        "server_alive": alive,
    }
    mb = [round(x / 2**20, 1) for x in (rss[0][1], baseline, rss[-1][1], max(r for _, r in rss))]
    summary = {
        "benchmark": "serving_soak",
        "seconds": round(elapsed, 1),
        "rest": {**rest, "rps": round(rest["ok"] / elapsed, 1)},
        "grpc": {**grpc_, "rps": round(grpc_["ok"] / elapsed, 1)},
        "hostile": hostile,
        "server_flags": HOSTILE_FLAGS,
        "events": events,
        "rss_mb": {**dict(zip(("start", "after_warmup", "final", "max"), mb, strict=True)), "growth_pct": growth},
        "final_status": final_status,
        "checks": checks,
        "passed": all(checks.values()),
        **harness.run_facts(load_before, started),
    }
    harness.emit(summary, args.out)
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
