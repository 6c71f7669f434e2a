"""REST serving latency and throughput of the local server vs the in-process signature call (the floor).

Exports the small test MMoE (``serving.testing``) unless ``--base-path`` points at an existing export, then for the
server without and with server-side batching measures: latency p50/p99 of sequential requests at batch 1 and 64, and
throughput (requests/s, batch 1) at concurrency 1/8/32 with an aiohttp client. Loopback only; about 2 minutes.
The last printed line is one JSON object with all figures and ratios.

Usage: .venv/bin/python bench/serving_latency.py [--base-path BASE] [--seconds 3] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import numpy as np
import requests

from serving.model_store import numeric_versions
from serving.testing import MODEL_NAME, ServerProcess, cached_export, sample_frame, to_instances

CONCURRENCY = (1, 8, 32)


def _rows(batch: int) -> list[dict]:
    return to_instances(sample_frame(max(batch, 64), seed=3).iloc[:batch])


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(samples_ms, 50)), 3),
        "p99_ms": round(float(np.percentile(samples_ms, 99)), 3),
    }


def in_process(version_dir: Path, n: int) -> dict[str, dict[str, float]]:
    """Latency of calling ``serving_default`` directly on the loaded SavedModel (no HTTP, no JSON)."""
    import tensorflow as tf

    fn = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    out = {}
    for batch in (1, 64):
        rows = _rows(batch)
        feats = {
            "price": tf.constant([r["price"] for r in rows], tf.float32),
            "device": tf.constant([r["device"] for r in rows]),
            "category": tf.constant([r["category"] for r in rows], tf.int64),
        }
        for _ in range(10):
            fn(**feats)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            {k: v.numpy() for k, v in fn(**feats).items()}
            times.append((time.perf_counter() - t0) * 1e3)
        out[f"batch{batch}"] = _percentiles(times)
    return out


def rest_latency(url: str, n: int) -> dict[str, dict[str, float]]:
    """Sequential request latency at batch 1 and 64 (requests.Session, keep-alive)."""
    out = {}
    with requests.Session() as session:
        for batch in (1, 64):
            body = json.dumps({"instances": _rows(batch)})
            for _ in range(10):
                session.post(url, data=body, timeout=30).raise_for_status()
            times = []
            for _ in range(n if batch == 1 else max(n // 2, 10)):
                t0 = time.perf_counter()
                resp = session.post(url, data=body, timeout=30)
                resp.json()
                times.append((time.perf_counter() - t0) * 1e3)
                resp.raise_for_status()
            out[f"batch{batch}"] = _percentiles(times)
    return out


async def _throughput(url: str, concurrency: int, seconds: float) -> dict[str, float]:
    body = json.dumps({"instances": _rows(1)})
    done, errors, latencies = 0, 0, []
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                    await resp.read()
                    if resp.status == 200:
                        done += 1
                        latencies.append((time.perf_counter() - t0) * 1e3)
                    else:
                        errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return {"rps": round(done / elapsed, 1), "errors": errors, **_percentiles(latencies or [float("nan")])}


def run_mode(base: Path, batching: bool, args: argparse.Namespace) -> dict:
    cli = ["--base-path", str(base), "--model-name", MODEL_NAME]
    if batching:
        cli += ["--enable-batching", "--max-batch-size", "64", "--batch-timeout-micros", "2000"]
    with ServerProcess(cli) as server:
        url = f"{server.url}/v1/models/{MODEL_NAME}:predict"
        latency = rest_latency(url, args.requests)
        throughput = {f"c{c}": asyncio.run(_throughput(url, c, args.seconds)) for c in CONCURRENCY}
    return {"latency": latency, "throughput": throughput}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-path", type=Path, default=None, help="existing export base (holds mmoe/<version>)")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each throughput point")
    parser.add_argument("--requests", type=int, default=200, help="sequential requests per latency point")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mmoe-bench-") as tmp:
        if args.base_path is None:
            base = cached_export(Path(tmp) / "export").base_path
        else:
            base = args.base_path
        versions = numeric_versions(base / MODEL_NAME)
        floor = in_process(base / MODEL_NAME / str(versions[-1]), args.requests)
        print(f"in-process serving_default: {floor}", flush=True)
        results = {}
        for mode, batching in (("no_batching", False), ("batching", True)):
            results[mode] = run_mode(base, batching, args)
            print(f"{mode}: {results[mode]}", flush=True)
    nb, b = results["no_batching"], results["batching"]
    ratios = {
        "rest_over_inprocess_p50_batch1": round(nb["latency"]["batch1"]["p50_ms"] / floor["batch1"]["p50_ms"], 2),
        "rest_over_inprocess_p50_batch64": round(nb["latency"]["batch64"]["p50_ms"] / floor["batch64"]["p50_ms"], 2),
        "batching_over_no_batching_rps_c1": round(b["throughput"]["c1"]["rps"] / nb["throughput"]["c1"]["rps"], 2),
        "batching_over_no_batching_rps_c8": round(b["throughput"]["c8"]["rps"] / nb["throughput"]["c8"]["rps"], 2),
        "batching_over_no_batching_rps_c32": round(b["throughput"]["c32"]["rps"] / nb["throughput"]["c32"]["rps"], 2),
        "rps_c32_over_c1_no_batching": round(nb["throughput"]["c32"]["rps"] / nb["throughput"]["c1"]["rps"], 2),
        "rps_c32_over_c1_batching": round(b["throughput"]["c32"]["rps"] / b["throughput"]["c1"]["rps"], 2),
    }
    for name, value in ratios.items():
        print(f"{name}: {value}")
    summary = {
        "benchmark": "serving_latency",
        "in_process": floor,
        **results,
        "ratios": ratios,
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
