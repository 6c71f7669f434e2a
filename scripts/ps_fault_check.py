"""Faults on a local parameter-server cluster (scripts/local_cluster.sh, 2 workers, 2 ps), tiny model.

Three scenarios, each killing one task with SIGKILL once the first epoch has finished (``history.csv`` has a row):

- ``worker``: worker 0 dies; the same run must finish all epochs (the ClusterCoordinator re-runs its steps on
  worker 1);
- ``ps``: ps 0 dies; the run fails; re-running the same command must resume from the last epoch's backup
  (Keras ``BackupAndRestore``) and finish;
- ``chief``: the coordinator dies; same as ``ps``.

Prints one line per scenario and, last, one JSON object with every outcome (also written to
``docs/bench/ps_faults.json``).

Usage: ``python scripts/ps_fault_check.py [--scenarios worker ps chief] [--epochs 3] [--steps 40]``
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = [
    "data.max_rows=2000",
    "data.split.fractions=[0.8, 0.0, 0.2]",
    "train.batch_size=64",
    "train.verbose=0",
    "train.early_stopping.patience=0",
    "model.num_experts=2",
    "model.expert_units=[8]",
    "model.tower_units=[4]",
    "gates.enabled=false",
    "train.ps_shard_bytes=1024",
]


def _start(out: pathlib.Path, state: pathlib.Path, args: argparse.Namespace) -> subprocess.Popen:
    cmd = ["bash", "scripts/local_cluster.sh", "--workers", "2", "--ps", "2", "--state-dir", str(state), "--"]
    cmd += ["--quiet", "--output-dir", str(out)]
    for item in [*TINY, f"train.epochs={args.epochs}", f"train.steps_per_epoch={args.steps}"]:
        cmd += ["--set", item]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1", "PYTHON": sys.executable}
    log = open(state.parent / f"{state.name}.log", "w")  # noqa: SIM115  (closed with the process)
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _epochs_done(out: pathlib.Path) -> int:
    path = out / "history.csv"
    return max(0, len(path.read_text().splitlines()) - 1) if path.is_file() else 0


def _pid(state: pathlib.Path, role: str, index: int) -> int:
    for line in (state / "tasks.tsv").read_text().splitlines()[1:]:
        r, i, _, pid = line.split("\t")
        if (r, int(i)) == (role, index):
            return int(pid)
    raise LookupError(f"{role}:{index} not in {state / 'tasks.tsv'}")


def _wait(proc: subprocess.Popen, timeout: float) -> int | None:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the script's own session: the script and every task it started
        proc.wait()
        return None


def _report(out: pathlib.Path) -> dict:
    path = out / "report.json"
    if not path.is_file():
        return {}
    training = json.loads(path.read_text())["training"]
    return {k: training[k] for k in ("initial_epoch", "last_epoch", "epochs_run_this_call")}


def run_scenario(role: str, tmp: pathlib.Path, args: argparse.Namespace) -> dict:
    out = tmp / f"{role}-run"
    started = time.perf_counter()
    proc = _start(out, tmp / f"{role}-1", args)
    while _epochs_done(out) < 1 and proc.poll() is None and time.perf_counter() - started < args.timeout:
        time.sleep(0.5)
    if proc.poll() is not None:
        return {"role": role, "ok": False, "error": f"the run ended before the kill (code {proc.returncode})"}
    os.kill(_pid(tmp / f"{role}-1", role, 0), signal.SIGKILL)
    killed_at = _epochs_done(out)
    first = _wait(proc, args.timeout)
    result = {"role": role, "killed_after_epochs": killed_at, "first_exit_code": first, "first_run": _report(out)}
    if role != "worker":  # the run is lost: the same command again must resume
        again = _start(out, tmp / f"{role}-2", args)
        result["rerun_exit_code"] = _wait(again, args.timeout)
        result["rerun"] = _report(out)
    final = result.get("rerun", result["first_run"])
    if role == "worker":
        result["ok"] = first == 0 and final.get("last_epoch") == args.epochs
    else:
        result["ok"] = (
            first != 0
            and result["rerun_exit_code"] == 0
            and final.get("last_epoch") == args.epochs
            and final.get("initial_epoch", 0) >= 1
        )
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenarios", nargs="+", default=["worker", "ps", "chief"], choices=["worker", "ps", "chief"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=40, help="train.steps_per_epoch")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per cluster run before it is killed")
    parser.add_argument("--output", type=pathlib.Path, default=ROOT / "docs" / "bench" / "ps_faults.json")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="ps-faults-") as tmp:
        for role in args.scenarios:
            result = run_scenario(role, pathlib.Path(tmp), args)
            print(f"{role}: {'ok' if result['ok'] else 'FAILED'} {json.dumps(result)}", flush=True)
            results.append(result)
    summary = {"check": "ps_faults", "all_ok": all(r["ok"] for r in results), "scenarios": results}
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
