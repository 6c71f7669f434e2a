"""A whole training run: the ``data``, ``model``, ``train`` and ``gates`` sections plus ``output_dir``.

Example:
    >>> cfg = RunConfig.from_dict({"train": {"epochs": 3}, "model": {"num_experts": 8}})
    >>> cfg.train.epochs, cfg.model["num_experts"], cfg.model_overrides()["expert_units"]
    (3, 8, (32,))
"""

import dataclasses
import pathlib
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, PlainValidator, TypeAdapter, ValidationError, ValidationInfo
from pydantic.dataclasses import dataclass

from mmoe_tf.config import ModelConfig
from training.config.errors import RunConfigError, from_validation_error
from training.config.fields import EMPTY_IF_NONE, SECTION, Str
from training.config.model_section import KEEP_UNUSED, TASK_OVERRIDE_FIELDS, ModelSection
from training.config.sections import DataConfig, GatesConfig, TrainConfig

_MODEL_SECTION = TypeAdapter(ModelSection)


def _model_section(value: Any, info: ValidationInfo) -> dict[str, Any]:
    keep = bool((info.context or {}).get(KEEP_UNUSED))
    section = _MODEL_SECTION.validate_python({} if value is None else value, context=info.context)
    return section.resolved(keep_unused=keep)


def _default_model() -> dict[str, Any]:
    return ModelSection().resolved()


@dataclass(frozen=True, config=SECTION)
class RunConfig:
    """A whole training run; :meth:`from_dict` validates a raw mapping (``RunConfigError`` names the bad key).

    ``model`` is the resolved :class:`~training.config.model_section.ModelSection` as a plain mapping: every model
    field the architecture uses (built-in defaults where not set) plus ``tasks`` (per-task overrides; after
    :func:`resolved_for`, every field of every task).
    """

    data: Annotated[DataConfig, EMPTY_IF_NONE] = Field(
        default_factory=DataConfig, description="where the data comes from and how it is split"
    )
    model: Annotated[dict[str, Any], PlainValidator(_model_section, json_schema_input_type=ModelSection)] = Field(
        default_factory=_default_model, description="the model (mmoe_tf.ModelConfig fields but features/tasks)"
    )
    train: Annotated[TrainConfig, EMPTY_IF_NONE] = Field(default_factory=TrainConfig, description="how to fit")
    gates: Annotated[GatesConfig, EMPTY_IF_NONE] = Field(
        default_factory=GatesConfig, description="gate analysis after training"
    )
    output_dir: Str | None = Field(None, description="run folder; null = `output/runs/<UTC timestamp>`")

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (lists, not tuples) for ``run_config.yaml``."""
        return RUN_CONFIG.dump_python(self, mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, keep_unused_model_fields: bool = False) -> "RunConfig":
        """Validate a raw mapping; ``RunConfigError`` names the first bad key.

        ``keep_unused_model_fields`` keeps (instead of refusing) model fields the configured architecture does not
        use, for configs that describe several architectures (``python -m training compare``).
        """
        try:
            return RUN_CONFIG.validate_python(
                {} if data is None else data, context={KEEP_UNUSED: keep_unused_model_fields}
            )
        except ValidationError as err:
            raise from_validation_error(err, cls) from None

    def model_overrides(self) -> dict[str, Any]:
        """``model`` without ``tasks``: keyword arguments for ``Schema.model_config``."""
        return {k: (tuple(v) if isinstance(v, list) else v) for k, v in self.model.items() if k != "tasks"}

    def task_overrides(self) -> dict[str, dict[str, Any]]:
        """``model.tasks``: per-task field overrides keyed by task name."""
        return dict(self.model.get("tasks") or {})


RUN_CONFIG = TypeAdapter(RunConfig)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


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
