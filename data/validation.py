"""Check a DataFrame against a :class:`Schema` and return a typed copy (:func:`validate_frame`).

Every column is converted to the dtype the schema implies (numeric → float32, categorical/hashed →
str or int64, labels → float32 with NaN = not observed) and every problem raises a
:class:`DataValidationError` naming the column, example rows and what was expected. Rows are never
dropped.

Missing feature values (NaN, blank, ±inf in numeric columns) follow ``nan_policy``: ``"error"``
(default) raises; ``"fill"`` replaces them with the feature's ``default`` (and raises for features
without one). Absent columns go through :func:`data.columns.check_columns`: an error naming the column with a
did-you-mean, unless ``allow_missing_features=True`` gives absent optional features their defaults (with a warning).

Example:
    >>> typed = validate_frame(raw_df, schema, nan_policy="fill")  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.columns import check_columns
from data.errors import DataValidationError, describe_rows, describe_values
from data.schema import Schema

NAN_POLICIES = ("error", "fill")
NUMPY_DTYPES = {"float32": np.float32, "int64": np.int64, "string": object}


def check_duplicates(columns: list[str], source: str) -> None:
    """``DataValidationError`` naming every column name that occurs more than once, with its positions."""
    seen: dict[str, list[int]] = {}
    for i, c in enumerate(columns):
        seen.setdefault(c, []).append(i)
    dupes = {c: idx for c, idx in seen.items() if len(idx) > 1}
    if dupes:
        parts = [f"{c!r} at positions {idx}" for c, idx in dupes.items()]
        raise DataValidationError(f"{source}: duplicate column name(s) in the header: {'; '.join(parts)}")


# ---- column converters -------------------------------------------------------------------------
class _Ctx:
    """Where the frame being checked comes from (for messages)."""

    def __init__(self, source: str, row_offset: int, csv: bool) -> None:
        self.source, self.row_offset, self.csv = source, row_offset, csv

    def rows(self, positions: np.ndarray) -> str:
        return describe_rows(positions, self.row_offset, self.csv)

    def values(self, values: np.ndarray, positions: np.ndarray) -> str:
        return describe_values(list(values), list(positions), self.row_offset)


def _blank(series: pd.Series) -> np.ndarray:
    missing = series.isna().to_numpy()
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        # check each distinct value once (fast for categorical columns)
        blanks = [v for v in pd.unique(series[~missing]) if isinstance(v, str) and not v.strip()]
        if blanks:
            missing |= series.isin(blanks).to_numpy()
    return missing


def _to_float(series: pd.Series, what: str, ctx: _Ctx) -> np.ndarray:
    """Numbers as float64 (NaN kept); non-numeric text raises naming values and rows."""
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    numbers = pd.to_numeric(series, errors="coerce")
    bad = np.flatnonzero(numbers.isna().to_numpy() & ~_blank(series))
    if len(bad):
        raise DataValidationError(
            f"{ctx.source}: {what} expects numbers, but found non-numeric text: "
            f"{ctx.values(series.to_numpy()[bad], bad)}; {ctx.rows(bad)}"
        )
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan)


def _missing_values(values: np.ndarray, missing: np.ndarray, spec, nan_policy: str, what: str, ctx: _Ctx, kind: str):
    """Apply ``nan_policy`` to the rows flagged ``missing``; returns values with them filled."""
    bad = np.flatnonzero(missing)
    if not len(bad):
        return values
    if nan_policy == "error":
        raise DataValidationError(
            f"{ctx.source}: {what} has {kind} values in {ctx.rows(bad)}; expected a value in every row "
            f"(pass nan_policy='fill' to use the feature's default)"
        )
    if spec.default is None:
        raise DataValidationError(
            f"{ctx.source}: {what} has {kind} values in {ctx.rows(bad)} and no 'default' to fill them with; "
            f"give the feature a default in the schema or clean the column"
        )
    values = values.copy()
    values[bad] = spec.default
    return values


def _feature_column(series: pd.Series, spec, nan_policy: str, ctx: _Ctx) -> np.ndarray:
    what = f"column {spec.column!r} (feature {spec.name!r}, {spec.kind} {spec.dtype})"
    if spec.dtype == "float32":
        values = _to_float(series, what, ctx)
        values = _missing_values(
            values, ~np.isfinite(values), spec, nan_policy, what, ctx, "missing (NaN/blank) or infinite"
        )
        return values.astype(np.float32)
    if spec.dtype == "int64":
        if pd.api.types.is_integer_dtype(series.dtype) and not series.hasnans:
            return series.to_numpy(dtype=np.int64)
        missing = _blank(series)
        values = _to_float(series.where(~missing, None) if series.dtype == object else series, what, ctx)
        frac = np.flatnonzero(~missing & (np.mod(np.nan_to_num(values), 1) != 0))
        if len(frac):
            raise DataValidationError(
                f"{ctx.source}: {what} expects integers, but found "
                f"{ctx.values(series.to_numpy()[frac], frac)}; {ctx.rows(frac)}"
            )
        if series.dtype == object:  # exact parse of big ints (float64 would round ids above 2**53)
            ints = np.zeros(len(series), dtype=np.int64)
            text = series.to_numpy()[~missing]
            try:
                ints[~missing] = [int(v) if isinstance(v, (int, np.integer)) else int(str(v).strip()) for v in text]
            except ValueError:
                ints[~missing] = values[~missing].astype(np.int64)
        else:
            ints = np.where(missing, 0, np.nan_to_num(values)).astype(np.int64)
        return _missing_values(ints, missing, spec, nan_policy, what, ctx, "missing (blank/NaN)")
    # string
    missing = _blank(series)
    if pd.api.types.is_float_dtype(series.dtype):  # e.g. Parquet ids stored as float: 12.0 → "12"
        floats = series.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.all(np.mod(floats[~missing], 1) == 0):
            series = pd.Series(np.where(missing, 0, np.nan_to_num(floats)).astype(np.int64), index=series.index)
    if series.dtype == object and pd.api.types.infer_dtype(series, skipna=False) == "string":
        values = series.to_numpy(dtype=object)
        if missing.any():
            values = values.copy()
    else:
        values = series.astype(str).to_numpy(dtype=object)
    return _missing_values(values, missing, spec, nan_policy, what, ctx, "missing (blank/NaN)")


def _label_column(series: pd.Series, task, ctx: _Ctx) -> np.ndarray:
    what = f"label column {task.label_column!r} (task {task.name!r}, {task.type})"
    values = _to_float(series, what, ctx)
    inf = np.flatnonzero(np.isinf(values))
    if len(inf):
        raise DataValidationError(
            f"{ctx.source}: {what} has infinite values in {ctx.rows(inf)}; expected finite numbers or blank"
        )
    if task.type == "binary":
        bad = np.flatnonzero(~np.isnan(values) & (values != 0) & (values != 1))
        if len(bad):
            raise DataValidationError(
                f"{ctx.source}: {what} expects 0 or 1 (blank/NaN = not observed), but found "
                f"{ctx.values(series.to_numpy()[bad], bad)}; {ctx.rows(bad)}"
            )
    return values.astype(np.float32)


def _timestamp_column(series: pd.Series, column: str, ctx: _Ctx) -> pd.Series:
    what = f"timestamp column {column!r}"
    missing = np.flatnonzero(_blank(series))
    if len(missing):
        raise DataValidationError(
            f"{ctx.source}: {what} has missing values in {ctx.rows(missing)}; expected a time in every row"
        )
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_datetime64_any_dtype(series.dtype):
        return series
    parsed = pd.to_datetime(series, errors="coerce", utc=False, format="mixed")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        raise DataValidationError(
            f"{ctx.source}: {what} expects numbers or date-times, but found "
            f"{ctx.values(series.to_numpy()[bad], bad)}; {ctx.rows(bad)}"
        )
    return parsed


def validate_frame(
    df: pd.DataFrame,
    schema: Schema,
    nan_policy: str = "error",
    require_labels: bool = True,
    source: str = "table",
    row_offset: int = 0,
    csv_lines: bool = False,
    allow_missing_features: bool = False,
    warn: bool = True,
) -> pd.DataFrame:
    """Check ``df`` against ``schema`` and return a typed copy holding only the schema's columns.

    Args:
        df: The raw table.
        schema: What the columns must hold.
        nan_policy: ``"error"`` or ``"fill"`` (see the module docstring).
        require_labels: When False (inference data), only the feature columns are required; absent label,
            timestamp, id and extra columns are left out.
        source: Name of the table in messages (a file path).
        row_offset: Row number of ``df``'s first row in the whole table (chunked reads).
        csv_lines: Also report 1-based CSV file line numbers (one header line).
        allow_missing_features: Give absent columns of optional features their schema defaults (with a
            warning naming them) instead of raising (:func:`data.columns.check_columns`).
        warn: Log that warning (off when the file's header was already checked).

    Returns:
        A new DataFrame (RangeIndex) with columns in ``schema.columns`` order: features as
        float32 / int64 / str objects, labels as float32 with NaN where not observed.

    Raises:
        DataValidationError: naming the column, example rows and the expectation.
    """
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy is {nan_policy!r}; expected one of {NAN_POLICIES}")
    ctx = _Ctx(source, row_offset, csv_lines)
    columns = [str(c) for c in df.columns]
    check_duplicates(columns, source)
    available = set(columns)
    defaulted = set(check_columns(columns, schema, require_labels, source, allow_missing_features, warn))
    n = len(df)
    out: dict[str, object] = {}
    for f in schema.features:
        if f.column in out:
            continue
        if f.column in available:
            out[f.column] = _feature_column(df[f.column].reset_index(drop=True), f, nan_policy, ctx)
        elif f.column in defaulted:  # opted in: every row takes the default
            out[f.column] = np.full(n, f.default, dtype=NUMPY_DTYPES[f.dtype])
    for t in schema.tasks:
        if t.label_column in available and t.label_column not in out:
            out[t.label_column] = _label_column(df[t.label_column].reset_index(drop=True), t, ctx)
    if schema.timestamp_column and schema.timestamp_column in available:
        out[schema.timestamp_column] = _timestamp_column(
            df[schema.timestamp_column].reset_index(drop=True), schema.timestamp_column, ctx
        )
    for c in schema.id_columns + schema.extra_columns:
        if c in available:
            out.setdefault(c, df[c].reset_index(drop=True))
    return pd.DataFrame(out, index=pd.RangeIndex(n))
