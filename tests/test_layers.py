"""Tests of the MMoE layers: ExpertBank, CrossExpertBank, TaskGate and the MMoE block."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import tensorflow as tf

import mmoe_tf  # noqa: F401  (Keras 2 API)
from mmoe_tf.layers import CrossExpertBank, ExpertBank, MMoE, TaskGate
from mmoe_tf.layers.expert_bank import DEEP_METHODS, FIRST_METHODS
from mmoe_tf.layers.mmoe_block import grouped_inference

D = 6
IMPLEMENTATIONS = ["auto", "einsum", "batched", "loop", *(f"{f}:{d}" for f in FIRST_METHODS for d in DEEP_METHODS)]


def _x(batch: int = 5, dim: int = D, seed: int = 0) -> tf.Tensor:
    return tf.constant(np.random.RandomState(seed).randn(batch, dim).astype("float32"))


def _experts(batch: int = 5, k: int = 3, units: int = 4, seed: int = 1) -> tf.Tensor:
    return tf.constant(np.random.RandomState(seed).randn(batch, k, units).astype("float32"))


# --- shapes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "units"), [(1, [4]), (3, [8, 5]), (4, 7)])
def test_expert_bank_shape(k, units):
    out = ExpertBank(k, units, seed=0)(_x())
    assert out.shape == (5, k, units if isinstance(units, int) else units[-1])


@pytest.mark.parametrize(("k", "units", "cross_layers"), [(1, [4], 1), (3, [8, 5], 2)])
def test_cross_expert_bank_shape(k, units, cross_layers):
    bank = CrossExpertBank(k, units, num_cross_layers=cross_layers, seed=0)
    assert bank(_x()).shape == (5, k, units[-1])
    assert len(bank.cross_networks()) == k and all(len(e) == cross_layers for e in bank.cross_networks())


@pytest.mark.parametrize(("num_gates", "k", "expert_type"), [(1, 2, "mlp"), (2, 4, "mlp"), (3, 3, "cross")])
def test_mmoe_shapes(num_gates, k, expert_type):
    mixed, weights = MMoE(num_gates, k, [8, 6], expert_type=expert_type, seed=0)(_x())
    assert len(mixed) == len(weights) == num_gates
    assert all(m.shape == (5, 6) for m in mixed)
    assert all(w.shape == (5, k) for w in weights)


def test_mmoe_stacked_list_input_routes_each_gate():
    block = MMoE(2, 3, [4], seed=0)
    a, b = _x(dim=4, seed=1), _x(dim=5, seed=2)
    _, weights = block([a, b])
    assert block.experts.kernels[0].shape == (3, 9, 4)  # experts read concat([a, b])
    _, weights_b_changed = block([a, b + 1.0])
    np.testing.assert_allclose(weights[0], weights_b_changed[0])  # gate 0 reads only its own input
    assert not np.allclose(weights[1], weights_b_changed[1])
    with pytest.raises(ValueError, match="num_gates"):
        block([a, b, b])


# --- gates --------------------------------------------------------------------------------------


def test_gate_weights_sum_to_one_and_depend_on_input():
    gate = TaskGate(3, hidden_units=[5], seed=0)
    mixed, w = gate((_experts(), _x()))
    np.testing.assert_allclose(tf.reduce_sum(w, -1), 1.0, rtol=1e-6)
    assert mixed.shape == (5, 4)
    np.testing.assert_allclose(mixed, tf.einsum("bk,bku->bu", w, _experts()), rtol=1e-5, atol=1e-6)
    _, w_other = gate((_experts(), _x(seed=7)))
    assert np.abs(w.numpy() - w_other.numpy()).max() > 1e-3
    assert np.abs(w.numpy()[0] - w.numpy()[1]).max() > 1e-3  # rows differ too


def test_temperature_flattens():
    def entropy(w):
        return float(-tf.reduce_mean(tf.reduce_sum(w * tf.math.log(w), -1)))

    x = _x() * 5.0
    sharp = TaskGate(4, temperature=0.5, seed=3)((_experts(k=4), x))[1]
    base = TaskGate(4, temperature=1.0, seed=3)((_experts(k=4), x))[1]
    flat = TaskGate(4, temperature=10.0, seed=3)((_experts(k=4), x))[1]
    assert entropy(sharp) < entropy(base) < entropy(flat) <= np.log(4) + 1e-6
    np.testing.assert_array_equal(tf.argmax(sharp, -1), tf.argmax(flat, -1))


def test_gate_dropout_training_only_and_renormalised():
    e, x = _experts(batch=64, k=4), _x(batch=64)
    reference = TaskGate(4, seed=5)((e, x))[1].numpy()
    gate = TaskGate(4, dropout=0.5, seed=5)
    inference = gate((e, x), training=False)[1].numpy()
    np.testing.assert_allclose(inference, reference, rtol=1e-6)
    np.testing.assert_allclose(gate((e, x))[1], reference, rtol=1e-6)  # training defaults to off
    mixed, w = gate((e, x), training=True)
    w = w.numpy()
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
    dropped = w < 1e-12
    assert dropped.any() and (~dropped).any()
    kept_rows = dropped.any(-1)
    # kept experts keep their relative proportions: renormalised, not rescaled
    row = int(np.argmax(kept_rows))
    keep = ~dropped[row]
    np.testing.assert_allclose(w[row, keep], reference[row, keep] / reference[row, keep].sum(), rtol=1e-5)
    np.testing.assert_allclose(mixed, np.einsum("bk,bku->bu", w, e.numpy()), rtol=1e-5, atol=1e-6)


def test_gate_dropout_all_dropped_rows_fall_back_to_undropped():
    e, x = _experts(batch=200, k=2), _x(batch=200)
    reference = TaskGate(2, seed=9)((e, x))[1].numpy()
    w = TaskGate(2, dropout=0.9, seed=9)((e, x), training=True)[1].numpy()
    assert np.isfinite(w).all()
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
    full_rows = (w > 1e-12).all(-1)  # with p=0.9, most rows lose both experts and fall back
    assert full_rows.sum() > 100
    np.testing.assert_allclose(w[full_rows], reference[full_rows], rtol=1e-5)


# --- experts: independence, gradients, implementations ------------------------------------------


def test_experts_start_different_even_without_seed():
    for bank in (ExpertBank(4, [6, 3], seed=0), ExpertBank(4, [6, 3])):
        out = bank(_x()).numpy()
        for depth_kernel in bank.kernels:
            w = depth_kernel.numpy()
            for i in range(4):
                for j in range(i + 1, 4):
                    assert np.abs(w[i] - w[j]).max() > 1e-3
        for i in range(4):
            for j in range(i + 1, 4):
                assert np.abs(out[:, i] - out[:, j]).max() > 1e-4
    cross = CrossExpertBank(3, [4], seed=0)
    cross(_x())
    kernels = [e[0]._dense.kernel.numpy() for e in cross.cross_networks()]
    assert np.abs(kernels[0] - kernels[1]).max() > 1e-3


def test_same_seed_reproduces_weights():
    a, b = ExpertBank(3, [4], seed=11), ExpertBank(3, [4], seed=11)
    np.testing.assert_array_equal(a(_x()), b(_x()))
    c = ExpertBank(3, [4], seed=12)
    assert not np.allclose(a(_x()), c(_x()))


@pytest.mark.parametrize("implementation", ["auto", "einsum", "batched", "loop"])
def test_gradients_reach_every_expert_slice(implementation):
    bank = ExpertBank(4, [5, 3], seed=0, implementation=implementation, normalization="layer")
    x = _x()
    probe = tf.constant(np.random.RandomState(2).randn(5, 4, 3).astype("float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(bank(x) * probe)
    grads = tape.gradient(loss, bank.trainable_variables)
    assert len(grads) == len(bank.trainable_variables) == 8  # kernel, bias, gamma, beta per depth
    for var, grad in zip(bank.trainable_variables, grads, strict=True):
        per_expert = tf.reduce_sum(tf.abs(tf.reshape(grad, [4, -1])), -1).numpy()
        assert (per_expert > 0).all(), var.name


def test_gradients_reach_every_gate_and_expert_in_mmoe():
    block = MMoE(3, 4, [6], gate_hidden_units=[4], seed=0)
    x = _x(batch=16)
    with tf.GradientTape() as tape:
        mixed, _ = block(x)
        loss = sum(tf.reduce_sum(m * float(i + 1)) for i, m in enumerate(mixed))
    variables = block.trainable_variables
    grads = dict(zip([v.name for v in variables], tape.gradient(loss, variables), strict=True))
    for g in range(3):
        gate_grads = [grads[v.name] for v in block.gates[g].trainable_variables]
        assert len(gate_grads) == 4 and all(float(tf.reduce_sum(tf.abs(t))) > 0 for t in gate_grads)
    kernel_grad = grads[block.experts.kernels[0].name]
    assert (tf.reduce_sum(tf.abs(kernel_grad), [1, 2]).numpy() > 0).all()


@pytest.mark.parametrize(
    ("normalization", "implementations"),
    [(None, IMPLEMENTATIONS), ("layer", IMPLEMENTATIONS[:6]), ("batch", IMPLEMENTATIONS[:6])],
)
def test_implementations_agree(normalization, implementations):
    x = _x(batch=7)
    probe = tf.constant(np.random.RandomState(3).randn(7, 3, 4).astype("float32"))
    outputs, gradients = [], []
    for impl in implementations:
        bank = ExpertBank(3, [5, 6, 4], seed=4, normalization=normalization, implementation=impl)
        with tf.GradientTape() as tape:
            out = bank(x, training=True)
            loss = tf.reduce_sum(out * probe)
        outputs.append(out.numpy())
        gradients.append([g.numpy() for g in tape.gradient(loss, bank.trainable_variables)])
    for impl, out, grads in zip(implementations[1:], outputs[1:], gradients[1:], strict=True):
        np.testing.assert_allclose(out, outputs[0], rtol=1e-4, atol=1e-5, err_msg=impl)
        for g, g0 in zip(grads, gradients[0], strict=True):
            np.testing.assert_allclose(g, g0, rtol=1e-3, atol=1e-4, err_msg=impl)


def test_per_expert_input():
    bank = ExpertBank(3, [4], seed=0)
    x = tf.constant(np.random.RandomState(0).randn(5, 3, 6).astype("float32"))
    out = bank(x).numpy()
    w, b = bank.kernels[0].numpy(), bank.biases[0].numpy()
    expected = np.maximum(np.einsum("bkd,kdu->bku", x.numpy(), w) + b, 0)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_experts_stay_different_after_training():
    block = MMoE(2, 3, [8], seed=0, gate_dropout=0.2, expert_dropout=0.1)
    heads = [tf.keras.layers.Dense(1) for _ in range(2)]
    optimizer = tf.keras.optimizers.Adam(0.05)
    x = _x(batch=32)
    targets = [x[:, :1], x[:, 1:2] * x[:, 2:3]]
    before = block.experts(x).numpy()
    for _ in range(5):
        with tf.GradientTape() as tape:
            mixed, _ = block(x, training=True)
            loss = sum(tf.reduce_mean(tf.square(h(m) - t)) for h, m, t in zip(heads, mixed, targets, strict=True))
        variables = block.trainable_variables + heads[0].trainable_variables + heads[1].trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
    out = block.experts(x).numpy()
    assert np.abs(out - before).max() > 1e-3  # training moved the experts
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(out[:, i] - out[:, j]).max() > 1e-3


@pytest.mark.parametrize(
    ("num_experts", "units", "groups", "expected"),
    [
        (8, [6], None, 8),  # automatic: one group per expert
        (8, [6, 5], None, 8),
        (5, [6], None, 5),
        (1, [6], None, 1),
        (8, [6], 2, 2),  # explicit: groups of several experts (repeated weights, summed)
        (8, [6, 5], 4, 4),
    ],
)
def test_expert_groups_compute_what_one_group_computes(num_experts, units, groups, expected):
    """Experts in groups (independent chains for the inter-op pool): same weights, same outputs and gradients."""
    x = _x(batch=16)
    whole = MMoE(2, num_experts, units, seed=3, expert_groups=1)
    grouped = MMoE(2, num_experts, units, seed=3, expert_groups=groups)
    with tf.GradientTape(persistent=True) as tape:
        outs = [block(x, training=True) for block in (whole, grouped)]
        losses = [tf.add_n([tf.reduce_sum(tf.square(m)) for m in mixed]) for mixed, _ in outs]
    assert grouped._groups() == expected and whole._groups() == 1
    for a, b in zip(tf.nest.flatten(outs[0]), tf.nest.flatten(outs[1]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # the partial mixtures add up in another order
    grads = [
        tape.gradient(loss, block.trainable_variables) for loss, block in zip(losses, (whole, grouped), strict=True)
    ]
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    inference = grouped.call(x)  # inference outside grouped_inference (exports) keeps one chain: exactly one group's
    for a, b in zip(tf.nest.flatten(inference), tf.nest.flatten(whole(x)), strict=True):
        np.testing.assert_array_equal(a, b)
    with grouped_inference():  # Keras' own predict / evaluate steps: the groups, exactly as in training
        in_groups = grouped.call(x)
    for a, b in zip(tf.nest.flatten(in_groups), tf.nest.flatten(outs[1]), strict=True):
        np.testing.assert_array_equal(a, b)
    if expected > 1:
        groups_out = grouped.experts(x, groups=expected)
        assert len(groups_out) == expected and groups_out[0].shape == (16, num_experts // expected, units[-1])
        np.testing.assert_allclose(tf.concat(groups_out, axis=1), whole.experts(x), rtol=1e-6, atol=1e-6)


def test_expert_groups_fall_back_or_refuse_where_they_cannot_apply():
    assert MMoE(2, 8, [4], expert_dropout=0.1)._groups() == 1  # automatic: dropout keeps one group
    block = MMoE(2, 8, [4], expert_norm="batch", expert_groups=2)
    with pytest.raises(ValueError, match="expert_groups=2 needs MLP experts"):
        block(_x())
    assert MMoE(2, 4, [4], expert_type="cross")._groups() == 1
    with pytest.raises(ValueError, match="must divide num_experts"):
        MMoE(2, 8, [4], expert_groups=3)
    bank = ExpertBank(6, [4], seed=0)
    bank(_x())
    with pytest.raises(ValueError, match="cannot run 6 experts in 4 groups"):
        bank(_x(), groups=4)


# --- config, validation, saving -----------------------------------------------------------------

LAYER_CASES = [
    (ExpertBank, dict(num_experts=3, units=[5, 4], activation="tanh", dropout=0.1, normalization="batch", seed=1)),
    (CrossExpertBank, dict(num_experts=2, units=[4], num_cross_layers=2, projection_dim=2, normalization="layer")),
    (MMoE, dict(num_gates=2, num_experts=3, expert_units=[4], gate_hidden_units=[3], gate_temperature=2.0)),
    (MMoE, dict(num_gates=2, num_experts=4, expert_units=[4], expert_groups=2, seed=2)),
    (MMoE, dict(num_gates=1, num_experts=2, expert_units=4, expert_type="cross", cross_layers=1, seed=3)),
]


def _call(layer, cls):
    if cls is TaskGate:
        return layer((_experts(), _x()))
    return layer(_x())


@pytest.mark.parametrize(("cls", "kwargs"), [*LAYER_CASES, (TaskGate, dict(num_experts=3, hidden_units=[4]))])
def test_config_round_trip(cls, kwargs):
    layer = cls(**kwargs)
    out = _call(layer, cls)
    config = layer.get_config()
    params = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
    assert params <= set(config), params - set(config)
    clone = cls.from_config(config)
    _call(clone, cls)
    clone.set_weights(layer.get_weights())
    for a, b in zip(tf.nest.flatten(out), tf.nest.flatten(_call(clone, cls)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert tf.keras.utils.get_registered_name(cls) == f"mmoe_tf>{cls.__name__}"


@pytest.mark.parametrize(
    ("cls", "kwargs", "name"),
    [
        (ExpertBank, dict(num_experts=0, units=[4]), "num_experts"),
        (ExpertBank, dict(num_experts=2, units=[]), "units"),
        (ExpertBank, dict(num_experts=2, units=[4, 0]), "units"),
        (ExpertBank, dict(num_experts=2, units=4, dropout=1.0), "dropout"),
        (ExpertBank, dict(num_experts=2, units=4, normalization="group"), "normalization"),
        (ExpertBank, dict(num_experts=2, units=4, implementation="fast"), "implementation"),
        (ExpertBank, dict(num_experts=2, units=4, implementation="loop:gemm"), "implementation"),
        (ExpertBank, dict(num_experts=2, units=4, seed=-1), "seed"),
        (CrossExpertBank, dict(num_experts=2, units=4, num_cross_layers=0), "num_cross_layers"),
        (CrossExpertBank, dict(num_experts=2, units=4, projection_dim=0), "projection_dim"),
        (CrossExpertBank, dict(num_experts=2, units=4, diag_scale=-1.0), "diag_scale"),
        (TaskGate, dict(num_experts=0), "num_experts"),
        (TaskGate, dict(num_experts=2, temperature=0.0), "temperature"),
        (TaskGate, dict(num_experts=2, dropout=-0.1), "dropout"),
        (TaskGate, dict(num_experts=2, hidden_units=[-3]), "hidden_units"),
        (MMoE, dict(num_gates=0, num_experts=2, expert_units=[4]), "num_gates"),
        (MMoE, dict(num_gates=1, num_experts=2, expert_units=[4], expert_type="moe"), "expert_type"),
        (MMoE, dict(num_gates=1, num_experts=2, expert_units=[4], gate_dropout=1.5), "gate_dropout"),
        (MMoE, dict(num_gates=1, num_experts=2, expert_units=[4], expert_norm="x"), "expert_norm"),
    ],
)
def test_invalid_arguments_name_the_argument(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):
        cls(**kwargs)


def test_num_experts_message():
    with pytest.raises(ValueError, match=r"num_experts must be >= 1, got 0"):
        ExpertBank(0, [4])


def test_input_shape_errors():
    with pytest.raises(ValueError, match="num_experts=3"):
        ExpertBank(3, 4)(tf.zeros([2, 4, 5]))
    with pytest.raises(ValueError, match="num_experts=3"):
        TaskGate(3)((tf.zeros([2, 2, 5]), tf.zeros([2, 4])))


@pytest.fixture(scope="module")
def trained_model():
    """A model with an MLP MMoE (batch norm, dropout) and a cross OMoE (layer norm); every weight moved."""
    inp = tf.keras.Input([D], name="x")
    mixed, weights = MMoE(2, 3, [6, 4], expert_norm="batch", expert_dropout=0.1, gate_dropout=0.3, seed=0)(inp)
    cross_mixed, _ = MMoE(1, 2, [4], expert_type="cross", cross_layers=1, expert_norm="layer", seed=1)(inp)
    model = tf.keras.Model(inp, {"a": mixed[0], "b": mixed[1] + cross_mixed[0], "w": weights[1]})
    x = _x(batch=8).numpy()
    model(x, training=True)  # moves the batch-norm statistics away from their initial values
    rng = np.random.RandomState(0)
    for v in model.trainable_weights:  # weights no longer equal to their seeded initial values
        v.assign_add(0.1 * rng.randn(*v.shape).astype("float32"))
    return model, x, {k: v.numpy() for k, v in model(x).items()}


def test_keras_file_round_trip(tmp_path, trained_model):
    model, x, expected = trained_model
    model.save(tmp_path / "m.keras")
    loaded = tf.keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.layers[1], MMoE)
    actual = loaded(x)
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-6, atol=1e-7)


def test_saved_model_loads_without_python_classes(tmp_path, trained_model):
    model, x, expected = trained_model
    tf.saved_model.save(model, str(tmp_path / "sm"))
    loaded = tf.saved_model.load(str(tmp_path / "sm"))  # generic restored objects, not our classes
    assert not isinstance(loaded, tf.keras.layers.Layer)
    out = loaded.signatures["serving_default"](x=tf.constant(x))
    got = sorted((v.numpy() for v in out.values()), key=lambda a: (a.shape[-1], float(a.sum())))
    want = sorted(expected.values(), key=lambda a: (a.shape[-1], float(a.sum())))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded(tf.constant(x))["a"], expected["a"], rtol=1e-5, atol=1e-6)
