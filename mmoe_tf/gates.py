"""Gate introspection: sub-models that share the trained weights and output the gate weights.

For ``ple`` a task's gate weighs **its own experts first, then the shared experts**
(:func:`gate_expert_names` gives the column names); a shared gate (every PLE level but the last)
weighs every task's experts in task order, then the shared experts.

Example:
    >>> gates = gate_model(model)
    >>> weights = gates.predict(features)       # {"click": [B, K], "satisfaction": [B, K]}
    >>> weights["click"].sum(axis=1)             # all ones
    >>> gate_expert_names(config_of(model))["click"]   # ple: ['click/0', 'shared/0', 'shared/1']
"""

from __future__ import annotations

import tensorflow as tf

from mmoe_tf.architectures import mmoe_layer_name, ple_layer_name
from mmoe_tf.config import ModelConfig
from mmoe_tf.saving import config_of

GATED_ARCHITECTURES = ("mmoe", "omoe", "ple")
SHARED_GATE = "shared"


def _check_gated(config: ModelConfig, caller: str) -> None:
    if config.architecture not in GATED_ARCHITECTURES:
        raise ValueError(
            f"{caller}: architecture {config.architecture!r} has no gates; "
            f"gate introspection needs one of {GATED_ARCHITECTURES}"
        )


def gate_expert_names(config: ModelConfig) -> dict[str, list[str]]:
    """Which expert each gate-weight column refers to, per task (and ``"shared"`` for PLE's shared gate).

    Names are ``"<i>"`` for mmoe/omoe (one bank shared by every gate), and for ple ``"<task>/<i>"``
    (task-owned expert i) or ``"shared/<i>"``; a task's columns are its own experts, then the shared ones.

    Raises:
        ValueError: for architectures without gates.
    """
    _check_gated(config, "gate_expert_names")
    if config.architecture != "ple":
        return {t.name: [str(i) for i in range(config.num_experts)] for t in config.tasks}
    shared = [f"{SHARED_GATE}/{i}" for i in range(config.num_shared_experts)]
    own = {t.name: [f"{t.name}/{i}" for i in range(config.num_task_experts)] for t in config.tasks}
    names = {task: [*experts, *shared] for task, experts in own.items()}
    if config.num_levels > 1:
        names[SHARED_GATE] = [e for experts in own.values() for e in experts] + shared
    return names


def _level_weights(model: tf.keras.Model, config: ModelConfig, level: int) -> dict[str, tf.Tensor]:
    if config.architecture == "ple":
        _, weights = model.get_layer(ple_layer_name(level)).output
        out = {t.name: weights[i] for i, t in enumerate(config.tasks)}
        if len(weights) > len(config.tasks):
            out[SHARED_GATE] = weights[-1]
        return out
    _, weights = model.get_layer(mmoe_layer_name(level)).output
    return {t.name: weights[i] if config.architecture == "mmoe" else weights[0] for i, t in enumerate(config.tasks)}


def gate_model(model: tf.keras.Model) -> tf.keras.Model:
    """A model with the same inputs as ``model`` whose outputs are the top-level gate weights.

    Args:
        model: A model from ``build_model`` / ``load_model`` with architecture ``mmoe``, ``omoe`` or ``ple``.

    Returns:
        ``tf.keras.Model`` with outputs ``{task_name: [B, K]}``: softmax weights of the last level's
        gates (every task of an OMoE gets the shared gate). For ``ple``, ``K = num_task_experts +
        num_shared_experts`` and the columns are the task's own experts, then the shared experts
        (see :func:`gate_expert_names`). It reuses the layers of ``model``, so it reflects the
        current (trained) weights without retraining.

    Raises:
        ValueError: for architectures without gates (``shared_bottom``, ``single_task``).
    """
    config = config_of(model)
    _check_gated(config, "gate_model")
    weights = _level_weights(model, config, config.num_levels - 1)
    outputs = {
        t.name: tf.keras.layers.Activation("linear", name=f"gate_{t.name}")(weights[t.name]) for t in config.tasks
    }
    return tf.keras.Model(inputs=model.input, outputs=outputs, name=f"{model.name}_gates")


def level_gate_model(model: tf.keras.Model) -> tf.keras.Model:
    """Like :func:`gate_model` but with every level's gates: outputs ``{"level<l>/<gate>": [B, K]}``.

    ``<gate>`` is a task name, or ``shared`` for a PLE level's shared gate (all levels but the last).

    Raises:
        ValueError: for architectures without gates.
    """
    config = config_of(model)
    _check_gated(config, "level_gate_model")
    outputs = {}
    for level in range(config.num_levels):
        for gate, tensor in _level_weights(model, config, level).items():
            key = f"level{level}/{gate}"
            outputs[key] = tf.keras.layers.Activation("linear", name=f"gate_level{level}_{gate}")(tensor)
    return tf.keras.Model(inputs=model.input, outputs=outputs, name=f"{model.name}_level_gates")
