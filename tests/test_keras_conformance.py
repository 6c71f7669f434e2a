"""An mmoe-tf model behaves like any tf.keras.Model: each case is compared with plain tf.keras on an equivalent
functional model (same outputs, or the same error), under the default compile (16 steps per execution) and one."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import mmoe_tf
from mmoe_tf.config import ModelConfig
from mmoe_tf.feature_specs import FeatureSpec
from mmoe_tf.task_specs import TaskSpec

N = 64
TASKS = ("click", "satisfaction")
CONFIG = ModelConfig(
    features=(FeatureSpec("price", "numeric"), FeatureSpec("device", "categorical", dtype="string", embedding_dim=2)),
    tasks=tuple(TaskSpec(t) for t in TASKS),
    num_experts=2,
    expert_units=(4,),
    tower_units=(),
    learning_rate=0.05,
    seed=5,
)


def make_data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    price = rng.normal(size=n).astype(np.float32)
    device = rng.choice(["ios", "web"], n).astype(object)
    features = {"price": price, "device": device}
    labels = {"click": (price > 0).astype(np.float32), "satisfaction": (device == "ios").astype(np.float32)}
    return features, labels


FEATURES, LABELS = make_data()
SMALL = {k: v[:8] for k, v in FEATURES.items()}
SMALL_Y = {k: v[:8] for k, v in LABELS.items()}


def build(steps_per_execution=16):
    return mmoe_tf.build_model(CONFIG.replace(steps_per_execution=steps_per_execution), adapt_data=FEATURES)


def twin(model):
    """A plain functional tf.keras model with the same layers, weights and outputs, compiled the same way."""
    plain = tf.keras.Model(model.inputs, dict(zip(model.output_names, model.outputs, strict=True)))
    plain.compile(
        optimizer=tf.keras.optimizers.Adam(CONFIG.learning_rate),
        loss={t: tf.keras.losses.BinaryCrossentropy() for t in TASKS},
        weighted_metrics={t: [tf.keras.metrics.AUC(name="auc")] for t in TASKS},
        steps_per_execution=1,
    )
    return plain


@pytest.fixture(scope="module")
def model():
    return build()


# ----- the *_on_batch methods under the default compile --------------------------------------------------------
@pytest.mark.parametrize("steps_per_execution", [1, 16])
def test_on_batch_methods_run_one_step(steps_per_execution):
    model = build(steps_per_execution)
    plain = twin(build(steps_per_execution))
    before = int(model.optimizer.iterations)
    logs = model.train_on_batch(SMALL, SMALL_Y, return_dict=True)
    assert int(model.optimizer.iterations) == before + 1
    assert {"loss", "click_loss", "satisfaction_loss", "click_auc", "satisfaction_auc"} <= set(logs)
    assert set(plain.train_on_batch(SMALL, SMALL_Y, return_dict=True)) <= set(logs)
    test_logs = model.test_on_batch(SMALL, SMALL_Y, return_dict=True)
    assert np.isfinite(test_logs["loss"]) and set(test_logs) == set(logs)
    out = model.predict_on_batch(SMALL)
    eager = model(SMALL)
    for t in TASKS:
        np.testing.assert_allclose(out[t], eager[t].numpy(), rtol=1e-6)
    assert int(model._steps_per_execution.numpy()) == steps_per_execution


# ----- compile arguments ---------------------------------------------------------------------------------------
def test_user_compile_loss_and_weights_are_honoured():
    model = build()
    plain = twin(model)
    model.compile("adam", loss={t: "mse" for t in TASKS}, loss_weights={"click": 0.0, "satisfaction": 1.0})
    plain.compile("adam", loss={t: "mse" for t in TASKS}, loss_weights={"click": 0.0, "satisfaction": 1.0})
    got = model.evaluate(SMALL, SMALL_Y, verbose=0, return_dict=True)
    want = plain.evaluate(SMALL, SMALL_Y, verbose=0, return_dict=True)
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-5), key
    mse = np.mean((model(SMALL)["click"].numpy()[:, 0] - SMALL_Y["click"]) ** 2)
    assert got["click_loss"] == pytest.approx(mse, rel=1e-5)
    assert got["loss"] == pytest.approx(got["satisfaction_loss"], rel=1e-5)  # click weighs 0


# ----- metric names across saving -------------------------------------------------------------------------------
def test_history_names_are_stable_across_save_and_load(tmp_path):
    model = build()
    keys = set(model.fit(SMALL, SMALL_Y, verbose=0).history)
    loaded = mmoe_tf.load_model(mmoe_tf.save_model(model, tmp_path / "m.keras"))
    assert set(loaded.fit(SMALL, SMALL_Y, verbose=0).history) == keys
    assert {"click_auc", "satisfaction_auc"} <= keys


def test_savedmodel_reload_reports_real_losses(model, tmp_path):
    model.save(tmp_path / "sm")
    loaded = tf.keras.models.load_model(tmp_path / "sm")
    want = model.evaluate(SMALL, SMALL_Y, verbose=0, return_dict=True)
    got = loaded.evaluate(SMALL, SMALL_Y, verbose=0, return_dict=True)
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-5), key
    assert got["loss"] > 0.0


# ----- .h5 -------------------------------------------------------------------------------------------------------
def test_h5_weights_round_trip(model, tmp_path):
    model.save_weights(tmp_path / "w.h5")
    other = build()
    other.load_weights(tmp_path / "w.h5")
    for t in TASKS:
        np.testing.assert_array_equal(other(SMALL)[t].numpy(), model(SMALL)[t].numpy())


def test_h5_model_round_trip(model, tmp_path):
    model.save(tmp_path / "m.h5")
    loaded = tf.keras.models.load_model(tmp_path / "m.h5")
    for t in TASKS:
        np.testing.assert_array_equal(loaded(SMALL)[t].numpy(), model(SMALL)[t].numpy())


# ----- label forms --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "labels",
    [
        pytest.param(SMALL_Y, id="dict"),
        pytest.param([SMALL_Y[t] for t in TASKS], id="list"),
        pytest.param(pd.DataFrame(SMALL_Y), id="dataframe"),
        pytest.param(pd.DataFrame(SMALL_Y)[list(reversed(TASKS))], id="dataframe-reordered"),
    ],
)
def test_label_forms_give_the_same_loss(model, labels):
    want = model.evaluate(SMALL, SMALL_Y, verbose=0, return_dict=True)["loss"]
    assert model.evaluate(SMALL, labels, verbose=0, return_dict=True)["loss"] == pytest.approx(want, rel=1e-6)
    assert model.test_on_batch(SMALL, labels, return_dict=True)["loss"] == pytest.approx(want, rel=1e-6)
    assert np.isfinite(build(1).fit(SMALL, labels, verbose=0).history["loss"][0])


def test_dataframe_inputs_on_batch(model):
    frame = pd.DataFrame(SMALL)
    np.testing.assert_allclose(model.predict_on_batch(frame)["click"], model(SMALL)["click"].numpy(), rtol=1e-6)
    assert np.isfinite(build(1).train_on_batch(frame, pd.DataFrame(SMALL_Y)))[0]


# ----- specific errors on every entry point ---------------------------------------------------------------------
ENTRY_POINTS = {
    "fit": lambda m, x, y: m.fit(x, y, verbose=0),
    "evaluate": lambda m, x, y: m.evaluate(x, y, verbose=0),
    "train_on_batch": lambda m, x, y: m.train_on_batch(x, y),
    "test_on_batch": lambda m, x, y: m.test_on_batch(x, y),
}
PREDICT_POINTS = {
    "predict": lambda m, x: m.predict(x, verbose=0),
    "predict_on_batch": lambda m, x: m.predict_on_batch(x),
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_errors_name_the_column_or_key(model, entry):
    call = ENTRY_POINTS[entry]
    with pytest.raises(ValueError, match=r"lack.*\['device'\]"):
        call(model, {"price": SMALL["price"]}, SMALL_Y)
    with pytest.raises(ValueError, match=r"'price'"):
        call(model, {**SMALL, "price": SMALL["device"]}, SMALL_Y)
    with pytest.raises(ValueError, match=r"'clik'"):
        call(model, SMALL, {"clik": SMALL_Y["click"], "satisfaction": SMALL_Y["satisfaction"]})
    with pytest.raises(ValueError, match=r"\['satisfaction'\]"):
        call(model, SMALL, {"click": SMALL_Y["click"]})


@pytest.mark.parametrize("entry", sorted(PREDICT_POINTS))
def test_prediction_errors_name_the_column(model, entry):
    call = PREDICT_POINTS[entry]
    with pytest.raises(ValueError, match=r"lack.*\['device'\]"):
        call(model, {"price": SMALL["price"]})
    with pytest.raises(ValueError, match=r"'price'"):
        call(model, {**SMALL, "price": SMALL["device"]})


# ----- fit / evaluate / predict against plain tf.keras -------------------------------------------------------------
def pair(steps_per_execution=16):
    """An mmoe-tf model and a plain functional tf.keras twin with separate, identical weights."""
    model = build(steps_per_execution)
    plain = twin(build(steps_per_execution))
    return model, plain


def dataset(known=True, labels=True):
    ds = tf.data.Dataset.from_tensor_slices((FEATURES, LABELS) if labels else FEATURES).batch(16)
    return ds if known else ds.filter(lambda *_: True)


DATA_FORMS = {
    "numpy": lambda: dict(x=FEATURES, y=LABELS, batch_size=16, shuffle=False),
    "dataframe": lambda: dict(x=pd.DataFrame(FEATURES), y=pd.DataFrame(LABELS), batch_size=16, shuffle=False),
    "dataset": lambda: dict(x=dataset()),
    "dataset-unknown-size-with-steps": lambda: dict(x=dataset(known=False).repeat(), steps_per_epoch=N // 16),
}


@pytest.mark.parametrize(
    "form, steps_per_execution",
    [("numpy", 16), ("dataframe", 16), ("dataset", 1), ("dataset-unknown-size-with-steps", 16)],
)
def test_fit_evaluate_predict_match_plain_keras(form, steps_per_execution):
    model, plain = pair(steps_per_execution)
    kwargs = DATA_FORMS[form]()
    plain_kwargs = {**kwargs, "x": FEATURES if form == "dataframe" else kwargs["x"]}
    plain_kwargs["y"] = LABELS if form == "dataframe" else kwargs.get("y")
    got = model.fit(epochs=2, verbose=0, **kwargs).history
    want = plain.fit(epochs=2, verbose=0, **plain_kwargs).history
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=2e-4, atol=1e-6, err_msg=key)
    evaluated = model.evaluate(dataset(), verbose=0, return_dict=True)
    assert evaluated == pytest.approx(plain.evaluate(dataset(), verbose=0, return_dict=True), rel=2e-4)
    predicted, plain_predicted = model.predict(dataset(labels=False), verbose=0), plain.predict(FEATURES, verbose=0)
    for t in TASKS:
        np.testing.assert_allclose(predicted[t], plain_predicted[t], rtol=2e-4, atol=1e-6)


def test_dataset_of_unknown_size_without_steps_trains_under_the_default_compile():
    """Keras refuses it with 16 steps per execution; the model runs one step per execution for it instead."""
    model, plain = pair(16)
    got = model.fit(dataset(known=False), validation_data=dataset(known=False), verbose=0).history
    want = plain.fit(dataset(known=False), validation_data=dataset(known=False), verbose=0).history
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=2e-4, err_msg=key)
    assert int(model._steps_per_execution.numpy()) == 16


def test_validation_split_and_sample_weight_match_plain_keras():
    model, plain = pair()
    weights = {"click": np.linspace(0.5, 2.0, N).astype(np.float32), "satisfaction": np.ones(N, np.float32)}
    common = dict(batch_size=16, shuffle=False, validation_split=0.25, sample_weight=weights, verbose=0)
    got = model.fit(FEATURES, LABELS, **common).history
    want = plain.fit(FEATURES, LABELS, **common).history
    assert "val_click_auc" in got and set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=2e-4, err_msg=key)


def test_class_weight_gives_keras_error_for_multi_output(model):
    plain = twin(build())
    with pytest.raises(ValueError, match="only supported for Models with a single output") as want:
        plain.fit(FEATURES, LABELS, class_weight={0: 1.0, 1: 2.0}, verbose=0)
    with pytest.raises(ValueError, match="only supported for Models with a single output") as got:
        model.fit(FEATURES, LABELS, class_weight={0: 1.0, 1: 2.0}, verbose=0)
    assert str(got.value) == str(want.value)


def test_gradient_tape_loop_matches_plain_keras():
    model, plain = pair()
    for m, loss_of in (
        (model, lambda y, p: model.compute_loss(y=y, y_pred=p)),
        (plain, lambda y, p: sum(tf.keras.losses.binary_crossentropy(y[t], p[t][:, 0]) for t in TASKS)),
    ):
        optimizer = tf.keras.optimizers.SGD(0.1)
        for start in range(0, N, 16):
            x = {k: v[start : start + 16] for k, v in FEATURES.items()}
            y = {k: v[start : start + 16] for k, v in LABELS.items()}
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(loss_of(y, m(x, training=True)))
            grads = tape.gradient(loss, m.trainable_variables)
            optimizer.apply_gradients(zip(grads, m.trainable_variables, strict=True))
    for t in TASKS:
        np.testing.assert_allclose(model(SMALL)[t].numpy(), plain(SMALL)[t].numpy(), rtol=1e-4, atol=1e-6)


# ----- saving, configs, cloning ---------------------------------------------------------------------------------------
def same_outputs(a, b):
    for t in TASKS:
        np.testing.assert_array_equal(a(SMALL)[t].numpy(), b(SMALL)[t].numpy())


@pytest.mark.parametrize("path", ["m.keras", "savedmodel"])
def test_keras_save_and_load_model(model, tmp_path, path):
    model.save(tmp_path / path)
    loaded = tf.keras.models.load_model(tmp_path / path)
    assert isinstance(loaded, mmoe_tf.MultiTaskModel)
    same_outputs(loaded, model)
    assert np.isfinite(loaded.fit(SMALL, SMALL_Y, verbose=0).history["loss"][0])


@pytest.mark.parametrize("path", ["ckpt", "w.h5"])
def test_save_and_load_weights(model, tmp_path, path):
    model.save_weights(tmp_path / path)
    other = build()
    other.load_weights(tmp_path / path)
    same_outputs(other, model)


def test_summary_config_json_and_clone(model):
    lines = []
    model.summary(print_fn=lines.append)
    assert any("mmoe_0" in line for line in lines) and any("Total params" in line for line in lines)
    from_config = mmoe_tf.MultiTaskModel.from_config(model.get_config())
    from_json = tf.keras.models.model_from_json(model.to_json())
    clone = tf.keras.models.clone_model(model)
    for other in (from_config, from_json, clone):
        assert isinstance(other, mmoe_tf.MultiTaskModel)
        assert other.count_params() == model.count_params()
        other.set_weights(model.get_weights())
        same_outputs(other, model)


# ----- callbacks ---------------------------------------------------------------------------------------------------
def test_callbacks(tmp_path):
    model = build()
    callbacks = [
        tf.keras.callbacks.EarlyStopping(monitor="val_click_auc", mode="max", patience=1, restore_best_weights=True),
        tf.keras.callbacks.ModelCheckpoint(str(tmp_path / "best.keras"), monitor="val_loss", save_best_only=True),
        tf.keras.callbacks.ModelCheckpoint(str(tmp_path / "w-{epoch}"), save_weights_only=True),
        tf.keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
        tf.keras.callbacks.TensorBoard(str(tmp_path / "tb")),
    ]
    history = model.fit(
        FEATURES, LABELS, validation_split=0.25, epochs=3, batch_size=16, callbacks=callbacks, verbose=0
    )
    assert 1 <= len(history.epoch) <= 3
    best = tf.keras.models.load_model(tmp_path / "best.keras")
    assert isinstance(best, mmoe_tf.MultiTaskModel)
    assert (tmp_path / "w-1.index").exists() and (tmp_path / "w-1.mmoe.json").exists()
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))


def test_fit_on_columns_is_batched_by_mmoe_tf_batches(model, monkeypatch):
    """Dicts/DataFrames are cut by mmoe_tf.batches (shuffled per epoch by default); class weights stay Keras'."""
    import mmoe_tf.entry_points as entry_points

    calls = []

    def recording(name):
        original = getattr(entry_points, name)

        def record(elements, batch_size, repeat=False):
            calls.append((name, batch_size, repeat))
            return original(elements, batch_size, repeat)

        return record

    monkeypatch.setattr(entry_points, "shuffled_batches", recording("shuffled_batches"))
    monkeypatch.setattr(entry_points, "table_batches", recording("table_batches"))
    history = model.fit(pd.DataFrame(FEATURES), LABELS, epochs=3, batch_size=8, verbose=0, validation_split=0.5)
    assert calls == [("table_batches", 8, False), ("shuffled_batches", 8, True)]
    assert len(history.history["loss"]) == 3 and "val_loss" in history.history
    calls.clear()
    model.fit(FEATURES, LABELS, verbose=0, shuffle=False)
    assert calls == [("table_batches", 32, False)]


def test_predict_and_evaluate_run_the_experts_in_groups_and_plain_calls_do_not(model):
    """Keras' predict step traces one matmul chain per expert (side by side on the inter-op threads); a plain call,
    which is what an export traces, keeps one chain. The outputs agree to float rounding."""
    x = {k: tf.constant(v) for k, v in SMALL.items()}

    def matmuls(fn):
        graph = tf.function(fn).get_concrete_function(x).graph
        return sum(op.type == "MatMul" for op in graph.get_operations())

    plain = matmuls(lambda f: model(f, training=False))
    assert matmuls(model.predict_step) == plain + CONFIG.num_experts - 1
    predicted = model.predict(SMALL, verbose=0)
    called = model(SMALL, training=False)
    for task in TASKS:
        np.testing.assert_allclose(predicted[task], called[task], rtol=1e-6, atol=1e-7)


def test_evaluate_runs_the_experts_in_groups(monkeypatch):
    from mmoe_tf.layers import ExpertBank

    fresh, groups_seen, call = build(), [], ExpertBank.call

    def spy(self, inputs, training=None, groups=1):
        groups_seen.append(groups)
        return call(self, inputs, training=training, groups=groups)

    monkeypatch.setattr(ExpertBank, "call", spy)
    fresh.evaluate(SMALL, SMALL_Y, verbose=0)
    assert groups_seen and set(groups_seen) == {CONFIG.num_experts}
