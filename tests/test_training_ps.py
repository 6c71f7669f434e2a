"""Parameter-server training end to end: scripts/local_cluster.sh with 2 workers and 2 ps tasks, tiny size.

One module-scoped cluster run (train → checkpoint → model.keras), then its export against a single-process export of
the same config: same signatures, served by the local server's ModelStore. Every task is a subprocess, stopped by the
script; the test checks that none is left.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.timeout(600)

TINY = [  # with a validation split: fit validates through a per-worker DatasetCreator
    "data.max_rows=500",
    "data.split.fractions=[0.7, 0.15, 0.15]",
    "train.epochs=2",
    "train.batch_size=64",
    "train.verbose=0",
    "train.early_stopping.patience=0",
    "model.num_experts=2",
    "model.expert_units=[8]",
    "model.tower_units=[4]",
    "gates.enabled=false",
    "train.ps_shard_bytes=1024",  # both id tables (64 KB and 32 KB) split across the 2 ps tasks
]


def _env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1", "PYTHON": sys.executable}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def ps_run(repo_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ps")
    out, state = tmp / "run", tmp / "cluster"
    cmd = ["bash", "scripts/local_cluster.sh", "--workers", "2", "--ps", "2", "--state-dir", str(state), "--"]
    cmd += ["--quiet", "--output-dir", str(out), "--config", "training/configs/parameter_server.yaml"]
    for item in TINY:  # docs/scaling.md's command at tiny size (the overrides win)
        cmd += ["--set", item]
    proc = subprocess.run(cmd, cwd=repo_root, env=_env(), capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, state


def test_cluster_trains_checkpoints_and_stops_every_task(ps_run):
    out, state = ps_run
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["distribute"] == "parameter_server"
    assert report["training"]["strategy"] == "ParameterServerStrategyV2"
    assert report["training"]["last_epoch"] == 2
    assert 0 < report["splits"]["test"]["click"]["auc"] < 1
    assert set(report["splits"]) == {"validation", "test"}
    assert "val_loss" in (out / "history.csv").read_text().splitlines()[0].split(",")
    assert (out / "history.csv").read_text().count("\n") == 3  # header + one row per epoch
    assert any(p.name.endswith(".index") for p in (out / "backup" / "chief").iterdir())  # BackupAndRestore
    assert (out / "checkpoints" / "best.weights.h5").is_file()
    tasks = [line.split("\t") for line in (state / "tasks.tsv").read_text().splitlines()[1:]]
    assert sorted((role, index) for role, index, _, _ in tasks) == [
        ("chief", "0"),
        ("ps", "0"),
        ("ps", "1"),
        ("worker", "0"),
        ("worker", "1"),
    ]
    assert not [t for t in tasks if _alive(int(t[3]))], "local_cluster.sh left tasks running"


def test_id_tables_split_across_ps_and_saved_whole(ps_run):
    from mmoe_tf.saving import load_model

    out, _ = ps_run
    placement = json.loads((out / "ps_placement.json").read_text())
    assert set(placement["bytes_per_task"]) == {"ps:0", "ps:1"}  # every variable on a ps, none on the chief
    table = placement["variables"]["features/embed_user_id/embeddings"]
    assert [s["task"] for s in table] == ["ps:0", "ps:1"]
    rows = sum(s["shape"][0] for s in table)
    assert set(placement["optimizer_bytes_per_task"]) == {"ps:0", "ps:1"}  # Adam's slots beside their variables
    assert placement["optimizer_bytes_per_task"]["ps:0"] >= 2 * table[0]["bytes"]  # m and v of the table's shard
    assert all(0 < s["shape"][0] < rows for s in table)
    model = load_model(out / "model.keras")
    whole = [v for v in model.variables if v.name.startswith("features/embed_user_id/embeddings")]
    assert [tuple(v.shape) for v in whole] == [(rows, table[0]["shape"][1])]  # one variable, full shape


def test_export_has_single_process_signatures_and_serves(ps_run, repo_root, tmp_path):
    from data import feature_arrays
    from mmoe_tf.models import build_model
    from serving.export import export_model
    from serving.model_store import ModelSource, ModelStore
    from training.config import load_run_config
    from training.runner import load_data, model_config_for, split_data

    out, _ = ps_run
    cmd = [sys.executable, "-m", "serving", "export", "--model", str(out / "model.keras")]
    cmd += ["--base-path", str(tmp_path / "ps"), "--version", "1"]
    proc = subprocess.run(cmd, cwd=repo_root, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]  # export verifies in a process without mmoe_tf

    run_config = load_run_config(out / "run_config.yaml")  # the same config, one process, no strategy
    df, schema = load_data(run_config)
    train_df = split_data(df, schema, run_config)["train"]
    single = build_model(model_config_for(schema, run_config), adapt_data=feature_arrays(train_df, schema))
    export_model(single, tmp_path / "single", "mmoe", version=1, sample_features=train_df.head(16))

    store = ModelStore(
        [ModelSource("ps", tmp_path / "ps" / "mmoe"), ModelSource("single", tmp_path / "single" / "mmoe")]
    )
    assert sorted(store.poll()) == [("ps", 1, "AVAILABLE"), ("single", 1, "AVAILABLE")]
    served, reference = store.resolve("ps"), store.resolve("single")
    assert served.metadata == reference.metadata
    assert served.input_specs == reference.input_specs
    features = {k: np.asarray(v) for k, v in feature_arrays(train_df.head(8), schema).items()}
    preds = served.run("serving_default", features)
    assert preds["click"].shape[0] == 8 and np.all((preds["click"] > 0) & (preds["click"] < 1))
