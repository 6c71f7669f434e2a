"""Every path argument of every CLI command is relative to the caller's working directory, not the repository's.

One tiny run, all from a temporary working directory outside the repository and with relative paths only: ``train``
(config, data, schema, output dir), ``evaluate`` (model, output), ``gates`` (model, output dir), ``serving export``
(model, base path, warm-up data — the verification child runs elsewhere), ``serving serve`` (base path),
``serving predict`` (data), ``training.experiments`` (figures dir), and a repeat of the run from its own
``run_config.yaml`` started from yet another directory.
"""

from __future__ import annotations

import json
import shutil

import pytest
import requests

from serving.cli import main as serving_main
from serving.testing import ServerProcess
from training.cli import main as training_main

TINY = ["data.max_rows=600", "train.epochs=1", "train.verbose=0", "model.num_experts=2", "model.expert_units=[8]"]


def _sets(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, repo_root):
    """A working directory outside the repo holding copies of the example table, its schema and a config."""
    work = tmp_path_factory.mktemp("cwd")
    (work / "in").mkdir()
    shutil.copy(repo_root / "docs/examples/my.csv", work / "in/my.csv")
    shutil.copy(repo_root / "docs/examples/my.schema.yaml", work / "in/my.schema.yaml")
    (work / "cfg").mkdir()
    shutil.copy(repo_root / "training/configs/default.yaml", work / "cfg/run.yaml")
    return work


@pytest.fixture(scope="module")
def trained(workdir):
    """``train`` with only relative paths, run from ``workdir``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workdir)
        args = ["train", "--config", "cfg/run.yaml", "--output-dir", "runs/a", "--quiet"]
        code = training_main([*args, *_sets([*TINY, "data.path=in/my.csv", "data.schema=in/my.schema.yaml"])])
    assert code == 0
    return workdir / "runs" / "a"


def test_train_evaluate_gates_with_relative_paths(workdir, trained, monkeypatch, capsys):
    assert (trained / "model.keras").is_file()
    monkeypatch.chdir(workdir)
    assert training_main(["evaluate", "--model", "runs/a/model.keras", "--output", "out/eval.json"]) == 0
    report = json.loads((workdir / "out/eval.json").read_text())
    assert report["split"] == "test" and report["data"] == str(workdir / "in/my.csv")
    assert training_main(["gates", "--model", "runs/a/model.keras", "--output-dir", "out/gates"]) == 0
    assert (workdir / "out/gates/gates.json").is_file()
    assert "scoring " in capsys.readouterr().out


def test_repeat_a_run_from_its_run_config_elsewhere(workdir, trained, monkeypatch):
    """``run_config.yaml`` holds absolute paths and every field: it repeats the run from any directory."""
    other = workdir / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    assert training_main(["train", "--config", "../runs/a/run_config.yaml", "--output-dir", "b", "--quiet"]) == 0
    first = json.loads((trained / "report.json").read_text())["splits"]
    again = json.loads((other / "b/report.json").read_text())["splits"]
    assert first == again


def test_export_serve_predict_with_relative_paths(workdir, trained, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    args = ["export", "--model", "runs/a/model.keras", "--base-path", "export", "--model-name", "mmoe"]
    assert serving_main([*args, "--warmup-data", "in/my.csv"]) == 0
    assert (workdir / "export/mmoe/1/saved_model.pb").is_file()
    assert not [p for p in (workdir / "export/mmoe").iterdir() if p.name.startswith(".tmp")]
    with ServerProcess(["--base-path", "export", "--model-name", "mmoe"], cwd=workdir) as server:
        status = requests.get(f"{server.url}/v1/models/mmoe", timeout=10).json()
        assert status["model_version_status"][0]["state"] == "AVAILABLE"
        capsys.readouterr()
        predict = ["predict", "--url", server.url, "--model-name", "mmoe", "--data", "in/my.csv", "--rows", "2"]
        assert serving_main(predict) == 0
    assert "click" in capsys.readouterr().out


def test_experiment_figures_dir_is_relative(workdir, monkeypatch):
    from training.experiments.__main__ import main as experiments_main

    monkeypatch.chdir(workdir)
    args = ["--rows", "400", "--epochs", "1", "--seeds", "1", "--correlations", "0.5", "--figures-dir", "figs"]
    assert experiments_main(["gates_vs_relatedness", *args, "--results-dir", "results"]) == 0
    assert (workdir / "figs/gates_vs_relatedness.png").is_file()
    assert (workdir / "results/gates_vs_relatedness.json").is_file()  # not the repository's docs/results
