"""Per-task losses and their balancing: fixed weights λ or learned homoscedastic uncertainty.

Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018) learns one log-variance ``s_i = log σ_i²``
per trained target and minimises, exactly as in the paper's eqs. 7 and 10:

* binary (classification) target:  ``exp(-s_i) · L_i + s_i / 2``   (effective weight ``exp(-s_i)``)
* regression target:               ``½ · exp(-s_i) · L_i + s_i / 2`` (effective weight ``½ · exp(-s_i)``)

``s_i`` starts at 0 and is kept in ``[min_log_var, max_log_var]`` (a weight constraint after every
update and a clip in the forward pass), so the loss stays finite. In uncertainty mode a task's fixed
``loss_weight`` only matters when it is 0, which switches that task's loss off.

Example:
    >>> balancer = UncertaintyWeighting(["click", "rating"], ["binary", "regression"])
    >>> balancer.build(None)
    >>> float(balancer.combine([tf.constant(0.5), tf.constant(2.0)]))
    1.5
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from mmoe_tf.saving import config_of
from mmoe_tf.targets import target_name
from mmoe_tf.task_specs import TASK_TYPES, TaskSpec


def make_loss(task: TaskSpec) -> tf.keras.losses.Loss:
    """The Keras loss object of ``task`` (``bce``, ``mse`` or ``huber``), reduced per batch.

    Example:
        >>> make_loss(TaskSpec("click")).name
        'binary_crossentropy'
    """
    if task.loss == "bce":
        return tf.keras.losses.BinaryCrossentropy()
    if task.loss == "mse":
        return tf.keras.losses.MeanSquaredError()
    if task.loss == "huber":
        return tf.keras.losses.Huber()
    raise ValueError(f"TaskSpec {task.name!r}: field 'loss' is {task.loss!r}, an unknown loss")


@tf.keras.utils.register_keras_serializable(package="mmoe_tf")
class ClipConstraint(tf.keras.constraints.Constraint):
    """Keeps a weight inside ``[min_value, max_value]``."""

    def __init__(self, min_value: float, max_value: float) -> None:
        self.min_value = float(min_value)
        self.max_value = float(max_value)

    def __call__(self, w: tf.Tensor) -> tf.Tensor:
        return tf.clip_by_value(w, self.min_value, self.max_value)

    def get_config(self) -> dict[str, Any]:
        return {"min_value": self.min_value, "max_value": self.max_value}


@tf.keras.utils.register_keras_serializable(package="mmoe_tf")
class UncertaintyWeighting(tf.keras.layers.Layer):
    """Learned per-target loss weights from homoscedastic uncertainty (Kendall et al. 2018).

    Args:
        target_names: Names of the trained targets (model outputs that carry a loss).
        target_types: ``binary`` or ``regression`` per target (selects the paper's variant).
        min_log_var: Lower bound of each ``s_i`` (upper bound of a weight: ``exp(-min_log_var)``).
        max_log_var: Upper bound of each ``s_i``.

    Example:
        >>> b = UncertaintyWeighting(["click"], ["binary"]); b.build(None)
        >>> b.effective_weights()
        {'click': 1.0}
    """

    def __init__(
        self,
        target_names: Sequence[str],
        target_types: Sequence[str],
        min_log_var: float = -5.0,
        max_log_var: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.target_names = [str(n) for n in target_names]
        self.target_types = [str(t) for t in target_types]
        if not self.target_names:
            raise ValueError("UncertaintyWeighting: field 'target_names' must list at least one target")
        if len(self.target_types) != len(self.target_names):
            raise ValueError("UncertaintyWeighting: field 'target_types' must have one entry per target name")
        bad = [t for t in self.target_types if t not in TASK_TYPES]
        if bad:
            raise ValueError(
                f"UncertaintyWeighting: field 'target_types' has unknown types {bad}; expected {TASK_TYPES}"
            )
        if not min_log_var < max_log_var:
            raise ValueError(
                f"UncertaintyWeighting: field 'min_log_var' ({min_log_var}) must be < max_log_var ({max_log_var})"
            )
        self.min_log_var = float(min_log_var)
        self.max_log_var = float(max_log_var)
        self._scale = np.array([1.0 if t == "binary" else 0.5 for t in self.target_types], np.float32)

    def build(self, input_shape: Any = None) -> None:
        self.log_variance = self.add_weight(
            "log_variance",
            shape=[len(self.target_names)],
            initializer="zeros",
            constraint=ClipConstraint(self.min_log_var, self.max_log_var),
            trainable=True,
        )
        super().build(input_shape)

    def _clipped(self) -> tf.Tensor:
        return tf.clip_by_value(self.log_variance, self.min_log_var, self.max_log_var)

    def combine(self, losses: Sequence[tf.Tensor]) -> tf.Tensor:
        """``Σ_i scale_i · exp(-s_i) · L_i + s_i / 2`` for per-target scalar losses in target order."""
        if not self.built:
            self.build(None)
        if len(losses) != len(self.target_names):
            raise ValueError(f"UncertaintyWeighting: expected {len(self.target_names)} losses, got {len(losses)}")
        s = self._clipped()
        stacked = tf.stack([tf.cast(loss, tf.float32) for loss in losses])
        return tf.reduce_sum(self._scale * tf.exp(-s) * stacked + 0.5 * s)

    def call(self, losses: Sequence[tf.Tensor]) -> tf.Tensor:
        return self.combine(losses)

    def effective_weights(self) -> dict[str, float]:
        """The current multiplier of each target's loss, ``scale_i · exp(-s_i)``."""
        if not self.built:
            self.build(None)
        values = self._scale * np.exp(-self._clipped().numpy())
        return {name: float(v) for name, v in zip(self.target_names, values, strict=True)}

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            target_names=list(self.target_names),
            target_types=list(self.target_types),
            min_log_var=self.min_log_var,
            max_log_var=self.max_log_var,
        )
        return config


def current_loss_weights(model: tf.keras.Model) -> dict[str, float]:
    """The effective weight of each task's loss now: its fixed λ, or the learned uncertainty weight.

    Keys are task names (an ESMM task's weight applies to its joint output).

    Example:
        >>> current_loss_weights(model)
        {'click': 1.0, 'satisfaction': 1.0}
    """
    config = config_of(model)
    balancer = getattr(model, "loss_balancer", None)
    if config.loss_balancing == "fixed" or balancer is None:
        return {t.name: t.loss_weight for t in config.tasks}
    learned = balancer.effective_weights()
    return {t.name: learned.get(target_name(t), 0.0) for t in config.tasks}
