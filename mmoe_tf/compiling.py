"""How a ``MultiTaskModel`` is compiled from its ``ModelConfig``, and how its own losses are told from a user's.

:func:`compile_model` passes the config's optimizer, per-target losses and loss weights, weighted metrics
(``<target>_auc`` / ``<target>_mae``) and ``steps_per_execution``; :func:`loss_signature` lets the model see
whether a later ``compile(loss=...)`` asked for the same losses (its own masked / ESMM / uncertainty-weighted
loss runs) or others (Keras' compiled loss runs).

Example:
    >>> compile_model(build_model(config, adapt_data=df, compile=False)).optimizer.name  # doctest: +SKIP
    'FusedAdam'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from mmoe_tf.config import ModelConfig
from mmoe_tf.losses import make_loss
from mmoe_tf.optimizers import FusedAdam
from mmoe_tf.targets import trained_targets
from mmoe_tf.task_specs import TaskSpec


def loss_signature(loss: Any) -> Any:
    """A comparable form of one serialised or live Keras loss: class name and config without its name."""
    if isinstance(loss, tf.keras.losses.Loss):
        return type(loss).__name__, {k: v for k, v in loss.get_config().items() if k != "name"}
    if isinstance(loss, Mapping) and "class_name" in loss:
        return loss["class_name"], {k: v for k, v in dict(loss.get("config") or {}).items() if k != "name"}
    return loss


def own_loss_arguments(config: ModelConfig) -> tuple[dict[str, tf.keras.losses.Loss], dict[str, float]]:
    """The ``loss`` and ``loss_weights`` :func:`compile_model` passes: the config's own, per trained target."""
    targets = trained_targets(config)
    return {name: make_loss(task) for name, task in targets}, {name: task.loss_weight for name, task in targets}


def strip_output_prefix(metrics: Any) -> Any:
    """Serialised per-output metrics with Keras' ``<output>_`` name prefix removed (Keras adds it again)."""
    if not isinstance(metrics, Mapping):
        return metrics
    out = {}
    for output, items in metrics.items():
        fixed = []
        for item in items if isinstance(items, (list, tuple)) else [items]:
            name = item.get("config", {}).get("name", "") if isinstance(item, Mapping) else ""
            if name.startswith(f"{output}_"):
                item = {**item, "config": {**item["config"], "name": name[len(output) + 1 :]}}
            fixed.append(item)
        out[output] = fixed
    return out


def _optimizer(config: ModelConfig) -> tf.keras.optimizers.Optimizer:
    """The config's optimizer; ``adam`` is :class:`FusedAdam` (same update, one fused kernel per variable)."""
    if config.optimizer.lower() == "adam":
        return FusedAdam(learning_rate=config.learning_rate)
    try:
        return tf.keras.optimizers.get(
            {
                "class_name": config.optimizer,
                "config": {"learning_rate": config.learning_rate, "is_legacy_optimizer": False},
            }
        )
    except (ValueError, TypeError) as err:
        raise ValueError(
            f"ModelConfig: field 'optimizer' is {config.optimizer!r}, not a Keras optimizer: {err}"
        ) from None


def _default_metric(task: TaskSpec) -> tf.keras.metrics.Metric:
    if task.type == "binary":
        return tf.keras.metrics.AUC(name="auc")
    return tf.keras.metrics.MeanAbsoluteError(name="mae")


def compile_model(model: Any) -> Any:
    """Compile ``model`` from its config: optimizer/learning rate, per-target losses, weighted metrics,
    ``steps_per_execution``. ``model.compile(...)`` with other arguments works as for any Keras model (with
    other losses, Keras' compiled loss replaces the model's own: :meth:`mmoe_tf.MultiTaskModel.uses_own_loss`).

    Metrics (weighted by the sample weights): ``<target>_auc`` for binary targets,
    ``<target>_mae`` for regression targets.
    """
    config = model.mmoe_config
    losses, weights = own_loss_arguments(config)
    metrics = {name: [_default_metric(task)] for name, task in trained_targets(config)}
    model.compile(
        optimizer=_optimizer(config),
        loss=losses,
        loss_weights=weights,
        weighted_metrics=metrics,
        steps_per_execution=config.steps_per_execution,
    )
    return model
