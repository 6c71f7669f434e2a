"""The ``data``, ``train`` and ``gates`` sections of a run config, declared once: type, default, bounds, description.

Each section is a pydantic dataclass (so ``dataclasses.replace`` re-validates a changed copy); the field
descriptions are the ``--help`` text, the JSON Schema's and README's configuration reference.

Example:
    >>> TrainConfig(epochs=3).batch_size
    256
"""

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic.dataclasses import dataclass

from data.validation import NAN_POLICIES
from mmoe_tf.config import ARCHITECTURES
from training.config.fields import EMPTY_IF_NONE, SECTION, Bool, Float, Int, Str, config_error
from training.monitor import monitor_mode

SPLIT_METHODS = ("random", "time")
DISTRIBUTE_KINDS = ("none", "mirrored", "multi_worker", "parameter_server")
PS_SHARD_POLICIES = ("min_size", "max_size", "fixed", "none")


@dataclass(frozen=True, config=SECTION)
class SplitConfig:
    """How the table is split into train/validation/test."""

    method: Literal[SPLIT_METHODS] = Field(
        "random", description="`random` (seeded shuffle) or `time` (ordered by `data.split.column`)"
    )
    fractions: tuple[Float, ...] = Field((0.8, 0.1, 0.1), description="train/validation/test fractions, summing to 1")
    seed: Int = Field(0, description="shuffle seed of the random split (and of `data.max_rows`)")
    column: Str | None = Field(
        None, description="time column for `method: time`; null = the schema's `timestamp_column`"
    )

    @field_validator("fractions")
    @classmethod
    def _three_fractions(cls, fractions: tuple[float, ...]) -> tuple[float, ...]:
        if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
            raise config_error(
                f"expected three non-negative train/validation/test fractions summing to 1, got {list(fractions)}"
            )
        if fractions[0] <= 0:
            raise config_error(f"the training fraction must be > 0, got {list(fractions)}")
        return fractions


@dataclass(frozen=True, config=SECTION)
class DataConfig:
    """Where the data comes from and how it is cut."""

    path: Str = Field("default", description="CSV/Parquet table, or `default` (the embedded 60,000-row sample)")
    schema: Str | None = Field(None, description="schema YAML/JSON; required unless `data.path` is `default`")
    split: Annotated[SplitConfig, EMPTY_IF_NONE] = Field(default_factory=SplitConfig, description="the split")
    nan_policy: Literal[NAN_POLICIES] = Field(
        "error", description="missing feature values: `error`, or `fill` with each feature's default"
    )
    max_rows: Int | None = Field(
        None, ge=10, description="keep a seeded random subset of this many rows (original order kept); null = all"
    )
    allow_missing_features: Bool = Field(
        False,
        description="absent optional-feature columns (schema `default`) take that default, with a warning naming "
        "each; false = an error naming the column, with a did-you-mean",
    )

    @model_validator(mode="after")
    def _schema_unless_default(self) -> "DataConfig":
        if self.path != "default" and not self.schema:
            raise config_error(f"required when data.path is not 'default' (path={self.path!r})", field="schema")
        return self


@dataclass(frozen=True, config=SECTION)
class EarlyStoppingConfig:
    """Keras ``EarlyStopping(restore_best_weights=True)``; ``patience: 0`` disables it.

    The default monitor, ``val_loss``, is the measured best for a scarce task with MMoE (docs/results.md §1: it
    beat ``val_mean_task_auc`` and ``val_<scarce task>_auc``, whose few validation labels make them noisy).
    """

    patience: Int = Field(3, ge=0, description="epochs without improvement before stopping; 0 disables it")
    monitor: Str = Field(
        "val_loss",
        description="metric watched by EarlyStopping and the best checkpoint: any logged metric (`*auc` up, "
        "`*loss` down) or `val_mean_task_auc`; `report.json` has per-task best epochs",
    )
    min_delta: Float = Field(0.0, description="minimum change counted as an improvement")

    @field_validator("monitor")
    @classmethod
    def _has_direction(cls, monitor: str) -> str:
        try:
            monitor_mode(monitor)
        except ValueError as err:
            raise config_error(str(err)) from None
        return monitor


@dataclass(frozen=True, config=SECTION)
class TrainConfig:
    """How to fit."""

    epochs: Int = Field(15, ge=1, description="maximum epochs")
    batch_size: Int = Field(256, ge=1, description="global batch size (split across replicas when distributed)")
    seed: Int = Field(0, description="`tf.keras.utils.set_random_seed` and shuffle seed")
    early_stopping: Annotated[EarlyStoppingConfig, EMPTY_IF_NONE] = Field(
        default_factory=EarlyStoppingConfig, description="early stopping and best-checkpoint selection"
    )
    distribute: Literal[DISTRIBUTE_KINDS] = Field(
        "none",
        description="`none`, `mirrored` (all local GPUs, else all logical CPUs), `multi_worker` (`TF_CONFIG`) or "
        "`parameter_server` (`TF_CONFIG`; docs/scaling.md)",
    )
    ps_shard_policy: Literal[PS_SHARD_POLICIES] = Field(
        "min_size",
        description="how `parameter_server` splits variables across the ps tasks: `min_size` (variables of at least "
        "`ps_shard_bytes`, up to one shard per ps), `max_size` (shards of at most `ps_shard_bytes`), `fixed` (every "
        "variable, one shard per ps) or `none`",
    )
    ps_shard_bytes: Int = Field(
        1 << 20, ge=1, description="`min_size`: split variables of at least this many bytes; `max_size`: largest shard"
    )
    logical_cpus: Int | None = Field(
        None, ge=1, description="split the CPU into N logical devices first (fresh process only); null = leave them"
    )
    steps_per_epoch: Int | None = Field(
        None, ge=1, description="batches per epoch; null = one pass (training data repeats either way)"
    )
    verbose: Int = Field(2, ge=0, le=2, description="Keras `fit` verbosity: 0 silent, 1 progress bar, 2 one line/epoch")
    baseline: Literal[ARCHITECTURES] | None = Field(
        None,
        description="also train this architecture (e.g. `single_task`) on the same splits with the same budget; its "
        "test metrics print next to the model's; null = none",
    )


@dataclass(frozen=True, config=SECTION)
class GatesConfig:
    """Gate analysis after training (:mod:`training.gate_analysis`)."""

    enabled: Bool = Field(True, description="run gate analysis after training (skipped for models without gates)")
    collapse_max_weight: Float = Field(
        0.9, gt=0, le=1, description="warn when a task's mean max gate weight exceeds this"
    )
    collapse_entropy: Float = Field(
        0.1, ge=0, lt=1, description="warn when a task's mean normalised gate entropy is below this"
    )
    unused_share: Float | None = Field(None, description="flag experts below this share of gate mass; null = 0.1/K")
