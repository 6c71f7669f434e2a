"""Sharded input for parameter-server workers: each worker's TFRecord files, together the whole table once."""

import numpy as np
import pytest
import tensorflow as tf

from data.sample import load_default
from data.shards import worker_tfrecord_dataset
from data.tfrecords import write_tfrecords


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    df, schema = load_default()
    df = df.head(203).reset_index(drop=True)
    out = tmp_path_factory.mktemp("shards")
    write_tfrecords(df, schema, out, num_shards=5, progress=False)
    return out, df, schema


def _rows(ds):
    keys = []
    for features, _, _ in ds:
        keys += list(zip(features["item_price"].numpy().tolist(), features["position"].numpy().tolist(), strict=True))
    return keys


@pytest.mark.parametrize("index_as_tensor", [False, True])
def test_workers_read_disjoint_files_covering_the_table(shards, index_as_tensor):
    out, df, schema = shards
    per_worker = []
    for index in range(2):
        worker = tf.constant(index) if index_as_tensor else index
        ds = worker_tfrecord_dataset(out, schema, 2, worker, batch_size=16, shuffle=False, repeat=False)
        per_worker.append(_rows(ds))
    # row i is in shard i % 5; worker 0 reads shards 0, 2, 4 and worker 1 shards 1, 3
    assert len(per_worker[0]) == sum(1 for i in range(len(df)) if i % 5 in (0, 2, 4))
    assert len(per_worker[1]) == sum(1 for i in range(len(df)) if i % 5 in (1, 3))
    table = list(
        zip(df["item_price"].astype(np.float32).tolist(), df["position"].astype(np.float32).tolist(), strict=True)
    )
    assert sorted(per_worker[0] + per_worker[1]) == sorted(table)


def test_shuffled_repeating_worker_stream(shards):
    out, _, schema = shards
    ds = worker_tfrecord_dataset(out, schema, 2, 1, batch_size=32, seed=3)
    first = [b[0]["position"].numpy() for b in ds.take(6)]
    assert all(len(b) == 32 for b in first)  # repeats past its 81 rows without a short batch boundary stop


def test_errors_name_the_problem(shards, tmp_path):
    out, _, schema = shards
    with pytest.raises(ValueError, match=r"5 TFRecord shard\(s\) for 6 workers"):
        worker_tfrecord_dataset(out, schema, 6, 0)
    with pytest.raises(FileNotFoundError, match="no TFRecord manifest"):
        worker_tfrecord_dataset(tmp_path, schema, 2, 0)
