"""Training runs end to end on the embedded default data (tiny: 600 rows, 2 epochs).

One module-scoped CLI run feeds most checks; a second identical run checks reproducibility; an
ESMM + uncertainty run checks loss-weight logging and the joint report; a subprocess killed after
epoch 2 checks BackupAndRestore resumption.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from training.cli import main
from training.config import load_run_config
from training.runner import train

TINY = [
    "data.max_rows=600",
    "train.epochs=2",
    "train.batch_size=64",
    "train.verbose=0",
    "model.num_experts=3",
    "model.expert_units=[16]",
    "model.tower_units=[8]",
    "train.early_stopping.monitor=val_mean_task_auc",  # not the default: exercises the built-in metric
]
ARTIFACTS = (
    "model.keras",
    "run_config.yaml",
    "schema.yaml",
    "report.json",
    "report.txt",
    "gates.json",
    "gates.txt",
    "gates.png",
    "history.csv",
    "tensorboard",
    "checkpoints",
    "backup",
)


def _cli_train(out_dir, extra=()):
    args = ["train", "--config", "training/configs/default.yaml", "--output-dir", str(out_dir), "--quiet"]
    for item in [*TINY, *extra]:
        args += ["--set", item]
    return main(args)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert _cli_train(out) == 0
    return out


def test_cli_run_writes_every_artifact(run_dir):
    for name in ARTIFACTS:
        assert (run_dir / name).exists(), name
    assert any((run_dir / "tensorboard" / "train").iterdir())
    history = pd.read_csv(run_dir / "history.csv")
    assert list(history["epoch"]) == [0, 1]
    for column in ("loss", "val_loss", "click_auc", "loss_weight_click", "loss_weight_satisfaction"):
        assert column in history


def test_report_is_sane(run_dir):
    report = json.loads((run_dir / "report.json").read_text())
    assert report["data"]["rows"] == {"train": 480, "validation": 60, "test": 60}
    for split in ("validation", "test"):
        click, sat = report["splits"][split]["click"], report["splits"][split]["satisfaction"]
        assert click["rows"] == click["observed"] == 60
        assert 0 < click["positives"] < 60
        assert 0.0 <= click["auc"] <= 1.0 and click["log_loss"] > 0
        assert 0 < click["mean_prediction"] < 1
        assert click["calibration_ratio"] == pytest.approx(click["mean_prediction"] / click["observed_rate"])
        assert sat["observed"] == click["positives"]  # satisfaction is observed only after a click
    assert report["training"]["last_epoch"] == 2 and report["training"]["replicas"] == 1
    training = report["training"]
    assert (training["monitor"], training["monitor_mode"]) == ("val_mean_task_auc", "max")
    history = pd.read_csv(run_dir / "history.csv")
    mean_auc = (history["val_click_auc"] + history["val_satisfaction_auc"]) / 2
    assert history["val_mean_task_auc"].tolist() == pytest.approx(mean_auc.tolist())
    assert training["best_epoch"] == int(np.argmax(history["val_mean_task_auc"].to_numpy())) + 1
    best = training["per_task_best_epochs"]
    assert set(best) == {"click", "satisfaction"}
    for task, entry in best.items():
        column = history[f"val_{task}_auc"].to_numpy()
        assert entry["best_epoch"] == int(np.argmax(column)) + 1 and entry["best_value"] == pytest.approx(column.max())
        assert entry["selected_epoch"] == training["best_epoch"]
        assert entry["value_at_selected_epoch"] == pytest.approx(column[training["best_epoch"] - 1])
    text = (run_dir / "report.txt").read_text()
    assert "validation" in text and "test" in text and "satisfaction" in text
    gates = json.loads((run_dir / "gates.json").read_text())
    assert gates["available"] and gates["num_experts"] == 3
    assert sum(e["share"] for e in gates["experts"]) == pytest.approx(1.0, abs=1e-5)


def test_same_seed_same_metrics(run_dir, tmp_path):
    """Rerunning from the run folder's own run_config.yaml (the fully resolved config) gives the same metrics."""
    again = tmp_path / "again"
    assert main(["train", "--config", str(run_dir / "run_config.yaml"), "--output-dir", str(again), "--quiet"]) == 0
    first = json.loads((run_dir / "report.json").read_text())["splits"]
    second = json.loads((again / "report.json").read_text())["splits"]
    assert first == second


def test_run_config_is_fully_resolved(run_dir):
    import dataclasses

    import yaml

    from mmoe_tf.config import ModelConfig
    from mmoe_tf.task_specs import TaskSpec
    from training.config import MODEL_EXCLUDED_FIELDS, unused_model_fields

    saved = yaml.safe_load((run_dir / "run_config.yaml").read_text())
    expected_fields = {f.name for f in dataclasses.fields(ModelConfig)} - set(MODEL_EXCLUDED_FIELDS)
    expected_fields -= set(unused_model_fields("mmoe", "mlp"))  # cross_layers and the ple-only fields
    assert {"cross_layers", "num_shared_experts", "num_task_experts"}.isdisjoint(expected_fields)
    assert set(saved["model"]) == expected_fields | {"tasks"}
    assert saved["model"]["num_experts"] == 3 and saved["model"]["expert_dropout"] == 0.2
    task_fields = {f.name for f in dataclasses.fields(TaskSpec)} - {"name"}
    assert set(saved["model"]["tasks"]) == {"click", "satisfaction"}
    assert all(set(fields) == task_fields for fields in saved["model"]["tasks"].values())
    assert saved["output_dir"] == str(run_dir.resolve())


def test_finished_run_is_not_clobbered(run_dir, capsys):
    before = (run_dir / "report.json").read_text()
    assert _cli_train(run_dir) == 2
    assert "holds a finished run" in capsys.readouterr().err
    assert (run_dir / "report.json").read_text() == before


def test_evaluate_and_gates_default_to_the_runs_test_split(run_dir, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(run_dir / "model.keras"), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("scoring embedded sample (data/sample/impressions.csv.gz), split test: 60 rows")
    saved = json.loads(out.read_text())
    assert saved["split"] == "test" and saved["data"] == "default"
    # the very rows and metrics the training report measured on its test split
    assert saved["splits"]["test"] == json.loads((run_dir / "report.json").read_text())["splits"]["test"]

    args = ["evaluate", "--model", str(run_dir / "model.keras"), "--split", "validation", "--output", str(out)]
    assert main(args) == 2  # never overwrites an earlier result
    assert f"--output: {out} exists" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    assert json.loads(out.read_text())["splits"]["validation"]["click"]["rows"] == 60
    assert "split validation: 60 rows" in capsys.readouterr().out

    assert main(["gates", "--model", str(run_dir / "model.keras"), "--output-dir", str(tmp_path / "g")]) == 0
    assert "split test: 60 rows" in capsys.readouterr().out
    assert json.loads((tmp_path / "g" / "gates.json").read_text())["num_examples"] == 60
    assert (tmp_path / "g" / "gates.png").exists()
    assert main(["gates", "--model", str(run_dir / "model.keras"), "--split", "all"]) == 0
    assert "split all: 600 rows" in capsys.readouterr().out


def test_evaluate_another_table(run_dir, repo_root, tmp_path, capsys):
    out = tmp_path / "eval.json"
    code = main(
        [
            "evaluate",
            "--model",
            str(run_dir / "model.keras"),
            "--data",
            str(repo_root / "data/sample/impressions.csv"),
            "--schema",
            str(repo_root / "data/sample/impressions.schema.yaml"),
            "--output",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())["splits"]["all"]
    assert report["click"]["rows"] == 4000 and report["click"]["auc"] > 0.5
    assert "impressions.csv, split all: 4000 rows" in capsys.readouterr().out


def test_evaluate_without_a_run_folder_needs_data(run_dir, tmp_path, capsys):
    import shutil

    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(run_dir / "model.keras", lone / "model.keras")
    assert main(["evaluate", "--model", str(lone / "model.keras")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --data: required") and "run_config.yaml" in err
    assert main(["evaluate", "--model", str(lone / "model.keras"), "--data", "default"]) == 0
    assert "split all: 60000 rows" in capsys.readouterr().out


def test_a_missing_optional_feature_is_an_error_unless_allowed(run_dir, repo_root, tmp_path, capsys):
    """The issue's case: a feature with a schema default, absent from the scored table, must not silently default."""
    import yaml

    schema = yaml.safe_load((repo_root / "data/sample/impressions.schema.yaml").read_text())
    for feature in schema["features"]:
        if feature["name"] == "item_price":
            feature["default"] = 0.0
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(schema))
    df = pd.read_csv(repo_root / "data/sample/impressions.csv").drop(columns=["item_price"]).head(300)
    df.to_csv(tmp_path / "no_price.csv", index=False)
    args = ["evaluate", "--model", str(run_dir / "model.keras"), "--data", str(tmp_path / "no_price.csv")]
    args += ["--schema", str(tmp_path / "s.yaml")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "missing column 'item_price' (feature 'item_price', optional: default 0.0)" in err
    assert "--allow-missing-features" in err and "Traceback" not in err
    assert main([*args, "--allow-missing-features"]) == 0
    assert "split all: 300 rows" in capsys.readouterr().out


def test_a_schema_without_a_model_feature_is_refused(run_dir, repo_root, tmp_path, capsys):
    import yaml

    schema = yaml.safe_load((repo_root / "data/sample/impressions.schema.yaml").read_text())
    schema["features"] = [f for f in schema["features"] if f["name"] != "position"]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(schema))
    args = [
        "evaluate",
        "--model",
        str(run_dir / "model.keras"),
        "--data",
        "default",
        "--schema",
        str(tmp_path / "s.yaml"),
    ]
    assert main(args) == 2
    assert "lacks feature(s) ['position'] that the model was trained on" in capsys.readouterr().err


def test_unlogged_monitor_names_the_logged_metrics(tmp_path, capsys):
    assert _cli_train(tmp_path / "typo", ["train.epochs=1", "train.early_stopping.monitor=val_clik_auc"]) == 2
    err = capsys.readouterr().err
    assert "train.early_stopping.monitor: 'val_clik_auc' is not a logged metric; logged: [" in err
    assert "'val_click_auc'" in err and "Traceback" not in err


def test_bad_config_is_one_line_error(tmp_path, capsys):
    assert main(["train", "--set", "model.architecture=transformer", "--output-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: model.architecture:") and "Traceback" not in err


def test_thread_flags_are_checked_and_explicit_ones_must_apply(tmp_path, capsys):
    """Bad counts are one-line errors; explicit flags the already-started runtime cannot take are too
    (the defaults are skipped then: this test process has run TensorFlow)."""
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # the runtime has started
    out = str(tmp_path / "x")
    assert main(["train", "--intra-op-threads", "-1", "--output-dir", out]) == 2
    assert "intra_op_threads must be a whole number" in capsys.readouterr().err
    assert main(["train", "--inter-op-threads", "7", "--output-dir", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --intra-op-threads/--inter-op-threads:") and "already started" in err


def test_esmm_with_uncertainty_weights(tmp_path):
    cfg = load_run_config(
        "training/configs/default.yaml",
        [
            *TINY,
            "model.loss_balancing=uncertainty",
            "model.tasks.satisfaction.conditional_on=click",
            "train.early_stopping.patience=0",
        ],
    )
    result = train(cfg, output_dir=tmp_path / "esmm")
    # learned weights: trainable variables of the model, logged every epoch, finite, moving
    assert result.model.loss_balancer.trainable_weights
    history = pd.read_csv(tmp_path / "esmm" / "history.csv")
    weights = history[["loss_weight_click", "loss_weight_satisfaction"]].to_numpy()
    assert weights.shape == (2, 2) and np.isfinite(weights).all() and (weights > 0).all()
    assert not np.allclose(weights, 1.0)  # they were trained away from their initial value
    # the conditional task is selected through its joint target's AUC
    mean_auc = (history["val_click_auc"] + history["val_click_and_satisfaction_auc"]) / 2
    assert history["val_mean_task_auc"].tolist() == pytest.approx(mean_auc.tolist())
    assert set(result.report["training"]["per_task_best_epochs"]) == {"click", "click_and_satisfaction"}
    assert result.report["training"]["loss_weights"]["click"] == pytest.approx(weights[-1, 0], rel=1e-5)
    # ESMM report: conditional head on clicked rows, joint output on all rows
    test = result.report["splits"]["test"]
    assert test["satisfaction"]["role"] == "conditional"
    assert test["satisfaction"]["observed"] == test["click"]["positives"]
    joint = test["click_and_satisfaction"]
    assert joint["role"] == "joint" and joint["observed"] == test["click"]["rows"]
    assert joint["positives"] <= test["satisfaction"]["positives"] and joint["auc"] is not None


def test_esmm_targets_fn_adds_joint_labels():
    from data import make_dataset
    from data.sample import load_default
    from training.runner import model_config_for, targets_fn_for

    df, schema = load_default()
    cfg = load_run_config(None, ["model.tasks.satisfaction.conditional_on=click"])
    config = model_config_for(schema, cfg)
    assert targets_fn_for(model_config_for(schema, load_run_config())) is None
    ds = make_dataset(df.head(200), schema, batch_size=200, targets_fn=targets_fn_for(config))
    _, labels, weights = next(iter(ds))
    joint = labels["click_and_satisfaction"].numpy()
    click, sat = labels["click"].numpy(), np.nan_to_num(labels["satisfaction"].numpy())
    assert np.array_equal(joint, click * sat * (weights["satisfaction"].numpy() > 0))
    assert np.array_equal(weights["click_and_satisfaction"].numpy(), weights["click"].numpy())


def test_architecture_without_gates_is_reported_not_crashed():
    from data.sample import load_default
    from mmoe_tf.models import build_model
    from training.gate_analysis import analyze_model_gates
    from training.runner import model_config_for

    df, schema = load_default()
    config = model_config_for(schema, load_run_config(None, ["model.architecture=shared_bottom"]))
    from data import feature_arrays

    features = feature_arrays(df.head(50), schema)
    analysis = analyze_model_gates(build_model(config, adapt_data=features), features)
    assert analysis["available"] is False and "shared_bottom" in analysis["reason"]


KILL_AFTER_EPOCH_2 = """
import os, sys
import tensorflow as tf
from training.config import load_run_config
from training.runner import train

class Kill(tf.keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:  # epoch 2 finished and backed up (BackupAndRestore runs first)
            os._exit(17)

train(load_run_config("training/configs/default.yaml", sys.argv[2:]), output_dir=sys.argv[1], callbacks=[Kill()])
"""


def test_resume_after_kill(repo_root, tmp_path):
    out = tmp_path / "resume"
    overrides = [*TINY, "train.epochs=4", "train.early_stopping.patience=0"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_EPOCH_2, str(out), *overrides],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 17, proc.stderr[-3000:]
    assert (out / "backup").is_dir() and not (out / "model.keras").exists()
    assert list(pd.read_csv(out / "history.csv")["epoch"]) == [0, 1]

    result = train(load_run_config("training/configs/default.yaml", overrides), output_dir=out)
    assert result.initial_epoch == 2  # resumed from the last finished epoch
    assert result.history["loss"] and len(result.history["loss"]) == 2  # only epochs 3 and 4 ran
    assert list(pd.read_csv(out / "history.csv")["epoch"]) == [0, 1, 2, 3]
    assert result.report["training"]["initial_epoch"] == 2 and (out / "model.keras").exists()
    assert math.isfinite(result.report["splits"]["test"]["click"]["log_loss"])


def test_resume_refuses_a_different_config(tmp_path):
    out = tmp_path / "half"
    out.mkdir()
    (out / "run_config.yaml").write_text("train: {epochs: 99}\n")
    with pytest.raises(FileExistsError, match="different config"):
        train(load_run_config(None, TINY), output_dir=out)


def test_evaluate_bad_data_names_the_column(run_dir, repo_root, tmp_path, capsys):
    df = pd.read_csv(repo_root / "data/sample/impressions.csv").drop(columns=["device"]).head(20)
    df.to_csv(tmp_path / "broken.csv", index=False)
    code = main(["evaluate", "--model", str(run_dir / "model.keras"), "--data", str(tmp_path / "broken.csv")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "device" in err and "Traceback" not in err
    assert main(["evaluate", "--model", str(tmp_path / "nope.keras")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_baseline_selects_on_the_same_monitor(tmp_path):
    """The baseline is trained with the run's callbacks, the built-in val_mean_task_auc monitor included."""
    out = tmp_path / "with-baseline"
    assert _cli_train(out, ["train.epochs=2", "train.baseline=single_task", "gates.enabled=false"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["baseline"]["architecture"] == "single_task"
    assert report["baseline"]["training"]["monitor"] == report["training"]["monitor"] == "val_mean_task_auc"
    assert (out / "baseline" / "model.keras").is_file()
