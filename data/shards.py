"""Per-worker input from a directory of TFRecord shards: worker ``i`` of ``n`` reads files ``i, i + n, …`` only.

The shards are those of :func:`data.tfrecords.write_tfrecords` (a ``manifest.json`` lists them). Each worker streams
its own files, so no worker reads the whole table; a worker's files are shuffled, interleaved, batched and parsed as
:func:`data.tfrecords.tfrecord_dataset` does. ``worker_index`` may be a tensor, e.g.
``tf.distribute.coordinator.experimental_get_current_worker_index()`` inside a parameter-server dataset function.

What a worker reads is fixed; how much of it is used per epoch is not: under ``ParameterServerStrategy`` the
coordinator gives steps to whichever worker is free, so a fast worker goes through its files more often than a slow
one. Exactly-once visitation per epoch is not guaranteed (nor needed for SGD); write at least as many shards as
workers, of similar size, so that every worker has data and the shares stay even.

Example:
    >>> ds = worker_tfrecord_dataset("tfrecords/", schema, num_workers=2, worker_index=0)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from data.loading import check_positive_int
from data.pipeline import TargetsFn
from data.schema import Schema
from data.tfrecords import manifest_files, record_batches


def worker_tfrecord_dataset(
    directory: str | Path,
    schema: Schema,
    num_workers: int,
    worker_index: int | tf.Tensor,
    batch_size: int = 256,
    shuffle: bool = True,
    seed: int = 0,
    repeat: bool = True,
    targets_fn: TargetsFn | None = None,
    shuffle_buffer: int = 10_000,
) -> tf.data.Dataset:
    """Batched ``(features, labels, sample_weights)`` from this worker's shards of ``directory``.

    Args:
        directory: Folder written by :func:`data.tfrecords.write_tfrecords`.
        schema: Features and tasks (must match the stored ones).
        num_workers: Workers sharing the shards.
        worker_index: This worker's index (int or scalar int tensor) in ``[0, num_workers)``.
        batch_size: Rows per batch.
        shuffle: Shuffle this worker's file order and rows (bounded buffer), seeded.
        seed: Shuffle seed.
        repeat: Repeat forever (give ``fit`` a ``steps_per_epoch``).
        targets_fn: ``targets_fn(labels, weights) -> (labels, weights)`` applied per batch.
        shuffle_buffer: Rows held by the shuffle buffer.

    Raises:
        ValueError: fewer shards than workers (a worker would get no data), or a schema mismatch.
    """
    check_positive_int("batch_size", batch_size)
    check_positive_int("num_workers", num_workers)
    files, compression = manifest_files(directory, schema)
    if len(files) < num_workers:
        raise ValueError(
            f"{directory}: {len(files)} TFRecord shard(s) for {num_workers} workers; write at least one shard "
            "per worker (data.tfrecords.write_tfrecords(num_shards=...))"
        )
    mine = tf.data.Dataset.from_tensor_slices(files).shard(num_workers, tf.cast(worker_index, tf.int64))
    return record_batches(
        mine,
        -(-len(files) // num_workers),  # at most this many files per worker
        schema,
        compression,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        repeat=repeat,
        targets_fn=targets_fn,
        shuffle_buffer=shuffle_buffer,
    )
