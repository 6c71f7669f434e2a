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


def _fit_on_in_process_cluster(directory: str) -> None:
    """Run in a fresh process: 2 workers + 2 ps as in-process servers, fit 2 x 4 steps on ``file_shard_input``."""
    import json
    import socket

    import mmoe_tf  # noqa: F401
    from mmoe_tf.models import build_model
    from training.parameter_server import bytes_per_task, file_shard_input, make_partitioner

    socks = [socket.socket() for _ in range(4)]
    for s in socks:
        s.bind(("localhost", 0))
    hosts = [f"localhost:{s.getsockname()[1]}" for s in socks]
    for s in socks:
        s.close()
    spec = tf.train.ClusterSpec({"worker": hosts[:2], "ps": hosts[2:]})
    threads = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=4)  # 1 thread deadlocks in-process servers
    for job, count in (("worker", 2), ("ps", 2)):
        for i in range(count):
            tf.distribute.Server(spec, job_name=job, task_index=i, protocol="grpc", config=threads, start=True)
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(spec, rpc_layer="grpc")
    strategy = tf.distribute.experimental.ParameterServerStrategy(
        resolver, variable_partitioner=make_partitioner("min_size", 1024, 2)
    )
    df, schema = load_default()  # the shards' schema
    with strategy.scope():
        model = build_model(schema.model_config(num_experts=2, expert_units=[8], tower_units=[4]), df.head(500))
    history = model.fit(file_shard_input(strategy, directory, schema, batch_size=32), epochs=2, steps_per_epoch=4)
    print(json.dumps({"epochs": len(history.history["loss"]), "tasks": sorted(bytes_per_task(model))}))


def test_file_shard_input_trains_on_a_parameter_server_cluster(shards, repo_root):
    import json
    import os
    import subprocess
    import sys

    out, _, _ = shards
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1", "PYTHONPATH": str(repo_root)}
    proc = subprocess.run(
        [sys.executable, __file__, str(out)], cwd=repo_root, env=env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"epochs": 2, "tasks": ["ps:0", "ps:1"]}


if __name__ == "__main__":
    import sys

    _fit_on_in_process_cluster(sys.argv[1])
