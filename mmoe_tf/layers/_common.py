"""Argument checks, seeding and small helpers shared by the MMoE layers."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from mmoe_tf.config import NORMALIZATIONS


def check_int(name: str, value: Any, minimum: int) -> int:
    """Return ``value`` if it is an integer >= ``minimum``; ``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def check_units(name: str, units: int | Sequence[int], allow_empty: bool = False) -> tuple[int, ...]:
    """Normalise ``units`` (an int or a sequence of positive ints) to a tuple."""
    if isinstance(units, int) and not isinstance(units, bool):
        units = (units,)
    try:
        units = tuple(units)
    except TypeError:
        raise ValueError(f"{name} must be a positive integer or a list of them, got {units!r}") from None
    if not units and not allow_empty:
        raise ValueError(f"{name} must list at least one layer size, got {units!r}")
    for u in units:
        if isinstance(u, bool) or not isinstance(u, int) or u < 1:
            raise ValueError(f"{name} must hold positive integers, got {units!r}")
    return units


def check_rate(name: str, value: Any) -> float:
    """Return ``value`` as a float in [0, 1); ``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a rate in [0, 1), got {value!r}")
    return float(value)


def check_seed(name: str, value: Any) -> int | None:
    """Return ``value`` if it is ``None`` or a non-negative integer."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{name} must be None or an integer >= 0, got {value!r}")
    return value


def check_normalization(name: str, value: Any) -> str | None:
    """Return ``value`` if it is one of ``None``, ``"batch"``, ``"layer"``."""
    if value not in NORMALIZATIONS:
        raise ValueError(f"{name} must be one of {NORMALIZATIONS}, got {value!r}")
    return value


def resolve_seed(seed: int | None) -> int:
    """The base seed of a layer: ``seed`` itself, or a fresh random one when it is ``None``.

    Keras 2 initialisers called twice without a seed return identical values, which would make
    every expert start from the same weights; a layer therefore always seeds its initialisers.
    """
    return random.randrange(2**30) if seed is None else seed


def derive_seed(base: int, *path: int) -> int:
    """A deterministic, well-spread seed for the weight at ``path`` (e.g. depth, expert)."""
    value = base
    for p in path:
        value = (value * 1_000_003 + 7919 * (p + 1)) % (2**31 - 1)
    return value


def seeded_initializer(initializer: Any, seed: int) -> tf.keras.initializers.Initializer:
    """A copy of ``initializer`` with its ``seed`` set (unchanged if it takes no seed)."""
    initializer = tf.keras.initializers.get(initializer)
    config = initializer.get_config()
    if "seed" in config:
        return initializer.__class__.from_config({**config, "seed": seed})
    return initializer


def per_expert_initializer(initializer: Any, base_seed: int, depth: int) -> Callable[..., tf.Tensor]:
    """Initializer for a ``[K, d_in, d_out]`` kernel: each expert's slice drawn independently.

    Each ``[d_in, d_out]`` slice gets its own seeded copy of ``initializer``, so fan-in/fan-out
    scaling (e.g. Glorot) is that of a single expert's layer and the experts start different.
    """

    def init(shape: Sequence[int], dtype: tf.DType | None = None, **_: Any) -> tf.Tensor:
        slices = [
            seeded_initializer(initializer, derive_seed(base_seed, depth, k))(tuple(shape[1:]), dtype=dtype)
            for k in range(shape[0])
        ]
        return tf.stack(slices, axis=0)

    return init


def smart_cond(pred: Any, true_fn: Callable[[], Any], false_fn: Callable[[], Any]) -> Any:
    """``tf.cond`` that short-circuits when ``pred`` is a Python bool or ``None`` (treated as False)."""
    if pred is None or isinstance(pred, int):  # bool is an int
        return true_fn() if pred else false_fn()
    return tf.cond(tf.cast(pred, tf.bool), true_fn, false_fn)


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is a number > 0; ``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return float(value)


def check_non_negative(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is a finite number >= 0; ``ValueError`` naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def build_sublayer(layer: tf.keras.layers.Layer, input_shape: Any) -> None:
    """``layer.build(input_shape)`` under the layer's own name scope, as calling it would be.

    Its weights are then named ``<parent>/<layer>/kernel``: unique within the parent, which HDF5 weight files
    (``save_weights("w.h5")``, ``save("m.h5")``) need.
    """
    with tf.name_scope(layer.name):
        layer.build(input_shape)
