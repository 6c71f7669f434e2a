"""``MixtureOfExperts``: the expert and gate options that ``MMoE`` and PLE's ``CGC`` share.

Both blocks take the same expert options (type, activation, dropout, normalisation, cross layers,
implementation) and gate options (hidden units, activation, temperature, dropout, balance penalty) and build their
expert banks and gates the same way; this base layer validates those options once, builds banks and
gates from them, and serialises them. It is not used on its own. Its banks and gates take the block's dtype
policy (e.g. ``mixed_bfloat16``), so ``dtype=`` on the block sets the precision of everything inside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from mmoe_tf.config import EXPERT_TYPES
from mmoe_tf.layers import _common as c
from mmoe_tf.layers.cross_expert_bank import CrossExpertBank
from mmoe_tf.layers.expert_bank import ExpertBank
from mmoe_tf.layers.task_gate import TaskGate


class MixtureOfExperts(tf.keras.layers.Layer):
    """Validated expert/gate options plus builders for expert banks and gates (base of ``MMoE`` and ``CGC``).

    Args:
        expert_units: Expert hidden sizes; the last is the expert (and mixed) output width.
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
        implementation: ``ExpertBank`` implementation (validated by the banks).
    """

    def __init__(
        self,
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.expert_units = c.check_units("expert_units", expert_units)
        if expert_type not in EXPERT_TYPES:
            raise ValueError(f"expert_type must be one of {EXPERT_TYPES}, got {expert_type!r}")
        self.expert_type = expert_type
        self.expert_activation = tf.keras.activations.get(expert_activation)
        self.expert_dropout = c.check_rate("expert_dropout", expert_dropout)
        self.expert_norm = c.check_normalization("expert_norm", expert_norm)
        self.cross_layers = c.check_int("cross_layers", cross_layers, 1)
        self.gate_hidden_units = c.check_units("gate_hidden_units", gate_hidden_units, allow_empty=True)
        self.gate_activation = tf.keras.activations.get(gate_activation)
        self.gate_temperature = c.check_positive("gate_temperature", gate_temperature)
        self.gate_dropout = c.check_rate("gate_dropout", gate_dropout)
        self.gate_balance_weight = c.check_non_negative("gate_balance_weight", gate_balance_weight)
        self.seed = c.check_seed("seed", seed)
        self.implementation = implementation  # validated by the expert banks
        self._base_seed = c.resolve_seed(seed)

    def _bank(self, num_experts: int, seed: int, name: str) -> tf.keras.layers.Layer:
        """An expert bank of ``num_experts`` experts with this block's expert options."""
        common = dict(
            activation=self.expert_activation,
            dropout=self.expert_dropout,
            normalization=self.expert_norm,
            seed=seed,
            implementation=self.implementation,
            name=name,
            dtype=self.dtype_policy,
        )
        if self.expert_type == "mlp":
            return ExpertBank(num_experts, self.expert_units, **common)
        return CrossExpertBank(num_experts, self.expert_units, num_cross_layers=self.cross_layers, **common)

    def _gate(self, num_experts: int, seed: int, name: str) -> TaskGate:
        """A gate over ``num_experts`` experts with this block's gate options."""
        return TaskGate(
            num_experts,
            hidden_units=self.gate_hidden_units,
            activation=self.gate_activation,
            temperature=self.gate_temperature,
            dropout=self.gate_dropout,
            balance_weight=self.gate_balance_weight,
            seed=seed,
            name=name,
            dtype=self.dtype_policy,
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            expert_units=list(self.expert_units),
            expert_type=self.expert_type,
            expert_activation=tf.keras.activations.serialize(self.expert_activation),
            expert_dropout=self.expert_dropout,
            expert_norm=self.expert_norm,
            cross_layers=self.cross_layers,
            gate_hidden_units=list(self.gate_hidden_units),
            gate_activation=tf.keras.activations.serialize(self.gate_activation),
            gate_temperature=self.gate_temperature,
            gate_dropout=self.gate_dropout,
            gate_balance_weight=self.gate_balance_weight,
            seed=self.seed,
            implementation=self.implementation,
        )
        return config
