"""Run configuration: one YAML/TOML file plus ``--set a.b=c`` overrides, validated by pydantic models.

Each key is declared once (type, default, bounds, description) in :mod:`training.config.sections` (``data``,
``train``, ``gates``) and :mod:`training.config.model_section` (``model``); validation, the dotted key of an
error, ``--help``, README's configuration reference and the JSON Schema (``python -m training config --schema``)
all come from those declarations. ``training/configs/default.yaml`` states every key at its default.

Every error is a :class:`RunConfigError` (a ``ValueError``) naming the dotted key, e.g.
``train.epochs: expected an integer, got 'three' (str)``.

Adding a key is one declaration in its section class, e.g. in ``DataConfig``::

    fill_missing_columns: Bool = Field(False, description="fill absent optional feature columns with their defaults")

then regenerate the two rendered files (their tests name the commands): ``python -m training config --readme
README.md`` and ``python -m training config --schema training/configs/run_config.schema.json``. A new choice of an
existing key extends the tuple its ``Literal`` reads (e.g. ``DISTRIBUTE_KINDS``); a model key only some
architectures use takes ``**used_by("ple")``; a check spanning keys is a ``model_validator(mode="after")`` raising
:func:`~training.config.fields.config_error` (``field=`` names the key).

Example:
    >>> cfg = load_run_config(None, ["model.num_experts=8", "train.epochs=3"])
    >>> cfg.model["num_experts"], cfg.train.epochs
    (8, 3)
"""

from training.config.errors import RunConfigError
from training.config.files import apply_overrides, load_run_config, load_yaml, parse_override, read_config_file
from training.config.model_section import (
    MODEL_EXCLUDED_FIELDS,
    TASK_OVERRIDE_FIELDS,
    ModelSection,
    TaskOverrides,
    model_defaults,
    unused_model_fields,
)
from training.config.reference import config_reference, json_schema, markdown_reference, render_readme
from training.config.run_config import RunConfig, apply_task_overrides, resolved_for
from training.config.sections import (
    DISTRIBUTE_KINDS,
    PS_SHARD_POLICIES,
    SPLIT_METHODS,
    DataConfig,
    EarlyStoppingConfig,
    GatesConfig,
    SplitConfig,
    TrainConfig,
)

__all__ = [
    "DISTRIBUTE_KINDS",
    "MODEL_EXCLUDED_FIELDS",
    "PS_SHARD_POLICIES",
    "SPLIT_METHODS",
    "TASK_OVERRIDE_FIELDS",
    "DataConfig",
    "EarlyStoppingConfig",
    "GatesConfig",
    "ModelSection",
    "RunConfig",
    "RunConfigError",
    "SplitConfig",
    "TaskOverrides",
    "TrainConfig",
    "apply_overrides",
    "apply_task_overrides",
    "config_reference",
    "json_schema",
    "load_run_config",
    "load_yaml",
    "markdown_reference",
    "model_defaults",
    "parse_override",
    "read_config_file",
    "render_readme",
    "resolved_for",
    "unused_model_fields",
]
