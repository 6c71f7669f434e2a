"""``FusedAdam``: Keras' Adam with one fused C++ kernel per variable update.

``tf.keras.optimizers.Adam`` (the Keras 2 "new" optimizer) writes each variable's update as ≈ 20
small graph ops (moment updates, bias-correction powers, square root, division, assignments). On
a CPU a multi-task ranking step is bound by the number of ops, not by FLOPs, so for a model with a
few dozen variables the optimizer is ≈ 40 % of a traced training step (``docs/performance.md``).
``FusedAdam`` keeps everything that makes the new optimizer useful — its variables, so a ``.keras``
file stores and restores the moments; ``get_config``; gradient clipping and distribution support —
and replaces only the arithmetic: the step's scalars (bias-corrected learning rate) are computed
once per step, and every variable is updated by TensorFlow's fused ``ResourceApplyAdam`` kernel,
the one behind ``tf.keras.optimizers.legacy.Adam``. The update is the same formula as Keras' Adam
(``amsgrad`` and ``adaptive_epsilon`` included: they fall back to Keras' own update).

Sparse (``IndexedSlices``) gradients of embedding tables are densified first: Keras' sparse Adam
already decays the moments of every row each step (a dense pass over the table), so the fused
dense kernel does the same arithmetic in one op.

Example:
    >>> opt = FusedAdam(learning_rate=1e-3)
    >>> v = tf.Variable([1.0, 2.0])
    >>> _ = opt.apply_gradients([(tf.constant([0.1, -0.1]), v)])
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="mmoe_tf")
class FusedAdam(tf.keras.optimizers.Adam):
    """Adam (Kingma & Ba, 2015) with fused per-variable updates; same arguments as ``tf.keras.optimizers.Adam``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("name", "FusedAdam")
        super().__init__(*args, **kwargs)
        self._step_scalars: tuple[tf.Tensor, tf.Tensor, tf.Tensor] | None = None

    def _fusable(self) -> bool:
        return not self.amsgrad and not getattr(self, "adaptive_epsilon", False)

    def _distributed_apply_gradients_fn(self, distribution: Any, grads_and_vars: Any, **kwargs: Any) -> Any:
        # Private: the one Keras hook that runs once per step around every variable's update_step.
        # The step's scalars, once for all variables: t = iterations + 1, beta^t and the learning rate.
        local_step = tf.cast(self.iterations + 1, tf.float32)
        self._step_scalars = (
            tf.pow(tf.cast(self.beta_1, tf.float32), local_step),
            tf.pow(tf.cast(self.beta_2, tf.float32), local_step),
            tf.cast(self.learning_rate, tf.float32),
        )
        try:
            return super()._distributed_apply_gradients_fn(distribution, grads_and_vars, **kwargs)
        finally:
            self._step_scalars = None

    def update_step(self, gradient: Any, variable: tf.Variable) -> Any:
        if self._step_scalars is None or variable.dtype != tf.float32 or not self._fusable():
            return super().update_step(gradient, variable)
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.math.unsorted_segment_sum(gradient.values, gradient.indices, tf.shape(variable)[0])
        # Private: Keras' own map from a variable to its slot index (how Adam.update_step finds its moments).
        index = self._index_dict[self._var_key(variable)]
        beta_1_power, beta_2_power, lr = self._step_scalars
        return tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=beta_1_power,
            beta2_power=beta_2_power,
            lr=lr,
            beta1=tf.cast(self.beta_1, tf.float32),
            beta2=tf.cast(self.beta_2, tf.float32),
            epsilon=tf.cast(self.epsilon, tf.float32),
            grad=gradient,
            use_locking=False,
        )
