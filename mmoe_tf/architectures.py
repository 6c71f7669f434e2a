"""The layer graph of each architecture (MMoE, OMoE, PLE, shared-bottom, single-task) from a ``ModelConfig``.

All five share the same feature handling (``FeatureEncoder``) and the same towers, so comparisons between
them are fair; :func:`build_graph` returns the functional inputs and outputs ``MultiTaskModel`` wraps.
``ModelConfig.precision`` gives the dense part (experts, bottoms, gates, towers) its dtype policy
(:func:`dense_dtype`); the feature encoder, the heads and so the outputs stay float32.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from mmoe_tf.config import ModelConfig
from mmoe_tf.features import FeatureEncoder
from mmoe_tf.layers import CGC, CrossExpertBank, MMoE
from mmoe_tf.layers._common import derive_seed
from mmoe_tf.model_inputs import make_inputs
from mmoe_tf.targets import task_order
from mmoe_tf.task_specs import joint_output_name
from mmoe_tf.towers import MLP, Tower


def mmoe_layer_name(level: int) -> str:
    """Name of the MMoE/OMoE block at ``level`` (0-based) inside a built model."""
    return f"mmoe_{level}"


def ple_layer_name(level: int) -> str:
    """Name of the PLE extraction level (a ``CGC`` layer) at ``level`` (0-based) inside a built model."""
    return f"ple_{level}"


def dense_dtype(config: ModelConfig) -> tf.keras.mixed_precision.Policy | None:
    """The dtype policy of the dense layers: ``None`` (the default policy) for ``float32``, else the mixed policy.

    The policy goes to those layers only (``dtype=``), never to Keras' global policy, which would change every
    layer a user builds afterwards in the same process.
    """
    return None if config.precision == "float32" else tf.keras.mixed_precision.Policy(config.precision)


def _bottom(config: ModelConfig, seed: int, name: str) -> tf.keras.layers.Layer:
    """The shared-bottom / single-task bottom network: one expert's worth of network."""
    dtype = dense_dtype(config)
    if config.expert_type == "cross":
        return tf.keras.Sequential(
            [
                CrossExpertBank(
                    1,
                    config.expert_units,
                    num_cross_layers=config.cross_layers,
                    activation=config.expert_activation,
                    dropout=config.expert_dropout,
                    normalization=config.expert_norm,
                    seed=seed,
                    name="cross",
                    dtype=dtype,
                ),
                tf.keras.layers.Reshape((config.expert_units[-1],), name="squeeze", dtype=dtype),
            ],
            name=name,
        )
    return MLP(
        config.expert_units,
        activation=config.expert_activation,
        dropout=config.expert_dropout,
        normalization=config.expert_norm,
        seed=seed,
        name=name,
        dtype=dtype,
    )


def _encoder(config: ModelConfig, state: Mapping[str, Any], seed: int, name: str) -> FeatureEncoder:
    """The config's feature encoder (features, crosses, embedding L2) with its seed and layer name."""
    return FeatureEncoder(
        config.features,
        state,
        seed=seed,
        embedding_l2=config.embedding_l2,
        crosses=config.feature_crosses,
        name=name,
    )


def _representations(config: ModelConfig, state: Mapping[str, Any], inputs: dict) -> dict[str, tf.Tensor]:
    """The input of each task's tower, keyed by task name."""
    arch = config.architecture
    if arch == "single_task":
        reps = {}
        for i, task in enumerate(config.tasks):
            encoder = _encoder(config, state, derive_seed(config.seed, 1, i), f"features_{task.name}")
            reps[task.name] = _bottom(config, derive_seed(config.seed, 2, i), f"bottom_{task.name}")(encoder(inputs))
        return reps
    x = _encoder(config, state, derive_seed(config.seed, 1), "features")(inputs)
    if arch == "shared_bottom":
        h = _bottom(config, derive_seed(config.seed, 2), "bottom")(x)
        return {t.name: h for t in config.tasks}
    if arch == "ple":
        return _ple(config, x)
    num_gates = len(config.tasks) if arch == "mmoe" else 1
    level_input: Any = x
    mixed: list[tf.Tensor] = []
    for level in range(config.num_levels):
        block = MMoE(
            num_gates=num_gates,
            num_experts=config.num_experts,
            expert_units=config.expert_units,
            **_expert_and_gate_options(config),
            seed=derive_seed(config.seed, 3, level),
            name=mmoe_layer_name(level),
        )
        mixed, _ = block(level_input)
        level_input = list(mixed) if num_gates > 1 else mixed[0]
    return {t.name: mixed[i if num_gates > 1 else 0] for i, t in enumerate(config.tasks)}


def _expert_and_gate_options(config: ModelConfig) -> dict[str, Any]:
    """The expert and gate options that MMoE/OMoE blocks and PLE (CGC) levels share, from ``config``."""
    return {
        "expert_type": config.expert_type,
        "expert_activation": config.expert_activation,
        "expert_dropout": config.expert_dropout,
        "expert_norm": config.expert_norm,
        "cross_layers": config.cross_layers,
        "gate_hidden_units": config.gate_hidden_units,
        "gate_temperature": config.gate_temperature,
        "gate_dropout": config.gate_dropout,
        "gate_balance_weight": config.gate_balance_weight,
        "dtype": dense_dtype(config),
    }


def _ple(config: ModelConfig, x: tf.Tensor) -> dict[str, tf.Tensor]:
    """PLE: ``num_levels`` CGC levels; every level but the last also mixes a shared output for the next."""
    level_input: Any = x
    mixed: list[tf.Tensor] = []
    for level in range(config.num_levels):
        block = CGC(
            num_tasks=len(config.tasks),
            num_task_experts=config.num_task_experts,
            num_shared_experts=config.num_shared_experts,
            expert_units=config.expert_units,
            shared_gate=level < config.num_levels - 1,
            **_expert_and_gate_options(config),
            seed=derive_seed(config.seed, 5, level),
            name=ple_layer_name(level),
        )
        mixed, _ = block(level_input)
        level_input = list(mixed)
    return {t.name: mixed[i] for i, t in enumerate(config.tasks)}


def build_graph(config: ModelConfig, state: Mapping[str, Any]) -> tuple[dict, dict]:
    """The model's inputs ``{feature: Input}`` and outputs ``{output name: [B, 1]}`` for ``config``."""
    inputs = make_inputs(config.features)
    reps = _representations(config, state, inputs)
    heads: dict[str, tf.Tensor] = {}
    unconditional: dict[str, tf.Tensor] = {}
    for i, task in enumerate(config.tasks):
        heads[task.name] = Tower(
            task.tower_units if task.tower_units is not None else config.tower_units,
            task_type=task.type,
            activation=config.tower_activation,
            dropout=config.tower_dropout,
            seed=derive_seed(config.seed, 4, i),
            name=task.name,
            dtype=dense_dtype(config),
        )(reps[task.name])
    for task in task_order(config):
        if task.conditional_on is None:
            unconditional[task.name] = heads[task.name]
        else:
            joint = tf.keras.layers.Multiply(name=joint_output_name(task))(
                [unconditional[task.conditional_on], heads[task.name]]
            )
            unconditional[task.name] = heads[joint_output_name(task)] = joint
    return inputs, {name: heads[name] for name in config.output_names}
