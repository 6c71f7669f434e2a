"""Run configuration: one YAML/TOML file plus ``--set a.b=c`` overrides, validated up front.

A run config has five sections (see ``training/configs/default.yaml`` for every key):

- ``data``: ``path`` (CSV/Parquet, or ``default`` for the embedded sample), ``schema`` (YAML/JSON path,
  optional for ``default``), ``split`` (``method`` random|time, ``fractions``, ``seed``, ``column``),
  ``nan_policy`` and ``max_rows`` (keep a seeded random subset; handy for quick runs).
- ``model``: any :class:`mmoe_tf.ModelConfig` field except ``features``/``tasks`` (those come from the
  schema), plus ``tasks: {name: {loss_weight, conditional_on, tower_units, ...}}`` per-task overrides.
- ``train``: ``epochs``, ``batch_size``, ``seed``, ``early_stopping`` (``patience``, ``monitor``,
  ``min_delta``; patience 0 disables it), ``distribute`` none|mirrored|multi_worker, ``logical_cpus``,
  ``steps_per_epoch``, ``verbose``.
- ``gates``: gate-analysis switches and thresholds (``enabled``, ``collapse_max_weight``,
  ``collapse_entropy``, ``unused_share``).
- ``output_dir``: run folder (default ``output/runs/<UTC timestamp>``).

Every error is a :class:`RunConfigError` (a ``ValueError``) naming the dotted key, e.g.
``train.epochs: expected an integer >= 1, got 'three'``.

Example:
    >>> cfg = load_run_config(None, ["model.num_experts=8", "train.epochs=3"])
    >>> cfg.model["num_experts"], cfg.train.epochs
    (8, 3)
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import pathlib
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Union

import yaml

from data.loading import NAN_POLICIES
from mmoe_tf.config import ARCHITECTURES, FeatureCross, FeatureSpec, ModelConfig, TaskSpec

DISTRIBUTE_KINDS = ("none", "mirrored", "multi_worker")
SPLIT_METHODS = ("random", "time")
MODEL_EXCLUDED_FIELDS = ("features", "tasks")
TASK_OVERRIDE_FIELDS = tuple(f.name for f in dataclasses.fields(TaskSpec) if f.name != "name")


class RunConfigError(ValueError):
    """A run-config problem; the message starts with the dotted key at fault."""


@dataclasses.dataclass(frozen=True)
class SplitConfig:
    """How to split the table into train/validation/test.

    Args:
        method: ``random`` (seeded shuffle) or ``time`` (ordered by ``column``).
        fractions: Train/validation/test fractions, summing to 1.
        seed: Shuffle seed for ``random``.
        column: Time column for ``time``; ``None`` uses the schema's ``timestamp_column``.
    """

    method: str = "random"
    fractions: tuple[float, ...] = (0.8, 0.1, 0.1)
    seed: int = 0
    column: str | None = None


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the data comes from.

    Args:
        path: CSV/Parquet path, or ``default`` for the embedded sample (``data.sample.load_default()``).
        schema: Schema file (YAML/JSON); required unless ``path`` is ``default``.
        split: See :class:`SplitConfig`.
        nan_policy: Passed to ``data.load_table`` (``error`` or ``fill``).
        max_rows: Keep a seeded random subset of this many rows (original order kept); ``None`` keeps all.
    """

    path: str = "default"
    schema: str | None = None
    split: SplitConfig = dataclasses.field(default_factory=SplitConfig)
    nan_policy: str = "error"
    max_rows: int | None = None


@dataclasses.dataclass(frozen=True)
class EarlyStoppingConfig:
    """Keras ``EarlyStopping(restore_best_weights=True)`` settings; ``patience: 0`` disables it.

    ``monitor`` (also used by the best checkpoint) is any logged metric, e.g. ``val_loss``,
    ``val_<task>_auc``, ``val_<task>_loss``, or the built-in ``val_mean_task_auc`` (mean of the binary
    tasks' validation AUCs, each on its observed rows). Its direction comes from the name: ``*auc`` up,
    ``*loss`` down. The default ``val_loss`` is the measured best for a scarce task with MMoE
    (docs/results.md §1: it beat ``val_mean_task_auc`` and ``val_<scarce task>_auc``, whose few
    validation labels make them noisy and stop too early).
    """

    patience: int = 3
    monitor: str = "val_loss"
    min_delta: float = 0.0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to fit.

    Args:
        epochs: Maximum number of epochs.
        batch_size: Global batch size (split across replicas under a distribution strategy).
        seed: Seed for ``tf.keras.utils.set_random_seed`` and the shuffle order.
        early_stopping: See :class:`EarlyStoppingConfig`.
        distribute: ``none``, ``mirrored`` (all local GPUs, else all logical CPUs) or ``multi_worker``
            (``MultiWorkerMirroredStrategy`` driven by ``TF_CONFIG``).
        logical_cpus: Split the CPU into this many logical devices before TensorFlow starts (for
            trying ``mirrored`` on a CPU-only machine); ``None`` leaves devices alone.
        steps_per_epoch: Batches per epoch; ``None`` = one pass. The training data repeats either way, so one
            iterator serves the whole ``fit``.
        verbose: Keras ``fit`` verbosity (0 silent, 1 progress bar, 2 one line per epoch).
        baseline: Also train this architecture (e.g. ``single_task``) on the same splits with the same budget and
            report its metrics next to the model's; ``None`` trains no baseline.
    """

    epochs: int = 15
    batch_size: int = 256
    seed: int = 0
    early_stopping: EarlyStoppingConfig = dataclasses.field(default_factory=EarlyStoppingConfig)
    distribute: str = "none"
    logical_cpus: int | None = None
    steps_per_epoch: int | None = None
    verbose: int = 2
    baseline: str | None = None


@dataclasses.dataclass(frozen=True)
class GatesConfig:
    """Gate analysis after training (see :mod:`training.gate_analysis`).

    Args:
        enabled: Run it (skipped with a note for architectures without gates).
        collapse_max_weight: Warn when a task's mean max gate weight exceeds this.
        collapse_entropy: Warn when a task's mean normalised gate entropy is below this.
        unused_share: Flag experts whose share of total gate mass is below this; ``None`` = 0.1/K.
    """

    enabled: bool = True
    collapse_max_weight: float = 0.9
    collapse_entropy: float = 0.1
    unused_share: float | None = None


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A whole training run.

    ``model`` is the resolved model section: every :class:`mmoe_tf.ModelConfig` field the architecture uses (the
    built-in :data:`MODEL_DEFAULTS` where not set), plus ``tasks`` (per-task overrides; after :func:`resolved_for`
    every field of every task).
    """

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: dict[str, Any] = dataclasses.field(default_factory=lambda: resolve_model_section({}, "model"))
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    gates: GatesConfig = dataclasses.field(default_factory=GatesConfig)
    output_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (lists, not tuples) for ``run_config.yaml``."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], keep_unused_model_fields: bool = False) -> RunConfig:
        """Validate a raw mapping; ``RunConfigError`` names the first bad key.

        ``keep_unused_model_fields`` keeps (instead of refusing) model fields the configured architecture does not
        use, for configs that describe several architectures (``python -m training compare``).
        """
        return _build(cls, data, "", keep_unused_model_fields)

    def model_overrides(self) -> dict[str, Any]:
        """``model`` without ``tasks``: keyword arguments for ``Schema.model_config``."""
        return {k: (tuple(v) if isinstance(v, list) else v) for k, v in self.model.items() if k != "tasks"}

    def task_overrides(self) -> dict[str, dict[str, Any]]:
        """``model.tasks``: per-task field overrides keyed by task name."""
        return dict(self.model.get("tasks") or {})


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if tp is type(None):
        return "null"
    if origin is tuple:
        return f"a list of {_type_name(args[0])}"
    if origin is dict:
        return "a mapping"
    if hasattr(tp, "from_dict"):  # e.g. FeatureCross: its from_dict reads the accepted forms
        return f"{tp.__name__} (a mapping or a list)"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _conforms(value: Any, tp: Any) -> bool:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        item = args[0] if args else Any
        return all(_conforms(v, item) for v in value)
    if origin is dict:
        return isinstance(value, Mapping)
    if hasattr(tp, "from_dict"):  # its from_dict and the ModelConfig checks name what is wrong inside
        return isinstance(value, (tp, Mapping, list, tuple))
    return isinstance(value, tp) if isinstance(tp, type) else True


def _unknown_key(path: str, key: Any, known: Iterable[str]) -> RunConfigError:
    known = sorted(known)
    close = difflib.get_close_matches(str(key), known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return RunConfigError(f"{path}{key}: unknown key{hint} (known keys: {known})")


def _build(cls: type, data: Any, prefix: str, keep_unused_model_fields: bool = False) -> Any:
    where = prefix.rstrip(".") or "run config"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise RunConfigError(f"{where}: expected a mapping, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise _unknown_key(prefix, key, fields)
    values = {}
    for key, value in data.items():
        tp = hints[key]
        path = f"{prefix}{key}"
        if dataclasses.is_dataclass(tp):
            values[key] = _build(tp, value, path + ".")
        elif key == "model" and cls is RunConfig:
            values[key] = resolve_model_section(value or {}, path, keep_unused_model_fields)
        else:
            if not _conforms(value, tp):
                raise RunConfigError(f"{path}: expected {_type_name(tp)}, got {_describe(value)}")
            values[key] = tuple(value) if isinstance(value, list) else value
    obj = cls(**values)
    _check_values(obj, prefix)
    return obj


def _check_values(obj: Any, prefix: str) -> None:
    def fail(key: str, message: str) -> None:
        raise RunConfigError(f"{prefix}{key}: {message}, got {getattr(obj, key)!r}")

    if isinstance(obj, SplitConfig):
        if obj.method not in SPLIT_METHODS:
            fail("method", f"expected one of {SPLIT_METHODS}")
        if len(obj.fractions) != 3 or any(f < 0 for f in obj.fractions) or abs(sum(obj.fractions) - 1) > 1e-6:
            fail("fractions", "expected three non-negative train/validation/test fractions summing to 1")
        if obj.fractions[0] <= 0:
            fail("fractions", "the training fraction must be > 0")
    elif isinstance(obj, DataConfig):
        if obj.nan_policy not in NAN_POLICIES:
            fail("nan_policy", f"expected one of {NAN_POLICIES}")
        if obj.path != "default" and not obj.schema:
            raise RunConfigError(f"{prefix}schema: required when {prefix}path is not 'default' (path={obj.path!r})")
        if obj.max_rows is not None and obj.max_rows < 10:
            fail("max_rows", "expected an integer >= 10 or null")
    elif isinstance(obj, EarlyStoppingConfig):
        if obj.patience < 0:
            fail("patience", "expected an integer >= 0 (0 disables early stopping)")
        from training.callbacks import monitor_mode  # lazy: callbacks imports this module

        try:
            monitor_mode(obj.monitor)
        except ValueError as err:
            raise RunConfigError(f"{prefix}monitor: {err}") from None
    elif isinstance(obj, TrainConfig):
        for key in ("epochs", "batch_size"):
            if getattr(obj, key) < 1:
                fail(key, "expected an integer >= 1")
        for key in ("steps_per_epoch", "logical_cpus"):
            if getattr(obj, key) is not None and getattr(obj, key) < 1:
                fail(key, "expected an integer >= 1 or null")
        if obj.distribute not in DISTRIBUTE_KINDS:
            fail("distribute", f"expected one of {DISTRIBUTE_KINDS}")
        if obj.verbose not in (0, 1, 2):
            fail("verbose", "expected 0, 1 or 2")
        if obj.baseline is not None and obj.baseline not in ARCHITECTURES:
            fail("baseline", f"expected null or one of {ARCHITECTURES}")
    elif isinstance(obj, GatesConfig):
        if not 0 < obj.collapse_max_weight <= 1:
            fail("collapse_max_weight", "expected a number in (0, 1]")
        if not 0 <= obj.collapse_entropy < 1:
            fail("collapse_entropy", "expected a number in [0, 1)")


_DUMMY_FEATURE = FeatureSpec("__feature__", "numeric")

# Built-in model defaults of a training run (``training/configs/default.yaml`` states the same values; a test checks
# it). Fields not listed take :class:`mmoe_tf.ModelConfig`'s own defaults.
MODEL_DEFAULTS: dict[str, Any] = {
    "architecture": "mmoe",
    "num_experts": 4,
    "expert_units": [32],
    "expert_dropout": 0.2,  # hashed user/item ids overfit quickly
    "tower_units": [16],
    "learning_rate": 0.002,
}
PLE_FIELDS = ("num_shared_experts", "num_task_experts")
GATE_FIELDS = ("num_experts", "num_levels", "gate_hidden_units", "gate_temperature", "gate_dropout", *PLE_FIELDS)
# ModelConfig fields an architecture does not use; an architecture not listed here uses every field.
UNUSED_FIELDS: dict[str, tuple[str, ...]] = {
    "shared_bottom": GATE_FIELDS,
    "single_task": GATE_FIELDS,
    "mmoe": PLE_FIELDS,
    "omoe": PLE_FIELDS,
    "ple": ("num_experts",),
}


def model_defaults() -> dict[str, Any]:
    """Every ModelConfig field except features/tasks at its built-in training default (plain lists)."""
    out = {}
    for f in dataclasses.fields(ModelConfig):
        if f.name in MODEL_EXCLUDED_FIELDS:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        out[f.name] = _plain(MODEL_DEFAULTS.get(f.name, default))
    return out


def unused_model_fields(architecture: str, expert_type: str = "mlp") -> tuple[str, ...]:
    """ModelConfig fields ``architecture`` ignores (``cross_layers`` is ignored unless ``expert_type`` is cross)."""
    unused = UNUSED_FIELDS.get(architecture, ())
    return (*unused, "cross_layers") if expert_type != "cross" else unused


def resolve_model_section(section: Any, path: str = "model", keep_unused: bool = False) -> dict[str, Any]:
    """Validate a ``model`` section and fill in every field the architecture uses.

    Args:
        section: The raw mapping (ModelConfig fields plus ``tasks``).
        path: Dotted key for messages.
        keep_unused: Keep every field, also those the architecture ignores, instead of refusing non-default ones
            (a section shared by several architectures, as in ``python -m training compare``).

    Returns:
        ``{field: value}`` for every ModelConfig field the architecture uses (built-in defaults where not set, lists
        for sequences), plus ``tasks`` (validated per-task overrides). Fields the architecture ignores are left out
        unless ``keep_unused``.

    Raises:
        RunConfigError: a bad key or value, or a field set to a non-default value that the architecture does not use
            (e.g. ``num_experts`` with ``shared_bottom``), naming the fields and the architecture.
    """
    if not isinstance(section, Mapping):
        raise RunConfigError(f"{path}: expected a mapping, got {_describe(section)}")
    hints = typing.get_type_hints(ModelConfig)
    defaults = model_defaults()
    given: dict[str, Any] = {}
    tasks: dict[str, dict[str, Any]] = {}
    for key, value in section.items():
        if key == "features":
            raise RunConfigError(f"{path}.features: features come from the data schema and cannot be set here")
        if key == "tasks":
            tasks = _validate_task_overrides(value, f"{path}.tasks")
            continue
        if key not in defaults:
            raise _unknown_key(f"{path}.", key, [*defaults, "tasks"])
        if not _conforms(value, hints[key]):
            raise RunConfigError(f"{path}.{key}: expected {_type_name(hints[key])}, got {_describe(value)}")
        given[key] = _plain(value)
    merged = {**defaults, **given}
    architecture = merged["architecture"]
    unused = unused_model_fields(architecture, merged["expert_type"])
    if keep_unused:  # several architectures share this section: each fit drops what it does not use
        unused = ()
    refused = sorted(k for k in given if k in unused and given[k] != defaults[k])
    if refused:
        raise RunConfigError(
            f"{path}: architecture {architecture!r} does not use {', '.join(refused)}; remove "
            f"{'them' if len(refused) > 1 else 'it'} (or choose an architecture that uses "
            f"{'them' if len(refused) > 1 else 'it'})"
        )
    resolved = {k: v for k, v in merged.items() if k not in unused}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in resolved.items()}
    for cross in kwargs.get("feature_crosses", ()):  # their form here; their names meet the schema's features later
        try:
            FeatureCross.from_dict(cross)
        except ValueError as err:
            raise RunConfigError(f"{path}.feature_crosses: {err}") from None
    try:  # reuse ModelConfig's checks (architecture names, ranges, ...) with a placeholder feature
        ModelConfig(features=(_DUMMY_FEATURE,), **{**kwargs, "feature_crosses": ()})
    except ValueError as err:
        field = next((k for k in kwargs if f"'{k}'" in str(err)), None)
        raise RunConfigError(f"{path}.{field}: {err}" if field else f"{path}: {err}") from None
    return {**resolved, "tasks": tasks}


def _validate_task_overrides(section: Any, path: str) -> dict[str, dict[str, Any]]:
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise RunConfigError(f"{path}: expected a mapping of task name -> overrides, got {_describe(section)}")
    hints = typing.get_type_hints(TaskSpec)
    out = {}
    for task, overrides in section.items():
        if not isinstance(overrides, Mapping):
            raise RunConfigError(f"{path}.{task}: expected a mapping of overrides, got {_describe(overrides)}")
        for key, value in overrides.items():
            if key not in TASK_OVERRIDE_FIELDS:
                raise _unknown_key(f"{path}.{task}.", key, TASK_OVERRIDE_FIELDS)
            if not _conforms(value, hints[key]):
                raise RunConfigError(f"{path}.{task}.{key}: expected {_type_name(hints[key])}, got {_describe(value)}")
        out[str(task)] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in overrides.items()}
    return out


def apply_task_overrides(config: ModelConfig, overrides: Mapping[str, Mapping[str, Any]]) -> ModelConfig:
    """Return ``config`` with per-task fields replaced.

    Args:
        config: Model config built from the schema.
        overrides: ``{task_name: {field: value}}`` (e.g. ``{"satisfaction": {"conditional_on": "click"}}``).

    Returns:
        The updated, re-validated ModelConfig.

    Raises:
        RunConfigError: an unknown task name or an invalid value, naming ``model.tasks.<task>``.
    """
    if not overrides:
        return config
    unknown = sorted(set(overrides) - set(config.task_names))
    if unknown:
        raise RunConfigError(
            f"model.tasks.{unknown[0]}: no such task in the schema; tasks are {list(config.task_names)}"
        )
    tasks = []
    for task in config.tasks:
        changes = {k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.get(task.name, {}).items()}
        try:
            tasks.append(dataclasses.replace(task, **changes))
        except ValueError as err:
            raise RunConfigError(f"model.tasks.{task.name}: {err}") from None
    try:
        return config.replace(tasks=tuple(tasks))
    except ValueError as err:
        raise RunConfigError(f"model.tasks: {err}") from None


def resolved_for(run_config: RunConfig, config: ModelConfig) -> RunConfig:
    """``run_config`` as written to ``run_config.yaml``: every field of every task of ``config``, absolute paths.

    Args:
        run_config: The validated run config.
        config: The ModelConfig built from it and the schema (:func:`training.runner.model_config_for`).

    Returns:
        A RunConfig that reproduces ``config`` with any schema and from any working directory.
    """
    tasks = {t.name: {k: _plain(getattr(t, k)) for k in TASK_OVERRIDE_FIELDS} for t in config.tasks}
    data = run_config.data
    if data.path != "default":
        data = dataclasses.replace(data, path=str(pathlib.Path(data.path).resolve()))
    if data.schema:
        data = dataclasses.replace(data, schema=str(pathlib.Path(data.schema).resolve()))
    output_dir = str(pathlib.Path(run_config.output_dir).resolve()) if run_config.output_dir else None
    return dataclasses.replace(run_config, data=data, model={**run_config.model, "tasks": tasks}, output_dir=output_dir)


class _YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, also reading ``1e-3`` as a float (YAML 1.2; PyYAML's 1.1 rules need a dot: ``1.0e-3``)."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """YAML text as Python values (safe loader; ``1e-3`` is the float 0.001, not the string ``"1e-3"``)."""
    return yaml.load(text, Loader=_YamlLoader)  # a SafeLoader subclass


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value`` (value read as YAML: ``8``, ``[64, 32]``, ``null``, ``click``).

    Returns:
        (key path, value).
    """
    if "=" not in text:
        raise RunConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. model.num_experts=8")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise RunConfigError(f"--set {text!r}: bad key {key!r}; expected dotted names like train.epochs")
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise RunConfigError(f"{key}: cannot parse value {raw!r}: {err}") from None
    return parts, value


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``--set`` strings to a raw (unvalidated) config mapping, in place; returns it."""
    for text in overrides:
        parts, value = parse_override(text)
        node = raw
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise RunConfigError(
                    f"{'.'.join(parts[: i + 1])}: is {_describe(child)}, not a section; cannot set {text!r}"
                )
            node = child
        node[parts[-1]] = value
    return raw


def read_config_file(path: str | pathlib.Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``/``.json``) or TOML (``.toml``) run config into a dict."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise RunConfigError(f"--config: file not found: {path}")
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else load_yaml(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as err:
        raise RunConfigError(f"--config {path}: cannot parse: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RunConfigError(f"--config {path}: top level must be a mapping, got {type(data).__name__}")
    return data


def load_run_config(
    path: str | pathlib.Path | None = None, overrides: Iterable[str] = (), keep_unused_model_fields: bool = False
) -> RunConfig:
    """Read, override and validate a run config.

    Args:
        path: YAML/TOML file; ``None`` starts from the built-in defaults.
        overrides: ``a.b=c`` strings applied after the file.
        keep_unused_model_fields: Keep model fields the architecture does not use (see ``RunConfig.from_dict``).

    Returns:
        The validated :class:`RunConfig`.

    Raises:
        RunConfigError: naming the dotted key at fault.
    """
    raw = read_config_file(path) if path is not None else {}
    return RunConfig.from_dict(apply_overrides(raw, overrides), keep_unused_model_fields)


KEY_HELP = {
    "data.path": "CSV/Parquet table, or 'default' (embedded 60,000-row sample)",
    "data.schema": "schema YAML/JSON; required unless data.path is 'default'",
    "data.split.method": "random | time",
    "data.split.fractions": "train/validation/test fractions, summing to 1",
    "data.split.seed": "shuffle seed of the random split (and of data.max_rows)",
    "data.split.column": "time column for method=time (default: the schema's timestamp_column)",
    "data.nan_policy": "missing feature values: error | fill (feature defaults)",
    "data.max_rows": "keep a seeded random subset of this many rows",
    "train.epochs": "maximum epochs",
    "train.batch_size": "global batch size",
    "train.seed": "tf.keras.utils.set_random_seed + shuffle seed",
    "train.early_stopping.patience": "epochs without improvement before stopping; 0 disables",
    "train.early_stopping.monitor": "logged metric for early stopping + best checkpoint (*auc up, *loss down)",
    "train.early_stopping.min_delta": "minimum change counted as an improvement",
    "train.distribute": "none | mirrored | multi_worker (TF_CONFIG)",
    "train.logical_cpus": "split the CPU into N logical devices first (fresh process only)",
    "train.steps_per_epoch": "batches per epoch; null = one pass (training data repeats either way)",
    "train.verbose": "0 silent | 1 progress bar | 2 one line per epoch",
    "train.baseline": "also train this architecture (e.g. single_task) with the same data and budget; null = none",
    "gates.enabled": "run gate analysis after training",
    "gates.collapse_max_weight": "warn when a task's mean max gate weight exceeds this",
    "gates.collapse_entropy": "warn when a task's mean normalised gate entropy is below this",
    "gates.unused_share": "flag experts below this share of gate mass; null = 0.1/K",
    "output_dir": "run folder; null = output/runs/<UTC timestamp>",
}


MODEL_HELP = {
    "architecture": "mmoe | omoe | shared_bottom | single_task",
    "num_experts": "experts K (mmoe/omoe)",
    "expert_units": "expert MLP sizes (the bottom MLP for shared_bottom/single_task)",
    "expert_type": "mlp | cross (DCN-v2 cross-network experts)",
    "cross_layers": "cross layers per expert (expert_type cross only)",
    "expert_activation": "activation of expert hidden layers",
    "expert_dropout": "dropout after each expert hidden layer",
    "expert_norm": "null | batch | layer",
    "gate_hidden_units": "gate hidden sizes before the softmax ([] = linear gate)",
    "gate_temperature": "gate softmax temperature (> 1 flatter)",
    "gate_dropout": "dropout on gate weights (renormalised)",
    "num_levels": "stacked MMoE blocks",
    "tower_units": "per-task tower sizes",
    "tower_activation": "activation of tower hidden layers",
    "tower_dropout": "dropout after each tower hidden layer",
    "loss_balancing": "fixed (task loss_weight) | uncertainty (learned)",
    "optimizer": "Keras optimizer identifier",
    "learning_rate": "optimizer learning rate",
    "steps_per_execution": "steps per call of Keras' compiled train/predict function (speed)",
    "train_split_rows": "0 = off; N: batches of >= N rows train as two halves side by side (large-batch CPU speed)",
    "precision": "float32 | mixed_bfloat16 (experts, gates and towers in bfloat16; variables, loss, outputs float32)",
    "seed": "weight-initialisation seed",
}


def config_reference() -> str:
    """One line per config key with its default, for ``--help``."""
    lines = []

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                walk(tp, f"{prefix}{f.name}.")
            elif f.name == "model" and cls is RunConfig:
                for key, default in model_defaults().items():
                    lines.append(f"  model.{key} = {json.dumps(default)}".ljust(43) + " " + MODEL_HELP.get(key, ""))
                lines.append("  model.tasks.<task>.<field>  per-task: " + ", ".join(TASK_OVERRIDE_FIELDS))
                lines.append(f"  (shared_bottom and single_task refuse {', '.join(GATE_FIELDS)})")
            else:
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
                key = f"{prefix}{f.name}"
                lines.append(f"  {key} = {json.dumps(_plain(default))}".ljust(43) + " " + KEY_HELP.get(key, ""))

    walk(RunConfig, "")
    return "\n".join(lines)
