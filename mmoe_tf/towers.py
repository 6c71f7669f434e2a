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

from mmoe_tf.config import NORMALIZATIONS, TASK_TYPES


def _check_units(owner: str, units: Sequence[int], allow_empty: bool) -> tuple[int, ...]:
    try:
        units = tuple(units)
    except TypeError:
        raise ValueError(f"{owner}: field 'units' must be a list of positive integers, got {units!r}") from None
    if not units and not allow_empty:
        raise ValueError(f"{owner}: field 'units' must list at least one layer size")
    if any(isinstance(u, bool) or not isinstance(u, int) or u < 1 for u in units):
        raise ValueError(f"{owner}: field 'units' must hold positive integers, got {units!r}")
    return units


def _check_rate(owner: str, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}: field '{field}' must be a rate in [0, 1), got {value!r}")
    return float(value)


def _check_seed(owner: str, seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"{owner}: field 'seed' must be an integer >= 0, got {seed!r}")
    return seed


def _glorot(seed: int, index: int) -> tf.keras.initializers.Initializer:
    return tf.keras.initializers.GlorotUniform(seed=(seed * 1_000_003 + 7919 * (index + 1)) % (2**31 - 1))


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
        self.units = _check_units(owner, units, allow_empty=True)
        self.activation = tf.keras.activations.get(activation)
        self.dropout = _check_rate(owner, "dropout", dropout)
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"{owner}: field 'normalization' is {normalization!r}; expected one of {NORMALIZATIONS}")
        self.normalization = normalization
        self.seed = _check_seed(owner, seed)
        self._dense = [
            tf.keras.layers.Dense(u, kernel_initializer=_glorot(seed, i), name=f"dense_{i}")
            for i, u in enumerate(self.units)
        ]
        norm = {"batch": tf.keras.layers.BatchNormalization, "layer": tf.keras.layers.LayerNormalization}
        self._norms = [norm[normalization](name=f"norm_{i}") for i in range(len(self.units))] if normalization else []
        self._dropouts = (
            [tf.keras.layers.Dropout(self.dropout, seed=seed + i, name=f"dropout_{i}") for i in range(len(self.units))]
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
        self.seed = _check_seed(owner, seed)
        self.mlp = MLP(units, activation=activation, dropout=dropout, seed=seed, name="mlp")
        self.head = tf.keras.layers.Dense(
            1,
            activation="sigmoid" if task_type == "binary" else None,
            kernel_initializer=_glorot(seed, len(self.mlp.units)),
            name="head",
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
