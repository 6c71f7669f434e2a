"""Soak of the local server at saturation over REST and gRPC at once, through a hot reload, a corrupt version and
hostile clients; the JSON has a pass/fail per requirement (``docs/serving.md``, "Performance", has the protocol).

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
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
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


def normal_clients(
    transport: str, server: Any, columns: dict, clients: int, expected: dict, stop: Any, out: Any
) -> None:
    """``clients`` REST keep-alive connections or gRPC ``Predict`` loops sending back to back until ``stop``; each
    answer is matched to the version whose expected scores it holds (gRPC: the version it names), and counted."""
    from serving.tensor_proto import to_ndarray

    counts, by_version, errors = dict.fromkeys(("ok", "failed", "wrong", "regressed"), 0), {}, []
    newest, known = {}, {}  # per client the newest version it has seen; REST answers' bytes -> version

    def version_of(answer: Any) -> int:
        if transport == "grpc":
            named = answer.model_spec.version.value
            scores = {k: to_ndarray(answer.outputs[k], k) for k in ("click", "satisfaction")}
            return which_version(scores, {named: expected[named]} if named in expected else {})
        if answer not in known:
            preds = json.loads(answer)["predictions"]
            known[answer] = which_version({k: [p[k] for p in preds] for k in ("click", "satisfaction")}, expected)
        return known[answer]

    def on_answer(client: Any, error: str | None, answer: Any, _spent: float) -> None:
        version = 0 if error else version_of(answer)
        if version == 0:
            counts["failed" if error else "wrong"] += 1
            errors.append(error or f"answer from no known version: {str(answer)[:200]}")
            return
        counts["ok"] += 1
        by_version[version] = by_version.get(version, 0) + 1
        counts["regressed"] += version < newest.get(client, 0)  # an older version after a newer one
        newest[client] = max(newest.get(client, 0), version)

    asyncio.run(load.load(transport, server, columns, clients, lambda: not stop.is_set(), on_answer))
    out.put((transport, {**counts, "by_version": by_version, "errors": errors[:20]}))


def hostile_clients(server: Any, request: bytes, stop: Any, ready: Any, out: Any) -> None:
    """Four hostile clients attacking again as soon as each attempt ends, counting what they got (an HTTP status,
    ``closed``, a gRPC code); ``ready`` is set once every one has ended at least once."""
    got: dict[str, dict[str, int]] = {name: {} for name in EXPECTED}
    held: list[float] = []  # seconds each never-reading connection stayed open

    def count(name: str, outcome: str | None) -> None:
        if outcome is not None:
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
            sock.connect(("127.0.0.1", server.port))
            reader, writer = await asyncio.open_connection(sock=sock)
            count(name, await send(reader, writer))
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

    huge = load.grpc_request({k: np.zeros(0, d) for k, d in DTYPES.items()})  # every input declares 60M values
    for tensor in huge.inputs.values():
        tensor.tensor_shape.dim[0].size = 60_000_000

    def on_huge(_client: Any, error: str | None, _answer: Any, _spent: float) -> None:
        count("grpc_huge_shape", error.split(":")[0] if error else "OK")

    async def main() -> None:
        http = {"slowloris": slowloris, "oversized_trailer": oversized_trailer, "never_reads": never_reads}
        grpc = load.load("grpc", server, huge, 1, lambda: not stop.is_set(), on_huge, pause=0.1)
        await asyncio.gather(grpc, *(attack(name, fn) for name, fn in http.items()))

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


def reload_script(server: Any, base: Path, export_v2: list[str], seconds: float, cap: float, ready: Any) -> tuple:
    """Version 2 exported at 25 % of ``seconds``; once it is AVAILABLE and 60 % have passed, a corrupt version 3;
    then on until ``seconds`` have passed, version 3 ENDed 10 s before and every hostile client is ``ready``. Returns
    the time of each event (None if it never came) and the server's RSS, sampled every second for at most ``cap``
    seconds while the server lives."""
    import psutil

    t0, rss, events, proc = time.perf_counter(), [], {}, psutil.Process(server.proc.pid)

    def wait(until: Callable[[float], bool]) -> float | None:
        while (now := time.perf_counter() - t0) <= cap and server.alive():
            rss.append((now, proc.memory_info().rss))
            if until(now):
                return round(now, 1)
            time.sleep(1.0)
        return None

    def state(version: str) -> str | None:
        return next((st["state"] for st in model_status(server.url) if st["version"] == version), None)

    events["v2_export_started_s"] = wait(lambda now: now >= 0.25 * seconds)
    exporter = subprocess.Popen(export_v2, cwd=harness.REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    events["v2_exported_s"] = wait(lambda _: exporter.poll() is not None)
    events["v2_export_exit"], output = exporter.wait(), exporter.stdout.read().decode().strip()
    events["v2_export_output"] = output.splitlines()[-1:]
    events["v2_available_s"] = wait(lambda _: state("2") == "AVAILABLE")
    events["v3_dropped_s"] = wait(lambda now: now >= 0.6 * seconds)
    (base / MODEL_NAME / "3" / "variables").mkdir(parents=True)
    (base / MODEL_NAME / "3" / "saved_model.pb").write_bytes(b"\x00 this is not a SavedModel \xff" * 10)
    events["v3_ended_s"] = wait(lambda _: state("3") == "END")
    wait(lambda now: ready.is_set() and now >= max(seconds, (events["v3_ended_s"] or 0) + 10))
    return events, rss


def main(argv: list[str] | None = None) -> int:
    parser = harness.parser(__doc__)
    parser.add_argument("--seconds", type=float, default=120.0, help="soak duration at saturation")
    parser.add_argument("--rest-clients", type=int, default=32)
    parser.add_argument("--grpc-clients", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=None, help="hard cap of the run (default 3x --seconds)")
    args = parser.parse_args(argv)
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
        try:
            ctx, ends = mp.get_context("spawn"), SimpleNamespace(port=server.port, grpc_target=server.grpc_target)
            stop, hostile_ready, out = ctx.Event(), ctx.Event(), ctx.Queue()
            big = load.post_request(server.port, load.rest_body({k: np.tile(v, 16) for k, v in columns.items()}))
            loaders = [
                ctx.Process(target=normal_clients, args=(t, ends, columns, n, expected, stop, out))
                for t, n in (("rest", args.rest_clients), ("grpc", args.grpc_clients))
            ]
            loaders.append(ctx.Process(target=hostile_clients, args=(ends, big, stop, hostile_ready, out)))
            for p in loaders:
                p.start()
            t0, cap = time.perf_counter(), args.max_seconds or 3 * args.seconds
            events, rss = reload_script(server, base, export_v2, args.seconds, cap, hostile_ready)
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
    three = next((st for st in final_status if st["version"] == "3"), {"state": None})
    v3_ended = three["state"] == "END" and three["status"]["error_code"] != "OK"
    served_v2 = events["v2_export_exit"] == 0 and all(r["by_version"].get(2, 0) > 0 for r in (rest, grpc_))
    checks = {
        "no_failed_or_wrong_request": rest["failed"] + rest["wrong"] + grpc_["failed"] + grpc_["wrong"] == 0,
        "hostile_clients_refused": all(set(hostile[n]) == {want} for n, want in EXPECTED.items()),
        "memory_growth_le_5pct": growth <= 5.0,
        "v2_exported_and_served": served_v2,
        "no_older_answer_after_newer": rest["regressed"] == grpc_["regressed"] == 0,
        "corrupt_v3_ended_v2_kept_serving": v3_ended
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
