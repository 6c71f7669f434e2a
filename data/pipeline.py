"""In-memory input pipeline: a validated DataFrame → a batched ``tf.data.Dataset`` for ``model.fit``.

Elements are ``(features, labels, sample_weights)``: dicts keyed by feature name / task name, one
scalar per row (the model's raw inputs), batched to ``[B]``. For data larger than memory, use
:mod:`data.tfrecords`, which yields identical batches.

Example:
    >>> ds = make_dataset(df, schema, batch_size=256, shuffle=True, seed=1)  # doctest: +SKIP
    >>> model.fit(ds, epochs=3)                                            # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import tensorflow as tf

from data.arrays import ensure_validated, typed_feature_arrays, typed_labels_and_weights
from data.loading import check_positive_int
from data.schema import Schema

TargetsFn = Callable[[dict, dict], tuple[dict, dict]]


def finish(ds: tf.data.Dataset, with_labels: bool, targets_fn: TargetsFn | None) -> tf.data.Dataset:
    """The tail shared with :func:`data.tfrecords.tfrecord_dataset`: per-batch ``targets_fn``, then prefetch."""
    if with_labels and targets_fn is not None:
        ds = ds.map(lambda f, y, w: (f, *targets_fn(y, w)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def make_dataset(
    df: pd.DataFrame,
    schema: Schema,
    batch_size: int = 256,
    shuffle: bool = False,
    seed: int = 0,
    repeat: bool = False,
    targets_fn: TargetsFn | None = None,
    drop_remainder: bool = False,
    shuffle_buffer: int | None = None,
    with_labels: bool = True,
) -> tf.data.Dataset:
    """A batched, prefetched dataset of ``(features, labels, sample_weights)`` from a table.

    Args:
        df: The table (validated here unless it came from :func:`data.loading.load_table`).
        schema: Features and tasks.
        batch_size: Rows per batch.
        shuffle: Shuffle rows (reshuffled every epoch, reproducibly from ``seed``).
        seed: Shuffle seed.
        repeat: Repeat forever (then pass ``steps_per_epoch`` to ``fit``).
        targets_fn: ``targets_fn(labels, weights) -> (labels, weights)`` applied per batch, e.g.
            ``functools.partial(mmoe_tf.add_joint_targets, config)`` for ESMM tasks.
        drop_remainder: Drop the last partial batch.
        shuffle_buffer: Shuffle buffer size; ``None`` shuffles the whole table.
        with_labels: When False, yield features only (for ``predict`` on unlabelled data).

    Returns:
        A ``tf.data.Dataset``; every feature is a ``[B]`` tensor of float32, int64 or string.
    """
    check_positive_int("batch_size", batch_size)
    df = ensure_validated(df, schema, with_labels=with_labels)
    features = typed_feature_arrays(df, schema)
    elements = (features, *typed_labels_and_weights(df, schema)) if with_labels else features
    columns = tf.nest.map_structure(tf.convert_to_tensor, elements)
    # Shuffle and batch row indices (cheap scalars), then gather whole batches: same row order as
    # shuffling/batching the rows themselves, without per-row tensor overhead.
    ds = tf.data.Dataset.range(len(df))
    if shuffle:
        ds = ds.shuffle(shuffle_buffer or max(len(df), 1), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(
        lambda idx: tf.nest.map_structure(lambda column: tf.gather(column, idx), columns),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return finish(ds, with_labels, targets_fn)
