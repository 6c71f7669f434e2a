"""``MMoE``: one expert bank shared by ``num_gates`` task gates (OMoE when ``num_gates=1``)."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from typing import Any

import tensorflow as tf

from mmoe_tf.layers import _common as c
from mmoe_tf.layers.expert_bank import ExpertBank
from mmoe_tf.layers.mixture import MixtureOfExperts

_GROUPED_INFERENCE = contextvars.ContextVar("mmoe_tf_grouped_inference", default=False)


@contextlib.contextmanager
def grouped_inference() -> Iterator[None]:
    """Let ``MMoE`` blocks called (or traced) in this context compute their experts in groups when not training.

    The weights and the arithmetic are one group's, the outputs equal to float rounding (the mixture adds up in
    another order); TensorFlow's inter-op threads run the groups side by side. ``MultiTaskModel`` enters it in
    its ``predict_step`` and ``test_step``, so exported signatures, traced outside, keep one group.

    Example:
        >>> with grouped_inference():
        ...     mixed, weights = block(x)  # doctest: +SKIP
    """
    token = _GROUPED_INFERENCE.set(True)
    try:
        yield
    finally:
        _GROUPED_INFERENCE.reset(token)


@tf.keras.utils.register_keras_serializable(package="mmoe_tf")
class MMoE(MixtureOfExperts):
    """Multi-gate Mixture-of-Experts block (Ma et al., KDD 2018).

    One expert bank (``ExpertBank`` for ``expert_type="mlp"``, ``CrossExpertBank`` for ``"cross"``)
    and ``num_gates`` ``TaskGate``s. Gate g mixes the experts with softmax weights from its gate input.

    Inputs: one tensor ``[B, D]`` — experts and every gate read it — or, for a stacked (level > 1)
    block, a list of ``num_gates`` tensors (the previous level's per-task outputs): gate g reads
    ``inputs[g]`` (its own task's previous output) and the experts read the concatenation of all of
    them along the last axis, so every expert still sees every task's representation.

    Args:
        num_gates: Number of gates (tasks); 1 gives OMoE.
        num_experts: Number of experts K.
        expert_units: Expert hidden sizes; the last is the expert (and mixed) output width.
        expert_type: ``"mlp"`` or ``"cross"``.
        expert_activation: Activation inside experts.
        expert_dropout: Dropout rate inside experts.
        expert_norm: ``None``, ``"batch"`` or ``"layer"`` inside experts.
        cross_layers: Cross layers per expert (``expert_type="cross"`` only).
        gate_hidden_units: Hidden sizes of each gate (empty: linear gates).
        gate_activation: Activation of gate hidden layers.
        gate_temperature: Softmax temperature of the gates (> 0).
        gate_dropout: Gate-weight dropout during training (see ``TaskGate``).
        gate_balance_weight: Weight of each gate's load-balancing penalty during training (see ``TaskGate``).
        seed: Base seed of every weight; ``None`` draws one at construction.
        implementation: ``ExpertBank`` implementation (``"auto"`` is the fastest measured).
        expert_groups: Compute the experts (and each gate's mixing) in this many groups, independent chains of ops
            that TensorFlow runs side by side on several cores, with the same arithmetic and weights. ``None``
            (default): one group per expert (each gate then mixes an expert with a column-broadcast multiply,
            nothing repeated or summed); 1 on a GPU and for banks that cannot be grouped (cross experts,
            normalisation, dropout). Used in training and, inside :func:`grouped_inference` (Keras' own
            ``predict`` / ``evaluate`` steps of ``MultiTaskModel``), in inference; any other inference call,
            exported signatures included, keeps one group (a server that runs a request's ops in its own thread
            gains nothing from groups and pays their extra ops). Measured in ``docs/performance.md``.

    Returns (from ``call``):
        ``(mixed, weights)``: lists of ``num_gates`` tensors ``[B, expert_units[-1]]`` and ``[B, K]``.

    Example:
        >>> block = MMoE(num_gates=2, num_experts=4, expert_units=[16], seed=0)
        >>> mixed, weights = block(tf.zeros([3, 10]))
        >>> [m.shape for m in mixed], [w.shape for w in weights]
        ([TensorShape([3, 16]), TensorShape([3, 16])], [TensorShape([3, 4]), TensorShape([3, 4])])
    """

    def __init__(
        self,
        num_gates: int,
        num_experts: int,
        expert_units: int | Sequence[int],
        expert_type: str = "mlp",
        expert_activation: Any = "relu",
        expert_dropout: float = 0.0,
        expert_norm: str | None = None,
        cross_layers: int = 2,
        gate_hidden_units: Sequence[int] = (),
        gate_activation: Any = "relu",
        gate_temperature: float = 1.0,
        gate_dropout: float = 0.0,
        gate_balance_weight: float = 0.0,
        seed: int | None = None,
        implementation: str = "auto",
        expert_groups: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            expert_units,
            expert_type=expert_type,
            expert_activation=expert_activation,
            expert_dropout=expert_dropout,
            expert_norm=expert_norm,
            cross_layers=cross_layers,
            gate_hidden_units=gate_hidden_units,
            gate_activation=gate_activation,
            gate_temperature=gate_temperature,
            gate_dropout=gate_dropout,
            gate_balance_weight=gate_balance_weight,
            seed=seed,
            implementation=implementation,
            **kwargs,
        )
        self.num_gates = c.check_int("num_gates", num_gates, 1)
        self.num_experts = c.check_int("num_experts", num_experts, 1)
        if expert_groups is not None:
            c.check_int("expert_groups", expert_groups, 1)
            if self.num_experts % expert_groups:
                raise ValueError(f"expert_groups ({expert_groups}) must divide num_experts ({self.num_experts})")
        self.expert_groups = expert_groups
        base = self._base_seed
        self.experts = self._bank(self.num_experts, c.derive_seed(base, 0), "experts")
        self.gates = [
            self._gate(self.num_experts, c.derive_seed(base, 1 + g), f"gate_{g}") for g in range(self.num_gates)
        ]

    def _split_shapes(self, input_shape: Any) -> tuple[tf.TensorShape, list[tf.TensorShape]]:
        if isinstance(input_shape, (list, tuple)) and input_shape and not isinstance(input_shape[0], (int, type(None))):
            shapes = [tf.TensorShape(s) for s in input_shape]
            if len(shapes) != self.num_gates:
                raise ValueError(f"MMoE with num_gates={self.num_gates} got a list of {len(shapes)} inputs")
            for s in shapes:
                if s.rank != 2 or s[-1] is None:
                    raise ValueError(f"MMoE inputs must be [batch, dim] tensors, got {s}")
            expert_shape = tf.TensorShape([shapes[0][0], sum(int(s[-1]) for s in shapes)])
            return expert_shape, shapes
        shape = tf.TensorShape(input_shape)
        if shape.rank != 2 or shape[-1] is None:
            raise ValueError(f"MMoE expects inputs [batch, dim] or a list of them, got {shape}")
        return shape, [shape] * self.num_gates

    def build(self, input_shape: Any) -> None:
        expert_shape, gate_shapes = self._split_shapes(input_shape)
        c.build_sublayer(self.experts, expert_shape)
        self._groups()  # an explicit expert_groups the bank cannot run fails here, not at the first training step
        bank_shape = self.experts.compute_output_shape(expert_shape)
        for gate, shape in zip(self.gates, gate_shapes, strict=True):
            c.build_sublayer(gate, (bank_shape, shape))
        super().build(input_shape)

    def call(self, inputs: Any, training: bool | None = None) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != self.num_gates:
                raise ValueError(f"MMoE with num_gates={self.num_gates} got a list of {len(inputs)} inputs")
            gate_inputs = list(inputs)
            expert_input = tf.concat(gate_inputs, axis=-1) if len(gate_inputs) > 1 else gate_inputs[0]
        else:
            gate_inputs = [inputs] * self.num_gates
            expert_input = inputs
        groups = self._groups() if training or _GROUPED_INFERENCE.get() else 1  # see ``expert_groups``
        if groups > 1:
            expert_outputs = self.experts(expert_input, training=training, groups=groups)
        else:
            expert_outputs = self.experts(expert_input, training=training)
        mixed, weights = [], []
        for gate, gate_input in zip(self.gates, gate_inputs, strict=True):
            m, w = gate((expert_outputs, gate_input), training=training)
            mixed.append(m)
            weights.append(w)
        return mixed, weights

    def _groups(self) -> int:
        """How many expert groups this call computes (see ``expert_groups``)."""
        groupable = isinstance(self.experts, ExpertBank) and self.experts.groupable
        if self.expert_groups is not None:
            if self.expert_groups > 1 and not groupable:
                raise ValueError(
                    f"expert_groups={self.expert_groups} needs MLP experts without normalisation or dropout"
                )
            return self.expert_groups
        if not groupable or tf.config.list_physical_devices("GPU"):
            return 1
        return self.num_experts  # one group per expert: K chains, and TaskGate mixes without a repeat or a sum

    def compute_output_shape(self, input_shape: Any) -> tuple[list[tf.TensorShape], list[tf.TensorShape]]:
        expert_shape, _ = self._split_shapes(input_shape)
        batch = expert_shape[0]
        return (
            [tf.TensorShape([batch, self.expert_units[-1]])] * self.num_gates,
            [tf.TensorShape([batch, self.num_experts])] * self.num_gates,
        )

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_gates": self.num_gates,
            "num_experts": self.num_experts,
            "expert_groups": self.expert_groups,
        }
