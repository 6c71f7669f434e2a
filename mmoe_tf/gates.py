"""Gate introspection: a sub-model that shares the trained weights and outputs each task's gate weights.

Example:
    >>> gates = gate_model(model)
    >>> weights = gates.predict(features)       # {"click": [B, K], "satisfaction": [B, K]}
    >>> weights["click"].sum(axis=1)             # all ones
"""

from __future__ import annotations

import tensorflow as tf

from mmoe_tf.models import mmoe_layer_name
from mmoe_tf.saving import config_of

GATED_ARCHITECTURES = ("mmoe", "omoe")


def gate_model(model: tf.keras.Model) -> tf.keras.Model:
    """A model with the same inputs as ``model`` whose outputs are the top-level gate weights.

    Args:
        model: A model from ``build_model`` / ``load_model`` with architecture ``mmoe`` or ``omoe``.

    Returns:
        ``tf.keras.Model`` with outputs ``{task_name: [B, K]}`` (softmax weights over the K experts
        of the last MMoE level; every task of an OMoE gets the shared gate). It reuses the layers
        of ``model``, so it reflects the current (trained) weights without retraining.

    Raises:
        ValueError: for architectures without gates (``shared_bottom``, ``single_task``).
    """
    config = config_of(model)
    if config.architecture not in GATED_ARCHITECTURES:
        raise ValueError(
            f"gate_model: architecture {config.architecture!r} has no gates; "
            f"gate introspection needs one of {GATED_ARCHITECTURES}"
        )
    block = model.get_layer(mmoe_layer_name(config.num_levels - 1))
    _, weights = block.output
    outputs = {}
    for i, task in enumerate(config.tasks):
        tensor = weights[i] if config.architecture == "mmoe" else weights[0]
        outputs[task.name] = tf.keras.layers.Activation("linear", name=f"gate_{task.name}")(tensor)
    return tf.keras.Model(inputs=model.input, outputs=outputs, name=f"{model.name}_gates")
