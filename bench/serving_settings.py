"""One server setting, two values, side by side: REST latency and throughput of the local server.

``--setting event-loop`` compares ``--event-loop asyncio`` with ``uvloop``; ``--setting inter-op-threads`` compares
TensorFlow's inter-op pool of one thread (``--inter-op-threads 1``, ops handed to the pool) with ``-1`` (every op in
the inference thread that calls the session); ``--setting batch-timeout`` compares the batching window of 2,000 µs
with 500 µs (the unbatched servers ignore it). Starts four servers on the small test export (``serving.testing``):
without and with server-side batching, each with both values, and in ``--rounds`` alternating rounds measures each
with the clients of ``bench/serving_latency.py`` (the same clients for every server): REST p50 at batch 1 and 64,
requests/s at concurrency 1 and 32 (batch 1) with the server's CPU (all threads, and the event loop's) per request,
and the batching server's gRPC requests/s at concurrency 32. Medians over rounds; the last line is one JSON object
with the figures and the second value / first value ratios.

Usage: .venv/bin/python bench/serving_settings.py --setting {event-loop,inter-op-threads,batch-timeout} [--rounds 5]
    [--seconds 2] [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import serving_latency as clients

from serving.event_loop import run_on
from serving.testing import MODEL_NAME, ServerProcess, cached_export

SETTINGS = {  # --setting: (server flag, the value before, the value compared with it)
    "event-loop": ("--event-loop", "asyncio", "uvloop"),
    "inter-op-threads": ("--inter-op-threads", "1", "-1"),
    "batch-timeout": ("--batch-timeout-micros", "2000", "500"),
}
BATCHING = ["--enable-batching", "--max-batch-size", "64", "--batch-timeout-micros", "2000"]


def one_round(server: ServerProcess, args: argparse.Namespace, batching: bool) -> dict[str, float]:
    port = int(server.url.rsplit(":", 1)[1])
    latency = clients.rest_latency(port, args.requests)
    out = {"rest_p50_ms_batch1": latency["batch1"]["p50_ms"], "rest_p50_ms_batch64": latency["batch64"]["p50_ms"]}
    for c in (1, 32):
        point = clients._with_server_cpu(server, lambda c=c: run_on(clients.rest_throughput(port, c, args.seconds)))
        out[f"rest_rps_c{c}"] = point["rps"]
        out[f"rest_server_cpu_us_c{c}"] = point["server_cpu_us_per_request"]
        out[f"rest_event_loop_cpu_us_c{c}"] = point["event_loop_cpu_us_per_request"]
        out[f"rest_errors_c{c}"] = point["errors"]
    if batching:
        point = clients._with_server_cpu(
            server, lambda: run_on(clients.grpc_throughput(server.grpc_target, 32, args.seconds))
        )
        out["grpc_rps_c32"], out["grpc_errors_c32"] = point["rps"], point["errors"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setting", choices=SETTINGS, required=True, help="the server flag to compare")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each throughput point")
    parser.add_argument("--requests", type=int, default=200, help="sequential requests per latency point")
    args = parser.parse_args()
    started, load_before = time.perf_counter(), round(os.getloadavg()[0], 2)
    flag, before, after = SETTINGS[args.setting]
    values = (before, after)
    with tempfile.TemporaryDirectory(prefix="mmoe-bench-") as tmp:
        base = cached_export(Path(tmp) / "export").base_path
        cli = ["--base-path", str(base), "--model-name", MODEL_NAME]
        servers = {
            (mode, value): ServerProcess(cli + (BATCHING if mode == "batching" else []) + [flag, value])
            for mode in ("no_batching", "batching")
            for value in values
        }
        rounds: dict[tuple[str, str], list[dict[str, float]]] = {key: [] for key in servers}
        try:
            for server in servers.values():
                server.start()
            for r in range(args.rounds):
                for key in list(servers) if r % 2 == 0 else list(reversed(servers)):
                    rounds[key].append(one_round(servers[key], args, key[0] == "batching"))
                    print(f"round {r + 1} {key}: {json.dumps(rounds[key][-1])}", flush=True)
        finally:
            for server in servers.values():
                server.stop()
    medians = {
        mode: {value: {m: statistics.median(o[m] for o in rounds[(mode, value)]) for m in rounds[(mode, value)][0]}
               for value in values}
        for mode in ("no_batching", "batching")
    }  # fmt: skip
    metrics = ("rest_p50_ms_batch1", "rest_p50_ms_batch64", "rest_rps_c1", "rest_rps_c32", "rest_server_cpu_us_c32")
    ratios = {
        f"{mode}_{m}_{after}_over_{before}": round(medians[mode][after][m] / medians[mode][before][m], 3)
        for mode in medians
        for m in metrics
    }
    for value in values:
        ratios[f"{value}_batching_over_no_batching_rps_c32"] = round(
            medians["batching"][value]["rest_rps_c32"] / medians["no_batching"][value]["rest_rps_c32"], 3
        )
    for name, value in ratios.items():
        print(f"{name}: {value}")
    print(
        json.dumps(
            {
                "benchmark": "serving_" + args.setting.replace("-", "_"),
                "setting": flag,
                **medians,
                "ratios": ratios,
                **clients.run_facts(args.rounds, load_before, started),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
