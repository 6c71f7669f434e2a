"""In-memory and TFRecord pipelines feed a model identically; a NaN label never contributes to the loss."""

import functools

import numpy as np
import pytest
import tensorflow as tf

import mmoe_tf
from data import feature_arrays, labels_and_weights, make_dataset, read_manifest, tfrecord_dataset, write_tfrecords
from data.sample import SAMPLE_CSV, SAMPLE_DIR, load_default

N_ROWS = 600


@pytest.fixture(scope="module")
def sample():
    df, schema = load_default()
    return df.iloc[:N_ROWS].reset_index(drop=True), schema


@pytest.fixture(scope="module")
def model(sample):
    df, schema = sample
    config = schema.model_config(num_experts=2, expert_units=(8,), tower_units=(4,), seed=3)
    return mmoe_tf.build_model(config, adapt_data=feature_arrays(df, schema))


@pytest.fixture(scope="module")
def shards(sample, tmp_path_factory):
    df, schema = sample
    out = tmp_path_factory.mktemp("tfrecords")
    write_tfrecords(df, schema, out, num_shards=3, progress=False)
    return out


def _rows(ds):
    """All batches of a dataset as numpy: a list of (features, labels, weights)."""
    return [tf.nest.map_structure(lambda t: t.numpy(), element) for element in ds]


def _assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        tf.nest.assert_same_structure(x, y)
        for u, v in zip(tf.nest.flatten(x), tf.nest.flatten(y), strict=True):
            np.testing.assert_array_equal(u, v)


def test_make_dataset_structure_and_masking(sample):
    df, schema = sample
    ds = make_dataset(df, schema, batch_size=128)
    features, labels, weights = ds.element_spec
    assert set(features) == set(schema.feature_names) and set(labels) == set(weights) == {"click", "satisfaction"}
    assert features["user_id"].dtype == tf.string and features["hour"].dtype == tf.int64
    assert features["item_price"].dtype == tf.float32 and features["item_price"].shape.as_list() == [None]
    batches = _rows(ds)
    assert [len(b[1]["click"]) for b in batches] == [128, 128, 128, 128, 88]
    sat_w = np.concatenate([b[2]["satisfaction"] for b in batches])
    sat_y = np.concatenate([b[1]["satisfaction"] for b in batches])
    observed = df["satisfaction"].notna().to_numpy()
    np.testing.assert_array_equal(sat_w, observed.astype(np.float32))
    assert np.isfinite(sat_y).all() and (sat_y[~observed] == 0).all()
    np.testing.assert_array_equal(sat_y[observed], df["satisfaction"].to_numpy()[observed])


def test_features_only_dataset_needs_exactly_the_feature_columns(sample):
    """``with_labels=False`` (data for ``predict``) takes a table of the feature columns alone."""
    df, schema = sample
    only = df[list(schema.feature_columns)].head(10)  # no timestamp, labels, p_click, p_satisfaction
    ds = make_dataset(only, schema, batch_size=4, with_labels=False)
    assert set(ds.element_spec) == set(schema.feature_names)
    assert sum(len(b["user_id"]) for b in ds.as_numpy_iterator()) == 10
    assert set(feature_arrays(only, schema)) == set(schema.feature_names)
    with pytest.raises(ValueError, match=r"missing column 'device' \(feature 'device'\)"):
        make_dataset(only.drop(columns=["device"]), schema, with_labels=False)
    with pytest.raises(ValueError, match=r"missing label column 'click'"):
        make_dataset(only, schema)  # training data still needs its labels


def test_make_dataset_shuffle_is_seeded_and_complete(sample):
    df, schema = sample

    def ids(seed):
        return np.concatenate([b[0]["user_id"] for b in _rows(make_dataset(df, schema, 100, shuffle=True, seed=seed))])

    first, again, other = ids(1), ids(1), ids(2)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert sorted(first) == sorted(df["user_id"].str.encode("utf-8"))


@pytest.mark.parametrize("shuffle", [False, True])
def test_in_memory_dataset_runs_without_the_autotuner(sample, shuffle):
    """A fixed prefetch and tf.data's autotuner off (docs/performance.md, Design decisions); TFRecords keep it."""
    df, schema = sample
    ds = make_dataset(df, schema, 100, shuffle=shuffle)
    assert ds.options().autotune.enabled is False
    assert sum(len(b[0]["user_id"]) for b in _rows(ds)) == len(df)


def test_targets_fn_applied_per_batch(sample):
    df, schema = sample
    task = schema.task("satisfaction")
    esmm = schema.model_config(tasks=(schema.task("click"), mmoe_tf.TaskSpec(task.name, conditional_on="click")))
    ds = make_dataset(df, schema, batch_size=600, targets_fn=functools.partial(mmoe_tf.add_joint_targets, esmm))
    _, labels, weights = next(iter(ds))
    joint = labels["click_and_satisfaction"].numpy()
    expected = df["click"].to_numpy() * np.nan_to_num(df["satisfaction"].to_numpy())
    np.testing.assert_array_equal(joint, expected)
    np.testing.assert_array_equal(weights["click_and_satisfaction"].numpy(), np.ones(N_ROWS))


def test_tfrecord_round_trip_equals_in_memory(sample, shards, tmp_path):
    df, schema = sample
    expected = _rows(make_dataset(df, schema, batch_size=97))
    _assert_same_batches(_rows(tfrecord_dataset(shards, schema, batch_size=97)), expected)
    # written from the CSV file in small chunks, gzip'd, read back through a glob pattern
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("".join((SAMPLE_DIR / SAMPLE_CSV).read_text().splitlines(keepends=True)[: N_ROWS + 1]))
    write_tfrecords(csv_path, schema, tmp_path / "gz", num_shards=4, chunksize=64, compression="GZIP", progress=False)
    assert read_manifest(tmp_path / "gz")["num_rows"] == N_ROWS
    streamed = tfrecord_dataset(str(tmp_path / "gz" / "part-*.tfrecord.gz"), schema, batch_size=97)
    _assert_same_batches(_rows(streamed), expected)
    # written from Parquet record batches
    df.to_parquet(tmp_path / "rows.parquet")
    write_tfrecords(tmp_path / "rows.parquet", schema, tmp_path / "pq", num_shards=2, chunksize=128, progress=False)
    _assert_same_batches(_rows(tfrecord_dataset(tmp_path / "pq", schema, batch_size=97)), expected)


def test_same_predictions_and_loss_from_both_paths(sample, shards, model):
    df, schema = sample
    in_memory, streamed = make_dataset(df, schema, batch_size=128), tfrecord_dataset(shards, schema, batch_size=128)
    pred_a, pred_b = model.predict(in_memory, verbose=0), model.predict(streamed, verbose=0)
    assert set(pred_a) == {"click", "satisfaction"} and pred_a["click"].shape == (N_ROWS, 1)
    for name in pred_a:
        np.testing.assert_array_equal(pred_a[name], pred_b[name])
    loss_a = model.evaluate(in_memory, verbose=0, return_dict=True)
    loss_b = model.evaluate(streamed, verbose=0, return_dict=True)
    assert np.isfinite(loss_a["loss"])
    assert loss_a == pytest.approx(loss_b, rel=1e-6)


def test_tfrecord_shuffle_is_seeded_and_complete(sample, shards):
    df, schema = sample

    def ids(seed):
        ds = tfrecord_dataset(shards, schema, batch_size=50, shuffle=True, seed=seed, shuffle_buffer=64)
        return np.concatenate([b[0]["user_id"] for b in _rows(ds)])

    first = ids(4)
    np.testing.assert_array_equal(first, ids(4))
    assert sorted(first) == sorted(df["user_id"].str.encode("utf-8"))
    assert not np.array_equal(first, df["user_id"].str.encode("utf-8").to_numpy())


def test_tfrecord_schema_mismatch_is_reported(sample, shards):
    _, schema = sample
    other = schema.replace(features=schema.features[:-1])
    with pytest.raises(ValueError, match="shards were written for features"):
        tfrecord_dataset(shards, other)
    with pytest.raises(FileNotFoundError, match="no TFRecord files match"):
        tfrecord_dataset(str(shards / "nothing-*.tfrecord"), schema)


def test_masked_label_never_contributes_to_the_loss(sample, model):
    """Unobserved satisfaction labels: the loss equals the loss without those rows, whatever the placeholder."""
    df, schema = sample
    features = feature_arrays(df, schema)
    labels, weights = labels_and_weights(df, schema)
    unobserved = weights["satisfaction"] == 0
    assert 0 < unobserved.sum() < N_ROWS

    def batches(sat_labels, rows=None):
        rows = slice(None) if rows is None else rows
        ys = {"click": labels["click"][rows], "satisfaction": sat_labels[rows]}
        ws = {k: v[rows] for k, v in weights.items()}
        xs = {k: v[rows] for k, v in features.items()}
        return tf.data.Dataset.from_tensor_slices((xs, ys, ws)).batch(N_ROWS)

    # 1. evaluate(): masked rows add nothing — the weighted sum equals the sum over the observed rows only
    masked = model.evaluate(batches(labels["satisfaction"]), verbose=0, return_dict=True)["satisfaction_loss"]
    kept = ~unobserved
    dropped = model.evaluate(batches(labels["satisfaction"], kept), verbose=0, return_dict=True)
    # Keras averages over the batch size, so compare sums: masked·N == dropped·N_observed
    assert masked * N_ROWS == pytest.approx(dropped["satisfaction_loss"] * kept.sum(), rel=1e-5)

    # 2. the placeholder value of a masked label is irrelevant: garbage placeholders give the same loss
    garbage = np.where(unobserved, 1.0, labels["satisfaction"]).astype(np.float32)
    assert np.isfinite(masked)
    assert model.evaluate(batches(garbage), verbose=0, return_dict=True)["satisfaction_loss"] == pytest.approx(masked)


def test_masked_training_equals_training_without_those_rows(sample):
    """Single-task satisfaction model, plain SGD, one full batch: masked rows ≡ rows removed.

    Keras divides the weighted loss by the batch size, so the masked run uses lr·N/N_observed;
    the updates are then identical.
    """
    df, schema = sample
    sat_schema = schema.replace(tasks=(schema.task("satisfaction"),))
    observed = df["satisfaction"].notna().to_numpy()
    lr = 0.05
    config = sat_schema.model_config(
        architecture="shared_bottom", expert_units=(8,), tower_units=(4,), optimizer="sgd", learning_rate=lr, seed=5
    )
    model = mmoe_tf.build_model(config, adapt_data=feature_arrays(df, schema))
    initial = model.get_weights()
    before = [w.numpy() for w in model.trainable_weights]
    runs = {}
    for name, rows, rate in (("masked", df, lr * len(df) / observed.sum()), ("dropped", df[observed], lr)):
        model.set_weights(initial)
        mmoe_tf.compile_model(model)
        model.optimizer.learning_rate.assign(rate)
        history = model.fit(make_dataset(rows, sat_schema, batch_size=len(df)), epochs=3, verbose=0)
        runs[name] = (history.history["loss"], [w.numpy() for w in model.trainable_weights])
    for a, b in zip(runs["masked"][1], runs["dropped"][1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert any(not np.allclose(a, b) for a, b in zip(before, runs["dropped"][1], strict=True))
    masked_loss = np.array(runs["masked"][0]) * len(df) / observed.sum()
    np.testing.assert_allclose(masked_loss, runs["dropped"][0], rtol=1e-5)


def test_default_sample_is_learnable_by_a_small_mmoe():
    """A small MMoE trained for 3 epochs on 3,200 sample rows ranks clicks well above chance."""
    from data.generators import oracle_auc
    from data.splits import random_split

    df, schema = load_default()
    train, test = random_split(df.head(4000), (0.8, 0.2), seed=0)
    config = schema.model_config(num_experts=4, expert_units=(32,), tower_units=(16,), learning_rate=3e-3, seed=1)
    model = mmoe_tf.build_model(config, adapt_data=feature_arrays(train, schema))
    model.fit(make_dataset(train, schema, batch_size=128, shuffle=True, seed=1), epochs=3, verbose=0)
    pred = model.predict(make_dataset(test, schema, batch_size=1024, with_labels=False), verbose=0)["click"][:, 0]
    scored = test.assign(p_click=pred)
    learned, best = oracle_auc(scored, "click"), oracle_auc(test, "click")
    print(f"click AUC on 800 held-out rows: model {learned:.3f}, oracle {best:.3f}")
    assert 0.7 < learned <= best + 0.02


def test_permuted_batches_cover_every_row_once_per_pass_and_reshuffle():
    from data.pipeline import permuted_batches

    ds = permuted_batches(10, 4, seed=3)
    assert int(ds.cardinality()) == 3
    passes = [np.concatenate([b.numpy() for b in ds]) for _ in range(3)]
    for p in passes:
        assert sorted(p) == list(range(10))
    assert not np.array_equal(passes[0], passes[1])  # a new order every epoch
    again = np.concatenate([b.numpy() for b in permuted_batches(10, 4, seed=3)])
    np.testing.assert_array_equal(passes[0], again)  # fixed by the seed
    repeated = permuted_batches(10, 4, seed=3, repeat=True, drop_remainder=True)
    assert int(repeated.cardinality()) == int(tf.data.INFINITE_CARDINALITY)
    assert [b.shape[0] for b in repeated.take(6)] == [4] * 6


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_table_order_batches_are_slices_of_the_gathered_rows(sample, drop_remainder):
    from data.arrays import typed_feature_arrays, typed_labels_and_weights
    from data.pipeline import row_gatherer

    df, schema = sample
    sliced = _rows(make_dataset(df, schema, batch_size=128, drop_remainder=drop_remainder))
    elements = (typed_feature_arrays(df, schema), *typed_labels_and_weights(df, schema))
    gather = row_gatherer(elements)
    count = len(df) // 128 if drop_remainder else -(-len(df) // 128)
    gathered = [
        tf.nest.map_structure(
            lambda t: t.numpy(), gather(tf.range(i * 128, min((i + 1) * 128, len(df)), dtype=tf.int64))
        )
        for i in range(count)
    ]
    _assert_same_batches(sliced, gathered)
    spec = make_dataset(df, schema, batch_size=128, drop_remainder=drop_remainder).element_spec[0]["item_price"]
    assert spec.shape.as_list() == ([128] if drop_remainder else [None])
    repeated = make_dataset(df, schema, batch_size=128, repeat=True, drop_remainder=drop_remainder)
    _assert_same_batches(_rows(repeated.take(count + 1))[count:], sliced[:1])  # the second pass starts over
