"""Run config: defaults, files (YAML/TOML), --set overrides and errors that name the bad key."""

import pytest

from mmoe_tf.config import ModelConfig
from mmoe_tf.feature_specs import FeatureSpec
from mmoe_tf.task_specs import TaskSpec
from training.cli import build_parser
from training.config import RunConfig, RunConfigError, apply_task_overrides, load_run_config


def test_default_yaml_and_overrides(repo_root):
    cfg = load_run_config(
        repo_root / "training/configs/default.yaml",
        [
            "model.num_experts=8",
            "train.epochs=3",
            "model.expert_units=[16, 8]",
            "model.tasks.satisfaction.conditional_on=click",
            "data.max_rows=600",
        ],
    )
    assert cfg.model["num_experts"] == 8 and cfg.train.epochs == 3 and cfg.data.max_rows == 600
    assert cfg.model_overrides()["expert_units"] == (16, 8)
    assert cfg.task_overrides() == {"satisfaction": {"conditional_on": "click"}}
    assert RunConfig.from_dict(cfg.to_dict()) == cfg  # round-trips through run_config.yaml


def test_exponent_floats_are_numbers_in_overrides_and_yaml_files(repo_root, tmp_path):
    import yaml

    path = tmp_path / "run.yaml"
    path.write_text("model:\n  learning_rate: 5e-4\n  embedding_l2: 1E-5\n")
    cfg = load_run_config(path, ["model.gate_dropout=1e-1"])
    assert cfg.model["learning_rate"] == 5e-4 and cfg.model["embedding_l2"] == 1e-5 and cfg.model["gate_dropout"] == 0.1
    cfg = load_run_config(repo_root / "training/configs/default.yaml", ["model.learning_rate=1e-3"])
    assert cfg.model["learning_rate"] == 1e-3
    assert yaml.safe_load("1e-3") == "1e-3"  # PyYAML's own loader is left as it is


def test_toml_config(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[model]\narchitecture = "omoe"\n[train]\nepochs = 2\n[train.early_stopping]\npatience = 0\n')
    cfg = load_run_config(path)
    assert cfg.model["architecture"] == "omoe" and cfg.train.epochs == 2 and cfg.train.early_stopping.patience == 0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epoch=3", r"^train\.epoch: unknown key; did you mean 'epochs'\?"),
        ("data.split.methd=time", r"^data\.split\.methd: unknown key"),
        ("bogus=1", r"^bogus: unknown key"),
        ("model.num_expert=3", r"^model\.num_expert: unknown key; did you mean 'num_experts'"),
        ("train.epochs=three", r"^train\.epochs: expected an integer, got 'three'"),
        ("train.batch_size=1.5", r"^train\.batch_size: expected an integer"),
        ("model.num_experts=abc", r"^model\.num_experts: expected an integer"),
        ("model.expert_units=[a]", r"^model\.expert_units\[0\]: expected an integer, got 'a'"),
        ("model.expert_units=[]", r"^model\.expert_units: expected at least 1 item"),
        ("model.architecture=transformer", r"^model\.architecture: expected one of \('mmoe'.*got 'transformer'"),
        ("model.num_experts=0", r"^model\.num_experts: "),
        ("train.distribute=tpu", r"^train\.distribute: expected one of"),
        ("train.epochs=0", r"^train\.epochs: expected an integer >= 1"),
        ("data.split.fractions=[0.5, 0.6, 0.1]", r"^data\.split\.fractions: "),
        ("data.nan_policy=drop", r"^data\.nan_policy: expected one of"),
        ("data.path=x.csv", r"^data\.schema: required"),
        ("model.tasks.satisfaction.weight=2", r"^model\.tasks\.satisfaction\.weight: unknown key"),
        ("model.tasks.click.loss_weight=heavy", r"^model\.tasks\.click\.loss_weight: expected a number"),
        ("model.features=[]", r"^model\.features: features come from the data schema"),
        ("model.feature_crosses=3", r"^model\.feature_crosses: expected a list, got 3"),
        ("model.feature_crosses=[[a]]", r"^model\.feature_crosses\[0\]\.features: expected at least 2 item"),
        ("model.feature_crosses=[[a, a]]", r"^model\.feature_crosses\[0\]: FeatureCross \['a', 'a'\]: .*distinct"),
        (
            "model.feature_crosses=[{features: [a, b], bins: 8}]",
            r"^model\.feature_crosses\[0\]\.bins: unknown key; did you mean 'num_bins'",
        ),
        (
            "model.tasks.click.loss_weigth=2",
            r"^model\.tasks\.click\.loss_weigth: unknown key; did you mean 'loss_weight'",
        ),
        ("model.tasks.click.type=ranking", r"^model\.tasks\.click\.type: expected one of \('binary', 'regression'\)"),
        ("train.epochs=true", r"^train\.epochs: expected an integer, got True"),
        ("train.epochs='3'", r"^train\.epochs: expected an integer, got '3'"),
        ("train.verbose=3", r"^train\.verbose: expected an integer <= 2"),
        ("train.baseline=mlp", r"^train\.baseline: expected one of \('mmoe'.* or null, got 'mlp'"),
        ("data.max_rows=5", r"^data\.max_rows: expected an integer >= 10 or null, got 5"),
        ("model.embedding_l2=.inf", r"^model\.embedding_l2: expected a finite number"),
        ("model.expert_dropout=1.0", r"^model\.expert_dropout: expected a number < 1"),
        ("gates.enabled=1", r"^gates\.enabled: expected a boolean, got 1"),
        ("output_dir=3", r"^output_dir: expected a string or null, got 3"),
        ("train=3", r"^train: expected a mapping"),
    ],
)
def test_errors_name_the_bad_key(override, message):
    with pytest.raises(RunConfigError, match=message):
        load_run_config(None, [override])


def test_malformed_set_and_missing_file(tmp_path):
    with pytest.raises(RunConfigError, match="expected KEY=VALUE"):
        load_run_config(None, ["train.epochs"])
    with pytest.raises(RunConfigError, match="file not found"):
        load_run_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(RunConfigError, match="top level must be a mapping"):
        load_run_config(bad)


def test_task_overrides_applied_and_checked():
    base = ModelConfig(features=(FeatureSpec("x", "numeric"),), tasks=(TaskSpec("click"), TaskSpec("satisfaction")))
    esmm = apply_task_overrides(base, {"satisfaction": {"conditional_on": "click", "loss_weight": 2}})
    assert esmm.task("satisfaction").conditional_on == "click" and esmm.task("satisfaction").loss_weight == 2.0
    assert "click_and_satisfaction" in esmm.output_names
    with pytest.raises(RunConfigError, match=r"model\.tasks\.purchase: no such task"):
        apply_task_overrides(base, {"purchase": {"loss_weight": 1.0}})
    with pytest.raises(RunConfigError, match=r"model\.tasks"):
        apply_task_overrides(base, {"satisfaction": {"conditional_on": "nope"}})


def test_help_documents_options_and_config_keys(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    out = capsys.readouterr().out
    for text in (
        "--config",
        "--set",
        "--output-dir",
        "train.early_stopping.patience",
        "data.split.method",
        "model.tasks.<task>.<field>",
        "num_experts",
        "train.distribute",
    ):
        assert text in out
    for command in ("evaluate", "gates"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        out = capsys.readouterr().out
        assert "--model" in out and "--data" in out and "--schema" in out


def _flatten(node, prefix=""):
    out = {}
    for key, value in node.items():
        if isinstance(value, dict) and value and f"{prefix}{key}" != "model.tasks":
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_default_yaml_states_the_built_in_defaults(repo_root):
    """`train` without --config is the default config: every key default.yaml states is at its built-in default.

    (README's generated table lists every key; a new key needs no edit here.)
    """
    import yaml

    path = repo_root / "training/configs/default.yaml"
    assert load_run_config(path) == load_run_config(None)
    raw = _flatten(yaml.safe_load(path.read_text()))
    builtin = _flatten(RunConfig().to_dict())
    from training.config import model_defaults

    builtin.update({f"model.{k}": v for k, v in model_defaults().items()})  # incl. fields mmoe leaves out
    assert {k: builtin.get(k, "<not a key>") for k in raw} == raw
    assert len(raw) > 40, "default.yaml states (nearly) every key, annotated"


def test_readme_configuration_reference_is_generated_from_the_declarations(repo_root):
    """README's table is exactly what ``python -m training config --readme README.md`` writes, one row per key."""
    import re

    from training.config import render_readme

    text = (repo_root / "README.md").read_text()
    assert render_readme(text) == text, "README is stale: run python -m training config --readme README.md"
    rows = dict(re.findall(r"^\| `([\w.]+)` \| `([^`]*)` \|", text, re.M))
    assert rows["model.num_shared_experts"] == "2" and rows["train.early_stopping.patience"] == "3"
    assert "`ple`" in text[text.index("| `model.architecture`") :].split("\n")[0]


@pytest.mark.parametrize(
    ("overrides", "refused"),
    [
        (["model.architecture=shared_bottom", "model.num_experts=8"], "num_experts"),
        (
            ["model.architecture=single_task", "model.gate_temperature=2.0", "model.num_levels=2"],
            "gate_temperature, num_levels",
        ),
        (["model.architecture=shared_bottom", "model.gate_dropout=0.1"], "gate_dropout"),
        (["model.cross_layers=3"], "cross_layers"),
    ],
)
def test_fields_an_architecture_does_not_use_are_refused(overrides, refused):
    with pytest.raises(RunConfigError, match=rf"^model: architecture '\w+' does not use {refused}; remove"):
        load_run_config(None, overrides)


def test_harmless_defaults_of_unused_fields_are_left_out(repo_root):
    """default.yaml (num_experts: 4, the default) with shared_bottom is fine; the field is not written."""
    cfg = load_run_config(repo_root / "training/configs/default.yaml", ["model.architecture=shared_bottom"])
    assert "num_experts" not in cfg.model and "gate_temperature" not in cfg.model and "cross_layers" not in cfg.model
    assert cfg.model["expert_units"] == [32]
    cross = load_run_config(None, ["model.expert_type=cross", "model.cross_layers=3"])
    assert cross.model["cross_layers"] == 3
    assert "num_experts" in load_run_config(None, ["model.architecture=omoe"]).model


def test_tensorflow_startup_log_hidden_unless_verbose(repo_root):
    """``python -m training`` prints no TensorFlow C++ start-up lines (absl notice, CUDA probing) unless --verbose."""
    import os
    import re
    import subprocess
    import sys

    noise = re.compile(
        r"^(WARNING: All log messages before absl::InitializeLog|[IWE]\d{4} [\d:. ]+\d+ \w+\.cc:\d+\])", re.M
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    runs = {}
    for flag in ([], ["--verbose"]):
        proc = subprocess.run(
            [sys.executable, "-m", "training", "gates", "--help", *flag],
            cwd=repo_root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs[bool(flag)] = proc.stdout + proc.stderr
    assert not noise.search(runs[False]), runs[False][:2000]
    assert noise.search(runs[True]), "expected TensorFlow's start-up log with --verbose on this CPU-only machine"
