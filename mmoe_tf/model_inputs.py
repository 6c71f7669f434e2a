"""The model's inputs: one raw scalar per feature per row, their dtypes, and raw columns checked and converted to them.

Example:
    >>> to_model_inputs([FeatureSpec("price", "numeric")], {"price": [1, None]})["price"]
    array([ 1., nan], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from mmoe_tf.feature_specs import FeatureSpec

INPUT_DTYPES = {"float32": tf.float32, "string": tf.string, "int64": tf.int64}


def input_dtype(spec: FeatureSpec) -> tf.DType:
    """The ``tf.DType`` of the model input for ``spec`` (float32, string or int64)."""
    return INPUT_DTYPES[spec.dtype]


def make_inputs(specs: Sequence[FeatureSpec]) -> dict[str, tf.Tensor]:
    """One ``tf.keras.Input(shape=(), name=spec.name)`` per feature: one raw scalar per row.

    Example:
        >>> make_inputs([FeatureSpec("price", "numeric")])["price"].shape
        TensorShape([None])
    """
    return {s.name: tf.keras.Input(shape=(), name=s.name, dtype=input_dtype(s)) for s in specs}


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def string_values(spec: FeatureSpec, values: np.ndarray) -> list[str]:
    """``values`` as ``str`` (bytes decoded; NaN/None → ``""``), with ``""`` replaced by the spec's ``default``."""
    out = []
    for v in values.tolist():
        if isinstance(v, bytes):
            v = v.decode("utf-8")
        elif not isinstance(v, str):
            v = "" if pd.isna(v) else str(v)
        out.append(spec.default if v == "" and spec.default is not None else v)
    return out


def _py(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _rows(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask)
    more = f" and {rows.size - 5} more" if rows.size > 5 else ""
    return f"rows {rows[:5].tolist()}{more}"


def convert_column(spec: FeatureSpec, values: Any) -> np.ndarray:
    """One raw column as the model input's dtype: float32 (NaN = missing), int64, or an object array of ``str``.

    Args:
        spec: The column's feature spec.
        values: One value per row (``[N]`` or ``[N, 1]``).

    Returns:
        ``[N]`` array; strings have missing values as ``""`` or the spec's ``default``.

    Raises:
        ValueError: naming the feature and rows of text in a numeric column or non-integers in an int64 column.
    """
    values = np.asarray(values)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ValueError(f"feature {spec.name!r}: expected one value per row, got an array of shape {values.shape}")
    if spec.dtype == "float32":
        if values.dtype.kind in "fiub":
            return values.astype(np.float32)
        missing = pd.isna(values)
        numbers = missing | np.array([_is_number(v) for v in values.tolist()], bool)
        if not numbers.all():
            bad = ~numbers
            example = _py(values[np.flatnonzero(bad)[0]])
            raise ValueError(
                f"feature {spec.name!r} is numeric but holds non-numbers at {_rows(bad)} (e.g. {example!r})"
            )
        return np.array([np.nan if m else float(v) for v, m in zip(values.tolist(), missing, strict=True)], np.float32)
    if spec.dtype == "int64":
        if values.dtype.kind in "iu":
            return values.astype(np.int64)
        try:
            as_float = values.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"feature {spec.name!r} is int64 but holds non-integer values") from None
        bad = ~np.isfinite(as_float) | (as_float != np.round(as_float))
        if bad.any():
            example = _py(values[np.flatnonzero(bad)[0]])
            raise ValueError(
                f"feature {spec.name!r} is int64 but holds missing or non-integer values at {_rows(bad)} "
                f"(e.g. {example!r}); fill them before predicting"
            )
        return as_float.astype(np.int64)
    if values.dtype.kind in "US":
        return values.astype(object)
    return np.array(string_values(spec, values), dtype=object)


def to_model_inputs(specs: Sequence[FeatureSpec], data: Mapping[str, Any] | Any) -> dict[str, np.ndarray]:
    """Validate raw columns and convert them to the model's input dtypes.

    Args:
        specs: The model's feature specs.
        data: Dict of arrays or DataFrame keyed by feature name (extra keys are ignored).

    Returns:
        ``{name: np.ndarray}``: float32 (numeric), int64, or object arrays of ``str`` (missing → ``""``
        or the spec's default).

    Raises:
        ValueError: naming the feature, the rows and the expectation (absent feature, text in a
            numeric column, non-integers in an int64 column, mismatched lengths).

    Example:
        >>> to_model_inputs([FeatureSpec("price", "numeric")], {"price": [1, None]})["price"]
        array([ 1., nan], dtype=float32)
    """
    keys = set(data.keys()) if hasattr(data, "keys") else set()
    absent = [s.name for s in specs if s.name not in keys]
    if absent:
        raise ValueError(f"inputs lack features {absent}; the model takes {[s.name for s in specs]}")
    out = {s.name: convert_column(s, data[s.name]) for s in specs}
    lengths = {name: len(v) for name, v in out.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"features have different numbers of rows: {lengths}")
    return out
