"""``ExpertBank``: K MLP experts held by one layer, one weight tensor per depth."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from mmoe_tf.layers import _common as c

FIRST_METHODS = ("gemm", "einsum", "batched", "loop")
DEEP_METHODS = ("einsum", "batched", "loop")
# Fastest per depth in bench/expert_bank.py (K=8, units 64, batch 512, 100 inputs, 2-core CPU): the
# single GEMM wins the first depth (shared input); for [B, K, u] inputs K small matmuls (each fused
# with its BiasAdd and activation by Grappler) beat einsum and tf.linalg.matmul batched over K.
AUTO_FIRST = "gemm"
AUTO_DEEP = "loop"
_LAYER_NORM_EPSILON = 1e-3


def parse_implementation(implementation: Any) -> tuple[str, str]:
    """Split an ``implementation`` string into (first-depth method, deeper-depth method).

    Accepted: ``"auto"``; one of ``"einsum" | "batched" | "loop"`` (used at every depth);
    ``"<first>:<deep>"`` with ``first`` in ``gemm | einsum | batched | loop`` and ``deep`` in
    ``einsum | batched | loop`` (e.g. ``"gemm:loop"``).
    """
    if not isinstance(implementation, str):
        raise ValueError(f"implementation must be a string, got {implementation!r}")
    if implementation == "auto":
        return AUTO_FIRST, AUTO_DEEP
    first, sep, deep = implementation.partition(":")
    if not sep:
        deep = first
    if first not in FIRST_METHODS or deep not in DEEP_METHODS:
        raise ValueError(
            f"implementation must be 'auto', one of {DEEP_METHODS} or '<first>:<deep>' with first in "
            f"{FIRST_METHODS} and deep in {DEEP_METHODS}, got {implementation!r}"
        )
    return first, deep


# Between depths the activations of the K experts travel in one of four layouts, whichever the
# next matmul wants, so that no implementation pays for a transpose it does not need:
#   "flat" [B, K*u] (expert-major columns), "bku" [B, K, u], "kbu" [K, B, u], "list" K x [B, u].
_METHOD_LAYOUT = {"gemm": "flat", "einsum": "bku", "batched": "kbu", "loop": "list"}


def convert_layout(x: Any, layout: str, target: str, num_experts: int, units: int) -> Any:
    """Re-express expert activations ``x`` from ``layout`` in ``target`` layout (see ``_METHOD_LAYOUT``)."""
    if layout == target:
        return x
    k = num_experts
    direct = {
        ("flat", "bku"): lambda: tf.reshape(x, [-1, k, units]),
        ("flat", "list"): lambda: tf.split(x, k, axis=1),
        ("bku", "flat"): lambda: tf.reshape(x, [-1, k * units]),
        ("bku", "kbu"): lambda: tf.transpose(x, [1, 0, 2]),
        ("bku", "list"): lambda: tf.unstack(x, num=k, axis=1),
        ("kbu", "bku"): lambda: tf.transpose(x, [1, 0, 2]),
        ("kbu", "list"): lambda: tf.unstack(x, num=k, axis=0),
        ("list", "flat"): lambda: tf.concat(x, axis=1),
        ("list", "bku"): lambda: tf.stack(x, axis=1),
        ("list", "kbu"): lambda: tf.stack(x, axis=0),
    }
    if (layout, target) in direct:
        return direct[(layout, target)]()
    return convert_layout(convert_layout(x, layout, "bku", k, units), "bku", target, k, units)


def shared_input_dense(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor | None, method: str) -> tuple[Any, str]:
    """``[B, D]`` times ``[K, D, U]`` (+ bias ``[K, U]``): every expert reads the same input.

    Returns the result and its layout: ``gemm`` is ONE ``[B, D] x [D, K*U]`` GEMM (bias fused as a
    BiasAdd), ``einsum`` an einsum, ``batched`` a broadcast batched matmul, ``loop`` K matmuls.
    """
    num_experts, d_in, units = kernel.shape
    if method == "gemm":
        flat_kernel = kernel if num_experts == 1 else tf.transpose(kernel, [1, 0, 2])  # [D, K, U], expert-major
        y = tf.matmul(x, tf.reshape(flat_kernel, [d_in, num_experts * units]))
        return (y if bias is None else tf.nn.bias_add(y, tf.reshape(bias, [-1]))), "flat"
    if method == "einsum":
        y = tf.einsum("bd,kdu->bku", x, kernel)
        return (y if bias is None else y + bias), "bku"
    if method == "batched":
        y = tf.linalg.matmul(x[tf.newaxis], kernel)
        return (y if bias is None else y + bias[:, tf.newaxis, :]), "kbu"
    if method == "loop":
        return _loop_dense([x] * num_experts, kernel, bias), "list"
    raise ValueError(f"unknown first-depth method {method!r}")


def per_expert_dense(x: Any, layout: str, kernel: tf.Tensor, bias: tf.Tensor | None, method: str) -> tuple[Any, str]:
    """Expert k's activations times ``kernel[k]`` (+ ``bias[k]``); ``x`` is in ``layout``."""
    num_experts, d_in, _ = kernel.shape
    target = _METHOD_LAYOUT[method]
    x = convert_layout(x, layout, target, num_experts, d_in)
    if method == "einsum":
        y = tf.einsum("bku,kuv->bkv", x, kernel)
        return (y if bias is None else y + bias), target
    if method == "batched":
        y = tf.linalg.matmul(x, kernel)
        return (y if bias is None else y + bias[:, tf.newaxis, :]), target
    if method == "loop":
        return _loop_dense(x, kernel, bias), target
    raise ValueError(f"unknown deep method {method!r}")


def _loop_dense(xs: list[tf.Tensor], kernel: tf.Tensor, bias: tf.Tensor | None) -> list[tf.Tensor]:
    kernels = tf.unstack(kernel)
    if bias is None:
        return [tf.matmul(xk, w) for xk, w in zip(xs, kernels, strict=True)]
    return [tf.nn.bias_add(tf.matmul(xk, w), b) for xk, w, b in zip(xs, kernels, tf.unstack(bias), strict=True)]


def _elementwise(fn: Any, x: Any, layout: str) -> Any:
    return [fn(xk) for xk in x] if layout == "list" else fn(x)


@tf.keras.utils.register_keras_serializable(package="mmoe_tf")
class ExpertBank(tf.keras.layers.Layer):
    """K independent MLP experts computed together: ``[B, D] -> [B, K, units[-1]]``.

    One layer owns one kernel ``[K, d_in, d_out]`` (and bias ``[K, d_out]``) per depth, instead of
    K separate sub-layers. Each expert's kernel slice is initialised independently with its own
    derived seed, so experts start (and stay) different. Per depth: matmul + bias, optional
    normalisation (``"layer"``: per expert over its units, with per expert-unit scale/offset;
    ``"batch"``: per expert-unit feature over the batch), activation, dropout.

    The input may also be ``[B, K, D]`` (expert k reads ``x[:, k]``), which ``CrossExpertBank``
    uses for its per-expert projection.

    Args:
        num_experts: Number of experts K (>= 1).
        units: Hidden sizes of each expert (int or list); the last is the output width.
        activation: Activation after every depth (including the last).
        dropout: Dropout rate after every depth, in [0, 1).
        normalization: ``None``, ``"batch"`` or ``"layer"``.
        use_bias: Whether each depth adds a per-expert bias.
        kernel_initializer: Initializer applied to each expert's ``[d_in, d_out]`` slice.
        seed: Base seed of the weights and dropout; ``None`` draws one at construction.
        implementation: How the per-expert matmuls run (same numbers, different speed): ``"auto"``
            (fastest measured in ``bench/expert_bank.py``: ONE ``[B, D] x [D, K*u]`` GEMM at the first
            depth, K per-expert matmuls deeper), ``"einsum"``, ``"batched"``, ``"loop"`` or
            ``"<first>:<deep>"`` e.g. ``"gemm:batched"`` (see ``parse_implementation``).

    Example:
        >>> bank = ExpertBank(num_experts=4, units=[32, 16], seed=0)
        >>> bank(tf.zeros([2, 10])).shape
        TensorShape([2, 4, 16])
    """

    def __init__(
        self,
        num_experts: int,
        units: int | Sequence[int],
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
        self.units = c.check_units("units", units)
        self.activation = tf.keras.activations.get(activation)
        self.dropout = c.check_rate("dropout", dropout)
        self.normalization = c.check_normalization("normalization", normalization)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)
        self.seed = c.check_seed("seed", seed)
        self.implementation = implementation
        self._first_method, self._deep_method = parse_implementation(implementation)
        self._base_seed = c.resolve_seed(seed)
        self._dropout_layer = (
            tf.keras.layers.Dropout(self.dropout, seed=c.derive_seed(self._base_seed, 99), dtype=self.dtype_policy)
            if self.dropout
            else None
        )

    def build(self, input_shape: tf.TensorShape) -> None:
        input_shape = tf.TensorShape(input_shape)
        if input_shape.rank not in (2, 3) or input_shape[-1] is None:
            raise ValueError(f"ExpertBank expects inputs [batch, dim] or [batch, K, dim], got shape {input_shape}")
        if input_shape.rank == 3 and input_shape[1] != self.num_experts:
            raise ValueError(
                f"ExpertBank with num_experts={self.num_experts} got per-expert inputs of shape {input_shape}"
            )
        self._per_expert_input = input_shape.rank == 3
        k = self.num_experts
        d_in = int(input_shape[-1])
        self.kernels, self.biases, self.norms = [], [], []
        for depth, d_out in enumerate(self.units):
            self.kernels.append(
                self.add_weight(
                    f"kernel_{depth}",
                    shape=[k, d_in, d_out],
                    initializer=c.per_expert_initializer(self.kernel_initializer, self._base_seed, depth),
                )
            )
            self.biases.append(
                self.add_weight(f"bias_{depth}", shape=[k, d_out], initializer="zeros") if self.use_bias else None
            )
            if self.normalization == "batch":
                norm = tf.keras.layers.BatchNormalization(name=f"batch_norm_{depth}", dtype=self.dtype_policy)
                c.build_sublayer(norm, tf.TensorShape([None, k * d_out]))
            elif self.normalization == "layer":
                norm = (
                    self.add_weight(f"ln_gamma_{depth}", shape=[k, d_out], initializer="ones"),
                    self.add_weight(f"ln_beta_{depth}", shape=[k, d_out], initializer="zeros"),
                )
            else:
                norm = None
            self.norms.append(norm)
            d_in = d_out
        super().build(input_shape)

    @property
    def groupable(self) -> bool:
        """Whether :meth:`call` can compute the experts in groups: shared input, no normalisation, no dropout."""
        return not getattr(self, "_per_expert_input", False) and self.normalization is None and not self.dropout

    def call(self, inputs: tf.Tensor, training: bool | None = None, groups: int = 1) -> tf.Tensor | list[tf.Tensor]:
        """``[B, K, units[-1]]``, or with ``groups > 1`` a list of ``groups`` tensors ``[B, K / groups, units[-1]]``
        (experts in order): independent chains of ops that TensorFlow's inter-op pool can run side by side, with
        the same arithmetic (``bench/expert_groups.py``). Groups need :attr:`groupable` and ``groups`` dividing K."""
        if groups == 1:
            return self._forward(inputs, self.kernels, self.biases, self.num_experts, training)
        if not self.groupable or groups < 1 or self.num_experts % groups:
            raise ValueError(
                f"ExpertBank cannot run {self.num_experts} experts in {groups} groups (groups must divide K, "
                "and the bank needs a shared input, no normalisation and no dropout)"
            )
        kernels = [tf.split(kernel, groups, axis=0) for kernel in self.kernels]
        biases = [[None] * groups if bias is None else tf.split(bias, groups, axis=0) for bias in self.biases]
        per_group = self.num_experts // groups
        return [
            self._forward(inputs, [k[g] for k in kernels], [b[g] for b in biases], per_group, training)
            for g in range(groups)
        ]

    def _forward(self, inputs: tf.Tensor, kernels: list, biases: list, k: int, training: bool | None) -> tf.Tensor:
        """``[B, k, units[-1]]`` of the ``k`` experts whose weights are ``kernels`` / ``biases`` (one per depth)."""
        if self._per_expert_input:
            x, layout = inputs, "bku"
        for depth, (kernel, bias, norm) in enumerate(zip(kernels, biases, self.norms, strict=True)):
            if depth == 0 and not self._per_expert_input:
                x, layout = shared_input_dense(inputs, kernel, bias, self._first_method)
            else:
                x, layout = per_expert_dense(x, layout, kernel, bias, self._deep_method)
            units = kernel.shape[-1]
            if self.normalization == "batch":  # per expert-unit feature: BN over the K*u columns
                x, layout = norm(convert_layout(x, layout, "flat", k, units), training=training), "flat"
            elif self.normalization == "layer":  # per expert, over its units; statistics in the variable dtype
                x, layout = convert_layout(x, layout, "bku", k, units), "bku"
                wide = tf.cast(x, self.dtype)  # float32 under mixed precision, as Keras' LayerNormalization does
                mean, variance = tf.nn.moments(wide, axes=[-1], keepdims=True)
                normalized = tf.cast((wide - mean) * tf.math.rsqrt(variance + _LAYER_NORM_EPSILON), x.dtype)
                x = normalized * norm[0] + norm[1]
            x = _elementwise(self.activation, x, layout)
            if self._dropout_layer is not None:
                x = _elementwise(lambda t: self._dropout_layer(t, training=training), x, layout)
        return convert_layout(x, layout, "bku", k, self.units[-1])

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        return tf.TensorShape([tf.TensorShape(input_shape)[0], self.num_experts, self.units[-1]])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            num_experts=self.num_experts,
            units=list(self.units),
            activation=tf.keras.activations.serialize(self.activation),
            dropout=self.dropout,
            normalization=self.normalization,
            use_bias=self.use_bias,
            kernel_initializer=tf.keras.initializers.serialize(self.kernel_initializer),
            seed=self.seed,
            implementation=self.implementation,
        )
        return config
