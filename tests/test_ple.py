"""PLE / CGC: the layer, the ``ple`` architecture, its gates, gradient isolation, export and serving."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import tensorflow as tf

from mmoe_tf.config import ModelConfig
from mmoe_tf.feature_specs import FeatureSpec
from mmoe_tf.gates import gate_expert_names, gate_model, level_gate_model
from mmoe_tf.layers import CGC
from mmoe_tf.models import build_model, ple_layer_name
from mmoe_tf.task_specs import TaskSpec

D = 6
FEATURES = (FeatureSpec("x1", "numeric"), FeatureSpec("device", "categorical", dtype="string", embedding_dim=3))
TASKS = (TaskSpec("click"), TaskSpec("rating", "regression"))
SMALL = dict(num_task_experts=2, num_shared_experts=3, expert_units=(8,), tower_units=(4,), seed=3)


def _x(batch: int = 5, dim: int = D, seed: int = 0) -> tf.Tensor:
    return tf.constant(np.random.RandomState(seed).randn(batch, dim).astype("float32"))


def toy(n: int = 128, seed: int = 0) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n).astype(np.float32)
    device = rng.choice(["ios", "android", "web"], n).astype(object)
    labels = {"click": (x1 + (device == "ios") > 0.5).astype(np.float32), "rating": (2 * x1).astype(np.float32)}
    return {"x1": x1, "device": device}, labels


def ple_config(**overrides) -> ModelConfig:
    return ModelConfig(features=FEATURES, tasks=TASKS, architecture="ple", **{**SMALL, **overrides})


# --- the CGC layer ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tasks", "own", "shared", "shared_gate", "expert_type"),
    [(1, 1, 1, False, "mlp"), (2, 2, 3, True, "mlp"), (3, 1, 2, False, "cross"), (2, 1, 1, True, "cross")],
)
def test_cgc_shapes_and_gates_sum_to_one(tasks, own, shared, shared_gate, expert_type):
    layer = CGC(tasks, own, shared, [7, 5], shared_gate=shared_gate, expert_type=expert_type, seed=0)
    mixed, weights = layer(_x())
    assert len(mixed) == len(weights) == tasks + shared_gate
    assert all(m.shape == (5, 5) for m in mixed)
    assert [w.shape[1] for w in weights] == [own + shared] * tasks + [tasks * own + shared] * shared_gate
    for w in weights:
        np.testing.assert_allclose(w.numpy().sum(axis=1), 1.0, atol=1e-6)
    assert layer.compute_output_shape(tf.TensorShape([5, D])) == ([m.shape for m in mixed], [w.shape for w in weights])


def test_cgc_list_input_routes_task_and_shared_inputs():
    layer = CGC(2, 1, 2, [4], shared_gate=True, seed=0)
    a, b, s = _x(seed=1), _x(seed=2), _x(seed=3)
    base = layer([a, b, s])
    moved_b = layer([a, b + 1.0, s])  # task 1's input moves: task 0's output and weights do not
    np.testing.assert_array_equal(base[0][0], moved_b[0][0])
    np.testing.assert_array_equal(base[1][0], moved_b[1][0])
    assert not np.allclose(base[0][1], moved_b[0][1])
    assert not np.allclose(base[0][2], moved_b[0][2])  # the shared gate mixes task 1's experts too
    moved_s = layer([a, b, s + 1.0])  # the shared input reaches every output through the shared experts
    assert all(not np.allclose(x, y) for x, y in zip(base[0], moved_s[0], strict=True))
    with pytest.raises(ValueError, match="list of 2"):
        layer([a, b])


def test_cgc_config_round_trip_and_registration():
    kwargs = dict(
        num_tasks=2,
        num_task_experts=2,
        num_shared_experts=1,
        expert_units=[5, 4],
        shared_gate=True,
        expert_norm="layer",
        expert_dropout=0.1,
        gate_hidden_units=[3],
        gate_temperature=2.0,
        gate_dropout=0.2,
        seed=4,
    )
    layer = CGC(**kwargs)
    out = layer(_x())
    config = layer.get_config()
    params = set(inspect.signature(CGC.__init__).parameters) - {"self", "kwargs"}
    assert params <= set(config), params - set(config)
    clone = CGC.from_config(config)
    clone(_x())
    clone.set_weights(layer.get_weights())
    for a, b in zip(tf.nest.flatten(out), tf.nest.flatten(clone(_x())), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert tf.keras.utils.get_registered_name(CGC) == "mmoe_tf>CGC"


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(num_tasks=0, num_task_experts=1, num_shared_experts=1, expert_units=[4]), "num_tasks"),
        (dict(num_tasks=2, num_task_experts=0, num_shared_experts=1, expert_units=[4]), "num_task_experts"),
        (dict(num_tasks=2, num_task_experts=1, num_shared_experts=0, expert_units=[4]), "num_shared_experts"),
        (dict(num_tasks=2, num_task_experts=1, num_shared_experts=1, expert_units=[]), "expert_units"),
        (dict(num_tasks=2, num_task_experts=1, num_shared_experts=1, expert_units=4, expert_type="moe"), "expert_type"),
        (dict(num_tasks=2, num_task_experts=1, num_shared_experts=1, expert_units=4, gate_dropout=1.0), "gate_dropout"),
    ],
)
def test_cgc_invalid_arguments_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        CGC(**kwargs)


# --- the ple architecture -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        ple_config(),  # CGC
        ple_config(num_levels=3, expert_units=(8, 6), gate_hidden_units=(4,)),
        ple_config(expert_type="cross", num_levels=2, num_task_experts=1, num_shared_experts=1),
        ModelConfig(features=FEATURES, tasks=(TaskSpec("click"),), architecture="ple", **SMALL),
    ],
)
def test_ple_outputs_and_gate_weights(config):
    features, _ = toy()
    model = build_model(config, adapt_data=features, compile=False)
    out = model(features)
    assert sorted(out) == sorted(config.output_names)
    assert all(v.shape == (128, 1) and np.isfinite(v.numpy()).all() for v in out.values())
    assert [layer.name for layer in model.layers if isinstance(layer, CGC)] == [
        ple_layer_name(i) for i in range(config.num_levels)
    ]
    names = gate_expert_names(config)
    k = config.num_task_experts + config.num_shared_experts
    top = gate_model(model)(features)
    assert sorted(top) == sorted(config.task_names)
    for task, w in top.items():
        assert w.shape == (128, k) and len(names[task]) == k
        assert names[task][: config.num_task_experts] == [f"{task}/{i}" for i in range(config.num_task_experts)]
        np.testing.assert_allclose(w.numpy().sum(axis=1), 1.0, atol=1e-5)
    levels = level_gate_model(model)(features)
    expected = {f"level{lv}/{t}" for lv in range(config.num_levels) for t in config.task_names}
    expected |= {f"level{lv}/shared" for lv in range(config.num_levels - 1)}
    assert set(levels) == expected
    for key, w in levels.items():
        gate = key.split("/")[1]
        assert w.shape[1] == len(names[gate])
        np.testing.assert_allclose(w.numpy().sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(levels[f"level{config.num_levels - 1}/click"], top["click"])


def test_gradients_reach_every_expert_and_gate():
    features, labels = toy()
    model = build_model(ple_config(num_levels=2, expert_units=(8, 6)), adapt_data=features, compile=False)
    with tf.GradientTape() as tape:
        out = model(features, training=True)
        loss = tf.add_n([tf.reduce_mean(tf.square(out[t][:, 0] - labels[t])) for t in ("click", "rating")])
    cgcs = [model.get_layer(ple_layer_name(i)) for i in range(2)]
    variables = [v for layer in cgcs for v in layer.trainable_variables]
    assert len(variables) == 2 * (3 * 4 + 2 * 2) + 2  # 3 banks x (2 depths x 2), gates x 2; level 0 shared gate
    grads = tape.gradient(loss, variables)
    for var, grad in zip(variables, grads, strict=True):
        assert grad is not None and float(tf.norm(grad)) > 0, var.name
        if "kernel_0" in var.name:  # every expert slice of every bank's first kernel [K, D, U] moves
            assert (tf.norm(grad, axis=[1, 2]).numpy() > 0).all(), var.name


@pytest.mark.parametrize("levels", [1, 2])
def test_task_experts_get_no_gradient_from_other_tasks(levels):
    features, labels = toy()
    model = build_model(ple_config(num_levels=levels), adapt_data=features, compile=False)
    last = model.get_layer(ple_layer_name(levels - 1))
    for own, other in ((0, "rating"), (1, "click")):  # task `own`'s parts vs the other task's loss
        with tf.GradientTape() as tape:
            out = model(features, training=True)
            loss = tf.reduce_mean(tf.square(out[other][:, 0] - labels[other]))
        isolated = [*last.task_experts[own].trainable_variables]
        for level in range(levels):  # a task's gates only feed that task, at every level
            isolated += model.get_layer(ple_layer_name(level)).gates[own].trainable_variables
        reached = [*last.shared_experts.trainable_variables, *last.task_experts[1 - own].trainable_variables]
        grads = tape.gradient(loss, isolated + reached, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        for var, grad in zip(isolated, grads[: len(isolated)], strict=True):
            assert float(tf.norm(grad)) == 0.0, var.name
        for var, grad in zip(reached, grads[len(isolated) :], strict=True):
            assert float(tf.norm(grad)) > 0.0, var.name
    if levels == 2:  # below the top, a task's experts also feed the shared gate, hence every task
        first = model.get_layer(ple_layer_name(0))
        with tf.GradientTape() as tape:
            out = model(features, training=True)
            loss = tf.reduce_mean(tf.square(out["rating"][:, 0] - labels["rating"]))
        grads = tape.gradient(loss, first.task_experts[0].trainable_variables)
        assert all(g is not None and float(tf.norm(g)) > 0 for g in grads)


def test_invalid_ple_configs_name_the_field():
    for field, overrides in (
        ("num_shared_experts", dict(num_shared_experts=0)),
        ("num_task_experts", dict(num_task_experts=-1)),
        ("num_levels", dict(num_levels=0)),
    ):
        with pytest.raises(ValueError, match=f"'{field}'"):
            ple_config(**overrides)
    with pytest.raises(ValueError, match=r"'tasks'.*shared"):
        ModelConfig(features=FEATURES, tasks=(TaskSpec("shared"), TaskSpec("click")), architecture="ple")
    ModelConfig(features=FEATURES, tasks=(TaskSpec("shared"),), architecture="mmoe")  # only ple reserves it


def test_export_gates_signature_and_local_server(tmp_path):
    import requests

    from serving.export import export_model
    from serving.testing import ServerProcess

    features, _ = toy()
    model = build_model(ple_config(num_levels=2), adapt_data=features, compile=False)
    version = export_model(
        model, tmp_path / "base", "ple", version=1, sample_features={k: v[:16] for k, v in features.items()}
    )
    expected = gate_model(model)({k: v[:4] for k, v in features.items()})
    predictions = model({k: v[:4] for k, v in features.items()})
    rows = [{"x1": float(features["x1"][i]), "device": str(features["device"][i])} for i in range(4)]
    with ServerProcess(["--base-path", str(tmp_path / "base"), "--model-name", "ple"]) as server:
        url = f"{server.url}/v1/models/ple:predict"
        gates = requests.post(url, json={"signature_name": "gates", "instances": rows}, timeout=60).json()
        scores = requests.post(url, json={"instances": rows}, timeout=60).json()
    assert version.name == "1"
    for i, row in enumerate(gates["predictions"]):
        assert sorted(row) == ["gate_click", "gate_rating"]
        for task in ("click", "rating"):  # own experts, then shared ones
            assert len(row[f"gate_{task}"]) == SMALL["num_task_experts"] + SMALL["num_shared_experts"]
            np.testing.assert_allclose(row[f"gate_{task}"], expected[task][i], atol=1e-5)
    for i, row in enumerate(scores["predictions"]):
        np.testing.assert_allclose(row["click"], predictions["click"][i, 0], atol=1e-5)


def test_ple_runs_in_the_experiments(tmp_path):
    import math

    from training.experiments import common, relatedness, scarcity

    tiny = common.FitOptions(epochs=1, batch_size=128, patience=1)
    rows = relatedness.run(
        rows=300,
        correlations=(1.0,),
        architectures=("ple",),
        seeds=1,
        fit=tiny,
        figures_dir=tmp_path,
        dim=4,
        learning_rates=(1e-3,),
        results_dir=tmp_path,
        tune_correlations=(1.0,),
    )
    assert {r["architecture"] for r in rows} == {"ple"} and {r["task"] for r in rows} == {"y1", "y2"}
    assert all(math.isfinite(r["mean"]) for r in rows)
    rows = scarcity.run(
        rows=600,
        fractions=(0.5,),
        architectures=("ple",),
        seeds=1,
        fit=tiny,
        figures_dir=tmp_path,
        results_dir=tmp_path,
    )
    assert {r["architecture"] for r in rows} == {"ple"}
    assert all(math.isfinite(r["mean"]) for r in rows if r["task"] == "satisfaction")


def test_ple_level_shares_and_real_expert_similarity(tmp_path):
    from training.gate_analysis import analyze_gate_weights, format_gate_summary, ple_level_shares, plot_gates

    names = {
        "click": ["click/0", "shared/0", "shared/1"],
        "rating": ["rating/0", "shared/0", "shared/1"],
        "shared": ["click/0", "rating/0", "shared/0", "shared/1"],
    }
    own_only = np.tile([1.0, 0.0, 0.0], (4, 1))
    levels = ple_level_shares(
        {
            "level0/click": np.array([[0.5, 0.25, 0.25], [0.1, 0.4, 0.5]]),
            "level0/rating": own_only,
            "level0/shared": np.tile([0.1, 0.2, 0.3, 0.4], (2, 1)),
            "level1/click": own_only,
            "level1/rating": np.tile([0.0, 0.5, 0.5], (3, 1)),
        },
        names,
    )
    assert [lv["level"] for lv in levels] == [0, 1]
    assert levels[0]["tasks"]["click"] == pytest.approx({"own": 0.3, "shared": 0.7})
    assert levels[0]["tasks"]["rating"] == pytest.approx({"own": 1.0, "shared": 0.0})
    assert levels[0]["shared_gate"] == pytest.approx({"click": 0.1, "rating": 0.2, "shared": 0.7})
    assert (
        levels[1]["tasks"]["rating"] == pytest.approx({"own": 0.0, "shared": 1.0}) and levels[1]["shared_gate"] is None
    )
    with pytest.raises(ValueError, match="level0/nope"):
        ple_level_shares({"level0/nope": own_only}, names)

    # both tasks put all their mass on their own expert: same columns, but no expert in common
    a = analyze_gate_weights({"click": own_only, "rating": own_only}, expert_names=names)
    assert a["similarity"]["click|rating"]["js_similarity"] == pytest.approx(0.0)
    assert a["similarity"]["click|rating"]["cosine"] == pytest.approx(0.0)
    assert [e["name"] for e in a["experts"]] == ["click/0", "rating/0", "shared/0", "shared/1"]
    assert [e["share"] for e in a["experts"]] == pytest.approx([0.5, 0.5, 0.0, 0.0])
    assert a["unused_experts"] == [2, 3]
    a["ple"] = {"levels": levels}
    text = format_gate_summary(a)
    assert text.splitlines()[0].split()[:4] == ["task", "own0", "sh0", "sh1"]
    assert (
        "0.300 / 0.700" in text and "shared gate, level 0: experts of click=0.100, rating=0.200, shared=0.700" in text
    )
    assert "unused experts: ['shared/0', 'shared/1']" in text
    assert plot_gates(a, tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match=r"expert_names\['click'\]: expected 3 names"):
        analyze_gate_weights({"click": own_only}, expert_names={"click": ["a"]})


def test_cli_train_ple_writes_gate_analysis_per_level(tmp_path):
    import json

    from training.cli import main

    out = tmp_path / "run"
    sets = ["data.max_rows=400", "train.epochs=1", "train.batch_size=64", "train.verbose=0", "model.architecture=ple"]
    sets += ["model.num_levels=2", "model.num_task_experts=2", "model.num_shared_experts=1", "model.expert_units=[8]"]
    assert main(["train", "--output-dir", str(out), "--quiet", *[a for s in sets for a in ("--set", s)]]) == 0
    gates = json.loads((out / "gates.json").read_text())
    assert gates["num_experts"] == 3
    assert gates["expert_names"]["click"] == ["click/0", "click/1", "shared/0"]
    levels = gates["ple"]["levels"]
    assert [lv["level"] for lv in levels] == [0, 1]
    for lv in levels:
        for task in ("click", "satisfaction"):
            share = lv["tasks"][task]
            assert share["own"] + share["shared"] == pytest.approx(1.0, abs=1e-5)
    assert sum(levels[0]["shared_gate"].values()) == pytest.approx(1.0, abs=1e-5) and levels[1]["shared_gate"] is None
    text = (out / "gates.txt").read_text()
    assert "level 0 own/shared" in text and "level 1 own/shared" in text
    assert json.loads((out / "report.json").read_text())["model"]["architecture"] == "ple"
