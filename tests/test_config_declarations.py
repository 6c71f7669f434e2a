"""The run config's declarations are the single source: fields mirror ModelConfig, help/README/JSON Schema come from
them, every shipped config validates, ``python -m training config`` works, and config imports no TensorFlow."""

import dataclasses
import json
import subprocess
import sys

import pytest

from mmoe_tf.config import ModelConfig
from mmoe_tf.task_specs import TaskSpec
from training.cli import main as training_main
from training.config import (
    MODEL_EXCLUDED_FIELDS,
    TASK_OVERRIDE_FIELDS,
    ModelSection,
    RunConfig,
    RunConfigError,
    config_reference,
    json_schema,
    load_run_config,
    unused_model_fields,
)
from training.config.reference import reference_entries


def test_model_section_declares_every_model_config_field():
    library = [f.name for f in dataclasses.fields(ModelConfig) if f.name not in MODEL_EXCLUDED_FIELDS]
    assert [name for name in ModelSection.model_fields if name != "tasks"] == library
    assert set(TASK_OVERRIDE_FIELDS) == {f.name for f in dataclasses.fields(TaskSpec)} - {"name"}


def test_every_key_has_a_description_in_help():
    help_text = config_reference()
    for entry in reference_entries():
        assert entry.description, f"{entry.key} has no description"
        assert f"  {entry.key} = " in help_text
    for key in ("model.num_shared_experts", "model.num_task_experts", "model.feature_crosses", "model.embedding_l2"):
        assert key in help_text
    assert "ple" in help_text.split("model.architecture", 1)[1].split("\n")[0]


def test_architecture_marks_decide_what_is_unused():
    assert set(unused_model_fields("shared_bottom")) == {
        "num_experts",
        "num_shared_experts",
        "num_task_experts",
        "cross_layers",
        "gate_hidden_units",
        "gate_temperature",
        "gate_dropout",
        "gate_balance_weight",
        "num_levels",
    }
    assert set(unused_model_fields("ple", "cross")) == {"num_experts"}
    assert set(unused_model_fields("mmoe")) == {"num_shared_experts", "num_task_experts", "cross_layers"}


def test_shipped_configs_validate(repo_root):
    for path in sorted((repo_root / "training/configs").glob("*.yaml")):
        cfg = load_run_config(path)
        assert RunConfig.from_dict(cfg.to_dict()) == cfg, path.name


def test_empty_sections_take_their_defaults(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data:\ntrain:\n  early_stopping:\nmodel:\ngates:\n")
    assert load_run_config(path) == RunConfig()
    path.write_text("model:\n  tasks:\n")
    assert load_run_config(path) == RunConfig()


def test_replace_revalidates():
    cfg = load_run_config(None)
    assert dataclasses.replace(cfg, output_dir="x").output_dir == "x"
    with pytest.raises(ValueError, match="epochs"):
        dataclasses.replace(cfg.train, epochs=0)


def test_errors_report_the_first_bad_key_only_once_all_fields_conform():
    """A type error wins over the architecture rule, and the rule names every refused field."""
    with pytest.raises(RunConfigError, match=r"^model\.num_experts: expected an integer"):
        load_run_config(None, ["model.architecture=shared_bottom", "model.num_experts=x"])
    with pytest.raises(RunConfigError, match=r"^model: architecture 'mmoe' does not use num_task_experts; remove it"):
        load_run_config(None, ["model.num_task_experts=3"])


def _schema_errors(schema, value, path="$"):
    """A tiny JSON Schema checker for the keywords pydantic emits here (no jsonschema package in the environment)."""
    if "$ref" in schema:
        return _schema_errors(ROOT["$defs"][schema["$ref"].split("/")[-1]], value, path)
    if "anyOf" in schema:
        return [] if any(not _schema_errors(s, value, path) for s in schema["anyOf"]) else [f"{path}: no anyOf"]
    kind = schema.get("type")
    checks = {
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "null": value is None,
    }
    if kind and not checks[kind]:
        return [f"{path}: not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: not in enum"]
    if "minimum" in schema and value < schema["minimum"]:
        return [f"{path}: below minimum"]
    errors = []
    if kind == "object":
        props = schema.get("properties", {})
        for key, item in value.items():
            if key in props:
                errors += _schema_errors(props[key], item, f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}.{key}: unknown")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += _schema_errors(schema["additionalProperties"], item, f"{path}.{key}")
    if kind == "array" and "items" in schema:
        for i, item in enumerate(value):
            errors += _schema_errors(schema["items"], item, f"{path}[{i}]")
    return errors


ROOT = json_schema()


def test_json_schema_accepts_the_shipped_configs_and_catches_typos(repo_root):
    from training.config import load_yaml

    for path in sorted((repo_root / "training/configs").glob("*.yaml")):
        assert _schema_errors(ROOT, load_yaml(path.read_text())) == [], path.name
    assert _schema_errors(ROOT, {"train": {"epoch": 3}}) == ["$.train.epoch: unknown"]
    assert _schema_errors(ROOT, {"model": {"architecture": "transformer"}}) == ["$.model.architecture: not in enum"]
    assert _schema_errors(ROOT, {"model": {"feature_crosses": [["a", "b"], {"features": ["a", "b"]}]}}) == []
    described = ROOT["$defs"]["TrainConfig"]["properties"]["epochs"]
    assert described["minimum"] == 1 and described["default"] == 15 and described["description"]


def test_committed_schema_is_current(repo_root):
    path = repo_root / "training/configs/run_config.schema.json"
    assert json.loads(path.read_text()) == ROOT, "run: python -m training config --schema " + str(path)


def test_config_command(tmp_path, capsys, repo_root):
    import yaml

    assert training_main(["config", "--set", "model.architecture=ple", "--set", "train.epochs=2"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["architecture"] == "ple" and "num_experts" not in printed["model"]
    assert printed["train"]["epochs"] == 2
    assert training_main(["config", "--set", "train.epoch=2"]) == 2
    assert "error: train.epoch: unknown key; did you mean 'epochs'?" in capsys.readouterr().err
    out = tmp_path / "schema.json"
    assert training_main(["config", "--schema", str(out)]) == 0
    assert json.loads(out.read_text()) == ROOT
    assert training_main(["config", "--schema", str(out), "--check"]) == 0
    readme = tmp_path / "README.md"
    readme.write_text(
        "intro\n<!-- config-reference:start (python -m training config --readme README.md) -->\nold\n"
        "<!-- config-reference:end -->\nrest\n"
    )
    assert training_main(["config", "--readme", str(readme), "--check"]) == 1
    assert training_main(["config", "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("rest\n") and "| `train.epochs` | `15` |" in text
    assert training_main(["config", "--readme", str(readme), "--check"]) == 0


def test_monitor_rules_need_no_tensorflow_and_config_no_callbacks(repo_root):
    """The monitor rules are TensorFlow-free; the run config uses them without importing the Keras callbacks."""
    checks = {
        "training.monitor": "'tensorflow' not in sys.modules",
        "training.config": "'training.callbacks' not in sys.modules",
    }
    for module, check in checks.items():
        code = f"import sys, {module}; assert {check}"
        proc = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (module, proc.stderr[-1000:])
