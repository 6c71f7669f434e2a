"""ESMM targets: the joint label ``parent · child`` trained on every impression.

For a task ``t`` with ``conditional_on=p`` the model trains ``p(p) · p(t | p)`` (output
``p_and_t``) against the label ``y_p · fill0(y_t)``. Its weight is the parent's weight, except that
rows where the parent is positive but the child was not observed (child weight 0 or child NaN)
get weight 0: their joint label is unknown. With the usual data (the child is observed after every
positive parent) this is exactly the parent's weight.

Example:
    >>> config = ModelConfig(features=(FeatureSpec("x", "numeric"),),
    ...                      tasks=(TaskSpec("click"), TaskSpec("sat", conditional_on="click")))
    >>> labels, weights = add_joint_targets(config, {"click": np.array([1., 0.]), "sat": np.array([1., np.nan])},
    ...                                     {"click": np.ones(2), "sat": np.array([1., 0.])})
    >>> labels["click_and_sat"], weights["click_and_sat"]
    (array([1., 0.], dtype=float32), array([1., 1.], dtype=float32))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from mmoe_tf.config import ModelConfig
from mmoe_tf.task_specs import TaskSpec, joint_output_name


def task_order(config: ModelConfig) -> list[TaskSpec]:
    """Tasks ordered so that every ESMM parent comes before its children.

    Raises:
        ValueError: naming field ``tasks`` when ``conditional_on`` links form a cycle.
    """
    by_name = {t.name: t for t in config.tasks}
    ordered: list[TaskSpec] = []
    state: dict[str, str] = {}

    def visit(task: TaskSpec, path: list[str]) -> None:
        if state.get(task.name) == "done":
            return
        if state.get(task.name) == "visiting":
            cycle = [*path[path.index(task.name) :], task.name]
            raise ValueError(f"ModelConfig: field 'tasks' has a conditional_on cycle {' -> '.join(cycle)}")
        state[task.name] = "visiting"
        if task.conditional_on is not None:
            visit(by_name[task.conditional_on], [*path, task.name])
        state[task.name] = "done"
        ordered.append(task)

    for task in config.tasks:
        visit(task, [])
    return ordered


def target_name(task: TaskSpec) -> str:
    """The model output a task's loss is applied to: its joint output for ESMM tasks, else its own."""
    return joint_output_name(task) if task.conditional_on else task.name


def trained_targets(config: ModelConfig) -> list[tuple[str, TaskSpec]]:
    """``(output_name, task)`` for every output that carries a loss, in task declaration order."""
    return [(target_name(t), t) for t in config.tasks]


def _joint(parent: Any, child: Any, parent_w: Any, child_w: Any) -> tuple[Any, Any]:
    if any(tf.is_tensor(v) for v in (parent, child, parent_w, child_w)):
        parent = tf.cast(parent, tf.float32)
        child = tf.cast(child, tf.float32)
        child_seen = tf.math.is_finite(child)
        if child_w is not None:
            child_seen = tf.logical_and(child_seen, tf.cast(child_w, tf.float32) > 0)
        fill0 = tf.where(tf.math.is_finite(child), child, tf.zeros_like(child))
        label = tf.where(tf.math.is_finite(parent), parent, tf.zeros_like(parent)) * fill0
        pw = tf.ones_like(parent) if parent_w is None else tf.cast(parent_w, tf.float32)
        unknown = tf.logical_and(parent > 0, tf.logical_not(child_seen))
        return label, tf.where(unknown, tf.zeros_like(pw), pw)
    parent = np.asarray(parent, np.float32)
    child = np.asarray(child, np.float32)
    child_seen = np.isfinite(child)
    if child_w is not None:
        child_seen &= np.asarray(child_w, np.float32) > 0
    label = np.nan_to_num(parent, nan=0.0) * np.where(np.isfinite(child), child, 0.0).astype(np.float32)
    pw = np.ones_like(parent) if parent_w is None else np.asarray(parent_w, np.float32)
    weight = np.where((np.nan_to_num(parent, nan=0.0) > 0) & ~child_seen, 0.0, pw).astype(np.float32)
    return label.astype(np.float32), weight


def add_joint_targets(
    config: ModelConfig, labels: Mapping[str, Any], weights: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Add the ESMM joint label (and weight) of every conditional task.

    Works on numpy arrays and on tensors inside ``tf.data.Dataset.map``; other keys pass through.

    Args:
        config: The model config (tells which tasks are conditional).
        labels: Labels keyed by task name.
        weights: Sample weights keyed by task name (missing keys count as weight 1), or ``None``.

    Returns:
        ``(labels, weights)``: new dicts that also hold ``<parent>_and_<task>`` entries
        (``weights`` stays ``None`` when it was ``None``).

    Raises:
        ValueError: when ``labels`` lacks the parent or child label of a conditional task.

    Example:
        >>> ds = ds.map(lambda x, y, w: (x, *add_joint_targets(config, y, w)))
    """
    if not isinstance(labels, Mapping):
        raise ValueError(f"add_joint_targets: labels must be a dict keyed by task name, got {type(labels).__name__}")
    out_labels = dict(labels)
    out_weights = None if weights is None else dict(weights)
    for task in task_order(config):
        if task.conditional_on is None:
            continue
        parent_task = config.task(task.conditional_on)
        parent_key = target_name(parent_task)
        for key in (parent_key, task.name):
            if key not in out_labels:
                raise ValueError(
                    f"add_joint_targets: labels lack {key!r}, needed for the joint target {joint_output_name(task)!r}; "
                    f"labels hold {sorted(out_labels)}"
                )
        parent_w = None if out_weights is None else out_weights.get(parent_key)
        child_w = None if out_weights is None else out_weights.get(task.name)
        label, weight = _joint(out_labels[parent_key], out_labels[task.name], parent_w, child_w)
        out_labels[joint_output_name(task)] = label
        if out_weights is not None:
            out_weights[joint_output_name(task)] = weight
    return out_labels, out_weights
