"""Soak of the local server at saturation over REST and gRPC at once, with a hot reload and a corrupt version.

One batched server (polling every second) serves version 1 of the small test MMoE; two load processes saturate it
(REST over ``--rest-clients`` keep-alive connections, gRPC with ``--grpc-clients`` concurrent calls). At 25 % of
the run ``python -m serving export`` publishes version 2 (other weights); once it is AVAILABLE a corrupt version 3
is dropped in, which must end with an error while version 2 keeps serving. Four hostile clients attack for the whole
run (:func:`_hostile_load`), each of which must only ever get its refusal. Every answer is checked against the
version that gave it; server RSS is sampled every second. Loopback only, bounded by ``--max-seconds`` (default 3x
``--seconds``). The last printed line is one JSON object with the figures and a pass/fail per requirement
(``docs/serving.md``, "Performance").

Usage:
    .venv/bin/python bench/serving_soak.py --seconds 120 --out docs/bench/serving_soak.json
    .venv/bin/python bench/serving_soak.py --seconds 3 --max-seconds 180 --rest-clients 2 --grpc-clients 1  # smoke
"""

from __future__ import annotations

import argparse
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import numpy as np
from serving_latency import PATH, post_request

from serving.testing import MODEL_NAME, ServerProcess, cached_export, to_instances

REPO = Path(__file__).resolve().parents[1]
ROWS = slice(8, 12)  # the rows every request scores
TOL = 1e-5
DTYPES = {"price": np.float32, "device": object, "category": np.int64}  # the test model's inputs


def _which_version(click: list[float], satisfaction: list[float], expected: dict[int, dict[str, np.ndarray]]) -> int:
    """The version whose expected scores these are, or 0 when none matches."""
    for version, want in expected.items():
        if np.max(np.abs(np.asarray(click) - want["click"])) <= TOL and (
            np.max(np.abs(np.asarray(satisfaction) - want["satisfaction"])) <= TOL
        ):
            return version
    return 0


# --- load processes (each with its own event loop) ---------------------------------------------------------------


def _rest_load(port: int, body: bytes, clients: int, expected: dict, stop, out) -> None:
    """Keep-alive HTTP/1.1 clients sending back to back; answers identified by version (bytes cached)."""
    from serving_latency import KeepAliveClient, post_request

    stats = {"ok": 0, "failed": 0, "wrong": 0, "by_version": {}, "regressed": 0, "errors": []}
    known: dict[bytes, int] = {}

    def on_answer(client: KeepAliveClient, status: bytes, payload: bytes, _spent: float) -> bool:
        if status != b"200":
            stats["failed"] += 1
            stats["errors"].append(f"{status.decode()}: {payload[:200]!r}")
            return not stop.is_set()
        if payload not in known:
            preds = json.loads(payload)["predictions"]
            known[payload] = _which_version([p["click"] for p in preds], [p["satisfaction"] for p in preds], expected)
        version = known[payload]
        if version == 0:
            stats["wrong"] += 1
            stats["errors"].append(f"answer from no known version: {payload[:200]!r}")
        else:
            stats["ok"] += 1
            stats["by_version"][version] = stats["by_version"].get(version, 0) + 1
            stats["regressed"] += version < getattr(client, "newest", 0)  # an older version after a newer one
            client.newest = max(getattr(client, "newest", 0), version)
        return not stop.is_set()

    async def main() -> None:
        loop, request = asyncio.get_running_loop(), post_request(port, body)
        conns = [
            (await loop.create_connection(lambda: KeepAliveClient(request, on_answer), "127.0.0.1", port))[1]
            for _ in range(clients)
        ]
        for exc in await asyncio.gather(*(c.done for c in conns)):
            if exc is not None:
                stats["failed"] += 1
                stats["errors"].append(f"connection lost: {exc}")

    asyncio.run(main())
    stats["errors"] = stats["errors"][:20]
    out.put(("rest", stats))


def _grpc_load(target: str, frame_records: list[dict], clients: int, expected: dict, stop, out) -> None:
    """Concurrent ``Predict`` loops on one asyncio channel; each answer checked against the version it names."""
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from serving.tensor_proto import from_ndarray, to_ndarray

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    for name, dtype in DTYPES.items():
        request.inputs[name].CopyFrom(from_ndarray(np.array([r[name] for r in frame_records], dtype)))
    stats = {"ok": 0, "failed": 0, "wrong": 0, "by_version": {}, "regressed": 0, "errors": []}

    async def main() -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

            async def worker() -> None:
                newest = 0
                while not stop.is_set():
                    try:
                        response = await stub.Predict(request, timeout=30)
                    except grpc.aio.AioRpcError as err:
                        stats["failed"] += 1
                        stats["errors"].append(f"{err.code().name}: {err.details()}")
                        continue
                    version = response.model_spec.version.value
                    click = to_ndarray(response.outputs["click"], "click")
                    satisfaction = to_ndarray(response.outputs["satisfaction"], "satisfaction")
                    if _which_version(click, satisfaction, {version: expected[version]} if version in expected else {}):
                        stats["ok"] += 1
                        stats["by_version"][version] = stats["by_version"].get(version, 0) + 1
                        stats["regressed"] += version < newest
                        newest = max(newest, version)
                    else:
                        stats["wrong"] += 1
                        stats["errors"].append(f"version {version} answered {click.tolist()}")

            await asyncio.gather(*(worker() for _ in range(clients)))

    asyncio.run(main())
    stats["errors"] = stats["errors"][:20]
    out.put(("grpc", stats))


HOSTILE_FLAGS = ["--head-timeout-seconds", "2", "--idle-timeout-seconds", "10"]  # so each attack ends often
EXPECTED = {
    "slowloris": {"408"},
    "oversized_trailer": {"431"},
    "never_reads": {"closed"},
    "grpc_huge_shape": {"INVALID_ARGUMENT"},
}


def _hostile_load(port: int, target: str, request: bytes, stop, ready, out) -> None:
    """Four hostile clients, each attacking again as soon as its last attempt ended, for the whole soak.

    A slowloris trickling a head (a byte every 0.2 s), a chunked predict whose trailer passes the 64 KiB head budget,
    a client pipelining 64-row predicts without ever reading an answer, and a gRPC ``Predict`` whose three inputs
    declare 60,000,000 elements with no values. Each counts what it got: an HTTP status, ``closed``, or a gRPC
    code; ``ready`` is set once every one has ended at least once.
    """
    import grpc
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    got: dict[str, dict[str, int]] = {name: {} for name in EXPECTED}
    held: list[float] = []  # seconds each never-reading connection stayed open

    def count(name: str, outcome: str) -> None:
        got[name][outcome] = got[name].get(outcome, 0) + 1
        if all(got.values()):
            ready.set()  # every attack has ended at least once: the soak may stop

    async def status(reader: asyncio.StreamReader) -> str:
        try:
            line = await reader.readline()
        except ConnectionError:
            return "closed"
        return line.split()[1].decode() if line else "closed"

    async def attack(name: str, send) -> None:
        while not stop.is_set():
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window, as a slow reader has
            sock.connect(("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=sock)
            if (outcome := await send(reader, writer)) is not None:
                count(name, outcome)
            writer.close()
            await asyncio.sleep(0.1)

    async def slowloris(reader, writer) -> str | None:
        writer.write(f"POST {PATH} HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode())
        answer = asyncio.ensure_future(status(reader))
        while not answer.done() and not stop.is_set():
            await asyncio.sleep(0.2)
            writer.write(b"a")
        if answer.done():
            return answer.result()
        answer.cancel()
        return None

    async def oversized_trailer(reader, writer) -> str:
        writer.write(f"POST {PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n".encode())
        writer.write(b"X-Big: " + b"a" * (80 << 10) + b"\r\n\r\n")
        return await status(reader)

    async def never_reads(_reader, writer) -> str | None:
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
        for name, dtype in (
            ("price", types_pb2.DT_FLOAT),
            ("device", types_pb2.DT_STRING),
            ("category", types_pb2.DT_INT64),
        ):
            huge.inputs[name].dtype = dtype
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
        await asyncio.gather(
            attack("slowloris", slowloris),
            attack("oversized_trailer", oversized_trailer),
            grpc_huge_shape(),
            attack("never_reads", never_reads),
        )

    asyncio.run(main())
    out.put(("hostile", {**got, "never_reads_held_s": held}))


# --- coordinator -------------------------------------------------------------------------------------------------


def _prepare_v2(tmp: Path, samples) -> tuple[Path, dict[str, np.ndarray]]:
    """A second model (other seed) saved as .keras, and its expected scores for the soak rows."""
    import mmoe_tf
    from serving.testing import build_test_model

    model = build_test_model(seed=1)
    path = tmp / "model_v2.keras"
    mmoe_tf.save_model(model, path)
    outputs = model({k: samples.iloc[ROWS][k].to_numpy(d) for k, d in DTYPES.items()}, training=False)
    return path, {k: np.asarray(outputs[k])[:, 0] for k in ("click", "satisfaction")}


def _status(url: str) -> list[dict]:
    import requests

    return requests.get(f"{url}/v1/models/{MODEL_NAME}", timeout=10).json().get("model_version_status", [])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="soak duration at saturation")
    parser.add_argument("--rest-clients", type=int, default=32)
    parser.add_argument("--grpc-clients", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=None, help="hard cap of the run (default 3x --seconds)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON result to this file")
    args = parser.parse_args()
    import psutil

    started = time.perf_counter()
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="mmoe-soak-") as tmp_name:
        tmp = Path(tmp_name)
        export = cached_export(tmp / "export")
        base = tmp / "served"
        shutil.copytree(export.version_dir, base / MODEL_NAME / "1")
        v2_keras, v2_expected = _prepare_v2(tmp, export.samples)
        expected = {
            1: {k: export.expected[k].to_numpy()[ROWS] for k in ("click", "satisfaction")},
            2: v2_expected,
        }
        gap = float(np.max(np.abs(expected[1]["click"] - expected[2]["click"])))
        assert gap > 100 * TOL, f"versions 1 and 2 answer too alike ({gap}) to tell apart"
        records = to_instances(export.samples.iloc[ROWS])
        body = json.dumps({"instances": records}).encode()
        big = json.dumps({"instances": records * 16}).encode()  # 64 rows: answers that fill socket buffers fast
        cli = ["--base-path", str(base), "--model-name", MODEL_NAME, "--enable-batching", "--poll-seconds", "1"]
        cli += HOSTILE_FLAGS
        export_v2 = [sys.executable, "-m", "serving", "export", "--model", str(v2_keras), "--base-path", str(base)]
        export_v2 += ["--model-name", MODEL_NAME, "--version", "2", "--score-weights", "click=1,satisfaction=2"]
        server = ServerProcess(cli).start()
        events: dict[str, float | str | None] = {}
        try:
            server_proc = psutil.Process(server.proc.pid)
            port = int(server.url.rsplit(":", 1)[1])
            ctx = mp.get_context("spawn")
            stop, hostile_ready, out = ctx.Event(), ctx.Event(), ctx.Queue()
            loaders = [
                ctx.Process(target=_rest_load, args=(port, body, args.rest_clients, expected, stop, out)),
                ctx.Process(
                    target=_grpc_load, args=(server.grpc_target, records, args.grpc_clients, expected, stop, out)
                ),
                ctx.Process(
                    target=_hostile_load,
                    args=(port, server.grpc_target, post_request(port, big), stop, hostile_ready, out),
                ),
            ]
            for p in loaders:
                p.start()
            t0 = time.perf_counter()
            hard_end = t0 + (args.max_seconds or 3 * args.seconds)
            rss: list[tuple[float, int]] = []
            exporter = None
            while True:
                now = time.perf_counter() - t0
                rss.append((now, server_proc.memory_info().rss))
                if exporter is None and now >= 0.25 * args.seconds:
                    events["v2_export_started_s"] = round(now, 1)
                    exporter = subprocess.Popen(
                        export_v2, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                    )
                if exporter is not None and "v2_export_exit" not in events and exporter.poll() is not None:
                    events["v2_export_exit"] = exporter.returncode
                    events["v2_export_output"] = exporter.stdout.read().strip().splitlines()[-1:]
                    events["v2_exported_s"] = round(now, 1)
                if "v2_exported_s" in events and "v2_available_s" not in events:
                    status = _status(server.url)
                    if status and status[0]["version"] == "2" and status[0]["state"] == "AVAILABLE":
                        events["v2_available_s"] = round(now, 1)
                if "v2_available_s" in events and "v3_dropped_s" not in events and now >= 0.6 * args.seconds:
                    corrupt = base / MODEL_NAME / "3"
                    (corrupt / "variables").mkdir(parents=True)
                    (corrupt / "saved_model.pb").write_bytes(b"\x00 this is not a SavedModel \xff" * 10)
                    events["v3_dropped_s"] = round(now, 1)
                if "v3_dropped_s" in events and "v3_state" not in events:
                    three = [s for s in _status(server.url) if s["version"] == "3"]
                    if three and three[0]["state"] == "END":
                        events["v3_state"] = (
                            f"END ({three[0]['status']['error_code']}: {three[0]['status']['error_message'][:80]})"
                        )
                        events["v3_ended_s"] = round(now, 1)
                done = "v3_state" in events and now >= max(args.seconds, float(events["v3_ended_s"]) + 10)
                done = done and hostile_ready.is_set()
                if done or time.perf_counter() > hard_end or not server.alive():
                    break
                time.sleep(1.0)
            stop.set()
            results = dict(out.get(timeout=120) for _ in loaders)
            for p in loaders:
                p.join(60)
            elapsed = time.perf_counter() - t0
            final_status = _status(server.url)
            available = [st["version"] for st in final_status if st["state"] == "AVAILABLE"]
            three = [st for st in final_status if st["version"] == "3"]
            alive = server.alive()
        finally:
            server.stop()
    warm_end = 0.15 * args.seconds
    baseline_samples = [r for t, r in rss if warm_end <= t <= warm_end + 10] or [rss[0][1]]
    baseline = statistics.median(baseline_samples)
    final = rss[-1][1]
    growth = round(100 * (final - baseline) / baseline, 2)
    total_failed = sum(results[t]["failed"] + results[t]["wrong"] for t in ("rest", "grpc"))
    hostile = results["hostile"]
    checks = {
        "no_failed_or_wrong_request": total_failed == 0,
        "hostile_clients_refused": all(hostile[n] and set(hostile[n]) <= want for n, want in EXPECTED.items()),
        "memory_growth_le_5pct": growth <= 5.0,
        "v2_exported_and_served": events.get("v2_export_exit") == 0
        and all(results[t]["by_version"].get(2, 0) > 0 for t in ("rest", "grpc")),
        "no_older_answer_after_newer": results["rest"]["regressed"] == results["grpc"]["regressed"] == 0,
        "corrupt_v3_ended_v2_kept_serving": bool(three)
        and three[0]["state"] == "END"
        and three[0]["status"]["error_code"] != "OK"
        and available == ["2"],
        "server_alive": alive,
    }
    summary = {
        "benchmark": "serving_soak",
        "seconds": round(elapsed, 1),
        "rest": {**results["rest"], "rps": round(results["rest"]["ok"] / elapsed, 1)},
        "grpc": {**results["grpc"], "rps": round(results["grpc"]["ok"] / elapsed, 1)},
        "hostile": hostile,
        "server_flags": HOSTILE_FLAGS,
        "events": events,
        "rss_mb": {
            "start": round(rss[0][1] / 2**20, 1),
            "after_warmup": round(baseline / 2**20, 1),
            "final": round(final / 2**20, 1),
            "max": round(max(r for _, r in rss) / 2**20, 1),
            "growth_pct": growth,
        },
        "final_status": final_status,
        "checks": checks,
        "passed": all(checks.values()),
        **harness.run_facts(load_before, started),
    }
    harness.emit(summary, args.out)
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
