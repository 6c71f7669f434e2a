"""The model's declarative description, :class:`ModelConfig`: its features, tasks and architecture options.

The single source of truth shared by the model builders (``mmoe_tf``), the data loaders (``data/``), training
(``training/``) and export (``serving/``). Features are declared with :class:`~mmoe_tf.feature_specs.FeatureSpec` and
:class:`~mmoe_tf.feature_specs.FeatureCross`, tasks with :class:`~mmoe_tf.task_specs.TaskSpec`. All are frozen
dataclasses with ``to_dict`` / ``from_dict``, so they round-trip through YAML/JSON and Keras ``get_config``.

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
from collections.abc import Mapping
from typing import Any

from mmoe_tf._field_checks import fail, from_mapping, positive_units
from mmoe_tf.feature_specs import FeatureCross, FeatureSpec, check_crosses
from mmoe_tf.task_specs import TaskSpec, default_tasks, joint_output_name

ARCHITECTURES = ("mmoe", "omoe", "ple", "shared_bottom", "single_task")
EXPERT_TYPES = ("mlp", "cross")
NORMALIZATIONS = (None, "batch", "layer")
LOSS_BALANCING = ("fixed", "uncertainty")
PRECISIONS = ("float32", "mixed_bfloat16")


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
        gate_balance_weight: Weight (>= 0) of each gate's load-balancing penalty during training (0: none).
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
    gate_balance_weight: float = 0.0
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
            fail(owner, "features", "must list at least one feature")
        if not tasks:
            fail(owner, "tasks", "must list at least one task")
        for field, items in (("features", features), ("tasks", tasks)):
            names = [item.name for item in items]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                fail(owner, field, f"has duplicate names {dupes}")
        task_by_name = {t.name: t for t in tasks}
        for task in tasks:
            parent = task.conditional_on
            if parent is not None and (
                parent not in task_by_name or parent == task.name or task_by_name[parent].type != "binary"
            ):
                fail(
                    owner,
                    "tasks",
                    f"task {task.name!r} has conditional_on={parent!r}, which is not another binary task",
                )
        crosses = tuple(FeatureCross.from_dict(c) for c in self.feature_crosses)
        object.__setattr__(self, "feature_crosses", crosses)
        check_crosses(crosses, features, owner)
        clash = sorted({f.name for f in features} & set(self.output_names))
        if clash:
            fail(owner, "tasks", f"output names {clash} clash with feature names")
        if self.architecture not in ARCHITECTURES:
            fail(owner, "architecture", f"is {self.architecture!r}; expected one of {ARCHITECTURES}")
        if self.architecture == "ple" and "shared" in self.task_names:
            fail(owner, "tasks", "holds a task named 'shared', a name ple reserves for its shared experts")
        if self.expert_type not in EXPERT_TYPES:
            fail(owner, "expert_type", f"is {self.expert_type!r}; expected one of {EXPERT_TYPES}")
        if self.expert_norm not in NORMALIZATIONS:
            fail(owner, "expert_norm", f"is {self.expert_norm!r}; expected one of {NORMALIZATIONS}")
        if self.precision not in PRECISIONS:
            fail(owner, "precision", f"is {self.precision!r}; expected one of {PRECISIONS}")
        if self.loss_balancing not in LOSS_BALANCING:
            fail(owner, "loss_balancing", f"is {self.loss_balancing!r}; expected one of {LOSS_BALANCING}")
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
                fail(owner, field, f"must be an integer >= {minimum}, got {value!r}")
        object.__setattr__(self, "expert_units", positive_units(owner, "expert_units", self.expert_units, False))
        object.__setattr__(
            self, "gate_hidden_units", positive_units(owner, "gate_hidden_units", self.gate_hidden_units, True)
        )
        object.__setattr__(self, "tower_units", positive_units(owner, "tower_units", self.tower_units, True))
        for field in ("expert_dropout", "gate_dropout", "tower_dropout"):
            value = getattr(self, field)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                fail(owner, field, f"must be a rate in [0, 1), got {value!r}")
        l2 = self.embedding_l2
        if isinstance(l2, bool) or not isinstance(l2, (int, float)) or not (math.isfinite(l2) and l2 >= 0):
            fail(owner, "embedding_l2", f"must be a finite number >= 0, got {l2!r}")
        object.__setattr__(self, "embedding_l2", float(self.embedding_l2))
        if not isinstance(self.gate_temperature, (int, float)) or self.gate_temperature <= 0:
            fail(owner, "gate_temperature", f"must be > 0, got {self.gate_temperature!r}")
        if not isinstance(w := self.gate_balance_weight, (int, float)) or isinstance(w, bool) or not 0 <= w < math.inf:
            fail(owner, "gate_balance_weight", f"must be a finite number >= 0, got {self.gate_balance_weight!r}")
        if not isinstance(self.learning_rate, (int, float)) or self.learning_rate <= 0:
            fail(owner, "learning_rate", f"must be > 0, got {self.learning_rate!r}")

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
        return from_mapping(cls, data, "ModelConfig")
