"""The description of a user's table: which columns are features, labels, time, ids and extras.

A :class:`Schema` reuses :class:`mmoe_tf.FeatureSpec` and :class:`mmoe_tf.TaskSpec` (one source of
truth) and adds the columns that are not model inputs. It round-trips through YAML and JSON files.

Example:
    >>> from mmoe_tf import FeatureSpec, TaskSpec
    >>> schema = Schema(features=(FeatureSpec("price", "numeric"),), tasks=(TaskSpec("click"),))
    >>> Schema.from_dict(schema.to_dict()) == schema
    True
    >>> schema.model_config(num_experts=2).num_experts
    2
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mmoe_tf.config import ModelConfig
from mmoe_tf.feature_specs import FeatureSpec
from mmoe_tf.task_specs import TaskSpec

_YAML_SUFFIXES = (".yaml", ".yml")
_JSON_SUFFIXES = (".json",)


def _compact(spec: FeatureSpec | TaskSpec) -> dict[str, Any]:
    """``spec.to_dict()`` without the fields that equal what the minimal constructor would give."""
    full = spec.to_dict()
    base = FeatureSpec(spec.name, spec.kind) if isinstance(spec, FeatureSpec) else TaskSpec(spec.name, spec.type)
    base_dict = base.to_dict()
    keep = ("name", "kind") if isinstance(spec, FeatureSpec) else ("name", "type")
    return {k: v for k, v in full.items() if k in keep or v != base_dict[k]}


def _spec_list(cls: type, items: Any, key: str) -> tuple:
    if isinstance(items, (str, bytes)) or not isinstance(items, (list, tuple)):
        raise ValueError(f"Schema: field '{key}' must be a list, got {type(items).__name__}")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, cls):
            out.append(item)
            continue
        try:
            out.append(cls.from_dict(item))
        except (TypeError, ValueError) as err:
            raise ValueError(f"Schema: {key}[{i}]: {err}") from None
    return tuple(out)


def _name_tuple(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = (value,)
    value = tuple(value)
    for v in value:
        if not isinstance(v, str) or not v:
            raise ValueError(f"Schema: field '{key}' must hold non-empty column names, got {v!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Schema:
    """Columns of a training table and how they map to model features and tasks.

    Args:
        features: Model input features (``FeatureSpec``; ``column`` names the source column).
        tasks: Prediction tasks (``TaskSpec``; ``label_column`` names the source column).
        timestamp_column: Optional event-time column (used by :func:`data.splits.time_split`).
        id_columns: Identifier columns carried through loading (not model inputs).
        extra_columns: Other columns carried through loading (e.g. true probabilities).

    Raises:
        ValueError: naming the field, for duplicate names, a column used as both a label and a
            feature, or one column read as two different dtypes.
    """

    features: tuple[FeatureSpec, ...]
    tasks: tuple[TaskSpec, ...]
    timestamp_column: str | None = None
    id_columns: tuple[str, ...] = ()
    extra_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        features = _spec_list(FeatureSpec, self.features, "features")
        tasks = _spec_list(TaskSpec, self.tasks, "tasks")
        if not features:
            raise ValueError("Schema: field 'features' must list at least one feature")
        if not tasks:
            raise ValueError("Schema: field 'tasks' must list at least one task")
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "tasks", tasks)
        object.__setattr__(self, "id_columns", _name_tuple(self.id_columns, "id_columns"))
        object.__setattr__(self, "extra_columns", _name_tuple(self.extra_columns, "extra_columns"))
        if self.timestamp_column is not None and (
            not isinstance(self.timestamp_column, str) or not self.timestamp_column
        ):
            raise ValueError(f"Schema: field 'timestamp_column' must be a column name, got {self.timestamp_column!r}")
        for key, names in (("features", [f.name for f in features]), ("tasks", [t.name for t in tasks])):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"Schema: field '{key}' has duplicate names {dupes}")
        dtype_of: dict[str, str] = {}
        for f in features:
            if dtype_of.setdefault(f.column, f.dtype) != f.dtype:
                raise ValueError(
                    f"Schema: field 'features': column {f.column!r} is read as both {dtype_of[f.column]} and {f.dtype}"
                )
        roles = {
            "label": [t.label_column for t in tasks],
            "timestamp": [self.timestamp_column] if self.timestamp_column else [],
            "id": self.id_columns,
            "extra": self.extra_columns,
        }
        seen = {c: "feature" for c in dtype_of}
        for role, cols in roles.items():
            for c in cols:
                if c in seen and not (role == "label" and seen[c] == "label"):
                    raise ValueError(f"Schema: column {c!r} is used both as a {seen[c]} column and as a {role} column")
                seen[c] = role
        # Validate the feature/task combination the model will see (e.g. name clashes).
        ModelConfig(features=features, tasks=tasks)

    # ---- views -------------------------------------------------------------------------------
    @property
    def feature_names(self) -> tuple[str, ...]:
        """Feature (model input) names in declaration order."""
        return tuple(f.name for f in self.features)

    @property
    def task_names(self) -> tuple[str, ...]:
        """Task names in declaration order."""
        return tuple(t.name for t in self.tasks)

    @property
    def feature_columns(self) -> tuple[str, ...]:
        """Distinct source columns of the features, in declaration order."""
        return tuple(dict.fromkeys(f.column for f in self.features))

    @property
    def label_columns(self) -> tuple[str, ...]:
        """Distinct source columns of the labels, in declaration order."""
        return tuple(dict.fromkeys(t.label_column for t in self.tasks))

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the schema names: features, labels, timestamp, ids, extras (no repeats)."""
        ts = (self.timestamp_column,) if self.timestamp_column else ()
        return tuple(
            dict.fromkeys(self.feature_columns + self.label_columns + ts + self.id_columns + self.extra_columns)
        )

    def feature(self, name: str) -> FeatureSpec:
        """The feature called ``name``; ``KeyError`` listing the known features otherwise."""
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"no feature {name!r}; features are {list(self.feature_names)}")

    def task(self, name: str) -> TaskSpec:
        """The task called ``name``; ``KeyError`` listing the known tasks otherwise."""
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"no task {name!r}; tasks are {list(self.task_names)}")

    def model_config(self, **overrides: Any) -> ModelConfig:
        """A :class:`ModelConfig` with this schema's features and tasks.

        Args:
            **overrides: Any other ``ModelConfig`` field (``num_experts=8``, ``tasks=...``).

        Returns:
            The validated ``ModelConfig``.
        """
        fields = {"features": self.features, "tasks": self.tasks}
        fields.update(overrides)
        return ModelConfig(**fields)

    def replace(self, **changes: Any) -> Schema:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ---- (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (compact: fields at their defaults are left out)."""
        data: dict[str, Any] = {
            "features": [_compact(f) for f in self.features],
            "tasks": [_compact(t) for t in self.tasks],
        }
        if self.timestamp_column:
            data["timestamp_column"] = self.timestamp_column
        if self.id_columns:
            data["id_columns"] = list(self.id_columns)
        if self.extra_columns:
            data["extra_columns"] = list(self.extra_columns)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        """Inverse of :meth:`to_dict`; unknown or missing keys raise ``ValueError`` naming them."""
        if not isinstance(data, Mapping):
            raise ValueError(f"Schema: expected a mapping with 'features' and 'tasks', got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Schema: unknown key(s) {unknown}; known keys are {sorted(known)}")
        for key in ("features", "tasks"):
            if key not in data:
                raise ValueError(f"Schema: field '{key}' is missing")
        return cls(**dict(data))

    @classmethod
    def from_file(cls, path: str | Path) -> Schema:
        """Read a schema from a ``.yaml``/``.yml`` or ``.json`` file.

        Example:
            >>> schema = Schema.from_file("data/sample/impressions.schema.yaml")  # doctest: +SKIP
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in _YAML_SUFFIXES + _JSON_SUFFIXES:
            raise ValueError(f"Schema file {path}: unsupported suffix {suffix!r}; use .yaml, .yml or .json")
        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text) if suffix in _JSON_SUFFIXES else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as err:
            raise ValueError(f"Schema file {path}: cannot parse: {err}") from None
        try:
            return cls.from_dict(data)
        except ValueError as err:
            raise ValueError(f"Schema file {path}: {err}") from None

    def to_file(self, path: str | Path) -> Path:
        """Write the schema as YAML or JSON (by suffix) and return the path."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix in _JSON_SUFFIXES:
            text = json.dumps(self.to_dict(), indent=2) + "\n"
        elif suffix in _YAML_SUFFIXES:
            text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        else:
            raise ValueError(f"Schema file {path}: unsupported suffix {suffix!r}; use .yaml, .yml or .json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path
