"""``CGC``: one Customized Gate Control level of PLE (Tang et al., RecSys 2020).

Stacking ``CGC`` levels (each but the last with ``shared_gate=True``) gives Progressive Layered
Extraction; a single level is CGC.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from mmoe_tf.layers import _common as c
from mmoe_tf.layers.mixture import MixtureOfExperts


@tf.keras.utils.register_keras_serializable(package="mmoe_tf")
class CGC(MixtureOfExperts):
    """One PLE extraction level: per-task expert banks, one shared bank, per-task (and a shared) gate.

    Task t owns ``num_task_experts`` experts; ``num_shared_experts`` experts are shared. Gate t
    mixes **[task t's own experts, then the shared experts]** (in that order: weight column
    ``j < num_task_experts`` is own expert j, column ``num_task_experts + j`` is shared expert j).
    With ``shared_gate=True`` (every PLE level but the last) a shared gate mixes **[task 0's
    experts, task 1's experts, ..., the shared experts]**; its output feeds the next level's shared
    experts. Task t's experts therefore reach only task t's output at this level (and the other
    tasks only through the shared gate of a lower level).

    Inputs: one tensor ``[B, D]`` (first level: every bank and gate reads it), or a list of
    ``num_tasks + 1`` tensors ``[x_task_0, ..., x_task_{T-1}, x_shared]`` (a higher level: task t's
    experts and gate read ``x_task_t``; the shared experts and the shared gate read ``x_shared``).

    Args:
        num_tasks: Number of tasks T (>= 1).
        num_task_experts: Experts owned by each task (>= 1).
        num_shared_experts: Shared experts (>= 1).
        expert_units: Expert hidden sizes; the last is the expert (and mixed) output width.
        shared_gate: Also output the shared gate's mixture (for a next level).
        expert_type: ``"mlp"`` (``ExpertBank``) or ``"cross"`` (``CrossExpertBank``).
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

    Returns (from ``call``):
        ``(mixed, weights)``: lists of T (+1 with ``shared_gate``, last) tensors ``[B, expert_units[-1]]``
        and ``[B, num_task_experts + num_shared_experts]`` (shared gate: ``[B, T * num_task_experts +
        num_shared_experts]``).

    Example:
        >>> level = CGC(num_tasks=2, num_task_experts=1, num_shared_experts=2, expert_units=[8], seed=0)
        >>> mixed, weights = level(tf.zeros([3, 5]))
        >>> [m.shape for m in mixed], [w.shape for w in weights]
        ([TensorShape([3, 8]), TensorShape([3, 8])], [TensorShape([3, 3]), TensorShape([3, 3])])
    """

    def __init__(
        self,
        num_tasks: int,
        num_task_experts: int,
        num_shared_experts: int,
        expert_units: int | Sequence[int],
        shared_gate: bool = False,
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
        self.num_tasks = c.check_int("num_tasks", num_tasks, 1)
        self.num_task_experts = c.check_int("num_task_experts", num_task_experts, 1)
        self.num_shared_experts = c.check_int("num_shared_experts", num_shared_experts, 1)
        self.shared_gate = bool(shared_gate)
        base = self._base_seed
        t, own, shared = self.num_tasks, self.num_task_experts, self.num_shared_experts
        self.task_experts = [self._bank(own, c.derive_seed(base, 0, i), f"experts_task_{i}") for i in range(t)]
        self.shared_experts = self._bank(shared, c.derive_seed(base, 1), "experts_shared")
        self.gates = [self._gate(own + shared, c.derive_seed(base, 2, i), f"gate_{i}") for i in range(t)]
        self.shared_gate_layer = (
            self._gate(t * own + shared, c.derive_seed(base, 3), "gate_shared") if self.shared_gate else None
        )

    def _split_shapes(self, input_shape: Any) -> list[tf.TensorShape]:
        """``[task_0, ..., task_{T-1}, shared]`` input shapes."""
        if isinstance(input_shape, (list, tuple)) and input_shape and not isinstance(input_shape[0], (int, type(None))):
            shapes = [tf.TensorShape(s) for s in input_shape]
            if len(shapes) != self.num_tasks + 1:
                raise ValueError(
                    f"CGC with num_tasks={self.num_tasks} takes one tensor or a list of {self.num_tasks + 1} "
                    f"(one per task, then the shared input), got a list of {len(shapes)}"
                )
        else:
            shapes = [tf.TensorShape(input_shape)] * (self.num_tasks + 1)
        for s in shapes:
            if s.rank != 2 or s[-1] is None:
                raise ValueError(f"CGC inputs must be [batch, dim] tensors, got {s}")
        return shapes

    def build(self, input_shape: Any) -> None:
        shapes = self._split_shapes(input_shape)
        bank_shapes = []
        for bank, shape in zip([*self.task_experts, self.shared_experts], shapes, strict=True):
            c.build_sublayer(bank, shape)
            bank_shapes.append(bank.compute_output_shape(shape))
        units = self.expert_units[-1]
        own, shared = self.num_task_experts, self.num_shared_experts
        for gate, shape in zip(self.gates, shapes, strict=False):
            c.build_sublayer(gate, (tf.TensorShape([shape[0], own + shared, units]), shape))
        if self.shared_gate_layer is not None:
            total = self.num_tasks * own + shared
            c.build_sublayer(self.shared_gate_layer, (tf.TensorShape([shapes[-1][0], total, units]), shapes[-1]))
        super().build(input_shape)

    def call(self, inputs: Any, training: bool | None = None) -> tuple[list[tf.Tensor], list[tf.Tensor]]:
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != self.num_tasks + 1:
                raise ValueError(f"CGC with num_tasks={self.num_tasks} got a list of {len(inputs)} inputs")
            xs = list(inputs)
        else:
            xs = [inputs] * (self.num_tasks + 1)
        own = [bank(x, training=training) for bank, x in zip(self.task_experts, xs, strict=False)]
        shared = self.shared_experts(xs[-1], training=training)
        mixed, weights = [], []
        for gate, experts, x in zip(self.gates, own, xs, strict=False):
            m, w = gate((tf.concat([experts, shared], axis=1), x), training=training)
            mixed.append(m)
            weights.append(w)
        if self.shared_gate_layer is not None:
            m, w = self.shared_gate_layer((tf.concat([*own, shared], axis=1), xs[-1]), training=training)
            mixed.append(m)
            weights.append(w)
        return mixed, weights

    def compute_output_shape(self, input_shape: Any) -> tuple[list[tf.TensorShape], list[tf.TensorShape]]:
        batch = self._split_shapes(input_shape)[0][0]
        t, own, shared = self.num_tasks, self.num_task_experts, self.num_shared_experts
        mixed = [tf.TensorShape([batch, self.expert_units[-1]])] * (t + self.shared_gate)
        weights = [tf.TensorShape([batch, own + shared])] * t
        if self.shared_gate:
            weights.append(tf.TensorShape([batch, t * own + shared]))
        return mixed, weights

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_tasks": self.num_tasks,
            "num_task_experts": self.num_task_experts,
            "num_shared_experts": self.num_shared_experts,
            "shared_gate": self.shared_gate,
        }
