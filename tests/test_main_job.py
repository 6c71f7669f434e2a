"""The README's main job at tiny size: train (CLI) → export (CLI) → local server → REST predict.

The REST answer must equal the in-process Keras prediction for the same rows: the SavedModel served over HTTP is the
model that was trained, with its preprocessing inside.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import requests

from serving.client import PredictClient
from serving.testing import ServerProcess

TINY_TRAIN = [
    "--set",
    "data.max_rows=600",
    "--set",
    "train.epochs=2",
    "--set",
    "train.verbose=0",
    "--set",
    "model.num_experts=2",
]


def _run(args: list[str], cwd) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (
        f"{args[:3]} failed:\nSTDOUT:\n{result.stdout[-3000:]}\nSTDERR:\n{result.stderr[-3000:]}"
    )
    return result


@pytest.fixture(scope="module")
def main_job(tmp_path_factory, repo_root):
    """Runs the main job's train and export steps through their CLIs, as scripts/quickstart.sh does."""
    out = tmp_path_factory.mktemp("main-job")
    run_dir = out / "runs" / "tiny"
    train = _run(
        [
            "-m",
            "training",
            "train",
            "--config",
            "training/configs/default.yaml",
            "--output-dir",
            str(run_dir),
            *TINY_TRAIN,
        ],
        repo_root,
    )
    export_base = out / "export"
    for _ in range(2):  # a re-run exports a new version next to the old one, clobbering nothing
        _run(
            [
                "-m",
                "serving",
                "export",
                "--model",
                str(run_dir / "model.keras"),
                "--base-path",
                str(export_base),
                "--model-name",
                "mmoe",
                "--warmup-data",
                "data/sample/impressions.csv",
            ],
            repo_root,
        )
    return run_dir, export_base, train.stdout


def test_training_writes_every_artifact(main_job):
    run_dir, _, stdout = main_job
    for name in (
        "model.keras",
        "report.json",
        "report.txt",
        "gates.json",
        "gates.png",
        "history.csv",
        "run_config.yaml",
    ):
        assert (run_dir / name).is_file(), f"missing {name} in the run folder"
    assert any((run_dir / "tensorboard").rglob("events.out.tfevents.*")), "no TensorBoard event files"
    report = json.loads((run_dir / "report.json").read_text())
    for split in ("validation", "test"):
        click, satisfaction = report["splits"][split]["click"], report["splits"][split]["satisfaction"]
        assert click["observed"] == click["rows"] > 0, "every impression has a click label"
        assert 0 < satisfaction["observed"] < satisfaction["rows"], "satisfaction is only observed after a click"
        for entry in (click, satisfaction):
            assert 0.0 <= entry["auc"] <= 1.0 and entry["log_loss"] > 0
    assert "click" in stdout and "satisfaction" in stdout, "the per-task table was not printed"


def test_export_versions_accumulate(main_job):
    _, export_base, _ = main_job
    versions = sorted(int(p.name) for p in (export_base / "mmoe").iterdir() if p.name.isdigit())
    assert versions == [1, 2]
    assert not [p for p in (export_base / "mmoe").iterdir() if not p.name.isdigit()], "temporary export dirs left over"


def test_rest_prediction_equals_in_process_keras(main_job):
    import mmoe_tf
    from data import feature_arrays
    from data.sample import load_default

    run_dir, export_base, _ = main_job
    frame, schema = load_default()
    rows = frame.iloc[100:108].reset_index(drop=True)
    model = mmoe_tf.load_model(run_dir / "model.keras")
    expected = model.predict(feature_arrays(rows, schema), verbose=0)

    with ServerProcess(["--base-path", str(export_base), "--model-name", "mmoe"]) as server:
        status = requests.get(f"{server.url}/v1/models/mmoe", timeout=10).json()
        assert status["model_version_status"][0] == {
            "version": "2",
            "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""},
        }
        client = PredictClient(server.url, "mmoe")
        answer = client.predict(rows[list(schema.feature_columns)])
    for task in ("click", "satisfaction"):
        np.testing.assert_allclose(answer[task].to_numpy(), np.asarray(expected[task]).reshape(-1), atol=1e-5)
        assert ((answer[task] > 0) & (answer[task] < 1)).all()
