"""FusedAdam: the same updates as Keras' Adam (dense and sparse gradients), serialisable, used by build_model."""

import numpy as np
import pytest
import tensorflow as tf

from mmoe_tf.config import ModelConfig
from mmoe_tf.feature_specs import FeatureSpec
from mmoe_tf.models import build_model
from mmoe_tf.optimizers import FusedAdam


def _run(optimizer: tf.keras.optimizers.Optimizer, steps: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    dense = tf.Variable(rng.standard_normal((5, 3)).astype(np.float32))
    table = tf.Variable(rng.standard_normal((10, 4)).astype(np.float32))

    @tf.function
    def step(grad, rows, values):
        optimizer.apply_gradients([(grad, dense), (tf.IndexedSlices(values, rows), table)])

    for i in range(steps):
        g = np.random.default_rng(i)
        # rows 1 and 3, row 1 twice: duplicated sparse rows must be summed, as Keras does
        step(
            tf.constant(g.standard_normal((5, 3)).astype(np.float32)),
            tf.constant([1, 3, 1]),
            tf.constant(g.standard_normal((3, 4)).astype(np.float32)),
        )
    return dense.numpy(), table.numpy()


@pytest.mark.parametrize("learning_rate", [1e-3, 0.1])
def test_fused_adam_matches_keras_adam(learning_rate):
    start = _run(tf.keras.optimizers.Adam(learning_rate), steps=0)
    expected = _run(tf.keras.optimizers.Adam(learning_rate), steps=25)
    got = _run(FusedAdam(learning_rate), steps=25)
    for s, e, g in zip(start, expected, got, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=2e-5)
        assert np.abs(g - s).max() > 5 * learning_rate  # the variables did move (Adam steps ≈ lr each)


def test_amsgrad_falls_back_to_keras_update():
    expected = _run(tf.keras.optimizers.Adam(0.05, amsgrad=True), steps=5)
    got = _run(FusedAdam(0.05, amsgrad=True), steps=5)
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-6)


def test_config_round_trip():
    opt = FusedAdam(learning_rate=0.003, beta_1=0.8, epsilon=1e-6)
    again = tf.keras.optimizers.deserialize(tf.keras.optimizers.serialize(opt))
    assert isinstance(again, FusedAdam)
    assert again.get_config() == opt.get_config()


def test_build_model_uses_fused_adam_for_adam_only():
    config = ModelConfig(features=(FeatureSpec("x", "numeric"),), num_experts=2, expert_units=(4,), learning_rate=0.01)
    data = {"x": np.arange(8, dtype=np.float32)}
    model = build_model(config, adapt_data=data)
    assert isinstance(model.optimizer, FusedAdam)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    sgd = build_model(ModelConfig(**{**config.__dict__, "optimizer": "sgd"}), adapt_data=data)
    assert type(sgd.optimizer).__name__ == "SGD"
