"""``ModelConfig.precision = "mixed_bfloat16"``: bfloat16 dense part, float32 variables, outputs and exports."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from mmoe_tf.config import ModelConfig
from mmoe_tf.feature_specs import FeatureSpec
from mmoe_tf.gates import gate_model
from mmoe_tf.models import build_model
from mmoe_tf.saving import config_of, load_model, save_model
from mmoe_tf.task_specs import TaskSpec

N = 256
FEATURES = (
    FeatureSpec("x1", "numeric"),
    FeatureSpec("x2", "numeric"),
    FeatureSpec("device", "categorical", dtype="string", embedding_dim=3),
    FeatureSpec("item", "categorical", dtype="int64", embedding_dim=3),
)
TASKS = (TaskSpec("click"), TaskSpec("satisfaction", conditional_on="click"), TaskSpec("rating", "regression"))
CONFIG = ModelConfig(
    features=FEATURES,
    tasks=TASKS,
    num_experts=3,
    expert_units=(16, 8),
    tower_units=(8,),
    expert_norm="layer",
    learning_rate=0.02,
    precision="mixed_bfloat16",
    seed=5,
)


def toy_data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n).astype(np.float32)
    x2 = rng.normal(size=n).astype(np.float32)
    device = rng.choice(["ios", "android", "web"], n).astype(object)
    features = {"x1": x1, "x2": x2, "device": device, "item": rng.integers(0, 6, n).astype(np.int64)}
    click = ((x1 + (device == "ios")) > 0.5).astype(np.float32)
    labels = {"click": click, "satisfaction": (x2 > 0).astype(np.float32), "rating": (2 * x1 - x2).astype(np.float32)}
    weights = {"click": np.ones(n, np.float32), "satisfaction": click.copy(), "rating": np.ones(n, np.float32)}
    return features, labels, weights


def run(model, features):
    return {k: v.numpy() for k, v in model(features, training=False).items()}


@pytest.fixture(scope="module")
def trained():
    """A bf16 model trained 6 epochs of 4 steps, its training history and its data."""
    features, labels, weights = toy_data()
    model = build_model(CONFIG, adapt_data=features)
    history = model.fit(features, labels, sample_weight=weights, batch_size=64, epochs=6, verbose=0)
    return model, history.history["loss"], features


def test_precision_is_validated_and_round_trips():
    assert ModelConfig(features=FEATURES).precision == "float32"
    with pytest.raises(ValueError, match=r"field 'precision' is 'bfloat16'; expected one of"):
        ModelConfig(features=FEATURES, precision="bfloat16")
    data = CONFIG.to_dict()
    assert data["precision"] == "mixed_bfloat16"
    assert ModelConfig.from_dict(json.loads(json.dumps(data))) == CONFIG
    del data["precision"]  # a config written before the field existed
    assert ModelConfig.from_dict(data).precision == "float32"


def test_bf16_model_trains_with_float32_variables_and_outputs(trained):
    model, losses, features = trained
    assert all(np.isfinite(losses)), losses
    assert losses[-1] < 0.8 * losses[0], losses
    assert {w.dtype for w in model.weights} == {tf.float32}
    assert {v.dtype for v in model.optimizer.variables if v.dtype.is_floating} == {tf.float32}  # Adam's moments
    outputs = run(model, features)
    assert {v.dtype for v in outputs.values()} == {np.dtype("float32")}
    assert {v.dtype for v in model.predict(features, verbose=0).values()} == {np.dtype("float32")}
    assert {v.dtype for v in gate_model(model)(features).values()} == {tf.float32}
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # the policy did not leak


def test_bf16_model_computes_its_dense_part_in_bfloat16(trained):
    model, _, features = trained
    block = model.get_layer("mmoe_0")
    tower = model.get_layer("click")
    assert model.get_layer("features").compute_dtype == "float32"
    assert block.compute_dtype == block.experts.compute_dtype == block.gates[0].compute_dtype == "bfloat16"
    assert tower.compute_dtype == tower.mlp.compute_dtype == "bfloat16"
    assert tower.head.compute_dtype == "float32"
    encoded = model.get_layer("features")(features)
    assert block.experts(encoded).dtype == tf.bfloat16
    mixed, weights = block(encoded)
    assert mixed[0].dtype == tf.bfloat16 and weights[0].dtype == tf.float32
    assert tower.mlp(mixed[0]).dtype == tf.bfloat16
    # the same weights in a float32 model: close (bf16 rounding) but not equal, so the bf16 arithmetic ran
    twin = build_model(CONFIG.replace(precision="float32"), adapt_data=features)
    twin.set_weights(model.get_weights())
    assert twin.get_layer("mmoe_0").compute_dtype == "float32"
    bf16, fp32 = run(model, features), run(twin, features)
    for name in CONFIG.output_names:
        scale = np.std(fp32[name]) if name == "rating" else 1.0  # probabilities: 0.02; the regression: 5 % of its std
        np.testing.assert_allclose(bf16[name], fp32[name], atol=0.02 if name != "rating" else 0.05 * scale)
        assert not np.array_equal(bf16[name], fp32[name])


@pytest.mark.parametrize(
    "changes",
    [
        {"expert_norm": None},  # groupable experts: trained in one group per expert
        {"architecture": "ple"},
        {"expert_type": "cross", "expert_norm": "batch"},
        {"architecture": "shared_bottom", "expert_dropout": 0.1, "tower_dropout": 0.1},
        {"architecture": "single_task"},
        {"num_levels": 2, "gate_hidden_units": (4,), "gate_dropout": 0.2},
    ],
)
def test_every_architecture_runs_in_bf16(changes):
    features = toy_data(64)[0]
    model = build_model(CONFIG.replace(**changes), adapt_data=features)
    with tf.GradientTape() as tape:
        outputs = model(features, training=True)
        loss = tf.add_n([tf.reduce_mean(outputs[t.name]) for t in TASKS])
    grads = tape.gradient(loss, model.trainable_variables)
    assert {v.dtype for v in outputs.values()} == {tf.float32}
    assert all(np.isfinite(v.numpy()).all() for v in outputs.values())
    assert all(g is None or g.dtype == tf.float32 for g in grads)
    assert sum(g is not None for g in grads) > len(grads) // 2
    dense = [layer for layer in model.layers if layer.name.startswith(("mmoe_", "ple_", "bottom"))]
    assert dense and all(layer.compute_dtype == "bfloat16" for layer in dense)


def test_bf16_save_load_round_trip_is_exact(trained, tmp_path):
    model, _, features = trained
    loaded = load_model(save_model(model, tmp_path / "bf16.keras"), expected_config=CONFIG)
    assert config_of(loaded).precision == "mixed_bfloat16"
    layer = loaded.get_layer("mmoe_0")
    assert layer.get_config()["dtype"]["config"]["name"] == "mixed_bfloat16"
    assert layer.experts.compute_dtype == loaded.get_layer("rating").mlp.compute_dtype == "bfloat16"
    expected, got = run(model, features), run(loaded, features)
    for name in CONFIG.output_names:
        np.testing.assert_array_equal(got[name], expected[name])


SERVE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    rows = json.loads(sys.argv[2])
    batch = {
        "x1": tf.constant(rows["x1"], tf.float32),
        "x2": tf.constant(rows["x2"], tf.float32),
        "device": tf.constant(rows["device"]),
        "item": tf.constant(rows["item"], tf.int64),
    }
    loaded = tf.saved_model.load(sys.argv[1])
    out = loaded.signatures["serving_default"](**batch)
    assert not any(m.startswith("mmoe_tf") for m in sys.modules), "mmoe_tf was imported"
    print(json.dumps({k: {"dtype": v.dtype.name, "values": v.numpy().tolist()} for k, v in out.items()}))
    """
)


def test_bf16_export_predicts_in_a_process_without_onednn(trained, tmp_path):
    """A stock TF on a CPU without bf16 fast paths (oneDNN off) loads the export and predicts in float32."""
    from serving.export import BF16_VERIFY_RELATIVE, export_model

    model, _, features = trained
    rows = {k: v[:32] for k, v in features.items()}
    version = export_model(model, tmp_path / "models", "bf16", version=1, sample_features=rows)
    payload = {k: v.tolist() for k, v in rows.items()}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-c", SERVE_SCRIPT, str(version), json.dumps(payload)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    expected = model.predict(rows, verbose=0)
    tolerance = BF16_VERIFY_RELATIVE * max(1.0, *(np.abs(v).max() for v in expected.values()))
    for name in CONFIG.output_names:
        assert served[name]["dtype"] == "float32"
        got = np.asarray(served[name]["values"]).reshape(-1)
        np.testing.assert_allclose(got, expected[name][:, 0], rtol=0, atol=tolerance)
