"""Parameter-server training against one process: same config and seed, a hashed id table split across 2 ps tasks,
and the cluster again with a small table as the baseline of what a table row costs each task (``docs/scaling.md``,
"Evidence on this machine").

Usage: ``python bench/parameter_server.py --out docs/bench/parameter_server.json [--id-rows 4194304] [--rows 30000]``
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import harness
import psutil
import yaml

ROOT = harness.REPO
SAMPLE = ROOT / "data" / "sample"
FIXED = (  # the rest of the run config, the same for every run
    "data.split.fractions=[0.8,0.0,0.2] train.seed=0 train.verbose=0 train.early_stopping.patience=0 "
    "gates.enabled=false model.num_experts=4 model.expert_units=[32] model.tower_units=[16] model.learning_rate=0.003 "
    "model.optimizer=adam"  # Adam updates every table row a step
)


def _schema(args: argparse.Namespace, id_rows: int, path: pathlib.Path) -> pathlib.Path:
    """The sample schema, ``user_id`` hashed into ``id_rows`` bins of ``args.dim`` dimensions, written to ``path``."""
    schema = yaml.safe_load((SAMPLE / "impressions.schema.yaml").read_text())
    user = next(f for f in schema["features"] if f["name"] == "user_id")
    user.update(num_bins=id_rows, embedding_dim=args.dim)
    path.write_text(yaml.safe_dump(schema, sort_keys=False))
    return path


def _overrides(args: argparse.Namespace, schema: pathlib.Path) -> list[str]:
    """``--set`` options of a training run: the sample table, ``schema``, the sizes of ``args`` and :data:`FIXED`."""
    items = [f"data.path={SAMPLE / 'impressions.csv.gz'}", f"data.schema={schema}", f"data.max_rows={args.rows}"]
    items += [f"train.epochs={args.epochs}", f"train.batch_size={args.batch_size}"]
    items += [f"train.ps_shard_bytes={args.shard_bytes}", *FIXED.split()]
    return [x for item in items for x in ("--set", item)]


def run(cmd: list[str], state: pathlib.Path | None = None) -> tuple[int, dict[str, int]]:
    """Run ``cmd``; its exit code and the peak RSS (bytes) of its process, or of every task that
    ``scripts/local_cluster.sh`` lists in ``state/tasks.tsv``, sampled every 0.2 s."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1", "PYTHON": sys.executable}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    pids, peak = ({} if state else {"single": proc.pid}), {}
    while proc.poll() is None:
        if state is not None and (state / "tasks.tsv").is_file():
            for line in (state / "tasks.tsv").read_text().splitlines()[1:]:
                role, index, _, pid = line.split("\t")
                pids.setdefault(f"{role}:{index}", int(pid))
        for name, pid in pids.items():
            try:
                peak[name] = max(peak.get(name, 0), psutil.Process(pid).memory_info().rss)
            except psutil.Error:
                continue
        time.sleep(0.2)
    return proc.returncode, dict(sorted(peak.items()))


def _mb(by_task: dict[str, int]) -> dict[str, float]:
    return {k: round(v / 2**20, 1) for k, v in by_task.items()}


def _summary(run_dir: pathlib.Path, rss: dict[str, int]) -> dict:
    report = json.loads((run_dir / "report.json").read_text())
    training = report["training"]
    train_rows = report["data"]["rows"]["train"]
    epochs = training["last_epoch"] - training["initial_epoch"]
    out = {
        "test_auc": {task: round(m["auc"], 4) for task, m in report["splits"]["test"].items() if "auc" in m},
        "train_examples_per_s": round(train_rows * epochs / training["fit_seconds"], 1),
        "peak_rss_mb": _mb(rss),
    }
    placement = run_dir / "ps_placement.json"
    if placement.is_file():
        data = json.loads(placement.read_text())
        out["variable_mb_per_task"] = _mb(data["bytes_per_task"])
        out["optimizer_variable_mb_per_task"] = _mb(data["optimizer_bytes_per_task"])
        out["user_id_table_shards"] = data["variables"]["features/embed_user_id/embeddings"]
    return out


def train(args: argparse.Namespace, schema: pathlib.Path, out: pathlib.Path, state: pathlib.Path | None) -> dict:
    """One training run: in one process, or with a ``state`` folder on the local cluster (2 workers, 2 ps)."""
    cmd = [sys.executable, "-m", "training", "train"]
    if state is not None:
        cmd = ["bash", "scripts/local_cluster.sh", "--workers", "2", "--ps", "2", "--state-dir", str(state), "--"]
    code, peak = run([*cmd, "--quiet", "--output-dir", str(out), *_overrides(args, schema)], state)
    if code:
        raise SystemExit(f"training run failed ({code}); logs in {state or 'the output above'}")
    return _summary(out, peak)


def main(argv: list[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("--id-rows", type=int, default=4_194_304, help="hash bins (embedding rows) of user_id")
    parser.add_argument("--small-id-rows", type=int, default=2048, help="user_id bins of the baseline cluster run")
    parser.add_argument("--dim", type=int, default=16, help="embedding dimensions of user_id")
    parser.add_argument("--rows", type=int, default=30_000, help="rows of the 60,000-row sample table used")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--shard-bytes", type=int, default=1 << 20, help="train.ps_shard_bytes (min_size policy)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-ps-") as tmp_name:
        tmp = pathlib.Path(tmp_name)
        schema_path = _schema(args, args.id_rows, tmp / "schema.yaml")
        small_path = _schema(args, args.small_id_rows, tmp / "schema_small.yaml")
        single = train(args, schema_path, tmp / "single", None)
        cluster = train(args, schema_path, tmp / "cluster", tmp / "state")
        small = train(args, small_path, tmp / "cluster_small", tmp / "state_small")

    table_mb = args.id_rows * args.dim * 4 / 2**20
    extra_rows = args.id_rows - args.small_id_rows
    # RSS a table row costs each task: the big-table cluster against the small-table one, same everything else
    per_row = {
        task: round((mb - small["peak_rss_mb"][task]) * 2**20 / (extra_rows / (2 if task.startswith("ps") else 1)), 1)
        for task, mb in cluster["peak_rss_mb"].items()
        if task in small["peak_rss_mb"]
    }
    growth = {t: mb - small["peak_rss_mb"][t] for t, mb in cluster["peak_rss_mb"].items() if t.startswith("worker")}
    result = {
        "benchmark": "parameter_server",
        "config": {k: v for k, v in vars(args).items() if k != "out"} | {"optimizer": "adam"},
        "user_id_table_mb": round(table_mb, 1),
        "single_process": single,
        "cluster_2_workers_2_ps": cluster,
        "cluster_small_table": {"id_rows": args.small_id_rows, **small},
        "rss_bytes_per_id_row": per_row,  # ps: per row that ps holds (half the table); others: of the whole table
        "auc_difference": {t: round(cluster["test_auc"][t] - auc, 4) for t, auc in single["test_auc"].items()},
        "throughput_ratio": round(cluster["train_examples_per_s"] / single["train_examples_per_s"], 3),
        "worker_rss_growth_below_table_size": all(mb < table_mb for mb in growth.values()),
        "machine": harness.machine(),
    }
    harness.emit(result, args.out)


if __name__ == "__main__":
    main()
