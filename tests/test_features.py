"""FeatureEncoder (raw values → dense vector inside the model), MLP and Tower layers."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from mmoe_tf.config import ModelConfig
from mmoe_tf.feature_specs import FeatureCross, FeatureSpec
from mmoe_tf.feature_state import adapt_state, plain_copy
from mmoe_tf.features import FeatureEncoder
from mmoe_tf.initializers import EmbeddingInitializer
from mmoe_tf.model_inputs import make_inputs, to_model_inputs
from mmoe_tf.models import build_model
from mmoe_tf.towers import MLP, Tower

SPECS = (
    FeatureSpec("price", "numeric"),
    FeatureSpec("age", "numeric", default=30.0),
    FeatureSpec("device", "categorical", dtype="string", embedding_dim=3),
    FeatureSpec("country", "categorical", dtype="string", default="fr", embedding_dim=2),
    FeatureSpec("item", "categorical", dtype="int64", num_oov_buckets=2, embedding_dim=4),
    FeatureSpec("city", "hashed", num_bins=16, embedding_dim=3),
)
WIDTH = 1 + 1 + 3 + 2 + 4 + 3


@pytest.fixture(scope="module")
def adapt_data():
    return {
        "price": np.array([1.0, 2.0, 3.0, np.nan, 4.0], np.float32),
        "age": np.array([20.0, np.nan, 40.0, 20.0, 40.0], np.float32),
        "device": np.array(["ios", "web", "ios", "", None], dtype=object),
        "country": np.array(["fr", "de", "", "de", "fr"], dtype=object),
        "item": np.array([7, 7, 7, 3, 5], np.int64),
        "city": np.array(["paris", "rome", "oslo", "rome", "paris"], dtype=object),
    }


@pytest.fixture(scope="module")
def encoder(adapt_data):
    enc = FeatureEncoder(SPECS, seed=3)
    enc.adapt(adapt_data)
    return enc


def batch(**overrides):
    values = {
        "price": [2.0],
        "age": [25.0],
        "device": ["ios"],
        "country": ["de"],
        "item": [7],
        "city": ["rome"],
    }
    values.update(overrides)
    dtypes = {"item": tf.int64}
    return {k: tf.constant(v, dtype=dtypes.get(k)) for k, v in values.items()}


def test_adapted_state(encoder):
    state = encoder.state
    assert state["price"]["mean"] == pytest.approx(2.5)  # NaN ignored when there is no default
    assert state["age"]["mean"] == pytest.approx(30.0)  # NaN counted as the default 30
    assert list(state["device"]["vocabulary"]) == ["ios", "web"]  # "" and None are missing, most frequent first
    assert list(state["country"]["vocabulary"]) == ["fr", "de"]  # "" filled with the default "fr"
    assert list(state["item"]["vocabulary"]) == [7, 3, 5]
    assert state["city"] == {}


def test_output_shape_and_finite(encoder):
    out = encoder(
        batch(price=[1.0, 2.0], age=[1.0, 2.0], device=["a", "b"], country=["fr", "x"], item=[1, 2], city=["a", "b"])
    )
    assert out.shape == (2, WIDTH)
    assert encoder.output_dim == WIDTH
    assert np.isfinite(out.numpy()).all()


def test_numeric_missing_values(encoder):
    nan = float("nan")
    out = encoder(
        batch(
            price=[nan, np.inf, 2.5],
            age=[nan, 30.0, 50.0],
            device=["ios"] * 3,
            country=["de"] * 3,
            item=[7] * 3,
            city=["rome"] * 3,
        )
    ).numpy()
    # no default: missing → adapted mean → exactly 0 after normalising
    np.testing.assert_allclose(out[:, 0], [0.0, 0.0, 0.0], atol=1e-6)
    # default 30 → normalised like a real 30 (the adapted mean)
    assert out[0, 1] == pytest.approx(out[1, 1], abs=1e-6)
    assert out[2, 1] > out[0, 1]


def test_unseen_categories_go_to_oov(encoder):
    out = encoder(
        batch(
            device=["never-seen", "also-new", "ios"],
            item=[999, -1, 7],
            price=[1.0] * 3,
            age=[1.0] * 3,
            country=["de"] * 3,
            city=["a"] * 3,
        )
    ).numpy()
    assert np.isfinite(out).all()
    device = slice(2, 5)
    np.testing.assert_array_equal(out[0, device], out[1, device])  # one OOV bucket: same embedding
    assert not np.array_equal(out[0, device], out[2, device])


def test_missing_string_uses_default_or_oov(encoder):
    out = encoder(
        batch(
            country=["", "fr", "zz"],
            device=["", "zz", "ios"],
            price=[1.0] * 3,
            age=[1.0] * 3,
            item=[7] * 3,
            city=["", "a", "b"],
        )
    ).numpy()
    country, device = slice(5, 7), slice(2, 5)
    np.testing.assert_array_equal(out[0, country], out[1, country])  # "" → default "fr"
    np.testing.assert_array_equal(out[0, device], out[1, device])  # "" without default → OOV
    assert np.isfinite(out).all()


def test_adapt_from_dataframe_matches_dict(adapt_data):
    enc = FeatureEncoder(SPECS)
    enc.adapt(pd.DataFrame(adapt_data))
    assert plain_copy(enc.state) == adapt_state(SPECS, adapt_data)
    assert enc.state["device"]["vocabulary"] == ["ios", "web"]
    assert enc.state["price"]["mean"] == pytest.approx(2.5)


def test_adapt_errors_name_the_feature(adapt_data):
    data = {k: v for k, v in adapt_data.items() if k != "item"}
    with pytest.raises(ValueError, match="'item'"):
        adapt_state(SPECS, data)
    with pytest.raises(ValueError, match=r"'price'.*non-numbers at rows \[1\]"):
        adapt_state(SPECS, {**adapt_data, "price": np.array([1.0, "cheap", 2.0], dtype=object)})
    with pytest.raises(ValueError, match=r"'item'.*non-integer values at rows \[0\]"):
        adapt_state(SPECS, {**adapt_data, "item": np.array([1.5, 2.0])})


def test_unadapted_encoder_refuses_to_build():
    enc = FeatureEncoder([FeatureSpec("price", "numeric")])
    with pytest.raises(ValueError, match=r"not adapted.*price"):
        enc({"price": tf.constant([1.0])})


def test_fixed_vocabulary_and_max_tokens():
    spec = FeatureSpec("color", "categorical", dtype="string", max_tokens=2)
    state = adapt_state([spec], {"color": np.array(["r", "g", "g", "b", "b", "b"], dtype=object)})
    assert state["color"]["vocabulary"] == ["b", "g"]
    fixed = FeatureEncoder([FeatureSpec("color", "categorical", dtype="string", vocabulary=("r", "g"))])
    assert fixed({"color": tf.constant(["r", "x"])}).shape == (2, 8)  # no adapt needed


def test_config_round_trip_same_outputs(encoder):
    x = batch(
        price=[1.0, 9.0], age=[1.0, np.nan], device=["ios", "?"], country=["", "de"], item=[3, 4], city=["rome", "x"]
    )
    clone = FeatureEncoder.from_config(encoder.get_config())
    clone(x)
    clone.set_weights(encoder.get_weights())
    np.testing.assert_array_equal(clone(x).numpy(), encoder(x).numpy())
    assert tf.keras.utils.get_registered_object("mmoe_tf>FeatureEncoder") is FeatureEncoder


def test_make_inputs_dtypes():
    inputs = make_inputs(SPECS)
    assert inputs["price"].dtype == tf.float32 and inputs["device"].dtype == tf.string
    assert inputs["item"].dtype == tf.int64 and inputs["price"].shape.as_list() == [None]


def test_mlp_and_tower():
    mlp = MLP((8, 4), normalization="layer", dropout=0.1, seed=1)
    assert mlp(tf.ones([3, 5])).shape == (3, 4)
    binary = Tower((6,), task_type="binary", seed=2, name="click")
    out = binary(tf.random.normal([5, 4], seed=1)).numpy()
    assert out.shape == (5, 1) and ((out > 0) & (out < 1)).all()
    regression = Tower((), task_type="regression", seed=2)
    assert regression(tf.ones([2, 4])).shape == (2, 1)
    clone = Tower.from_config(binary.get_config())
    assert clone.get_config() == binary.get_config()
    assert MLP.from_config(mlp.get_config()).get_config() == mlp.get_config()
    with pytest.raises(ValueError, match="task_type"):
        Tower((4,), task_type="ordinal")
    with pytest.raises(ValueError, match="normalization"):
        MLP((4,), normalization="group")


def test_to_model_inputs_converts_and_names_bad_rows():
    specs = [
        FeatureSpec("price", "numeric"),
        FeatureSpec("item", "categorical", dtype="int64"),
        FeatureSpec("device", "categorical", dtype="string", default="web"),
    ]
    frame = pd.DataFrame(
        {"price": pd.array([1.5, None], dtype="Float64"), "item": [3, 4], "device": ["ios", None], "extra": [0, 0]}
    )
    out = to_model_inputs(specs, frame)
    assert out["price"].dtype == np.float32 and np.isnan(out["price"][1])
    assert out["item"].dtype == np.int64 and out["device"].tolist() == ["ios", "web"]
    with pytest.raises(ValueError, match=r"lack features \['device'\]"):
        to_model_inputs(specs, {"price": [1.0], "item": [1]})
    with pytest.raises(ValueError, match=r"'price' is numeric but holds non-numbers at rows \[1\] \(e.g. 'abc'\)"):
        to_model_inputs(specs, {"price": np.array([1.0, "abc"], dtype=object), "item": [1, 2], "device": ["a", "b"]})
    with pytest.raises(ValueError, match=r"'item' is int64 but holds missing or non-integer values at rows \[0\]"):
        to_model_inputs(specs, {"price": [1.0], "item": [np.nan], "device": ["a"]})
    with pytest.raises(ValueError, match="different numbers of rows"):
        to_model_inputs(specs, {"price": [1.0, 2.0], "item": [1], "device": ["a"]})


def test_grouped_numeric_normalisation_matches_keras_normalization(encoder):
    """All numeric features are normalised together; each column equals Keras' per-feature Normalization."""
    values = batch(
        price=[0.5, float("nan"), 9.0],
        age=[float("nan"), 18.0, 70.0],
        device=["ios"] * 3,
        country=["de"] * 3,
        item=[7] * 3,
        city=["rome"] * 3,
    )
    out = encoder(values).numpy()
    for column, spec in ((0, SPECS[0]), (1, SPECS[1])):
        state = encoder.state[spec.name]
        fill = spec.default if spec.default is not None else state["mean"]
        raw = tf.where(tf.math.is_finite(values[spec.name]), values[spec.name], fill)[:, tf.newaxis]
        reference = tf.keras.layers.Normalization(axis=-1, mean=[state["mean"]], variance=[state["variance"]])
        np.testing.assert_array_equal(out[:, column], reference(raw).numpy()[:, 0])


def test_output_keeps_the_features_order_when_numeric_features_are_interleaved(adapt_data):
    """Grouping numeric features must not move columns: embeddings sit where their feature is listed."""
    specs = (SPECS[2], SPECS[0], SPECS[4], SPECS[1])  # device(3), price(1), item(4), age(1)
    interleaved = FeatureEncoder(specs, state=adapt_state(specs, adapt_data), seed=3)
    numeric_first = FeatureEncoder(
        (SPECS[0], SPECS[1], SPECS[2], SPECS[4]), state=adapt_state(specs, adapt_data), seed=3
    )
    values = batch(
        price=[2.0, 9.0], age=[25.0, 60.0], device=["ios", "web"], country=["de"] * 2, item=[7, 3], city=["x"] * 2
    )
    a, b = interleaved(values).numpy(), numeric_first(values).numpy()
    np.testing.assert_array_equal(a[:, 3], b[:, 0])  # price
    np.testing.assert_array_equal(a[:, 8], b[:, 1])  # age
    device_a = interleaved(values)[:, :3]
    device_b = tf.gather(numeric_first._embeddings[2].embeddings, numeric_first._preprocessors[2](values["device"]))
    assert device_a.shape == device_b.shape


def test_crossed_features_embed_each_combination_after_the_missing_value_defaults(adapt_data):
    crosses = (("country", "city"), FeatureCross(("device", "item"), num_bins=4096, embedding_dim=5))
    enc = FeatureEncoder(SPECS, state=adapt_state(SPECS, adapt_data), seed=3, crosses=crosses)
    plain = FeatureEncoder(SPECS, state=adapt_state(SPECS, adapt_data), seed=3)
    assert enc.output_dim == WIDTH + 8 + 5
    values = batch(
        price=[1.0] * 4, age=[1.0] * 4, device=["ios", "ios", "web", "ios"], country=["fr", "", "fr", "de"],
        item=[7, 7, 7, 3], city=["rome"] * 4,
    )  # fmt: skip
    x = enc(values).numpy()
    np.testing.assert_array_equal(x[:, :WIDTH], plain(values).numpy())  # the features' columns do not move
    country_x_city, device_x_item = x[:, WIDTH : WIDTH + 8], x[:, WIDTH + 8 :]
    np.testing.assert_array_equal(country_x_city[0], country_x_city[1])  # "" is country's default "fr"
    assert not np.array_equal(country_x_city[0], country_x_city[3])
    assert len({tuple(row) for row in device_x_item}) == 3  # (ios,7) twice, (web,7), (ios,3)
    np.testing.assert_array_equal(device_x_item[0], device_x_item[1])
    clone = FeatureEncoder.from_config(enc.get_config())
    clone(values)
    clone.set_weights(enc.get_weights())
    np.testing.assert_array_equal(clone(values).numpy(), x)
    assert clone.crosses == enc.crosses == (FeatureCross(("country", "city")), crosses[1])


@pytest.mark.parametrize(
    "crosses, message",
    [
        ([["device", "price"]], "names numeric features ['price']"),
        ([["device", "nope"]], "names unknown features ['nope']"),
        ([["device"]], "at least two distinct features"),
        ([["device", "device"]], "at least two distinct features"),
        ([["device", "city"], ["device", "city"]], "lists the cross 'device_x_city' twice"),
        ([{"features": ["device", "city"], "num_bins": 0}], "'num_bins' must be a positive integer"),
        ([{"features": ["device", "city"], "bins": 8}], "unknown key(s) ['bins']"),
    ],
)
def test_bad_feature_crosses_are_refused_by_name(crosses, message):
    with pytest.raises(ValueError) as err:
        ModelConfig(features=SPECS, feature_crosses=crosses)
    assert message in str(err.value)
    config = ModelConfig(features=SPECS, feature_crosses=[["device", "city"]])
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["feature_crosses"] == [
        {"features": ["device", "city"], "num_bins": 1024, "embedding_dim": 8}
    ]


def test_unseen_values_start_at_zero_and_large_tables_start_small(encoder):
    out = encoder(batch(device=["never-seen"], item=[999])).numpy()
    np.testing.assert_array_equal(out[0, 2:5], 0.0)  # device's one OOV row
    np.testing.assert_array_equal(out[0, 7:11], 0.0)  # item's two OOV rows: 999 hashes into one of them
    small = EmbeddingInitializer(seed=5)((300, 4))
    keras = tf.keras.initializers.RandomUniform(-0.05, 0.05, seed=5)((300, 4))
    np.testing.assert_array_equal(small.numpy(), keras.numpy())  # up to 400 rows: Keras' default draw
    large = EmbeddingInitializer(zero_rows=2, seed=5)((40_000, 3)).numpy()
    assert np.abs(large).max() <= 40_000**-0.5 and np.abs(large[2:]).max() > 0.8 * 40_000**-0.5
    np.testing.assert_array_equal(large[:2], 0.0)
    clone = tf.keras.initializers.deserialize(tf.keras.initializers.serialize(EmbeddingInitializer(2, seed=5)))
    assert isinstance(clone, EmbeddingInitializer) and clone.get_config() == {"zero_rows": 2, "seed": 5}


def test_adapted_vocabularies_are_not_tracked_by_keras(adapt_data):
    """Keras walks every tracked list entry each time it lists a model's variables (seconds per fit call for
    100,000-value vocabularies), so neither the state nor the lookups may hold a vocabulary in a tracked list."""
    data = dict(adapt_data, item=np.arange(5000, dtype=np.int64))
    data = {k: np.resize(v, 5000) for k, v in data.items()}
    enc = FeatureEncoder(SPECS, seed=3)
    enc.adapt(data)
    clone = FeatureEncoder.from_config(enc.get_config())
    model = build_model(ModelConfig(features=SPECS), adapt_data=data, compile=False)  # holds a copy of the state
    assert len(model.get_layer("features").state["item"]["vocabulary"]) == 5000
    for layer in (enc, clone, model):
        lengths = [n for module in (layer, *layer.submodules) for v in vars(module).values() for n in _tracked(v)]
        assert lengths and max(lengths) < 100


def _tracked(value):
    """Lengths of the Keras-tracked lists and dicts in ``value``, nested ones included."""
    if isinstance(value, tf.__internal__.tracking.TrackableDataStructure):
        yield len(value)
        for item in value.values() if hasattr(value, "values") else value:
            yield from _tracked(item)
