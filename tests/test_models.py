"""build_model: shapes, gradients, training on a learnable toy problem, ESMM, uncertainty weighting, gates."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from mmoe_tf.config import ModelConfig
from mmoe_tf.feature_specs import FeatureSpec
from mmoe_tf.gates import gate_model
from mmoe_tf.losses import UncertaintyWeighting, current_loss_weights
from mmoe_tf.models import MultiTaskModel, build_model
from mmoe_tf.saving import config_of, load_model, save_model
from mmoe_tf.targets import add_joint_targets
from mmoe_tf.task_specs import TaskSpec

N = 256
FEATURES = (
    FeatureSpec("x1", "numeric"),
    FeatureSpec("x2", "numeric", default=0.0),
    FeatureSpec("device", "categorical", dtype="string", embedding_dim=3),
    FeatureSpec("item", "categorical", dtype="int64", embedding_dim=3),
    FeatureSpec("city", "hashed", num_bins=8, embedding_dim=2),
)
ESMM_TASKS = (TaskSpec("click"), TaskSpec("satisfaction", conditional_on="click"))
SMALL = dict(num_experts=3, expert_units=(8,), tower_units=(4,), learning_rate=0.02, seed=7)


def toy_data(n=N, seed=0):
    """Features plus labels that are deterministic functions of them (learnable)."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n).astype(np.float32)
    x2 = rng.normal(size=n).astype(np.float32)
    device = rng.choice(["ios", "android", "web"], n).astype(object)
    features = {
        "x1": x1,
        "x2": x2,
        "device": device,
        "item": rng.integers(0, 6, n).astype(np.int64),
        "city": rng.choice(["paris", "rome", "oslo"], n).astype(object),
    }
    click = ((x1 + (device == "ios")) > 0.5).astype(np.float32)
    satisfaction = np.where(click > 0, (x2 > 0).astype(np.float32), np.nan).astype(np.float32)
    labels = {"click": click, "satisfaction": satisfaction, "rating": (2 * x1 - x2).astype(np.float32)}
    weights = {"click": np.ones(n, np.float32), "satisfaction": click.copy(), "rating": np.ones(n, np.float32)}
    return features, labels, weights


@pytest.fixture(scope="module")
def toy():
    return toy_data()


def make_config(architecture="mmoe", tasks=ESMM_TASKS, **overrides):
    return ModelConfig(features=FEATURES, tasks=tasks, architecture=architecture, **{**SMALL, **overrides})


def run(model, features):
    """Eager forward pass (no predict() tracing) → dict of numpy arrays."""
    return {k: v.numpy() for k, v in model(features).items()}


def loss_of(model, features, labels, weights):
    """The model's total training loss on the whole toy set (eager: no tracing)."""
    return float(model.compute_loss(y=labels, y_pred=model(features), sample_weight=weights))


@pytest.fixture(scope="module")
def trained(toy):
    """One trained model per architecture with the loss before and after a few steps."""
    features, labels, weights = toy
    dataset = tf.data.Dataset.from_tensor_slices((features, labels, weights)).batch(64).cache()
    out = {}
    for arch in ("mmoe", "omoe", "ple", "shared_bottom", "single_task"):
        model = build_model(make_config(arch), adapt_data=features)
        before = loss_of(model, features, labels, weights)
        model.fit(dataset, epochs=6, verbose=0)  # 24 steps; the cost is tracing, the extra epochs are ~free
        out[arch] = (model, before, loss_of(model, features, labels, weights))
    return out


@pytest.mark.parametrize(
    "overrides, tasks",
    [
        (dict(num_experts=1, expert_units=(4,)), (TaskSpec("click"),)),
        (dict(num_experts=3, expert_units=(8, 4), num_levels=2, tower_units=(6,)), ESMM_TASKS),
        (
            dict(num_experts=2),
            (TaskSpec("click"), TaskSpec("satisfaction"), TaskSpec("rating", "regression", tower_units=(3,))),
        ),
        (dict(architecture="shared_bottom", expert_type="cross", expert_units=(6, 5)), ESMM_TASKS),
        (dict(architecture="single_task", expert_norm="layer", tower_units=()), ESMM_TASKS),
        (
            dict(architecture="omoe", num_experts=5, expert_type="cross", gate_hidden_units=(4,), num_levels=2),
            (TaskSpec("click"), TaskSpec("satisfaction"), TaskSpec("rating", "regression", loss="huber")),
        ),
    ],
)
def test_output_names_and_shapes(toy, overrides, tasks):
    features, _, _ = toy
    config = make_config(tasks=tasks, **overrides)
    model = build_model(config, adapt_data=features, compile=False)
    out = model({k: v[:5] for k, v in features.items()})
    assert sorted(out) == sorted(config.output_names)
    for task in config.tasks:
        values = out[task.name].numpy()
        assert values.shape == (5, 1)
        assert np.isfinite(values).all()
        if task.type == "binary":
            assert ((values > 0) & (values < 1)).all()
    if config.architecture == "mmoe":
        gates = gate_model(model)(features)
        assert all(w.shape == (N, config.num_experts) for w in gates.values())


def test_gradients_reach_every_expert_and_gate(toy):
    features, labels, weights = toy
    config = make_config("mmoe", num_levels=2, gate_hidden_units=(4,), expert_units=(8, 6))
    model = build_model(config, adapt_data=features)
    with tf.GradientTape() as tape:
        loss = model.compute_loss(y=labels, y_pred=model(features, training=True), sample_weight=weights)
    blocks = [model.get_layer(level) for level in ("mmoe_0", "mmoe_1")]
    gate_vars = [v for block in blocks for gate in block.gates for v in gate.trainable_variables]
    expert_vars = [v for block in blocks for v in block.experts.trainable_variables]
    assert len(gate_vars) == 2 * 2 * 4  # 2 levels × 2 gates × (hidden + logits) × (kernel + bias)
    assert len(expert_vars) == 2 * 2 * 2  # 2 levels × 2 depths × (kernel + bias)
    variables = gate_vars + expert_vars
    grads = tape.gradient(loss, variables)
    for var, grad in zip(variables, grads, strict=True):
        assert grad is not None, var.name
        assert float(tf.norm(grad)) > 0, var.name
    # and every expert gets its own gradient: no expert slice of the first kernel is dead
    kernel_grad = grads[len(gate_vars)]  # level 0, depth 0 kernel [K, D, U]
    assert kernel_grad.shape[0] == config.num_experts
    assert (tf.norm(kernel_grad, axis=[1, 2]).numpy() > 0).all()


@pytest.mark.parametrize("arch", ["mmoe", "omoe", "ple", "shared_bottom", "single_task"])
def test_training_decreases_loss(trained, arch):
    _, before, after = trained[arch]
    assert np.isfinite(after)
    assert after < 0.85 * before, (before, after)


@pytest.mark.parametrize("arch", ["mmoe", "omoe", "ple", "shared_bottom", "single_task"])
def test_save_load_round_trip_is_exact(trained, toy, tmp_path, arch):
    model = trained[arch][0]
    features, _, _ = toy
    path = save_model(model, tmp_path / f"{arch}.keras")
    loaded = load_model(path, expected_config=config_of(model))
    assert config_of(loaded) == config_of(model)
    expected, got = model(features), loaded(features)
    assert sorted(expected) == sorted(got)
    for name in expected:
        np.testing.assert_array_equal(got[name].numpy(), expected[name].numpy())


def test_dependency_lookup_answers_as_keras_functional_lookup(trained, tmp_path):
    model = trained["mmoe"][0]
    functional = next(c for c in type(model).__mro__ if c.__name__ == "Functional")
    names = ["layer-0", "layer-3", "layer_with_weights-0", "layer_with_weights-2", "optimizer", "train_function"]
    names += ["_random_generator", "loss_tracker", "no_such_dependency"]
    for name in names:
        assert model._lookup_dependency(name) is functional._lookup_dependency(model, name), name
    children = model._trackable_children()
    for name in names:
        assert model._lookup_dependency(name, children) is children.get(name), name
    assert model._lookup_dependency("layer_with_weights-0") is not None
    # a weights-only checkpoint (restored through these lookups) round-trips exactly
    model.save_weights(str(tmp_path / "ckpt"))
    clone = MultiTaskModel(config_of(model), model.feature_state)
    clone.load_weights(str(tmp_path / "ckpt")).assert_existing_objects_matched()
    for a, b in zip(model.weights, clone.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("arch", ["mmoe", "single_task"])
def test_embedding_l2_adds_exactly_its_penalty_to_the_loss(toy, tmp_path, arch):
    features, labels, weights = toy
    plain = build_model(make_config(arch), adapt_data=features)
    penalised = build_model(make_config(arch, embedding_l2=1e-3), adapt_data=features)
    assert not plain.losses and len(penalised.losses) > 0
    tables = [w for w in penalised.trainable_weights if "embed_" in w.name]
    assert tables and len(penalised.losses) == len(tables)
    penalty = 1e-3 * sum(float(tf.reduce_sum(tf.square(t))) for t in tables)
    assert float(tf.add_n(penalised.losses)) == pytest.approx(penalty, rel=1e-5)
    difference = loss_of(penalised, features, labels, weights) - loss_of(plain, features, labels, weights)
    assert difference == pytest.approx(penalty, abs=2e-7)  # same seed and data: only the penalty differs (float32)
    loaded = load_model(save_model(penalised, tmp_path / "l2.keras"))
    assert config_of(loaded).embedding_l2 == 1e-3 and len(loaded.losses) == len(tables)


def test_esmm_joint_is_product_of_heads(trained, toy):
    features, _, _ = toy
    out = run(trained["mmoe"][0], features)
    np.testing.assert_allclose(out["click_and_satisfaction"], out["click"] * out["satisfaction"], rtol=1e-6)


def test_esmm_losses_apply_to_parent_and_joint_only(trained):
    model = trained["omoe"][0]
    assert sorted(model.loss) == ["click", "click_and_satisfaction"]
    history_keys = {m.name for m in model.metrics}
    assert {"loss", "click_loss", "click_and_satisfaction_loss", "click_auc"} <= history_keys
    assert "satisfaction_loss" not in history_keys


def test_gate_model_outputs_sum_to_one(trained, toy):
    features, _, _ = toy
    mmoe = run(gate_model(trained["mmoe"][0]), features)
    assert sorted(mmoe) == ["click", "satisfaction"]
    for weights in mmoe.values():
        assert weights.shape == (N, SMALL["num_experts"])
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
        assert (weights >= 0).all()
    assert not np.allclose(mmoe["click"], mmoe["satisfaction"])  # one gate per task
    omoe = run(gate_model(trained["omoe"][0]), features)
    np.testing.assert_array_equal(omoe["click"], omoe["satisfaction"])  # one shared gate
    for arch in ("shared_bottom", "single_task"):
        with pytest.raises(ValueError, match=arch):
            gate_model(trained[arch][0])


def test_gate_model_shares_trained_weights(trained, toy):
    features, _, _ = toy
    model = trained["mmoe"][0]
    gates = gate_model(model)
    before = run(gates, features)["click"]
    logits = model.get_layer("mmoe_0").gates[0]._logits
    saved = logits.get_weights()
    kernel, bias = saved
    logits.set_weights([kernel + np.random.default_rng(0).normal(size=kernel.shape).astype(np.float32), bias])
    try:
        after = run(gates, features)["click"]
    finally:
        logits.set_weights(saved)
    assert not np.allclose(before, after)


def test_single_task_networks_are_independent(trained):
    model = trained["single_task"][0]
    enc_click, enc_sat = model.get_layer("features_click"), model.get_layer("features_satisfaction")
    click_ids = {id(v) for v in enc_click.weights}
    assert click_ids and not click_ids & {id(v) for v in enc_sat.weights}
    assert model.get_layer("bottom_click") is not model.get_layer("bottom_satisfaction")


def test_masked_labels_do_not_affect_loss(trained, toy):
    features, labels, weights = toy
    model = trained["shared_bottom"][0]
    y_pred = model(features)
    masked = weights["satisfaction"] == 0
    other = dict(labels)
    other["satisfaction"] = np.where(masked, 1.0, labels["satisfaction"]).astype(np.float32)
    garbage = dict(labels)  # an out-of-range (not NaN) value where masked
    garbage["satisfaction"] = np.where(masked, 5.0, labels["satisfaction"]).astype(np.float32)
    losses = [float(model.compute_loss(y=y, y_pred=y_pred, sample_weight=weights)) for y in (labels, other, garbage)]
    assert np.isfinite(losses).all()
    assert losses[0] == pytest.approx(losses[1], rel=1e-6) == pytest.approx(losses[2], rel=1e-6)
    # while an observed label does change it
    flipped = dict(labels)
    flipped["satisfaction"] = np.where(masked, labels["satisfaction"], 1.0 - labels["satisfaction"])
    assert float(model.compute_loss(y=flipped, y_pred=y_pred, sample_weight=weights)) != pytest.approx(losses[0])


def test_masked_click_rows_do_not_affect_loss(trained, toy):
    features, labels, weights = toy
    model = trained["mmoe"][0]
    y_pred = model(features)
    w = {k: v.copy() for k, v in weights.items()}
    w["click"][:10] = 0.0
    y_a = dict(labels)
    y_b = {**labels, "click": labels["click"].copy()}
    y_b["click"][:10] = 1.0 - y_b["click"][:10]
    joint_a, joint_w = add_joint_targets(config_of(model), y_a, w)
    joint_b, _ = add_joint_targets(config_of(model), y_b, w)
    assert (joint_w["click_and_satisfaction"][:10] == 0).all()
    loss_a = float(model.compute_loss(y=joint_a, y_pred=y_pred, sample_weight=joint_w))
    loss_b = float(model.compute_loss(y=joint_b, y_pred=y_pred, sample_weight=joint_w))
    assert loss_a == pytest.approx(loss_b, rel=1e-6)


def test_uncertainty_weights_learn_and_stay_finite(toy):
    features, labels, weights = toy
    tasks = (*ESMM_TASKS, TaskSpec("rating", "regression"))
    model = build_model(make_config("mmoe", tasks=tasks, loss_balancing="uncertainty"), adapt_data=features)
    s = model.loss_balancer.log_variance
    assert any(v is s for v in model.trainable_variables)
    assert current_loss_weights(model) == {"click": 1.0, "satisfaction": 1.0, "rating": 0.5}
    model.fit(features, labels, sample_weight=weights, batch_size=64, epochs=3, verbose=0)
    learned = current_loss_weights(model)
    assert np.isfinite(list(learned.values())).all()
    assert learned != {"click": 1.0, "satisfaction": 1.0, "rating": 0.5}
    assert np.all(np.abs(s.numpy()) > 1e-3) and np.all(np.abs(s.numpy()) <= 5.0)


def test_uncertainty_formula_and_clipping():
    balancer = UncertaintyWeighting(["a", "b"], ["binary", "regression"], min_log_var=-2.0, max_log_var=2.0)
    balancer.build(None)
    balancer.log_variance.assign([1.0, 9.0])  # 9 is outside the range: clipped to 2 in the forward pass
    got = float(balancer.combine([tf.constant(0.4), tf.constant(3.0)]))
    want = np.exp(-1.0) * 0.4 + 0.5 * 1.0 + 0.5 * np.exp(-2.0) * 3.0 + 0.5 * 2.0
    assert got == pytest.approx(want, rel=1e-6)
    assert balancer.log_variance.constraint(tf.constant([9.0, -9.0])).numpy().tolist() == [2.0, -2.0]
    assert UncertaintyWeighting.from_config(balancer.get_config()).get_config() == balancer.get_config()


def test_fixed_loss_weights_are_lambdas(toy):
    features, labels, weights = toy
    tasks = (TaskSpec("click", loss_weight=2.0), TaskSpec("rating", "regression", loss_weight=0.5))
    model = build_model(make_config("shared_bottom", tasks=tasks), adapt_data=features)
    assert current_loss_weights(model) == {"click": 2.0, "rating": 0.5}
    result = model.evaluate(features, labels, sample_weight=weights, batch_size=N, verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(2.0 * result["click_loss"] + 0.5 * result["rating_loss"], rel=1e-5)
    assert "rating_mae" in result and "click_auc" in result


def test_seeded_initialisation(toy):
    features, _, _ = toy
    a = build_model(make_config("mmoe"), adapt_data=features, compile=False)
    b = build_model(make_config("mmoe"), adapt_data=features, compile=False)
    c = build_model(make_config("mmoe", seed=8), adapt_data=features, compile=False)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert any(not np.array_equal(wa, wc) for wa, wc in zip(a.get_weights(), c.get_weights(), strict=True))
    kernel = a.get_layer("mmoe_0").experts.kernels[0].numpy()  # [K, D, U]
    assert all(not np.allclose(kernel[i], kernel[j]) for i in range(3) for j in range(i + 1, 3))


def test_add_joint_targets_numpy_and_tf_data(toy):
    _, labels, weights = toy
    config = make_config()
    y, w = add_joint_targets(config, labels, weights)
    click, sat = labels["click"], np.nan_to_num(labels["satisfaction"])
    np.testing.assert_array_equal(y["click_and_satisfaction"], click * sat)
    np.testing.assert_array_equal(w["click_and_satisfaction"], weights["click"])
    ds = tf.data.Dataset.from_tensor_slices((labels, weights)).batch(N // 2)
    ds = ds.map(lambda lab, wt: add_joint_targets(config, lab, wt))
    joint = np.concatenate([b[0]["click_and_satisfaction"].numpy() for b in ds])
    np.testing.assert_array_equal(joint, click * sat)
    # a positive parent whose child is unobserved has an unknown joint label: weight 0
    _, w2 = add_joint_targets(
        config, {"click": np.array([1.0, 0.0]), "satisfaction": np.array([np.nan, np.nan])}, {"click": np.ones(2)}
    )
    np.testing.assert_array_equal(w2["click_and_satisfaction"], [0.0, 1.0])
    with pytest.raises(ValueError, match="labels lack 'satisfaction'"):
        add_joint_targets(config, {"click": click}, None)


def test_oov_and_missing_inputs_give_finite_outputs(trained):
    model = trained["mmoe"][0]
    batch = {
        "x1": np.array([np.nan, 1.0], np.float32),
        "x2": np.array([np.nan, np.inf], np.float32),
        "device": np.array(["never-seen", ""], dtype=object),
        "item": np.array([12345, -7], np.int64),
        "city": np.array(["", "atlantis"], dtype=object),
    }
    out = run(model, batch)
    assert all(np.isfinite(v).all() and v.shape == (2, 1) for v in out.values())


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: make_config(num_experts=0), "num_experts"),
        (lambda: make_config(tasks=(TaskSpec("click"), TaskSpec("click"))), "tasks"),
        (lambda: make_config(tasks=(TaskSpec("click", type="ordinal"),)), "type"),
        (lambda: ModelConfig(features=(FeatureSpec("x", "bucketized"),)), "kind"),
        (lambda: make_config(architecture="transformer"), "architecture"),
        (lambda: make_config(num_levels=0), "num_levels"),
        (lambda: make_config(embedding_l2=-1e-5), "embedding_l2"),
        (lambda: make_config(embedding_l2="small"), "embedding_l2"),
        (lambda: build_model(make_config(), adapt_data=None), "x1"),
        (lambda: build_model(make_config(), adapt_data={"x1": np.zeros(3)}), "x2"),
        (
            lambda: build_model(
                make_config(tasks=(TaskSpec("a", conditional_on="b"), TaskSpec("b", conditional_on="a"))),
                adapt_data=toy_data(8)[0],
            ),
            "tasks",
        ),
        (lambda: build_model(make_config(optimizer="no_such_opt"), adapt_data=toy_data(8)[0]), "optimizer"),
    ],
)
def test_invalid_configs_name_the_field(make, field):
    with pytest.raises(ValueError, match=f"'?{field}'?"):
        make()


def test_bad_inputs_get_clear_errors(trained, toy):
    features, labels, _ = toy
    model = trained["shared_bottom"][0]
    with pytest.raises(ValueError, match=r"inputs lack features \['city'\]"):
        model.predict({k: v for k, v in features.items() if k != "city"}, verbose=0)
    with pytest.raises(ValueError, match=r"'x1' is numeric but holds non-numbers at rows \[0"):
        model.predict({**features, "x1": features["device"]}, verbose=0)
    with pytest.raises(ValueError, match=r"labels lack the trained targets \['click_and_satisfaction'\]"):
        model.fit(features, {"click": labels["click"]}, verbose=0)
    frame = pd.DataFrame({k: v[:8] for k, v in features.items()})
    np.testing.assert_allclose(
        model.predict(frame, verbose=0)["click"],
        run(model, {k: v[:8] for k, v in features.items()})["click"],
        rtol=1e-6,
    )


def test_steps_per_execution_and_datasets_of_unknown_size(toy):
    """The default runs 16 steps per execution; a dataset Keras cannot size still trains, evaluates and predicts."""
    features, labels, _ = toy
    config = make_config(tasks=(TaskSpec("click"), TaskSpec("satisfaction")))
    assert config.steps_per_execution == 16
    model = build_model(config, adapt_data=features)
    sized = tf.data.Dataset.from_tensor_slices((features, {k: labels[k] for k in ("click", "satisfaction")})).batch(32)
    unsized = sized.filter(lambda x, y: True)  # same batches, cardinality unknown
    assert int(unsized.cardinality()) == int(tf.data.UNKNOWN_CARDINALITY)
    history = model.fit(unsized, validation_data=unsized, epochs=1, verbose=0)
    assert np.isfinite(history.history["val_loss"][0])
    assert int(model._steps_per_execution.numpy()) == 16  # restored
    before = int(model.optimizer.iterations)
    model.fit(sized, epochs=1, verbose=0)  # the multi-step function still runs every step, no more
    assert int(model.optimizer.iterations) - before == N // 32
    features_only = unsized.map(lambda x, y: x)
    a, b = model.predict(features_only, verbose=0), model.predict(sized.map(lambda x, y: x), verbose=0)
    np.testing.assert_array_equal(a["click"], b["click"])
    assert a["click"].shape == (N, 1)
    assert model.evaluate(unsized, verbose=0, return_dict=True)["loss"] == pytest.approx(
        model.evaluate(sized, verbose=0, return_dict=True)["loss"], rel=1e-6
    )


def test_predict_on_columns_cuts_the_same_batches_as_keras(trained, toy, monkeypatch):
    """Dicts and DataFrames go through table-order slices, with Keras' batching, so the outputs are Keras' own."""
    import mmoe_tf.entry_points as entry_points
    from mmoe_tf import batches
    from mmoe_tf.model_inputs import to_model_inputs

    features, _, _ = toy
    model = trained["mmoe"][0]
    inputs = to_model_inputs(model._mmoe_config.features, features)
    for kwargs in ({}, {"batch_size": 50}, {"batch_size": N + 7}):
        expected = tf.keras.Model.predict(model, inputs, verbose=0, **kwargs)  # Keras' numpy adapter
        for given in (features, pd.DataFrame(features)):
            got = model.predict(given, verbose=0, **kwargs)
            assert sorted(got) == sorted(expected)
            for key in expected:
                np.testing.assert_array_equal(got[key], expected[key], err_msg=f"{kwargs} {key}")
    cut = []

    def recording(columns, batch_size):
        cut.append(batch_size)
        return batches.table_order_batches(columns, batch_size)

    monkeypatch.setattr(entry_points, "table_order_batches", recording)
    model.predict(features, verbose=0)
    model.predict(features, verbose=0, batch_size=64)
    model.predict(features, verbose=0, steps=2)  # Keras' own path: a step count over numpy
    assert cut == [32, 64]


@pytest.mark.parametrize("arch", ["mmoe", "omoe", "ple", "shared_bottom", "single_task"])
def test_feature_crosses_in_every_architecture_round_trip(toy, tmp_path, arch):
    features, labels, weights = toy
    crosses = (("device", "city"), {"features": ("item", "device"), "num_bins": 64, "embedding_dim": 2})
    model = build_model(make_config(arch, feature_crosses=crosses, embedding_l2=1e-4), adapt_data=features)
    tables = [w.name for w in model.trainable_weights if "embed_cross_" in w.name]
    encoders = 2 if arch == "single_task" else 1  # single_task has one encoder per task
    assert len(tables) == 2 * encoders and any("device_x_city" in name for name in tables)
    assert len(model.losses) == 5 * encoders  # the L2 penalty covers the cross tables too
    assert np.isfinite(loss_of(model, features, labels, weights))
    loaded = load_model(save_model(model, tmp_path / "crossed.keras"))
    assert config_of(loaded).feature_crosses == config_of(model).feature_crosses
    for name, value in run(model, features).items():
        np.testing.assert_array_equal(run(loaded, features)[name], value)


def test_a_split_training_step_updates_like_the_whole_batch(toy):
    """train_split_rows only changes how the step runs: the same loss, weights and metrics as one whole forward.

    At 64 rows, ``train_split_rows=64`` runs two halves of 32 rows; ``128`` runs the whole batch and an empty one.
    """
    features, labels, weights = toy
    batch = 64
    rows = {k: v[:batch] for k, v in features.items()}
    targets = {k: labels[k][:batch] for k in ("click", "satisfaction")}
    sample_weights = {k: weights[k][:batch] for k in ("click", "satisfaction")}
    results = {}
    for split_rows in (0, 64, 128):
        model = build_model(make_config(train_split_rows=split_rows), adapt_data=features)
        assert model._splits_training_batches() == (split_rows > 0)
        logs = model.fit(rows, targets, sample_weight=sample_weights, batch_size=batch, epochs=1, verbose=0)
        results[split_rows] = (model.get_weights(), logs.history)
    whole, whole_logs = results[0]
    for split_rows in (64, 128):
        split, split_logs = results[split_rows]
        for a, b in zip(whole, split, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        for key, values in whole_logs.items():
            np.testing.assert_allclose(values, split_logs[key], rtol=1e-5, err_msg=key)


def test_training_batches_are_not_split_with_batch_normalisation_or_when_off(toy):
    features, _, _ = toy
    split = {"train_split_rows": 1024}
    assert not build_model(make_config(expert_norm="batch", **split), adapt_data=features)._splits_training_batches()
    assert not build_model(make_config(), adapt_data=features)._splits_training_batches()  # off by default
    assert build_model(make_config(expert_norm="layer", **split), adapt_data=features)._splits_training_batches()
    with pytest.raises(ValueError, match=r"train_split_rows.*>= 0"):
        make_config(train_split_rows=-1)
    data = make_config(**split).to_dict()
    assert ModelConfig.from_dict(data).train_split_rows == 1024
    del data["train_split_rows"]  # a config written before the field existed
    assert ModelConfig.from_dict(data).train_split_rows == 0
