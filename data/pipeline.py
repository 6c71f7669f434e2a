"""In-memory input pipeline: a validated DataFrame → a batched ``tf.data.Dataset`` for ``model.fit``.

Elements are ``(features, labels, sample_weights)``: dicts keyed by feature name / task name, one
scalar per row (the model's raw inputs), batched to ``[B]``. For data larger than memory, use
:mod:`data.tfrecords`, which yields identical batches.

Example:
    >>> ds = make_dataset(df, schema, batch_size=256, shuffle=True, seed=1, repeat=True)  # doctest: +SKIP
    >>> model.fit(ds, epochs=3, steps_per_epoch=batches_per_pass(len(df), 256))        # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import tensorflow as tf

from data.arrays import ensure_validated, typed_feature_arrays, typed_labels_and_weights
from data.loading import check_positive_int
from data.schema import Schema
from mmoe_tf.batches import IN_MEMORY_PREFETCH, batches_per_pass, prefetched_in_order, row_gatherer, row_slicer

__all__ = [  # the batching primitives live in mmoe_tf.batches (model.predict uses them too)
    "IN_MEMORY_PREFETCH",
    "batches_per_pass",
    "finish",
    "make_dataset",
    "permuted_batches",
    "row_gatherer",
    "row_slicer",
]

TargetsFn = Callable[[dict, dict], tuple[dict, dict]]


def finish(
    ds: tf.data.Dataset, with_labels: bool, targets_fn: TargetsFn | None, autotune: bool = True
) -> tf.data.Dataset:
    """The tail shared with :func:`data.tfrecords.tfrecord_dataset`: per-batch ``targets_fn``, then prefetch.

    With ``autotune=False`` (the in-memory table) the map runs in order on one thread, ``IN_MEMORY_PREFETCH``
    batches are prefetched and tf.data's autotuner is off: a batch here is one gather per dtype, far
    cheaper than a training step, and on 2 cores the autotuner's own thread and buffer resizing made
    training slower and more erratic (``docs/performance.md``, design decisions).
    """
    parallel = tf.data.AUTOTUNE if autotune else None
    if with_labels and targets_fn is not None:
        ds = ds.map(lambda f, y, w: (f, *targets_fn(y, w)), num_parallel_calls=parallel)
    return ds.prefetch(tf.data.AUTOTUNE) if autotune else prefetched_in_order(ds)


def permuted_batches(
    num_rows: int, batch_size: int, seed: int, repeat: bool = False, drop_remainder: bool = False
) -> tf.data.Dataset:
    """Batches of row indices ``[B]`` (int64) from a fresh random permutation of all rows every epoch.

    One ``stateless_shuffle`` op per epoch instead of a whole-table shuffle buffer: the buffer
    costs ≈ 2 µs of CPU per row (``docs/performance.md``, design decisions), this a few ns. Every new iteration
    (each ``fit`` epoch) and every repeat draws a new permutation; the sequence of permutations is
    fixed by ``seed``.

    Args:
        num_rows: Rows N; indices are ``0 … N-1``.
        batch_size: Indices per batch (the last one shorter unless ``drop_remainder``).
        seed: Seed of the sequence of permutations.
        repeat: Repeat forever, a new permutation each pass.
        drop_remainder: Drop each pass's last partial batch.

    Returns:
        A ``tf.data.Dataset`` of int64 index vectors.

    Example:
        >>> [b.numpy().tolist() for b in permuted_batches(7, 3, seed=0)]  # doctest: +SKIP
        [[2, 3, 6], [4, 1, 0], [5]]
    """
    passes = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    if not repeat:
        passes = passes.take(1)
    full = num_rows // batch_size
    rest = 0 if drop_remainder else num_rows % batch_size
    count = batches_per_pass(num_rows, batch_size, drop_remainder)

    def one_pass(pass_seed: tf.Tensor) -> tf.data.Dataset:
        rows = tf.random.experimental.stateless_shuffle(tf.range(num_rows, dtype=tf.int64), seed=[pass_seed, 0])
        # Whole batches as the rows of one [full, B] matrix: slicing a batch is a copy of B indices
        # (a map that slices the permutation per batch cost ≈ 3× the CPU per row at batch 2,048).
        batches = tf.data.Dataset.from_tensor_slices(tf.reshape(rows[: full * batch_size], [full, batch_size]))
        if rest:
            batches = batches.concatenate(tf.data.Dataset.from_tensors(rows[full * batch_size :]))
        return batches

    size = (
        tf.data.INFINITE_CARDINALITY if repeat else count
    )  # flat_map hides it; Keras needs it for steps_per_execution
    return passes.flat_map(one_pass).apply(tf.data.experimental.assert_cardinality(size))


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
        repeat: Repeat forever, a new permutation each pass when shuffled; pass
            ``steps_per_epoch=batches_per_pass(len(df), batch_size, drop_remainder)`` to ``fit``. Faster
            than a finite dataset for more than one epoch: one iterator for the whole ``fit``
            (see :func:`batches_per_pass`).
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
    if not shuffle:  # table order: contiguous slices of batch numbers
        ds = tf.data.Dataset.range(batches_per_pass(len(df), batch_size, drop_remainder))
        if repeat:
            ds = ds.repeat()
        read_rows = row_slicer(elements, batch_size, full_batches_only=drop_remainder)
    else:
        # Shuffle and batch row indices (cheap scalars), then gather whole batches: same row order as
        # shuffling/batching the rows themselves, without per-row tensor overhead.
        if shuffle_buffer is None or shuffle_buffer >= len(df):
            ds = permuted_batches(len(df), batch_size, seed, repeat=repeat, drop_remainder=drop_remainder)
        else:
            ds = tf.data.Dataset.range(len(df)).shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
            if repeat:
                ds = ds.repeat()
            ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        read_rows = row_gatherer(elements)
    return finish(ds.map(read_rows), with_labels, targets_fn, autotune=False)
