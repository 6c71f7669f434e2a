"""Declarative description of a multi-task model: its features, its tasks and its architecture.

This is the single source of truth shared by the model builders (``mmoe_tf``), the data loaders
(``data/``), training (``training/``) and export (``serving/``). Everything is a frozen dataclass
with ``to_dict`` / ``from_dict`` so it round-trips through YAML/JSON and Keras ``get_config``.

Example:
    >>> config = ModelConfig(
    ...     features=(FeatureSpec("price", "numeric"), FeatureSpec("device", "categorical", dtype="string")),
    ...     tasks=(TaskSpec("click"), TaskSpec("satisfaction")),
    ... )
    >>> ModelConfig.from_dict(config.to_dict()) == config
    True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

FEATURE_KINDS = ("numeric", "categorical", "hashed")
FEATURE_DTYPES = {
    "numeric": ("float32",),
    "categorical": ("string", "int64"),
    "hashed": ("string", "int64"),
}
TASK_TYPES = ("binary", "regression")
TASK_LOSSES = {"binary": ("bce",), "regression": ("mse", "huber")}
ARCHITECTURES = ("mmoe", "omoe", "ple", "shared_bottom", "single_task")
EXPERT_TYPES = ("mlp", "cross")
NORMALIZATIONS = (None, "batch", "layer")
LOSS_BALANCING = ("fixed", "uncertainty")
PRECISIONS = ("float32", "mixed_bfloat16")
DEFAULT_TASK_NAMES = ("click", "satisfaction")


def _fail(owner: str, field: str, message: str) -> NoReturn:
    raise ValueError(f"{owner}: field '{field}' {message}")


def _positive_units(owner: str, field: str, units: Sequence[int], allow_empty: bool) -> tuple[int, ...]:
    units = tuple(units)
    if not allow_empty and not units:
        _fail(owner, field, "must list at least one layer size")
    for u in units:
        if not isinstance(u, int) or isinstance(u, bool) or u <= 0:
            _fail(owner, field, f"must hold positive integers, got {units!r}")
    return units


def _from_mapping(cls: type, data: Mapping[str, Any], owner: str) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"{owner}: expected a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{owner}: unknown key(s) {unknown}; known keys are {sorted(known)}")
    return cls(**data)


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One raw input feature; its preprocessing lives inside the model.

    Args:
        name: Input name of the model (and of the serving signature).
        kind: ``numeric`` (normalised with mean/variance adapted from data), ``categorical``
            (vocabulary adapted from data or given, plus out-of-vocabulary buckets, then an
            embedding) or ``hashed`` (hashed into ``num_bins`` buckets, then an embedding).
        dtype: ``float32`` for numeric; ``string`` or ``int64`` for categorical and hashed.
        column: Source column in the user's table; defaults to ``name``.
        embedding_dim: Embedding width for categorical and hashed features.
        vocabulary: Fixed vocabulary for a categorical feature; ``None`` adapts it from data.
        max_tokens: Cap on an adapted vocabulary's size (most frequent values kept).
        num_oov_buckets: Buckets for values outside the vocabulary (at least 1, so unseen values
            never crash).
        num_bins: Hash buckets for a hashed feature.
        default: Value used when an optional feature is missing (absent column, NaN or blank).
            ``None`` means the feature is required.
    """

    name: str
    kind: str
    dtype: str | None = None
    column: str | None = None
    embedding_dim: int = 8
    vocabulary: tuple | None = None
    max_tokens: int | None = None
    num_oov_buckets: int = 1
    num_bins: int = 1024
    default: float | int | str | None = None

    def __post_init__(self) -> None:
        owner = f"FeatureSpec {self.name!r}"
        if not isinstance(self.name, str) or not self.name or "/" in self.name or ":" in self.name:
            _fail(owner, "name", "must be a non-empty string without '/' or ':'")
        if self.kind not in FEATURE_KINDS:
            _fail(owner, "kind", f"is {self.kind!r}, an unknown feature kind; expected one of {FEATURE_KINDS}")
        dtype = self.dtype or FEATURE_DTYPES[self.kind][0]
        if dtype not in FEATURE_DTYPES[self.kind]:
            _fail(owner, "dtype", f"is {dtype!r}; a {self.kind} feature takes one of {FEATURE_DTYPES[self.kind]}")
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "column", self.column or self.name)
        if self.vocabulary is not None:
            object.__setattr__(self, "vocabulary", tuple(self.vocabulary))
            if self.kind != "categorical":
                _fail(owner, "vocabulary", "is only valid for categorical features")
            if not self.vocabulary:
                _fail(owner, "vocabulary", "must not be empty")
        for field in ("embedding_dim", "num_oov_buckets", "num_bins"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                _fail(owner, field, f"must be a positive integer, got {value!r}")
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or self.max_tokens < 1):
            _fail(owner, "max_tokens", f"must be a positive integer or null, got {self.max_tokens!r}")
        if self.default is not None:
            expects_str = dtype == "string"
            if expects_str != isinstance(self.default, str) or isinstance(self.default, bool):
                _fail(owner, "default", f"is {self.default!r}, which does not match dtype {dtype}")

    @property
    def required(self) -> bool:
        """True when the feature has no ``default`` and so must be present in every row."""
        return self.default is None

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (lists, not tuples) suitable for JSON/YAML."""
        data = dataclasses.asdict(self)
        if data["vocabulary"] is not None:
            data["vocabulary"] = list(data["vocabulary"])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them."""
        return _from_mapping(
            cls, data, f"feature {data.get('name', '?')!r}" if isinstance(data, Mapping) else "feature"
        )


@dataclasses.dataclass(frozen=True)
class FeatureCross:
    """A crossed feature: each row's combination of two or more categorical/hashed features' values.

    The combination is hashed into ``num_bins`` buckets (``tf.keras.layers.HashedCrossing``) and
    embedded, inside the model: the crossed columns of Wide & Deep (Cheng et al., 2016). It lets
    the network look up an interaction (e.g. user segment × item category) instead of having to
    learn it from the two separate embeddings. The model's inputs do not change.

    Args:
        features: Names of the crossed features (categorical or hashed, at least two, distinct).
        num_bins: Hash buckets of the combination.
        embedding_dim: Embedding width of the cross.

    Example:
        >>> FeatureCross.from_dict(["user_segment", "item_category"]).name
        'user_segment_x_item_category'
    """

    features: tuple[str, ...]
    num_bins: int = 1024
    embedding_dim: int = 8

    def __post_init__(self) -> None:
        features = (self.features,) if isinstance(self.features, str) else tuple(self.features)
        object.__setattr__(self, "features", features)
        owner = f"FeatureCross {list(features)!r}"
        if len(features) < 2 or len(set(features)) != len(features):
            _fail(owner, "features", "must name at least two distinct features")
        if not all(isinstance(f, str) and f for f in features):
            _fail(owner, "features", "must hold feature names (non-empty strings)")
        for field in ("num_bins", "embedding_dim"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                _fail(owner, field, f"must be a positive integer, got {value!r}")

    @property
    def name(self) -> str:
        """``<a>_x_<b>...``: names the cross's layers."""
        return "_x_".join(self.features)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form suitable for JSON/YAML."""
        return {"features": list(self.features), "num_bins": self.num_bins, "embedding_dim": self.embedding_dim}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | Sequence[str] | FeatureCross) -> FeatureCross:
        """From :meth:`to_dict`'s mapping, or a plain list of feature names (default sizes)."""
        if isinstance(data, FeatureCross):
            return data
        if isinstance(data, Sequence) and not isinstance(data, str):
            return cls(features=tuple(data))
        return _from_mapping(cls, data, "feature_crosses entry")


def check_crosses(crosses: Sequence[FeatureCross], features: Sequence[FeatureSpec], owner: str) -> None:
    """Raise ``ValueError`` unless every cross names existing non-numeric features, each cross once."""
    kinds = {f.name: f.kind for f in features}
    seen = set()
    for cross in crosses:
        unknown = [n for n in cross.features if n not in kinds]
        if unknown:
            _fail(owner, "feature_crosses", f"cross {cross.name!r} names unknown features {unknown}")
        numeric = [n for n in cross.features if kinds[n] == "numeric"]
        if numeric:
            _fail(
                owner,
                "feature_crosses",
                f"cross {cross.name!r} names numeric features {numeric}; "
                "only categorical and hashed features can be crossed",
            )
        if cross.name in seen:
            _fail(owner, "feature_crosses", f"lists the cross {cross.name!r} twice")
        seen.add(cross.name)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One prediction task (one model output, named after the task).

    Args:
        name: Output name; also the label's key in datasets.
        type: ``binary`` (sigmoid head, binary cross-entropy) or ``regression`` (linear head).
        label_column: Source column of the label; defaults to ``name``. A missing (NaN/blank)
            label means "not observed" and gets sample weight 0 for this task.
        loss: ``bce`` for binary; ``mse`` (default) or ``huber`` for regression.
        loss_weight: The task's fixed weight λ in the summed loss.
        tower_units: Hidden sizes of this task's tower; ``None`` uses ``ModelConfig.tower_units``.
        conditional_on: ESMM-style structure: name of a binary task this binary task is only
            observed after. The model then predicts p(this | parent) and trains the product
            p(parent) · p(this | parent) on all impressions.
    """

    name: str
    type: str = "binary"
    label_column: str | None = None
    loss: str | None = None
    loss_weight: float = 1.0
    tower_units: tuple[int, ...] | None = None
    conditional_on: str | None = None

    def __post_init__(self) -> None:
        owner = f"TaskSpec {self.name!r}"
        if not isinstance(self.name, str) or not self.name or "/" in self.name or ":" in self.name:
            _fail(owner, "name", "must be a non-empty string without '/' or ':'")
        if self.type not in TASK_TYPES:
            _fail(owner, "type", f"is {self.type!r}, an unknown task type; expected one of {TASK_TYPES}")
        loss = self.loss or TASK_LOSSES[self.type][0]
        if loss not in TASK_LOSSES[self.type]:
            _fail(owner, "loss", f"is {loss!r}; a {self.type} task takes one of {TASK_LOSSES[self.type]}")
        object.__setattr__(self, "loss", loss)
        object.__setattr__(self, "label_column", self.label_column or self.name)
        if isinstance(self.loss_weight, bool) or not isinstance(self.loss_weight, (int, float)) or self.loss_weight < 0:
            _fail(owner, "loss_weight", f"must be a non-negative number, got {self.loss_weight!r}")
        object.__setattr__(self, "loss_weight", float(self.loss_weight))
        if self.tower_units is not None:
            object.__setattr__(self, "tower_units", _positive_units(owner, "tower_units", self.tower_units, True))
        if self.conditional_on is not None and self.type != "binary":
            _fail(owner, "conditional_on", "is only valid for binary tasks")

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form suitable for JSON/YAML."""
        data = dataclasses.asdict(self)
        if data["tower_units"] is not None:
            data["tower_units"] = list(data["tower_units"])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskSpec:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them."""
        return _from_mapping(cls, data, f"task {data.get('name', '?')!r}" if isinstance(data, Mapping) else "task")


def default_tasks() -> tuple[TaskSpec, ...]:
    """The product's default heads: binary ``click`` and binary ``satisfaction``."""
    return tuple(TaskSpec(name) for name in DEFAULT_TASK_NAMES)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a model; two models with equal configs are interchangeable.

    Args:
        features: The raw input features.
        tasks: The prediction tasks (outputs); defaults to ``click`` and ``satisfaction``.
        architecture: ``mmoe`` (one gate per task), ``omoe`` (one gate shared by all tasks),
            ``ple`` (Progressive Layered Extraction: per-task plus shared experts per level; one level
            is CGC), ``shared_bottom`` (one shared MLP) or ``single_task`` (independent networks per task).
        num_experts: Number of experts K (mmoe/omoe).
        num_shared_experts: Shared experts per level (ple).
        num_task_experts: Experts each task owns per level (ple); a task's gate mixes its own
            ``num_task_experts`` then the ``num_shared_experts`` shared experts.
        expert_units: Hidden sizes of each expert MLP; the last is the expert output width. For
            ``shared_bottom`` and ``single_task`` these are the bottom MLP's sizes.
        expert_type: ``mlp`` or ``cross`` (DCN-v2 cross network from TFRS, then a projection to
            ``expert_units[-1]``).
        cross_layers: Number of cross layers in a ``cross`` expert.
        expert_activation: Activation of expert hidden layers.
        expert_dropout: Dropout rate after each expert hidden layer.
        expert_norm: ``None``, ``batch`` or ``layer`` normalisation inside experts.
        gate_hidden_units: Hidden layer sizes of each gate before its softmax (empty: linear gate).
        gate_temperature: Softmax temperature of the gates (> 0; larger is flatter).
        gate_dropout: Dropout on gate weights during training (renormalised to sum to 1).
        num_levels: Number of stacked MMoE blocks (multi-level MMoE), or of PLE extraction levels
            (``1`` = CGC).
        tower_units: Default hidden sizes of each task tower.
        tower_activation: Activation of tower hidden layers.
        tower_dropout: Dropout rate after each tower hidden layer.
        feature_crosses: Crossed features (:class:`FeatureCross`, or plain lists of feature names),
            each hashed and embedded next to the features' own embeddings (default: none).
        embedding_l2: L2 penalty ``λ · Σ w²`` on every embedding table, added to the loss (``0``:
            none). It shrinks the per-id vectors of rare users and items towards 0; DeepCTR's
            models default to ``1e-5``.
        loss_balancing: ``fixed`` (use each task's ``loss_weight``) or ``uncertainty`` (learned
            per-task weights, Kendall et al. 2018).
        optimizer: Keras optimizer identifier.
        learning_rate: Optimizer learning rate.
        steps_per_execution: Training/evaluation/prediction steps Keras runs per call of its
            compiled function. Batch-level callbacks fire every this many steps; epoch-level ones
            are unaffected. The default, 16, measured 1.5–2.6× the examples/s of 1 at batch 512
            on a 2-core CPU (``docs/performance.md``).
        train_split_rows: ``0`` (the default) trains every batch in one forward pass. ``N > 0``: a
            training batch of at least ``N`` rows runs forward and backward as two halves, independent
            chains of ops that TensorFlow's inter-op threads run side by side; the loss, gradient and
            metrics stay the whole batch's (up to float rounding), and a smaller batch runs whole next
            to an empty call. It pays only for batches of about 2,048 rows and more on a 2-core CPU and
            costs below the threshold (docs/performance.md, Design decisions), so it is opt-in: set it at
            or below the batch size of large-batch training. Not applied when a GPU is
            visible or the model holds batch normalisation (two halves would have their own batch
            statistics).
        precision: ``float32`` or ``mixed_bfloat16``: the experts, gates and towers compute in bfloat16 with
            float32 variables (a Keras mixed-precision policy on those layers only); preprocessing, embeddings,
            gate softmaxes, the task heads, the loss, metrics and the model's outputs stay float32
            (docs/performance.md, Design decisions).
        seed: Seed for weight initialisation.
    """

    features: tuple[FeatureSpec, ...]
    tasks: tuple[TaskSpec, ...] = dataclasses.field(default_factory=default_tasks)
    architecture: str = "mmoe"
    num_experts: int = 4
    num_shared_experts: int = 2
    num_task_experts: int = 1
    expert_units: tuple[int, ...] = (64,)
    expert_type: str = "mlp"
    cross_layers: int = 2
    expert_activation: str = "relu"
    expert_dropout: float = 0.0
    expert_norm: str | None = None
    gate_hidden_units: tuple[int, ...] = ()
    gate_temperature: float = 1.0
    gate_dropout: float = 0.0
    num_levels: int = 1
    tower_units: tuple[int, ...] = (32,)
    tower_activation: str = "relu"
    tower_dropout: float = 0.0
    feature_crosses: tuple[FeatureCross, ...] = ()
    embedding_l2: float = 0.0
    loss_balancing: str = "fixed"
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    steps_per_execution: int = 16
    train_split_rows: int = 0
    precision: str = "float32"
    seed: int = 42

    def __post_init__(self) -> None:
        owner = "ModelConfig"
        features = tuple(FeatureSpec.from_dict(f) if isinstance(f, Mapping) else f for f in self.features)
        tasks = tuple(TaskSpec.from_dict(t) if isinstance(t, Mapping) else t for t in self.tasks)
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "tasks", tasks)
        if not features:
            _fail(owner, "features", "must list at least one feature")
        if not tasks:
            _fail(owner, "tasks", "must list at least one task")
        for field, items in (("features", features), ("tasks", tasks)):
            names = [item.name for item in items]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                _fail(owner, field, f"has duplicate names {dupes}")
        task_by_name = {t.name: t for t in tasks}
        for task in tasks:
            parent = task.conditional_on
            if parent is not None and (
                parent not in task_by_name or parent == task.name or task_by_name[parent].type != "binary"
            ):
                _fail(
                    owner,
                    "tasks",
                    f"task {task.name!r} has conditional_on={parent!r}, which is not another binary task",
                )
        crosses = tuple(FeatureCross.from_dict(c) for c in self.feature_crosses)
        object.__setattr__(self, "feature_crosses", crosses)
        check_crosses(crosses, features, owner)
        clash = sorted({f.name for f in features} & set(self.output_names))
        if clash:
            _fail(owner, "tasks", f"output names {clash} clash with feature names")
        if self.architecture not in ARCHITECTURES:
            _fail(owner, "architecture", f"is {self.architecture!r}; expected one of {ARCHITECTURES}")
        if self.architecture == "ple" and "shared" in self.task_names:
            _fail(owner, "tasks", "holds a task named 'shared', a name ple reserves for its shared experts")
        if self.expert_type not in EXPERT_TYPES:
            _fail(owner, "expert_type", f"is {self.expert_type!r}; expected one of {EXPERT_TYPES}")
        if self.expert_norm not in NORMALIZATIONS:
            _fail(owner, "expert_norm", f"is {self.expert_norm!r}; expected one of {NORMALIZATIONS}")
        if self.precision not in PRECISIONS:
            _fail(owner, "precision", f"is {self.precision!r}; expected one of {PRECISIONS}")
        if self.loss_balancing not in LOSS_BALANCING:
            _fail(owner, "loss_balancing", f"is {self.loss_balancing!r}; expected one of {LOSS_BALANCING}")
        for field in (
            "num_experts",
            "num_shared_experts",
            "num_task_experts",
            "num_levels",
            "cross_layers",
            "steps_per_execution",
            "train_split_rows",
            "seed",
        ):
            value = getattr(self, field)
            minimum = 0 if field in ("seed", "train_split_rows") else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                _fail(owner, field, f"must be an integer >= {minimum}, got {value!r}")
        object.__setattr__(self, "expert_units", _positive_units(owner, "expert_units", self.expert_units, False))
        object.__setattr__(
            self, "gate_hidden_units", _positive_units(owner, "gate_hidden_units", self.gate_hidden_units, True)
        )
        object.__setattr__(self, "tower_units", _positive_units(owner, "tower_units", self.tower_units, True))
        for field in ("expert_dropout", "gate_dropout", "tower_dropout"):
            value = getattr(self, field)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                _fail(owner, field, f"must be a rate in [0, 1), got {value!r}")
        l2 = self.embedding_l2
        if isinstance(l2, bool) or not isinstance(l2, (int, float)) or not (math.isfinite(l2) and l2 >= 0):
            _fail(owner, "embedding_l2", f"must be a finite number >= 0, got {l2!r}")
        object.__setattr__(self, "embedding_l2", float(self.embedding_l2))
        if not isinstance(self.gate_temperature, (int, float)) or self.gate_temperature <= 0:
            _fail(owner, "gate_temperature", f"must be > 0, got {self.gate_temperature!r}")
        if not isinstance(self.learning_rate, (int, float)) or self.learning_rate <= 0:
            _fail(owner, "learning_rate", f"must be > 0, got {self.learning_rate!r}")

    @property
    def task_names(self) -> tuple[str, ...]:
        """Task names in declaration order."""
        return tuple(t.name for t in self.tasks)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Feature (model input) names in declaration order."""
        return tuple(f.name for f in self.features)

    @property
    def output_names(self) -> tuple[str, ...]:
        """Model output names: one per task, plus ``<parent>_and_<task>`` for ESMM tasks."""
        extra = tuple(joint_output_name(t) for t in self.tasks if t.conditional_on)
        return self.task_names + extra

    def task(self, name: str) -> TaskSpec:
        """The task called ``name``; ``KeyError`` listing the known tasks otherwise."""
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"no task {name!r}; tasks are {list(self.task_names)}")

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form suitable for JSON/YAML and Keras ``get_config``."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["features"] = [f.to_dict() for f in self.features]
        data["tasks"] = [t.to_dict() for t in self.tasks]
        data["feature_crosses"] = [c.to_dict() for c in self.feature_crosses]
        for key in ("expert_units", "gate_hidden_units", "tower_units"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them."""
        data = dict(data)
        if "features" not in data:
            raise ValueError("ModelConfig: field 'features' is missing")
        data["features"] = tuple(FeatureSpec.from_dict(f) for f in data["features"])
        if "tasks" in data:
            data["tasks"] = tuple(TaskSpec.from_dict(t) for t in data["tasks"])
        return _from_mapping(cls, data, "ModelConfig")


def joint_output_name(task: TaskSpec) -> str:
    """Name of the ESMM joint output ``p(parent) * p(task | parent)``, e.g. ``click_and_satisfaction``."""
    if task.conditional_on is None:
        raise ValueError(f"task {task.name!r} is not conditional (conditional_on is None)")
    return f"{task.conditional_on}_and_{task.name}"
