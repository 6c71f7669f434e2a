"""The ``model`` section of a run config: every :class:`mmoe_tf.ModelConfig` field but ``features``/``tasks``.

``mmoe_tf`` keeps its frozen dataclasses (the library needs no pydantic, and a saved model's ``get_config`` stays
plain); this pydantic model declares the run config's view of them once: type, bounds, the training default, the
description and which architectures use the field (:func:`~training.config.fields.used_by`). A test keeps its field
list equal to ModelConfig's. The validated section resolves to a plain mapping (``RunConfig.model``) that
``Schema.model_config(**...)`` turns into a ModelConfig.

Example:
    >>> ModelSection(architecture="ple").resolved()["num_shared_experts"]
    2
"""

import dataclasses
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, ValidationInfo, model_validator

from mmoe_tf.config import ARCHITECTURES, EXPERT_TYPES, LOSS_BALANCING, NORMALIZATIONS, PRECISIONS, ModelConfig
from mmoe_tf.feature_specs import FeatureCross, FeatureSpec
from mmoe_tf.task_specs import TASK_LOSSES, TASK_TYPES
from training.config.fields import (
    ARCHITECTURES_KEY,
    EMPTY_IF_NONE,
    EXPERT_TYPE_KEY,
    FROZEN_SECTION,
    Float,
    Int,
    Str,
    Units,
    config_error,
    used_by,
)

MODEL_EXCLUDED_FIELDS = ("features", "tasks")
KEEP_UNUSED = "keep_unused_model_fields"
"""Validation-context key: keep fields the architecture does not use (a section shared by several architectures)."""
_GATED = ("mmoe", "omoe", "ple")
_LOSSES = tuple(dict.fromkeys(loss for losses in TASK_LOSSES.values() for loss in losses))


def library_default(name: str, owner: type = ModelConfig) -> Any:
    """The library's own default for field ``name`` of ``owner`` (a mmoe_tf dataclass; sequences as lists)."""
    field = next(f for f in dataclasses.fields(owner) if f.name == name)
    value = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    return list(value) if isinstance(value, tuple) else value


class CrossSpec(BaseModel):
    """One ``model.feature_crosses`` entry: a list of feature names, or this mapping."""

    model_config = FROZEN_SECTION

    features: list[Str] = Field(min_length=2, description="crossed categorical/hashed features (two or more)")
    num_bins: Int = Field(library_default("num_bins", FeatureCross), ge=1, description="hash buckets")
    embedding_dim: Int = Field(
        library_default("embedding_dim", FeatureCross), ge=1, description="embedding width of the cross"
    )

    @model_validator(mode="after")
    def _library_checks(self) -> "CrossSpec":
        try:
            FeatureCross(**self.model_dump())
        except ValueError as err:
            raise config_error(str(err)) from None
        return self


def _names_to_mapping(value: Any) -> Any:
    return {"features": value} if isinstance(value, (list, tuple)) else value


CrossEntry = Annotated[CrossSpec, BeforeValidator(_names_to_mapping, json_schema_input_type=list[str] | CrossSpec)]


class TaskOverrides(BaseModel):
    """``model.tasks.<task>``: fields replacing the schema's for one task; only the keys given are applied."""

    model_config = FROZEN_SECTION

    type: Literal[TASK_TYPES] = Field(None, description="`binary` or `regression`")
    label_column: Str | None = Field(None, description="source column of the label")
    loss: Literal[_LOSSES] | None = Field(None, description="`bce` (binary); `mse` or `huber` (regression)")
    loss_weight: Float = Field(None, ge=0, description="the task's fixed weight λ in the summed loss")
    tower_units: Units | None = Field(None, description="this task's tower sizes; null = `model.tower_units`")
    conditional_on: Str | None = Field(
        None, description="ESMM: the binary task this one is only observed after (e.g. `click`)"
    )


TASK_OVERRIDE_FIELDS = tuple(TaskOverrides.model_fields)


class ModelSection(BaseModel):
    """The run config's ``model`` section: a pydantic view of :class:`mmoe_tf.ModelConfig`, which stays a dataclass.

    ModelConfig stays a plain dataclass so that the library (and a saved model's ``get_config``) needs no pydantic;
    this view adds what a config file needs (descriptions, strict types, training defaults, architecture marks) and
    is converted to a ModelConfig by ``Schema.model_config(**RunConfig.model_overrides())``. Defaults are
    ModelConfig's (:func:`library_default`) except where a training run is better served (marked below).
    """

    model_config = FROZEN_SECTION

    architecture: Literal[ARCHITECTURES] = Field(
        "mmoe",
        description="`mmoe` (a gate per task), `omoe` (one shared gate), `ple` (per-task and shared experts per "
        "level), `shared_bottom` (one shared MLP) or `single_task` (a network per task)",
    )
    num_experts: Int = Field(library_default("num_experts"), ge=1, description="experts K", **used_by("mmoe", "omoe"))
    num_shared_experts: Int = Field(
        library_default("num_shared_experts"), ge=1, description="shared experts per level", **used_by("ple")
    )
    num_task_experts: Int = Field(
        library_default("num_task_experts"), ge=1, description="experts each task owns per level", **used_by("ple")
    )
    expert_units: Units = Field(
        [32],  # training default (ModelConfig: [64])
        min_length=1,
        description="expert MLP sizes (the bottom MLP for `shared_bottom`/`single_task`)",
    )
    expert_type: Literal[EXPERT_TYPES] = Field(
        library_default("expert_type"), description="`mlp` or `cross` (DCN-v2 cross-network experts)"
    )
    cross_layers: Int = Field(
        library_default("cross_layers"), ge=1, description="cross layers per expert", **used_by(expert_type="cross")
    )
    expert_activation: Str = Field(library_default("expert_activation"), description="activation of expert layers")
    expert_dropout: Float = Field(
        0.2,  # training default (ModelConfig: 0.0)
        ge=0,
        lt=1,
        description="dropout after each expert hidden layer (hashed ids overfit quickly)",
    )
    expert_norm: Literal[NORMALIZATIONS] = Field(
        library_default("expert_norm"), description="normalisation inside experts: null, `batch` or `layer`"
    )
    gate_hidden_units: Units = Field(
        library_default("gate_hidden_units"),
        description="gate hidden sizes before the softmax ([] = linear gate)",
        **used_by(*_GATED),
    )
    gate_temperature: Float = Field(
        library_default("gate_temperature"),
        gt=0,
        description="gate softmax temperature (> 1 flatter)",
        **used_by(*_GATED),
    )
    gate_dropout: Float = Field(
        library_default("gate_dropout"),
        ge=0,
        lt=1,
        description="dropout on gate weights (renormalised)",
        **used_by(*_GATED),
    )
    gate_balance_weight: Float = Field(
        library_default("gate_balance_weight"),
        ge=0,
        description="weight of each gate's load-balancing penalty, CV² of the batch-mean gate weights (0 = none)",
        **used_by(*_GATED),
    )
    num_levels: Int = Field(
        library_default("num_levels"),
        ge=1,
        description="stacked MMoE blocks / PLE levels (1 = CGC)",
        **used_by(*_GATED),
    )
    tower_units: Units = Field(
        [16],  # training default (ModelConfig: [32])
        description="per-task tower sizes",
    )
    tower_activation: Str = Field(library_default("tower_activation"), description="activation of tower layers")
    tower_dropout: Float = Field(
        library_default("tower_dropout"), ge=0, lt=1, description="dropout after each tower hidden layer"
    )
    feature_crosses: list[CrossEntry] = Field(
        library_default("feature_crosses"),
        description="crossed features, hashed and embedded inside the model: lists of feature names "
        "(`[[user_segment, item_category]]`) or `{features: [...], num_bins: 1024, embedding_dim: 8}`",
    )
    embedding_l2: Float = Field(
        library_default("embedding_l2"),
        ge=0,
        description="L2 penalty λ·Σw² on every embedding table, added to the loss (0 = none)",
    )
    loss_balancing: Literal[LOSS_BALANCING] = Field(
        library_default("loss_balancing"),
        description="`fixed` (each task's `loss_weight`) or `uncertainty` (learned, Kendall et al. 2018)",
    )
    optimizer: Str = Field(library_default("optimizer"), description="Keras optimizer identifier")
    learning_rate: Float = Field(
        0.002,  # training default (ModelConfig: 0.001)
        gt=0,
        description="optimizer learning rate",
    )
    steps_per_execution: Int = Field(
        library_default("steps_per_execution"),
        ge=1,
        description="steps per call of Keras' compiled train/predict function (speed)",
    )
    train_split_rows: Int = Field(
        library_default("train_split_rows"),
        ge=0,
        description="0 = off; N: batches of >= N rows train as two halves side by side (large-batch CPU speed)",
    )
    precision: Literal[PRECISIONS] = Field(
        library_default("precision"),
        description="`float32` or `mixed_bfloat16` (experts, gates and towers in bfloat16; variables, loss, metrics "
        "and outputs float32)",
    )
    seed: Int = Field(library_default("seed"), ge=0, description="weight-initialisation seed")
    tasks: Annotated[dict[Str, TaskOverrides], EMPTY_IF_NONE] = Field(
        {}, description="per-task overrides of the schema's tasks, e.g. `{satisfaction: {conditional_on: click}}`"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_features(cls, data: Any) -> Any:
        if isinstance(data, dict) and "features" in data:
            raise config_error("features come from the data schema and cannot be set here", field="features")
        return data

    @model_validator(mode="after")
    def _architecture_uses_its_fields(self, info: ValidationInfo) -> "ModelSection":
        unused = (
            () if (info.context or {}).get(KEEP_UNUSED) else unused_model_fields(self.architecture, self.expert_type)
        )
        refused = sorted(k for k in unused if getattr(self, k) != model_defaults()[k])
        if refused:
            them = "them" if len(refused) > 1 else "it"
            raise config_error(
                f"architecture {self.architecture!r} does not use {', '.join(refused)}; remove {them} "
                f"(or choose an architecture that uses {them})"
            )
        fields = self.model_dump(exclude={"tasks", "feature_crosses"})
        try:  # ModelConfig's own checks, as a backstop, with a placeholder feature
            ModelConfig(features=(FeatureSpec("__feature__", "numeric"),), **fields)
        except ValueError as err:
            raise config_error(str(err)) from None
        return self

    def resolved(self, keep_unused: bool = False) -> dict[str, Any]:
        """Plain mapping: every field the architecture uses (all with ``keep_unused``), ``tasks`` as given."""
        unused = () if keep_unused else unused_model_fields(self.architecture, self.expert_type)
        out = {k: v for k, v in self.model_dump(mode="json", exclude={"tasks"}).items() if k not in unused}
        out["tasks"] = {name: t.model_dump(mode="json", exclude_unset=True) for name, t in self.tasks.items()}
        return out


def model_defaults() -> dict[str, Any]:
    """Every model field (not ``tasks``) at its built-in training default (plain lists)."""
    return ModelSection.model_construct().model_dump(mode="json", exclude={"tasks"})


def unused_model_fields(architecture: str, expert_type: str = "mlp") -> tuple[str, ...]:
    """Model fields ``architecture`` ignores (``cross_layers`` is ignored unless ``expert_type`` is cross).

    Example:
        >>> unused_model_fields("shared_bottom")[:2]
        ('num_experts', 'num_shared_experts')
    """
    out = []
    for name, field in ModelSection.model_fields.items():
        marks = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        archs, expert = marks.get(ARCHITECTURES_KEY), marks.get(EXPERT_TYPE_KEY)
        if (archs and architecture not in archs) or (expert and expert_type != expert):
            out.append(name)
    return tuple(out)


def architectures_using(name: str) -> str:
    """For help text: ``"used by mmoe, omoe"``, ``"used with expert_type: cross"`` or ``""`` (used by every one)."""
    field = ModelSection.model_fields[name]
    marks = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if marks.get(EXPERT_TYPE_KEY):
        return f"used with expert_type: {marks[EXPERT_TYPE_KEY]}"
    return f"used by {', '.join(marks[ARCHITECTURES_KEY])}" if marks.get(ARCHITECTURES_KEY) else ""
