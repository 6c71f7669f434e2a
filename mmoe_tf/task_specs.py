"""Declarative prediction tasks: :class:`TaskSpec` (one model output), the default heads and ESMM output names.

Example:
    >>> [t.name for t in default_tasks()]
    ['click', 'satisfaction']
    >>> joint_output_name(TaskSpec("satisfaction", conditional_on="click"))
    'click_and_satisfaction'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from mmoe_tf._field_checks import check_name, fail, from_mapping, positive_units

TASK_TYPES = ("binary", "regression")
TASK_LOSSES = {"binary": ("bce",), "regression": ("mse", "huber")}
DEFAULT_TASK_NAMES = ("click", "satisfaction")


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
        check_name(owner, self.name)
        if self.type not in TASK_TYPES:
            fail(owner, "type", f"is {self.type!r}, an unknown task type; expected one of {TASK_TYPES}")
        loss = self.loss or TASK_LOSSES[self.type][0]
        if loss not in TASK_LOSSES[self.type]:
            fail(owner, "loss", f"is {loss!r}; a {self.type} task takes one of {TASK_LOSSES[self.type]}")
        object.__setattr__(self, "loss", loss)
        object.__setattr__(self, "label_column", self.label_column or self.name)
        if isinstance(self.loss_weight, bool) or not isinstance(self.loss_weight, (int, float)) or self.loss_weight < 0:
            fail(owner, "loss_weight", f"must be a non-negative number, got {self.loss_weight!r}")
        object.__setattr__(self, "loss_weight", float(self.loss_weight))
        if self.tower_units is not None:
            object.__setattr__(self, "tower_units", positive_units(owner, "tower_units", self.tower_units, True))
        if self.conditional_on is not None and self.type != "binary":
            fail(owner, "conditional_on", "is only valid for binary tasks")

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form suitable for JSON/YAML."""
        data = dataclasses.asdict(self)
        if data["tower_units"] is not None:
            data["tower_units"] = list(data["tower_units"])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskSpec:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them."""
        return from_mapping(cls, data, f"task {data.get('name', '?')!r}" if isinstance(data, Mapping) else "task")


def default_tasks() -> tuple[TaskSpec, ...]:
    """The product's default heads: binary ``click`` and binary ``satisfaction``."""
    return tuple(TaskSpec(name) for name in DEFAULT_TASK_NAMES)


def joint_output_name(task: TaskSpec) -> str:
    """Name of the ESMM joint output ``p(parent) * p(task | parent)``, e.g. ``click_and_satisfaction``."""
    if task.conditional_on is None:
        raise ValueError(f"task {task.name!r} is not conditional (conditional_on is None)")
    return f"{task.conditional_on}_and_{task.name}"
