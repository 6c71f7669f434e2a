"""``CrossExpertBank``: K DCN-v2 cross-network experts (``tfrs.layers.dcn.Cross``) with a per-expert projection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf
import tensorflow_recommenders as tfrs

from mmoe_tf.layers import _common as c
from mmoe_tf.layers.expert_bank import ExpertBank

_CROSS_INIT_STDDEV = 0.05  # the stddev of TFRS Cross's default "truncated_normal" initializer


@tf.keras.utils.register_keras_serializable(package="mmoe_tf")
class CrossExpertBank(tf.keras.layers.Layer):
    """K cross-network experts: ``[B, D] -> [B, K, units[-1]]``.

    Expert k is a DCN-v2 cross network (Wang et al. 2021) of ``num_cross_layers`` TFRS ``Cross``
    layers, ``x_{i+1} = x0 * (W_i x_i + b_i) + x_i``, followed by a per-expert MLP projection to
    ``units`` (hidden sizes ``units[:-1]``, output ``units[-1]``). The cross part is K separate
    ``Cross`` sub-layers per depth, because that is the unit TFRS provides; the projection is one
    ``ExpertBank`` (one ``[K, D, u]`` kernel per depth) reading each expert's own cross output.
    Every expert's weights are seeded independently.

    Args:
        num_experts: Number of experts K (>= 1).
        units: Projection sizes (int or list); the last is the output width.
        num_cross_layers: Cross layers per expert (>= 1).
        projection_dim: Low-rank dimension of each ``Cross`` (``None``: full rank).
        diag_scale: ``Cross`` diagonal scale (>= 0).
        activation: Activation of the projection layers.
        dropout: Dropout rate after each projection layer.
        normalization: ``None``, ``"batch"`` or ``"layer"`` in the projection.
        use_bias: Whether the cross and projection layers use biases.
        kernel_initializer: Initializer of the projection kernels (cross kernels use a seeded
            truncated normal, the TFRS default).
        seed: Base seed; ``None`` draws one at construction.
        implementation: ``ExpertBank`` implementation of the projection.

    Example:
        >>> bank = CrossExpertBank(num_experts=3, units=8, num_cross_layers=2, seed=0)
        >>> bank(tf.zeros([2, 6])).shape
        TensorShape([2, 3, 8])
    """

    def __init__(
        self,
        num_experts: int,
        units: int | Sequence[int],
        num_cross_layers: int = 2,
        projection_dim: int | None = None,
        diag_scale: float = 0.0,
        activation: Any = "relu",
        dropout: float = 0.0,
        normalization: str | None = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        seed: int | None = None,
        implementation: str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_experts = c.check_int("num_experts", num_experts, 1)
        self.num_cross_layers = c.check_int("num_cross_layers", num_cross_layers, 1)
        if projection_dim is not None:
            c.check_int("projection_dim", projection_dim, 1)
        self.projection_dim = projection_dim
        if isinstance(diag_scale, bool) or not isinstance(diag_scale, (int, float)) or diag_scale < 0:
            raise ValueError(f"diag_scale must be >= 0, got {diag_scale!r}")
        self.diag_scale = float(diag_scale)
        self.use_bias = bool(use_bias)
        self.seed = c.check_seed("seed", seed)
        base = c.resolve_seed(seed)
        # A flat list (expert-major): the .keras saver does not descend into nested lists.
        self._cross_layers = [
            tfrs.layers.dcn.Cross(
                projection_dim=projection_dim,
                diag_scale=self.diag_scale,
                use_bias=self.use_bias,
                kernel_initializer=tf.keras.initializers.TruncatedNormal(
                    stddev=_CROSS_INIT_STDDEV, seed=c.derive_seed(base, 1, k, depth)
                ),
                name=f"cross_{k}_{depth}",
                dtype=self.dtype_policy,
            )
            for k in range(self.num_experts)
            for depth in range(self.num_cross_layers)
        ]
        # The projection validates and holds the remaining arguments (units, activation, ...).
        self._projection = ExpertBank(
            self.num_experts,
            units,
            activation=activation,
            dropout=dropout,
            normalization=normalization,
            use_bias=self.use_bias,
            kernel_initializer=kernel_initializer,
            seed=c.derive_seed(base, 2),
            implementation=implementation,
            name="projection",
            dtype=self.dtype_policy,
        )
        self.units = self._projection.units

    def cross_networks(self) -> list[list[tfrs.layers.dcn.Cross]]:
        """The ``Cross`` layers of each expert: ``cross_networks()[k][depth]``."""
        n = self.num_cross_layers
        return [self._cross_layers[k * n : (k + 1) * n] for k in range(self.num_experts)]

    def build(self, input_shape: tf.TensorShape) -> None:
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank != 2 or input_shape[-1] is None:
            raise ValueError(f"CrossExpertBank expects inputs [batch, dim], got shape {input_shape}")
        for layer in self._cross_layers:
            c.build_sublayer(layer, input_shape)
        c.build_sublayer(self._projection, tf.TensorShape([input_shape[0], self.num_experts, input_shape[-1]]))
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        crossed = []
        for expert in self.cross_networks():
            x = inputs
            for layer in expert:
                x = layer(inputs, x)
            crossed.append(x)
        return self._projection(tf.stack(crossed, axis=1), training=training)

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        return tf.TensorShape([tf.TensorShape(input_shape)[0], self.num_experts, self.units[-1]])

    def get_config(self) -> dict[str, Any]:
        projection = self._projection.get_config()
        config = super().get_config()
        config.update(
            num_experts=self.num_experts,
            units=list(self.units),
            num_cross_layers=self.num_cross_layers,
            projection_dim=self.projection_dim,
            diag_scale=self.diag_scale,
            activation=projection["activation"],
            dropout=projection["dropout"],
            normalization=projection["normalization"],
            use_bias=self.use_bias,
            kernel_initializer=projection["kernel_initializer"],
            seed=self.seed,
            implementation=projection["implementation"],
        )
        return config
