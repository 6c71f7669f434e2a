"""Turn a validated table into the numpy arrays a model consumes: features, labels, sample weights.

A missing (NaN/blank) label means "not observed": its task gets sample weight 0 on that row and a
finite placeholder label 0, so it never contributes to the loss (and never turns it into NaN).

Example:
    >>> features = feature_arrays(df, schema)          # doctest: +SKIP
    >>> labels, weights = labels_and_weights(df, schema)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.schema import Schema
from data.validation import NUMPY_DTYPES, validate_frame


def _is_typed(df: pd.DataFrame, schema: Schema, with_labels: bool) -> bool:
    """True when ``df`` already has the dtypes :func:`validate_frame` produces (skip re-validation)."""
    for f in schema.features:
        if f.column not in df.columns:
            return False
        s = df[f.column]
        if f.dtype == "string":
            if s.dtype != object or pd.api.types.infer_dtype(s, skipna=False) != "string" or (s == "").any():
                return False
        elif s.dtype != NUMPY_DTYPES[f.dtype] or (f.dtype == "float32" and not np.isfinite(s.to_numpy()).all()):
            return False
    if with_labels:
        for t in schema.tasks:
            if t.label_column not in df.columns or df[t.label_column].dtype != np.float32:
                return False
    return True


def ensure_validated(df: pd.DataFrame, schema: Schema, with_labels: bool = True) -> pd.DataFrame:
    """``df`` itself when already typed by :func:`data.loading.load_table`, else a validated copy."""
    if _is_typed(df, schema, with_labels):
        return df
    return validate_frame(df, schema, require_labels=with_labels, source="DataFrame")


def feature_arrays(df: pd.DataFrame, schema: Schema) -> dict[str, np.ndarray]:
    """One array per feature, keyed by feature name (float32, int64 or object array of ``str``).

    Args:
        df: A table (validated here unless it already has the schema's dtypes).
        schema: Feature specs (``column`` → ``name``).

    Returns:
        ``{feature.name: np.ndarray [N]}``.
    """
    return typed_feature_arrays(ensure_validated(df, schema, with_labels=False), schema)


def typed_feature_arrays(df: pd.DataFrame, schema: Schema) -> dict[str, np.ndarray]:
    """:func:`feature_arrays` of a table already validated (e.g. by :func:`ensure_validated`); no checks."""
    return {f.name: df[f.column].to_numpy(dtype=NUMPY_DTYPES[f.dtype]) for f in schema.features}


def labels_and_weights(df: pd.DataFrame, schema: Schema) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per-task labels and sample weights (float32); an unobserved label gets label 0 and weight 0.

    Args:
        df: A table with every task's label column (validated here unless already typed).
        schema: Task specs (``label_column`` → task ``name``).

    Returns:
        ``(labels, weights)``: dicts ``{task.name: np.ndarray [N] float32}``; labels are finite.

    Example:
        >>> labels, weights = labels_and_weights(df, schema)  # doctest: +SKIP
        >>> bool(np.isfinite(labels["satisfaction"]).all())   # doctest: +SKIP
        True
    """
    return typed_labels_and_weights(ensure_validated(df, schema, with_labels=True), schema)


def typed_labels_and_weights(df: pd.DataFrame, schema: Schema) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """:func:`labels_and_weights` of a table already validated with its labels; no checks."""
    labels, weights = {}, {}
    for t in schema.tasks:
        raw = df[t.label_column].to_numpy(dtype=np.float32)
        observed = ~np.isnan(raw)
        labels[t.name] = np.where(observed, raw, np.float32(0.0)).astype(np.float32)
        weights[t.name] = observed.astype(np.float32)
    return labels, weights
