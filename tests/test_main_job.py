"""The README's main job, ``bash scripts/quickstart.sh``, run for real at tiny size: set-up (cached environment) →
train → export → local server → REST predictions with curl and the Python client.

The REST answer must equal the in-process Keras prediction for the same rows: the SavedModel served over HTTP is the
model that was trained, with its preprocessing inside.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import requests

from serving.client import PredictClient
from serving.testing import ServerProcess

TINY_TRAIN = "data.max_rows=600 train.epochs=2 model.num_experts=2"


def _run(args: list[str], cwd, env=None) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, (
        f"{args[:4]} failed:\nSTDOUT:\n{result.stdout[-3000:]}\nSTDERR:\n{result.stderr[-3000:]}"
    )
    return result


@pytest.fixture(scope="module")
def main_job(tmp_path_factory, repo_root):
    """Runs scripts/quickstart.sh into a temporary MMOE_OUTPUT, then exports once more through the CLI.

    Returns ``(run_dir, export_base, quickstart output)`` (stdout then stderr).
    """
    out = tmp_path_factory.mktemp("main-job")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # the quick start's own default
    env.update(MMOE_OUTPUT=str(out), MMOE_TRAIN_OVERRIDES=TINY_TRAIN)
    quickstart = _run(["bash", "scripts/quickstart.sh"], repo_root, env)
    run_dir = (out / "latest").resolve()
    export_base = out / "export"
    # a re-run exports a new version next to the old one, clobbering nothing
    _run(
        [
            sys.executable,
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
    return run_dir, export_base, quickstart.stdout + quickstart.stderr


def test_quickstart_prints_each_step(main_job):
    run_dir, _, stdout = main_job
    for step in ("== 1/4 train", "== 2/4 export", "== 3/4 start the local", "== 4/4 REST predictions", "== done."):
        assert step in stdout, f"quickstart output lacks {step!r}"
    curl_answer = next(line for line in stdout.splitlines() if line.startswith('{"predictions"'))
    predictions = json.loads(curl_answer)["predictions"]
    assert len(predictions) == 3 and set(predictions[0]) == {"click", "satisfaction"}
    assert json.loads((run_dir / "request.json").read_text())["instances"][0].keys() >= {"user_id", "item_price"}
    # the single-task baseline, trained on the same splits, printed next to each task
    assert "test split: mmoe vs the single_task baseline (same data, same training budget)" in stdout
    report = json.loads((run_dir / "report.json").read_text())
    assert report["baseline"]["architecture"] == "single_task"
    for task in ("click", "satisfaction"):
        ours, base = report["splits"]["test"][task], report["baseline"]["splits"]["test"][task]
        assert ours["observed"] == base["observed"] > 0 and 0 <= base["auc"] <= 1
        row = next(line for line in stdout.splitlines() if line.startswith(task) and " auc " in line)
        assert f"{ours['auc']:.4f}" in row and f"{base['auc']:.4f}" in row
    assert (run_dir / "baseline" / "model.keras").is_file()
    # readable: no TensorFlow C++ log lines without --verbose (start-up noise, oneDNN's notice at the first step)
    native_log = re.compile(
        r"^(WARNING: All log messages before absl::InitializeLog|[IWE]\d{4} [\d:. ]+\d+ \w+\.cc:\d+\])", re.M
    )
    assert not native_log.search(stdout), native_log.search(stdout).group(0)


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
