"""Saving/loading: exact .keras round trip, config checks, checked weights files, SavedModel export without mmoe_tf."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import mmoe_tf.features
import mmoe_tf.model_inputs
import mmoe_tf.models
from mmoe_tf.config import ModelConfig
from mmoe_tf.feature_specs import FeatureSpec
from mmoe_tf.gates import gate_model
from mmoe_tf.losses import current_loss_weights
from mmoe_tf.models import build_model
from mmoe_tf.saving import config_of, load_model, save_model, stored_config
from mmoe_tf.task_specs import TaskSpec

N = 128
CONFIG = ModelConfig(
    features=(
        FeatureSpec("price", "numeric"),
        FeatureSpec("age", "numeric", default=30.0),
        FeatureSpec("device", "categorical", dtype="string", default="web", embedding_dim=3),
        FeatureSpec("item", "categorical", dtype="int64", num_oov_buckets=2, embedding_dim=3),
        FeatureSpec("city", "hashed", num_bins=8, embedding_dim=2),
    ),
    tasks=(
        TaskSpec("click"),
        TaskSpec("satisfaction", conditional_on="click"),
        TaskSpec("dwell", "regression", loss="huber"),
    ),
    num_experts=3,
    expert_units=(8,),
    tower_units=(4,),
    feature_crosses=(("device", "city"), {"features": ("item", "device"), "num_bins": 32, "embedding_dim": 2}),
    loss_balancing="uncertainty",
    learning_rate=0.02,
    seed=3,
)


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    price = rng.normal(size=N).astype(np.float32)
    device = rng.choice(["ios", "web", "android"], N).astype(object)
    features = {
        "price": price,
        "age": rng.uniform(18, 70, N).astype(np.float32),
        "device": device,
        "item": rng.integers(0, 5, N).astype(np.int64),
        "city": rng.choice(["a", "b", "c"], N).astype(object),
    }
    click = (price > 0).astype(np.float32)
    labels = {
        "click": click,
        "satisfaction": np.where(click > 0, device == "ios", np.nan).astype(np.float32),
        "dwell": (3 * price).astype(np.float32),
    }
    weights = {"click": np.ones(N, np.float32), "satisfaction": click, "dwell": np.ones(N, np.float32)}
    return features, labels, weights


ODD_BATCH = {
    "price": np.array([0.3, np.nan, 1e3], np.float32),
    "age": np.array([np.nan, 40.0, 20.0], np.float32),
    "device": np.array(["ios", "", "never-seen"], dtype=object),
    "item": np.array([1, 999, -1], np.int64),
    "city": np.array(["a", "", "zzz"], dtype=object),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A trained uncertainty-weighted ESMM MMoE and the .keras file it was saved to."""
    features, labels, weights = make_data()
    model = build_model(CONFIG, adapt_data=features)
    model.run_eagerly = True  # 8 tiny steps: cheaper than tracing (graph-mode fit is covered in test_models)
    model.fit(tf.data.Dataset.from_tensor_slices((features, labels, weights)).batch(32), epochs=2, verbose=0)
    path = save_model(model, tmp_path_factory.mktemp("saved") / "model.keras")
    return model, path, features


def outputs(model, batch):
    return {k: v.numpy() for k, v in model(batch).items()}


def test_round_trip_is_exact_and_keeps_training_state(saved):
    model, path, features = saved
    loaded = load_model(path, expected_config=CONFIG)
    assert config_of(loaded) == CONFIG
    assert loaded.feature_state == json.loads(json.dumps(model.feature_state))
    for batch in (features, ODD_BATCH):
        expected, got = outputs(model, batch), outputs(loaded, batch)
        for name in CONFIG.output_names:
            np.testing.assert_array_equal(got[name], expected[name])
    assert (
        current_loss_weights(loaded) == current_loss_weights(model) != {"click": 1.0, "satisfaction": 1.0, "dwell": 0.5}
    )
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 8
    np.testing.assert_array_equal(
        outputs(gate_model(loaded), features)["click"], outputs(gate_model(model), features)["click"]
    )


def test_load_does_not_readapt(saved, monkeypatch):
    _, path, _ = saved

    def refuse(*args, **kwargs):
        raise AssertionError("loading must not adapt from data")

    monkeypatch.setattr(mmoe_tf.features, "adapt_state", refuse)
    monkeypatch.setattr(mmoe_tf.models, "adapt_state", refuse)
    monkeypatch.setattr(mmoe_tf.features.FeatureEncoder, "adapt", refuse)
    loaded = load_model(path, compile=False)
    assert np.isfinite(outputs(loaded, ODD_BATCH)["click"]).all()


def test_expected_config_mismatch_names_fields(saved):
    _, path, _ = saved
    assert stored_config(path) == CONFIG
    other = CONFIG.replace(
        num_experts=4,
        learning_rate=0.1,
        features=(
            *CONFIG.features[:2],
            CONFIG.features[2].__class__(**{**CONFIG.features[2].to_dict(), "embedding_dim": 5}),
            *CONFIG.features[3:],
        ),
    )
    with pytest.raises(ValueError, match="num_experts") as info:
        load_model(path, expected_config=other)
    message = str(info.value)
    assert "learning_rate" in message and "features['device'].embedding_dim: 3 != 5" in message
    assert "tower_units" not in message


def test_weights_into_a_different_config_are_refused(saved, tmp_path):
    model, _, features = saved
    prefix = str(tmp_path / "weights" / "ckpt")
    model.save_weights(prefix)
    other = build_model(CONFIG.replace(num_experts=4), adapt_data=features, compile=False)
    with pytest.raises(ValueError, match=r"num_experts: 3 != 4"):
        other.load_weights(prefix)
    readapted = build_model(CONFIG, adapt_data=make_data(seed=1)[0], compile=False)
    with pytest.raises(ValueError, match=r"adapted on other data.*'age'"):
        readapted.load_weights(prefix)
    same = build_model(CONFIG, adapt_data=features, compile=False)
    same.load_weights(prefix)
    np.testing.assert_array_equal(outputs(same, features)["dwell"], outputs(model, features)["dwell"])


def test_saving_errors(saved, tmp_path):
    model, _, _ = saved
    with pytest.raises(ValueError, match=r"\.keras"):
        save_model(model, tmp_path / "model.h5")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.keras")
    plain = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(2,))])
    with pytest.raises(ValueError, match="no mmoe_tf ModelConfig"):
        config_of(plain)
    plain.save(tmp_path / "plain.keras")
    with pytest.raises(ValueError, match="not saved by mmoe_tf"):
        load_model(tmp_path / "plain.keras")


PLAIN_TF_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    batch = {k: tf.constant(v) for k, v in json.loads(sys.argv[2]).items()}
    batch["item"] = tf.cast(batch["item"], tf.int64)
    batch["price"] = tf.cast(batch["price"], tf.float32)
    batch["age"] = tf.cast(batch["age"], tf.float32)
    loaded = tf.saved_model.load(sys.argv[1])
    out = {k: v.numpy().tolist() for k, v in loaded.signatures["serving_default"](**batch).items()}
    out.update({k: v.numpy().tolist() for k, v in loaded.signatures["gates"](**batch).items()})
    assert not any(m.startswith("mmoe_tf") for m in sys.modules), "mmoe_tf was imported"
    print(json.dumps(out))
    """
)


def test_savedmodel_runs_without_mmoe_tf(saved, tmp_path):
    model, _, _ = saved
    gates = gate_model(model)
    spec = {i.name: tf.TensorSpec([None], i.dtype, name=i.name) for i in model.inputs}

    @tf.function(input_signature=[spec])
    def serve(features):
        return {k: tf.reshape(v, [-1]) for k, v in model(features, training=False).items()}

    @tf.function(input_signature=[spec])
    def gate_weights(features):
        return {f"gate_{k}": v for k, v in gates(features, training=False).items()}

    export = tmp_path / "export" / "1"
    tf.saved_model.save(model, str(export), signatures={"serving_default": serve, "gates": gate_weights})
    batch = {k: v.tolist() for k, v in ODD_BATCH.items()}  # json writes NaN, json.loads reads it back
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-c", PLAIN_TF_SCRIPT, str(export), json.dumps(batch)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    expected = outputs(model, ODD_BATCH)
    for name in CONFIG.output_names:
        np.testing.assert_allclose(served[name], expected[name][:, 0], rtol=1e-5, atol=1e-6)
    gate = np.array(served["gate_click"])
    assert gate.shape == (3, CONFIG.num_experts)
    np.testing.assert_allclose(gate.sum(axis=1), 1.0, atol=1e-5)


def test_model_saved_by_mmoe_tf_0_1_still_loads_and_predicts_the_same(repo_root):
    """A .keras file written before the speed work (per-feature Normalization layers, Keras Adam)."""
    import pandas as pd

    fixture = repo_root / "tests" / "data"
    model = load_model(fixture / "model_v0_1.keras")
    rows = pd.read_csv(fixture / "model_v0_1_rows.csv", keep_default_na=False, na_values={"age": [""]})
    got = outputs(model, mmoe_tf.model_inputs.to_model_inputs(config_of(model).features, rows))
    expected = np.load(fixture / "model_v0_1_predictions.npz")
    for name in expected.files:
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-6)
    assert int(model.optimizer.iterations) > 0  # the stored optimizer state came along
