"""``TaskGate``: one task's softmax gate over K experts, with temperature, gate dropout and a load-balancing penalty."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from mmoe_tf.layers import _common as c

_DROPPED_LOGIT = -1e9


@tf.keras.utils.register_keras_serializable(package="mmoe_tf")
class TaskGate(tf.keras.layers.Layer):
    """Mixes K expert outputs with softmax weights computed from a gate input.

    ``weights = softmax(logits(gate_input) / temperature)``; ``mixed = sum_k weights[:, k] * experts[:, k]``.

    Gate dropout (training only; remedy for gate polarisation, Zhao et al., RecSys 2019): each
    expert's weight is dropped independently per example with probability ``dropout`` and the
    kept weights are renormalised to sum to 1 (implemented as masking the dropped logits before
    the softmax, which is the same renormalisation but numerically stable). No ``1/(1-p)``
    rescaling is applied since the renormalised weights already sum to 1. When every expert of an
    example is dropped, that example keeps its undropped weights. At inference nothing is dropped.

    Load-balancing penalty (training only; another remedy for polarisation): with ``balance_weight > 0`` the
    layer adds ``balance_weight · CV²(importance)`` to its losses (``self.losses``, which the model adds to
    the total loss), the importance loss of Shazeer et al. 2017 ("Outrageously Large Neural Networks"):
    ``importance`` is the batch's mean gate weight per expert and CV² its squared coefficient of variation
    (:func:`importance_cv_squared`): 0 when the batch uses the experts equally, ``K - 1`` when one expert takes
    every weight. It balances the batch *mean*, so single examples may still pick one expert; applied per
    gate, it also pulls each task's mean gate towards uniform, which works against tasks owning different
    experts. Nothing is added at inference, so outputs and exported signatures do not change. (A model with
    ``train_split_rows`` runs a large training batch as two calls; the loss then holds the second half's penalty.)

    Args:
        num_experts: Number of experts K (>= 1).
        hidden_units: Hidden layer sizes before the softmax (empty: a linear gate).
        activation: Activation of the hidden layers.
        temperature: Softmax temperature (> 0); larger is flatter.
        dropout: Gate-weight dropout rate in [0, 1) during training.
        balance_weight: Weight (>= 0) of the load-balancing penalty during training (0: none).
        seed: Seed of the gate weights and of the dropout masks; ``None`` draws one.

    Call args:
        inputs: ``(expert_outputs [B, K, U], gate_input [B, D])``; ``expert_outputs`` may also be a list of
            expert groups ``[B, K_g, U]`` (in order, ``sum(K_g) = K``), mixed group by group and added.
        training: Whether gate dropout and the balance penalty are active.

    Returns:
        ``(mixed [B, U], weights [B, K])``. Under a mixed-precision policy the softmax and ``weights`` stay in the
        variable dtype (float32); ``mixed`` is in the compute dtype.

    Example:
        >>> gate = TaskGate(num_experts=4, seed=0)
        >>> mixed, weights = gate((tf.ones([2, 4, 8]), tf.ones([2, 5])))
        >>> mixed.shape, weights.shape
        (TensorShape([2, 8]), TensorShape([2, 4]))
    """

    def __init__(
        self,
        num_experts: int,
        hidden_units: Sequence[int] = (),
        activation: Any = "relu",
        temperature: float = 1.0,
        dropout: float = 0.0,
        balance_weight: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_experts = c.check_int("num_experts", num_experts, 1)
        self.hidden_units = c.check_units("hidden_units", hidden_units, allow_empty=True)
        self.activation = tf.keras.activations.get(activation)
        self.temperature = c.check_positive("temperature", temperature)
        self.dropout = c.check_rate("dropout", dropout)
        self.balance_weight = c.check_non_negative("balance_weight", balance_weight)
        self.seed = c.check_seed("seed", seed)
        self._base_seed = c.resolve_seed(seed)
        self._hidden = [
            tf.keras.layers.Dense(
                u,
                activation=self.activation,
                kernel_initializer=tf.keras.initializers.GlorotUniform(c.derive_seed(self._base_seed, i)),
                name=f"hidden_{i}",
                dtype=self.dtype_policy,
            )
            for i, u in enumerate(self.hidden_units)
        ]
        self._logits = tf.keras.layers.Dense(
            self.num_experts,
            kernel_initializer=tf.keras.initializers.GlorotUniform(
                c.derive_seed(self._base_seed, len(self.hidden_units))
            ),
            name="logits",
            dtype=self.dtype_policy,
        )
        self._dropout_seed = c.derive_seed(self._base_seed, 1000)

    def build(self, input_shape: Any) -> None:
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise ValueError(f"TaskGate expects inputs (expert_outputs, gate_input), got shapes {input_shape}")
        expert_shape, gate_shape = (tf.TensorShape(s) for s in input_shape)
        if expert_shape.rank != 3 or expert_shape[1] != self.num_experts:
            raise ValueError(
                f"TaskGate with num_experts={self.num_experts} expects expert_outputs [batch, "
                f"{self.num_experts}, units], got {expert_shape}"
            )
        if gate_shape.rank != 2 or gate_shape[-1] is None:
            raise ValueError(f"TaskGate expects gate_input [batch, dim], got {gate_shape}")
        shape = gate_shape
        for layer in self._hidden:
            c.build_sublayer(layer, shape)
            shape = layer.compute_output_shape(shape)
        c.build_sublayer(self._logits, shape)
        super().build(input_shape)

    def _drop(self, logits: tf.Tensor) -> tf.Tensor:
        keep = tf.random.uniform(tf.shape(logits), seed=self._dropout_seed) >= self.dropout
        all_dropped = tf.logical_not(tf.reduce_any(keep, axis=-1, keepdims=True))
        keep = tf.logical_or(keep, all_dropped)  # guard: a fully dropped row keeps every expert
        return tf.where(keep, logits, tf.constant(_DROPPED_LOGIT, logits.dtype))

    def call(self, inputs: Sequence[tf.Tensor], training: bool | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        expert_outputs, gate_input = inputs
        h = gate_input
        for layer in self._hidden:
            h = layer(h)
        logits = tf.cast(self._logits(h), self.dtype)  # the softmax in the variable dtype (float32 when mixed)
        if self.temperature != 1.0:
            logits = logits / self.temperature
        if self.dropout:
            logits = c.smart_cond(training, lambda: self._drop(logits), lambda: logits)
        weights = tf.nn.softmax(logits, axis=-1)
        if self.balance_weight and _is_training(training):
            penalty = self.balance_weight * importance_cv_squared(weights)
            if tf.is_tensor(training):
                penalty *= tf.cast(training, penalty.dtype)
            self.add_loss(penalty)
        mixing = tf.cast(weights, self.compute_dtype)
        if isinstance(expert_outputs, (list, tuple)):  # experts in groups (ExpertBank.call): partial mixtures, added
            sizes = [int(group.shape[1]) for group in expert_outputs]
            parts = [_mix(group, w) for group, w in zip(expert_outputs, tf.split(mixing, sizes, axis=1), strict=True)]
            return tf.add_n(parts), weights
        return _mix(expert_outputs, mixing), weights

    def compute_output_shape(self, input_shape: Any) -> tuple[tf.TensorShape, tf.TensorShape]:
        expert_shape = tf.TensorShape(input_shape[0])
        return (
            tf.TensorShape([expert_shape[0], expert_shape[2]]),
            tf.TensorShape([expert_shape[0], self.num_experts]),
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            num_experts=self.num_experts,
            hidden_units=list(self.hidden_units),
            activation=tf.keras.activations.serialize(self.activation),
            temperature=self.temperature,
            dropout=self.dropout,
            balance_weight=self.balance_weight,
            seed=self.seed,
        )
        return config


def importance_cv_squared(weights: tf.Tensor) -> tf.Tensor:
    """Squared coefficient of variation of the batch's mean weight per expert (Shazeer et al. 2017).

    Args:
        weights: ``[B, K]`` gate weights (rows sum to 1).

    Returns:
        Scalar ``Var(m) / Mean(m)²`` of ``m = mean over the batch of weights`` (population variance over the K
        experts): 0 for equal use, ``K - 1`` when one expert takes all the weight.

    Example:
        >>> float(importance_cv_squared(tf.constant([[1.0, 0.0], [1.0, 0.0]])))
        1.0
    """
    importance = tf.reduce_mean(weights, axis=0)
    mean = tf.reduce_mean(importance)
    variance = tf.reduce_mean(tf.square(importance - mean))
    return variance / tf.maximum(tf.square(mean), 1e-12)


def _is_training(training: Any) -> bool:
    """False only for a known inference call (``None``/``False``); a tensor flag decides in the graph."""
    return tf.is_tensor(training) or bool(training)


def _mix(expert_outputs: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """``sum_k weights[:, k] * expert_outputs[:, k]``. The weights are repeated to the flat ``[B, K*U]`` layout, one
    plain multiply, a sum over experts: on CPU ≈ 3x faster forward + backward than the equivalent einsum, which runs as
    B tiny ``[1, K] x [K, U]`` batched matmuls (``bench/gate_mixing.py``, ``docs/performance.md``)."""
    k, units = expert_outputs.shape[1], expert_outputs.shape[-1]
    if k == 1:  # one expert (a group of one): a column-broadcast multiply, nothing to repeat or sum
        return tf.reshape(expert_outputs, [-1, units]) * weights
    flat = tf.reshape(expert_outputs, [-1, k * units]) * tf.repeat(weights, units, axis=1)
    return tf.reduce_sum(tf.reshape(flat, [-1, k, units]), axis=1)
