"""tf.distribute: MirroredStrategy over 2 logical CPUs, MultiWorkerMirroredStrategy with 2 local workers.

Both run the CLI in fresh subprocesses (devices and collectives must be set before TensorFlow
starts); the chief's model must load and predict in this process.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from training.distribute import is_chief, make_strategy

TINY = [  # no validation split: one traced step function fewer per process
    "data.max_rows=400",
    "data.split.fractions=[0.8, 0.0, 0.2]",
    "train.epochs=2",
    "train.batch_size=64",
    "train.verbose=0",
    "model.num_experts=2",
    "model.expert_units=[8]",
    "model.tower_units=[4]",
    "gates.enabled=false",
]


def _env(**extra):
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1", **extra}


def _cmd(out_dir, *overrides, config=None):
    cmd = [sys.executable, "-m", "training", "train", "--quiet", "--output-dir", str(out_dir)]
    cmd += ["--config", config] if config else []
    for item in [*TINY, *overrides]:
        cmd += ["--set", item]
    return cmd


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _check_model_predicts(run_dir):
    from data import feature_arrays
    from data.sample import load_default
    from mmoe_tf.saving import load_model

    df, schema = load_default()
    preds = load_model(run_dir / "model.keras").predict(feature_arrays(df.head(32), schema), verbose=0)
    assert set(preds) == {"click", "satisfaction"}
    assert preds["click"].shape == (32, 1) and np.all((preds["click"] > 0) & (preds["click"] < 1))


def test_mirrored_two_logical_cpus(repo_root, tmp_path):
    """README's command, ``train --config training/configs/mirrored.yaml --set train.logical_cpus=2``, at tiny size."""
    out = tmp_path / "mirrored"
    proc = subprocess.run(
        _cmd(out, "train.logical_cpus=2", config="training/configs/mirrored.yaml"),
        cwd=repo_root,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["strategy"] == "MirroredStrategy" and report["training"]["replicas"] == 2
    assert report["splits"]["test"]["click"]["observed"] == 80
    _check_model_predicts(out)


def test_multi_worker_two_processes(repo_root, tmp_path):
    out = tmp_path / "multi"
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = [
        subprocess.Popen(
            _cmd(out, "train.distribute=multi_worker"),
            cwd=repo_root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})),
        )
        for i in range(2)
    ]
    try:
        results = [p.communicate(timeout=170) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["training"]["distribute"] == "multi_worker" and report["training"]["replicas"] == 2
    assert report["training"]["last_epoch"] == 2
    _check_model_predicts(out)
    # only the chief wrote the run folder: one history with one row per epoch, no worker leftovers
    assert (out / "history.csv").read_text().count("\n") == 3
    assert sorted(p.name for p in (out / "backup").iterdir()) == ["chief"]


def test_strategy_errors_and_default():
    assert is_chief(make_strategy("none"))
    with pytest.raises(ValueError, match=r"train\.distribute: unknown strategy 'tpu'"):
        make_strategy("tpu")
    env_backup = os.environ.pop("TF_CONFIG", None)
    try:
        with pytest.raises(ValueError, match="needs the TF_CONFIG environment variable"):
            make_strategy("multi_worker")
        os.environ["TF_CONFIG"] = "{not json"
        with pytest.raises(ValueError, match=r"TF_CONFIG: expected cluster\.worker"):
            make_strategy("multi_worker")
    finally:
        os.environ.pop("TF_CONFIG", None)
        if env_backup is not None:
            os.environ["TF_CONFIG"] = env_backup


def test_parameter_server_tf_config_errors():
    from training.parameter_server import read_tf_config

    cluster = {"chief": ["localhost:1"], "worker": ["localhost:2"], "ps": ["localhost:3"]}
    cases = [
        (None, "needs the TF_CONFIG environment variable"),
        ("{not json", r"TF_CONFIG: expected cluster and task\.type/index"),
        (
            {"cluster": {"worker": ["localhost:2"]}, "task": {"type": "worker", "index": 0}},
            r"needs 1 chief, >= 1 worker and >= 1 ps task, got \{'chief': 0, 'worker': 1, 'ps': 0\}",
        ),
        ({"cluster": cluster, "task": {"type": "ps", "index": 1}}, "task ps:1 is not in the cluster"),
        ({"cluster": cluster, "task": {"type": "evaluator", "index": 0}}, "task evaluator:0 is not in the cluster"),
    ]
    env_backup = os.environ.pop("TF_CONFIG", None)
    try:
        for value, message in cases:
            os.environ.pop("TF_CONFIG", None)
            if value is not None:
                os.environ["TF_CONFIG"] = value if isinstance(value, str) else json.dumps(value)
            with pytest.raises(ValueError, match=message):
                make_strategy("parameter_server")
        os.environ["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}})
        assert read_tf_config()["task"] == {"type": "chief", "index": 0}
    finally:
        os.environ.pop("TF_CONFIG", None)
        if env_backup is not None:
            os.environ["TF_CONFIG"] = env_backup


def test_shard_policies_split_only_what_they_should():
    import tensorflow as tf

    from training.parameter_server import make_partitioner

    table, dense = tf.TensorShape([4_000_000, 16]), tf.TensorShape([64, 32])  # 256 MB and 8 KB of float32
    min_size = make_partitioner("min_size", 1 << 20, num_ps=2)
    assert min_size(table, tf.float32) == [2, 1] and min_size(dense, tf.float32) == [1, 1]
    assert make_partitioner("fixed", 1 << 20, num_ps=2)(dense, tf.float32) == [2, 1]
    assert make_partitioner("max_size", 64 << 20, num_ps=2)(table, tf.float32) == [4, 1]  # shards of <= 64 MB
    assert make_partitioner("none", 1 << 20, num_ps=2) is None
    assert make_partitioner("min_size", 1 << 20, num_ps=1) is None
    with pytest.raises(ValueError, match=r"train\.ps_shard_policy: expected one of"):
        make_partitioner("rows", 1 << 20, num_ps=2)


def test_parameter_server_config_fields():
    from training.config import RunConfigError, load_run_config

    cfg = load_run_config(None, ["train.distribute=parameter_server", "train.ps_shard_policy=max_size"])
    assert (cfg.train.distribute, cfg.train.ps_shard_policy, cfg.train.ps_shard_bytes) == (
        "parameter_server",
        "max_size",
        1 << 20,
    )
    with pytest.raises(RunConfigError, match=r"train\.ps_shard_policy: expected one of"):
        load_run_config(None, ["train.ps_shard_policy=rows"])
    with pytest.raises(RunConfigError, match=r"train\.ps_shard_bytes: expected an integer >= 1"):
        load_run_config(None, ["train.ps_shard_bytes=0"])
    from training.distribute import strategy_for

    with_baseline = load_run_config(None, ["train.distribute=parameter_server", "train.baseline=single_task"])
    with pytest.raises(ValueError, match=r"train\.baseline: not supported with train\.distribute=parameter_server"):
        strategy_for(with_baseline.train)
