"""Dense building blocks on top of the shared representation: an MLP and a per-task tower with its head.

Example:
    >>> tower = Tower(units=(16,), task_type="binary", seed=0, name="click")
    >>> tower(tf.zeros([2, 8])).shape
    TensorShape([2, 1])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from mmoe_tf.layers import _common as c
from mmoe_tf.task_specs import TASK_TYPES


def _glorot(seed: int, index: int) -> tf.keras.initializers.Initializer:
    return tf.keras.initializers.GlorotUniform(seed=c.derive_seed(seed, index))


@tf.keras.utils.register_keras_serializable(package="mmoe_tf")
class MLP(tf.keras.layers.Layer):
    """A stack of ``Dense → [normalisation] → activation → [dropout]`` layers: ``[B, D] → [B, units[-1]]``.

    Args:
        units: Hidden sizes (empty: identity).
        activation: Activation of every layer.
        dropout: Dropout rate after every layer, in [0, 1).
        normalization: ``None``, ``"batch"`` or ``"layer"`` (applied before the activation).
        seed: Seed of the kernel initialisers and dropout.

    Example:
        >>> MLP(units=(8, 4), seed=0)(tf.zeros([3, 5])).shape
        TensorShape([3, 4])
    """

    def __init__(
        self,
        units: Sequence[int],
        activation: Any = "relu",
        dropout: float = 0.0,
        normalization: str | None = None,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = f"MLP {self.name!r}"
        self.units = c.check_units(f"{owner}: units", units, allow_empty=True)
        self.activation = tf.keras.activations.get(activation)
        self.dropout = c.check_rate(f"{owner}: dropout", dropout)
        self.normalization = c.check_normalization(f"{owner}: normalization", normalization)
        self.seed = c.resolve_seed(c.check_seed(f"{owner}: seed", seed))
        self._dense = [
            tf.keras.layers.Dense(
                u, kernel_initializer=_glorot(self.seed, i), name=f"dense_{i}", dtype=self.dtype_policy
            )
            for i, u in enumerate(self.units)
        ]
        norm = {"batch": tf.keras.layers.BatchNormalization, "layer": tf.keras.layers.LayerNormalization}
        self._norms = (
            [norm[normalization](name=f"norm_{i}", dtype=self.dtype_policy) for i in range(len(self.units))]
            if normalization
            else []
        )
        self._dropouts = (
            [
                tf.keras.layers.Dropout(self.dropout, seed=self.seed + i, name=f"dropout_{i}", dtype=self.dtype_policy)
                for i in range(len(self.units))
            ]
            if self.dropout
            else []
        )

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        x = inputs
        for i, dense in enumerate(self._dense):
            x = dense(x)
            if self._norms:
                x = self._norms[i](x, training=training)
            x = self.activation(x)
            if self._dropouts:
                x = self._dropouts[i](x, training=training)
        return x

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        shape = tf.TensorShape(input_shape)
        return shape[:-1].concatenate([self.units[-1] if self.units else shape[-1]])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            units=list(self.units),
            activation=tf.keras.activations.serialize(self.activation),
            dropout=self.dropout,
            normalization=self.normalization,
            seed=self.seed,
        )
        return config


@tf.keras.utils.register_keras_serializable(package="mmoe_tf")
class Tower(tf.keras.layers.Layer):
    """One task's tower and head: ``MLP(units)`` then ``Dense(1)`` (sigmoid for binary): ``[B, D] → [B, 1]``.

    Under a mixed-precision policy (``dtype="mixed_bfloat16"``) the MLP computes in bfloat16 and the head in the
    variable dtype, so the logit, the probability and the output are float32.

    Args:
        units: Hidden sizes of the tower MLP (may be empty: the head reads the input directly).
        task_type: ``binary`` (outputs probabilities) or ``regression`` (outputs raw values).
        activation: Activation of the tower's hidden layers.
        dropout: Dropout after each hidden layer.
        seed: Seed of the initialisers.

    Example:
        >>> Tower(units=(), task_type="regression", seed=1)(tf.ones([4, 3])).shape
        TensorShape([4, 1])
    """

    def __init__(
        self,
        units: Sequence[int] = (32,),
        task_type: str = "binary",
        activation: Any = "relu",
        dropout: float = 0.0,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        owner = f"Tower {self.name!r}"
        if task_type not in TASK_TYPES:
            raise ValueError(
                f"{owner}: field 'task_type' is {task_type!r}, an unknown task type; expected {TASK_TYPES}"
            )
        self.task_type = task_type
        self.seed = c.resolve_seed(c.check_seed(f"{owner}: seed", seed))
        self.mlp = MLP(
            units, activation=activation, dropout=dropout, seed=self.seed, name="mlp", dtype=self.dtype_policy
        )
        self.head = tf.keras.layers.Dense(
            1,
            activation="sigmoid" if task_type == "binary" else None,
            kernel_initializer=_glorot(self.seed, len(self.mlp.units)),
            name="head",
            dtype=self.dtype_policy.variable_dtype,  # the output in float32 also under a mixed-precision policy
        )

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        return self.head(self.mlp(inputs, training=training))

    def compute_output_shape(self, input_shape: Any) -> tf.TensorShape:
        return tf.TensorShape(input_shape)[:-1].concatenate([1])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            units=list(self.mlp.units),
            task_type=self.task_type,
            activation=tf.keras.activations.serialize(self.mlp.activation),
            dropout=self.mlp.dropout,
            seed=self.seed,
        )
        return config
