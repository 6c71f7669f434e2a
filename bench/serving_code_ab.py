"""A/B of the local server's code: this checkout against a git ref, whole servers side by side.

Starts four servers on the same export (each tree without and with batching), then in alternating rounds (the
order reversed every other round) loads each one over REST at batch 1, at concurrency 1 and 32, and reads its CPU
per answered request. Prints per-contender medians, the new/baseline ratios paired per round, and, as its last line,
one JSON object. The baseline runs from a temporary `git worktree` of ``--baseline`` (removed afterwards).

Example:
    .venv/bin/python bench/serving_code_ab.py --baseline HEAD~1 --rounds 5 --seconds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.serving_latency import _with_server_cpu, rest_throughput, run_facts  # noqa: E402
from serving.event_loop import run_on  # noqa: E402
from serving.testing import MODEL_NAME, ServerProcess, cached_export  # noqa: E402

CONCURRENCY = (1, 32)
BATCHING = ["--enable-batching", "--max-batch-size", "64", "--batch-timeout-micros", "2000"]
METRICS = (
    "rps",
    "p50_ms",
    "server_cpu_us_per_request",
    "event_loop_cpu_us_per_request",
    "load_generator_cpu_us_per_request",
)


def paired(new: list[float], old: list[float]) -> float:
    """Median over rounds of new / old."""
    return round(statistics.median(n / o for n, o in zip(new, old, strict=True)), 3)


def measure(trees: dict[str, Path], base: Path, rounds: int, seconds: float) -> dict[tuple[str, str], list[dict]]:
    """Every contender's throughput points, one dict per round."""
    cli = ["--base-path", str(base), "--model-name", MODEL_NAME, "--no-grpc"]
    servers = {
        (tree, mode): ServerProcess(
            cli + (BATCHING if mode == "batching" else []), env={"PYTHONPATH": str(root)}, cwd=root
        )
        for tree, root in trees.items()
        for mode in ("no_batching", "batching")
    }
    points: dict[tuple[str, str], list[dict]] = {key: [] for key in servers}
    try:
        for server in servers.values():
            server.start()
        for r in range(rounds):
            for key in list(servers) if r % 2 == 0 else list(servers)[::-1]:
                port = int(servers[key].url.rsplit(":", 1)[1])
                points[key].append(
                    {
                        f"c{c}": _with_server_cpu(
                            servers[key], lambda c=c, port=port: run_on(rest_throughput(port, c, seconds))
                        )
                        for c in CONCURRENCY
                    }
                )
            print(
                f"round {r + 1}: " + ", ".join(f"{t}/{m} c32 {p[-1]['c32']['rps']:.0f}" for (t, m), p in points.items())
            )
    finally:
        for server in servers.values():
            server.stop()
    return points


def summarise(points: dict[tuple[str, str], list[dict]]) -> dict:
    """Medians per contender, and the ratios that matter, paired per round."""
    out: dict = {}
    for (tree, mode), rounds in points.items():
        out.setdefault(tree, {})[mode] = {
            f"c{c}": {m: round(statistics.median(p[f"c{c}"][m] for p in rounds), 1) for m in METRICS}
            for c in CONCURRENCY
        }

    def series(tree: str, mode: str, c: int, metric: str = "rps") -> list[float]:
        return [p[f"c{c}"][metric] for p in points[(tree, mode)]]

    for tree in ("new", "baseline"):
        out[tree]["batching_over_unbatched_c32_paired"] = paired(
            series(tree, "batching", 32), series(tree, "no_batching", 32)
        )
        out[tree]["lone_client_c1_paired"] = paired(series(tree, "batching", 1), series(tree, "no_batching", 1))
    out["new_over_baseline_paired"] = {
        f"{mode}_c{c}_{metric}": paired(series("new", mode, c, metric), series("baseline", mode, c, metric))
        for mode in ("no_batching", "batching")
        for c in CONCURRENCY
        for metric in ("rps", "event_loop_cpu_us_per_request")
    }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="HEAD", help="git ref of the code to compare this checkout with")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; figures are medians over them")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each throughput point")
    args = parser.parse_args()
    started, load_before = time.perf_counter(), round(os.getloadavg()[0], 2)
    commit = subprocess.run(["git", "rev-parse", args.baseline], cwd=REPO, capture_output=True, text=True, check=True)
    with tempfile.TemporaryDirectory(prefix="mmoe-ab-") as tmp:
        worktree = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(worktree), args.baseline],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        try:
            base = cached_export(Path(tmp) / "export").base_path
            points = measure({"new": REPO, "baseline": worktree}, base, args.rounds, args.seconds)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=REPO, check=False)
    result = {"baseline": args.baseline, "baseline_commit": commit.stdout.strip(), **summarise(points)}
    result.update(run_facts(args.rounds, load_before, started))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
