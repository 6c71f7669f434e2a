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


TYPO = "missing column 'device' (feature 'device', optional: default 'unknown'); did you mean 'devcie'?"


@pytest.fixture(scope="module")
def typo_csv(workdir):
    """``in/my.csv`` with ``device`` misspelt ``devcie`` (the issue's case)."""
    import pandas as pd

    frame = pd.read_csv(workdir / "in/my.csv").head(300).rename(columns={"device": "devcie"})
    frame.to_csv(workdir / "in/typo.csv", index=False)
    return "in/typo.csv"


def test_evaluate_and_gates_refuse_a_misspelt_column_as_train_does(
    workdir, trained, typo_csv, monkeypatch, capsys, caplog
):
    monkeypatch.chdir(workdir)
    for command in ("evaluate", "gates"):
        assert training_main([command, "--model", "runs/a/model.keras", "--data", typo_csv]) == 2
        err = capsys.readouterr().err
        assert TYPO in err and "--allow-missing-features" in err and "Traceback" not in err, err
    args = ["evaluate", "--model", "runs/a/model.keras", "--data", typo_csv, "--allow-missing-features"]
    assert training_main(args) == 0
    assert "split all: 300 rows" in capsys.readouterr().out
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and r.name == "data"]
    assert len(warned) == 1 and "'device' (default 'unknown')" in warned[0], warned  # names the defaulted column


def test_predict_refuses_a_misspelt_input_column(workdir, typo_csv, monkeypatch, capsys):
    """``serving predict`` checks its table against the served signature's inputs with the same message."""
    import serving.client

    class Client:
        def __init__(self, *args, **kwargs):
            pass

        def signature_inputs(self, signature_name=None):
            return {name: ("DT_STRING", [-1, 1]) for name in ("user_id", "item_id", "device")}

        def predict(self, frame):  # pragma: no cover - must not be reached
            raise AssertionError("predict sent a request for a table missing an input")

    monkeypatch.setattr(serving.client, "PredictClient", Client)
    monkeypatch.chdir(workdir)
    assert serving_main(["predict", "--url", "http://127.0.0.1:1", "--data", typo_csv]) != 0
    assert "missing column 'device' (model input 'device'); did you mean 'devcie'?" in capsys.readouterr().err


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_no_command_overwrites_a_runs_results(workdir, trained, monkeypatch, capsys):
    """README: run folders are "never overwritten". evaluate --output and gates --output-dir into the run folder
    refuse, naming the file and --force; train into it refuses; nothing in the folder changes."""
    monkeypatch.chdir(workdir)
    before = _snapshot(trained)
    assert training_main(["evaluate", "--model", "runs/a/model.keras", "--output", "runs/a/report.json"]) == 2
    err = capsys.readouterr().err
    assert "runs/a/report.json" in err and "--force" in err
    assert training_main(["gates", "--model", "runs/a/model.keras", "--output-dir", "runs/a"]) == 2
    err = capsys.readouterr().err
    assert "gates.json" in err and "--force" in err
    assert training_main(["train", "--output-dir", "runs/a", "--quiet", *_sets(TINY)]) == 2
    assert "finished run" in capsys.readouterr().err
    assert _snapshot(trained) == before
    # a new name in the run folder is fine; --force replaces an earlier result knowingly
    assert training_main(["evaluate", "--model", "runs/a/model.keras", "--output", "runs/a/eval_test.json"]) == 0
    assert training_main(["evaluate", "--model", "runs/a/model.keras", "--output", "runs/a/eval_test.json"]) == 2
    assert "--force" in capsys.readouterr().err
    args = ["evaluate", "--model", "runs/a/model.keras", "--output", "runs/a/eval_test.json", "--force"]
    assert training_main(args) == 0
    assert training_main(["gates", "--model", "runs/a/model.keras", "--output-dir", "runs/a/g"]) == 0
    assert training_main(["gates", "--model", "runs/a/model.keras", "--output-dir", "runs/a/g"]) == 2
    for name in ("eval_test.json", "eval_test.txt"):
        (trained / name).unlink()
    shutil.rmtree(trained / "g")
    assert _snapshot(trained) == before
