"""Batches of in-memory columns as a ``tf.data.Dataset``: one gather or one slice per dtype, not per column.

Shared by :func:`data.make_dataset` (training and evaluation tables) and ``MultiTaskModel.fit`` / ``predict`` (dicts
and DataFrames of raw columns), so that both cut their batches the same cheap way.

Example:
    >>> ds = table_order_batches({"price": np.ones(5, np.float32), "city": np.array(list("abcde"), object)}, 2)
    >>> [len(b["price"]) for b in ds]
    [2, 2, 1]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

IN_MEMORY_PREFETCH = 2  # batches ready ahead of the step


def _grouped_columns(elements: Any) -> tuple[list[Any], dict[str, list[int]], dict[str, tf.Tensor]]:
    """The numpy leaves of ``elements``, their positions grouped by dtype, and one ``[N, k]`` tensor per dtype."""
    flat = tf.nest.flatten(elements)
    groups: dict[str, list[int]] = {}
    for i, column in enumerate(flat):
        groups.setdefault(column.dtype.str, []).append(i)
    matrices = {
        key: tf.convert_to_tensor(flat[idx[0]] if len(idx) == 1 else np.stack([flat[i] for i in idx], axis=1))
        for key, idx in groups.items()
    }
    return flat, groups, matrices


def _unpack(elements: Any, flat: list[Any], groups: dict[str, list[int]], blocks: dict[str, tf.Tensor]) -> Any:
    out: list[Any] = [None] * len(flat)
    for key, idx in groups.items():
        parts = [blocks[key]] if len(idx) == 1 else tf.unstack(blocks[key], num=len(idx), axis=1)
        for i, part in zip(idx, parts, strict=True):
            out[i] = part
    return tf.nest.pack_sequence_as(elements, out)


def row_gatherer(elements: Any) -> Callable[[tf.Tensor], Any]:
    """A function ``indices [B] -> elements' rows`` that gathers all columns of one dtype at once.

    Columns (the numpy leaves of ``elements``, one value per row) of the same dtype are stacked into
    one ``[N, k]`` tensor; a batch is one ``tf.gather`` per dtype and one ``unstack``, instead of one
    gather per column: ≈ 0.7× the CPU per row at batch 512 and ≈ 0.5× at 2,048 for 16 numeric + 4
    categorical features with two tasks (``bench/step_overheads.py``).

    Args:
        elements: Nested structure (dicts/tuples) of equal-length 1-D numpy arrays.

    Returns:
        The gather function, for ``Dataset.map`` over batches of row indices.
    """
    flat, groups, matrices = _grouped_columns(elements)

    def gather(rows: tf.Tensor) -> Any:
        return _unpack(elements, flat, groups, {key: tf.gather(m, rows) for key, m in matrices.items()})

    return gather


def row_slicer(elements: Any, batch_size: int, full_batches_only: bool = False) -> Callable[[tf.Tensor], Any]:
    """A function ``batch number i -> rows [i·B, (i+1)·B)`` of ``elements`` (the last batch may be shorter).

    For batches in table order (no shuffling: evaluation, prediction, validation): a contiguous slice
    per dtype instead of a gather, fed by ``Dataset.range(number of batches)`` instead of batching N
    scalar row indices: 1.07 → 0.51 µs of CPU per row at batch 2,048 against batched indices with one
    gather per column (``bench/step_overheads.py``, table order).

    Args:
        elements: Nested structure (dicts/tuples) of equal-length 1-D numpy arrays.
        batch_size: Rows per batch B.
        full_batches_only: Every batch is a whole one (``drop_remainder``): its size B is static.

    Returns:
        The slice function, for ``Dataset.map`` over ``Dataset.range(number of batches)``.
    """
    flat, groups, matrices = _grouped_columns(elements)
    num_rows = len(flat[0]) if flat else 0

    def rows(batch: tf.Tensor) -> Any:
        start = batch * batch_size
        stop = start + batch_size if full_batches_only else tf.minimum(start + batch_size, num_rows)
        blocks = {key: m[start:stop] for key, m in matrices.items()}
        if full_batches_only:
            blocks = {key: tf.ensure_shape(b, [batch_size, *matrices[key].shape[1:]]) for key, b in blocks.items()}
        return _unpack(elements, flat, groups, blocks)

    return rows


def batches_per_pass(num_rows: int, batch_size: int, drop_remainder: bool = False) -> int:
    """Batches in one pass over ``num_rows`` rows: ``fit``'s ``steps_per_epoch`` for a repeated dataset.

    A dataset made with ``repeat=True`` and fitted with ``steps_per_epoch=batches_per_pass(...)`` keeps one
    iterator for the whole ``fit``, so no step waits for a new epoch's iterator to be created (docs/performance.md,
    Design decisions).

    Args:
        num_rows: Rows N in the table.
        batch_size: Rows per batch B.
        drop_remainder: Whether the last partial batch is dropped.

    Returns:
        ``N // B`` if ``drop_remainder`` else ``ceil(N / B)``.

    Example:
        >>> batches_per_pass(10, 4), batches_per_pass(10, 4, drop_remainder=True)
        (3, 2)
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return num_rows // batch_size if drop_remainder else -(-num_rows // batch_size)


def prefetched_in_order(ds: tf.data.Dataset) -> tf.data.Dataset:
    """``ds`` with ``IN_MEMORY_PREFETCH`` batches prefetched and tf.data's autotuner off: in-memory batches cost far
    less than a step, and the autotuner's own thread slowed training on 2 cores (docs/performance.md, Design
    decisions)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(IN_MEMORY_PREFETCH).with_options(options)


def table_order_batches(arrays: Mapping[str, np.ndarray], batch_size: int) -> tf.data.Dataset:
    """Batches of equal-length 1-D ``arrays`` in table order: contiguous slices per dtype, 2 batches prefetched.

    What ``model.predict`` on numpy columns does through Keras' own adapter, at ≈ 0.75× the time on the peer
    benchmark's 20 columns (40,000 rows: 150 against 195 ms at batch 2,048, 161 against 215 ms at 512) with the same
    batches, so the same outputs.

    Args:
        arrays: ``{name: array [N]}``.
        batch_size: Rows per batch (the last one may be shorter).

    Returns:
        A ``tf.data.Dataset`` of ``{name: [B]}`` dicts.
    """
    return table_batches(dict(arrays), batch_size)


def shuffled_batches(elements: Any, batch_size: int, repeat: bool = False, seed: int | None = None) -> tf.data.Dataset:
    """Batches of ``elements``' rows in a new random order each pass (the last batch of a pass may be shorter).

    What ``model.fit`` on numpy columns does with ``shuffle=True``, as :func:`row_gatherer` batches: each pass
    draws a permutation of the row numbers, cut into ``[B]`` index batches that gather one block per dtype.

    Args:
        elements: Nested structure (dicts/tuples) of equal-length 1-D numpy arrays.
        batch_size: Rows per batch B.
        repeat: Repeat forever, a new permutation each pass (cardinality infinite), else one pass.
        seed: Seed of the sequence of permutations (``None``: a random one).

    Returns:
        A prefetched ``tf.data.Dataset`` of ``elements``-shaped batches.
    """
    num_rows = len(tf.nest.flatten(elements)[0])
    full, rest = divmod(num_rows, batch_size)
    passes = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    passes = passes if repeat else passes.take(1)

    def one_pass(pass_seed: tf.Tensor) -> tf.data.Dataset:
        rows = tf.random.experimental.stateless_shuffle(tf.range(num_rows, dtype=tf.int64), seed=[pass_seed, 0])
        batches = tf.data.Dataset.from_tensor_slices(tf.reshape(rows[: full * batch_size], [full, batch_size]))
        return batches.concatenate(tf.data.Dataset.from_tensors(rows[full * batch_size :])) if rest else batches

    size = tf.data.INFINITE_CARDINALITY if repeat else batches_per_pass(num_rows, batch_size)
    indices = passes.flat_map(one_pass).apply(tf.data.experimental.assert_cardinality(size))
    return prefetched_in_order(indices.map(row_gatherer(elements)))


def table_batches(elements: Any, batch_size: int, repeat: bool = False) -> tf.data.Dataset:
    """Batches of ``elements``' rows in table order (contiguous slices per dtype), one pass or repeated."""
    num_rows = len(tf.nest.flatten(elements)[0])
    numbers = tf.data.Dataset.range(batches_per_pass(num_rows, batch_size))
    numbers = numbers.repeat() if repeat else numbers
    return prefetched_in_order(numbers.map(row_slicer(elements, batch_size)))
