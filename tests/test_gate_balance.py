"""The gates' load-balancing penalty (``gate_balance_weight``): its value, where it applies, saving."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import mmoe_tf
from mmoe_tf import FeatureSpec, ModelConfig, TaskSpec, build_model, load_model
from mmoe_tf.layers import CGC, MMoE, TaskGate
from mmoe_tf.layers.task_gate import importance_cv_squared


def test_cv_squared_is_zero_for_uniform_and_k_minus_one_for_a_collapsed_gate():
    k = 4
    uniform = tf.fill([6, k], 1.0 / k)
    collapsed = tf.one_hot([2] * 6, k)
    assert float(importance_cv_squared(uniform)) == pytest.approx(0.0, abs=1e-7)
    assert float(importance_cv_squared(collapsed)) == pytest.approx(k - 1, rel=1e-6)
    # examples that each pick one expert, but different ones evenly: the batch mean is balanced
    assert float(importance_cv_squared(tf.one_hot([0, 1, 2, 3], k))) == pytest.approx(0.0, abs=1e-7)


def _gate_inputs(k: int = 4, rows: int = 8) -> tuple[tf.Tensor, tf.Tensor]:
    rng = np.random.default_rng(0)
    return tf.constant(rng.normal(size=(rows, k, 3)), tf.float32), tf.constant(rng.normal(size=(rows, 5)), tf.float32)


def test_penalty_is_added_in_training_only_and_equals_weight_times_cv_squared():
    inputs = _gate_inputs()
    off = TaskGate(4, seed=1)
    off(inputs, training=True)
    assert off.losses == []  # weight 0: no loss at all
    gate = TaskGate(4, balance_weight=0.5, seed=1)
    _, weights = gate(inputs, training=True)
    (penalty,) = gate.losses
    assert float(penalty) == pytest.approx(0.5 * float(importance_cv_squared(weights)), rel=1e-6)
    assert float(penalty) > 0.0
    gate(inputs, training=False)
    assert gate.losses == []
    gate(inputs)
    assert gate.losses == []


def test_penalty_of_a_collapsed_gate_is_large_and_of_a_uniform_gate_zero():
    inputs = _gate_inputs()
    gate = TaskGate(4, balance_weight=1.0, seed=0)
    gate(inputs)
    kernel, bias = gate._logits.kernel, gate._logits.bias
    kernel.assign(tf.zeros_like(kernel))
    bias.assign(tf.constant([0.0, 0.0, 0.0, 0.0]))
    gate(inputs, training=True)
    assert float(gate.losses[0]) == pytest.approx(0.0, abs=1e-7)
    bias.assign(tf.constant([50.0, 0.0, 0.0, 0.0]))  # every example puts all its weight on expert 0
    gate(inputs, training=True)
    assert float(gate.losses[0]) == pytest.approx(3.0, rel=1e-4)


def test_penalty_leaves_the_outputs_unchanged():
    inputs = _gate_inputs()
    plain, balanced = TaskGate(4, seed=3), TaskGate(4, balance_weight=0.3, seed=3)
    for training in (False, True):
        for a, b in zip(plain(inputs, training=training), balanced(inputs, training=training), strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize(
    "layer",
    [
        lambda: MMoE(2, 3, [4], gate_balance_weight=0.25, seed=0),
        lambda: CGC(2, 1, 2, [4], shared_gate=True, gate_balance_weight=0.25, seed=0),
    ],
    ids=["mmoe", "ple"],
)
def test_blocks_pass_the_weight_to_every_gate_and_serialise_it(layer):
    block = layer()
    x = tf.random.stateless_normal([6, 5], seed=[1, 2])
    _, weights = block(x, training=True)
    assert len(block.losses) == len(weights)  # one penalty per gate (PLE: the tasks' and the shared gate)
    for loss, w in zip(block.losses, weights, strict=True):
        assert float(loss) == pytest.approx(0.25 * float(importance_cv_squared(w)), rel=1e-5)
    config = block.get_config()
    assert config["gate_balance_weight"] == 0.25
    clone = type(block).from_config(config)
    assert all(g.balance_weight == 0.25 for g in clone.gates)


@pytest.mark.parametrize("value", [-0.1, float("inf"), float("nan"), True, "0.1"])
def test_invalid_weight_is_refused(value):
    with pytest.raises(ValueError, match="balance_weight"):
        TaskGate(2, balance_weight=value)
    with pytest.raises(ValueError, match="gate_balance_weight"):
        ModelConfig(features=(FeatureSpec("x", "numeric"),), gate_balance_weight=value)


def _frame(rows: int = 256) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 3)).astype("float32")
    return pd.DataFrame(
        {
            "a": x[:, 0],
            "b": x[:, 1],
            "c": x[:, 2],
            "click": (x[:, 0] > 0).astype("float32"),
            "satisfaction": (x[:, 1] + x[:, 2] > 0).astype("float32"),
        }
    )


def _config(weight: float, architecture: str = "mmoe") -> ModelConfig:
    return ModelConfig(
        features=tuple(FeatureSpec(n, "numeric") for n in "abc"),
        tasks=(TaskSpec("click"), TaskSpec("satisfaction")),
        architecture=architecture,
        num_experts=4,
        expert_units=(8,),
        tower_units=(4,),
        gate_balance_weight=weight,
        steps_per_execution=1,
        seed=0,
    )


def _batch(frame: pd.DataFrame) -> tuple[dict, dict]:
    features = {n: frame[n].to_numpy() for n in "abc"}
    labels = {t: frame[t].to_numpy()[:, None] for t in ("click", "satisfaction")}
    return features, labels


@pytest.mark.parametrize("architecture", ["mmoe", "ple"])
def test_model_losses_and_total_loss_include_the_penalty(architecture):
    frame = _frame()
    features, labels = _batch(frame)
    plain = build_model(_config(0.0, architecture), adapt_data=frame)
    balanced = build_model(_config(2.0, architecture), adapt_data=frame)
    assert balanced.mmoe_config.gate_balance_weight == 2.0
    y_pred = balanced(features, training=True)
    assert len(balanced.losses) == 2  # one per task gate (one-level ple has no shared gate)
    penalty = float(tf.add_n(balanced.losses))
    assert penalty > 0.0
    total = float(balanced.compute_loss(features, labels, y_pred))
    plain_total = float(plain.compute_loss(features, labels, plain(features, training=True)))
    assert total == pytest.approx(plain_total + penalty, rel=1e-5)
    # train_on_batch reports the loss before its update: the same total
    tf.keras.utils.set_random_seed(0)
    reported = balanced.train_on_batch(features, labels, return_dict=True)["loss"]
    assert reported == pytest.approx(total, rel=1e-4)
    # inference: no penalty, and the same outputs as the model without it (same seed, same weights)
    balanced_infer = build_model(_config(2.0, architecture), adapt_data=frame)
    for name, value in plain(features, training=False).items():
        np.testing.assert_array_equal(value.numpy(), balanced_infer(features, training=False)[name].numpy())
    assert balanced_infer.losses == []


def test_penalty_survives_save_and_load_and_keeps_the_export_signatures(tmp_path):
    from serving.export import export_model

    frame = _frame()
    features, labels = _batch(frame)
    model = build_model(_config(0.5), adapt_data=frame)
    model.fit(features, labels, epochs=1, batch_size=64, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_model(path)
    assert mmoe_tf.config_of(loaded).gate_balance_weight == 0.5
    expected = model(features, training=False)
    for name, value in loaded(features, training=False).items():
        np.testing.assert_allclose(value.numpy(), expected[name].numpy(), rtol=1e-6)
    loaded(features, training=True)
    assert len(loaded.losses) == 2
    export = export_model(loaded, tmp_path / "export", sample_features=frame.head(8))
    saved = tf.saved_model.load(str(export))
    assert sorted(saved.signatures) == ["gates", "ranking_score", "serving_default"]
    outputs = saved.signatures["serving_default"].structured_outputs
    assert sorted(outputs) == ["click", "satisfaction"]
