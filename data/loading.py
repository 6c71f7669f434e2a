"""Read a user's table (CSV, Parquet or DataFrame), whole or in chunks, validated against a :class:`Schema`.

The file's header is checked first (duplicate and absent columns), then its rows are read with the dtypes the
schema implies (:mod:`data.table_files`) and checked by :func:`data.validation.validate_frame`.

Example:
    >>> df = load_table("data/sample/impressions.csv", schema)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from data.columns import check_columns
from data.errors import DataValidationError
from data.schema import Schema
from data.table_files import csv_read_args, csv_separator, read_header, table_format
from data.validation import check_duplicates, validate_frame


def check_positive_int(name: str, value: object) -> None:
    """``ValueError`` naming ``name`` unless ``value`` is a positive integer (not a bool)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_file(
    path: Path, schema: Schema, require_labels: bool, allow_missing_features: bool
) -> tuple[list[str], bool]:
    """Header checks shared by :func:`load_table` and :func:`iter_table_chunks`: ``(header, is_csv)``."""
    header = read_header(path)
    check_duplicates(header, str(path))
    check_columns(header, schema, require_labels, str(path), allow_missing_features)
    return header, table_format(path) == "csv"


def load_table(
    source: str | Path | pd.DataFrame,
    schema: Schema,
    nan_policy: str = "error",
    require_labels: bool = True,
    allow_missing_features: bool = False,
) -> pd.DataFrame:
    """Read a CSV/Parquet file (by suffix) or take a DataFrame, and validate it against ``schema``.

    Args:
        source: Path to ``.csv`` (optionally compressed, ``.tsv``) or ``.parquet``, or a DataFrame.
        schema: Column roles and dtypes.
        nan_policy: ``"error"`` (default) or ``"fill"`` for missing/non-finite feature values.
        require_labels: When False (inference data), only the feature columns are required.
        allow_missing_features: Absent optional feature columns take their defaults, with a warning
            (default: an error naming the column, with a did-you-mean).

    Returns:
        The validated, typed table (see :func:`validate_frame`).

    Raises:
        DataValidationError: empty file, duplicate or missing columns, wrong dtypes, non-binary
            labels, NaN/inf features; the message names the column, rows and expectation.

    Example:
        >>> df = load_table("impressions.csv", schema, nan_policy="fill")  # doctest: +SKIP
    """
    if isinstance(source, pd.DataFrame):
        if len(source) == 0:
            raise DataValidationError("DataFrame: the table has no rows")
        return validate_frame(
            source, schema, nan_policy, require_labels, "DataFrame", allow_missing_features=allow_missing_features
        )
    path = Path(source)
    header, csv = _check_file(path, schema, require_labels, allow_missing_features)
    if csv:
        df = pd.read_csv(path, sep=csv_separator(path), **csv_read_args(schema, header))
    else:
        df = pd.read_parquet(path, engine="pyarrow", columns=[c for c in schema.columns if c in header])
    if len(df) == 0:
        raise DataValidationError(f"{path}: the file has a header but no data rows")
    return validate_frame(df, schema, nan_policy, require_labels, str(path), 0, csv, allow_missing_features, warn=False)


def iter_table_chunks(
    source: str | Path | pd.DataFrame,
    schema: Schema,
    chunksize: int = 100_000,
    nan_policy: str = "error",
    require_labels: bool = True,
    allow_missing_features: bool = False,
) -> Iterator[pd.DataFrame]:
    """Validated chunks of a table, read without holding the whole file in memory.

    CSV is read with ``pandas.read_csv(chunksize=…)``, Parquet by record batches; row numbers in
    error messages count from the start of the file.

    Args:
        source: CSV/Parquet path or a DataFrame (sliced).
        schema: Column roles and dtypes.
        chunksize: Rows per chunk.
        nan_policy: As in :func:`load_table`.
        require_labels: As in :func:`load_table`.
        allow_missing_features: As in :func:`load_table` (one warning for the whole table).

    Yields:
        Validated DataFrames of at most ``chunksize`` rows, in file order.
    """
    check_positive_int("chunksize", chunksize)
    if isinstance(source, pd.DataFrame):
        if len(source) == 0:
            raise DataValidationError("DataFrame: the table has no rows")
        for start in range(0, len(source), chunksize):
            chunk = source.iloc[start : start + chunksize]
            yield validate_frame(
                chunk, schema, nan_policy, require_labels, "DataFrame", start, False, allow_missing_features, start == 0
            )
        return
    path = Path(source)
    header, csv = _check_file(path, schema, require_labels, allow_missing_features)
    total = 0
    if csv:
        batches = pd.read_csv(path, sep=csv_separator(path), chunksize=chunksize, **csv_read_args(schema, header))
    else:
        import pyarrow.parquet as pq

        columns = [c for c in schema.columns if c in header]
        batches = (b.to_pandas() for b in pq.ParquetFile(path).iter_batches(batch_size=chunksize, columns=columns))
    for chunk in batches:
        yield validate_frame(
            chunk, schema, nan_policy, require_labels, str(path), total, csv, allow_missing_features, warn=False
        )
        total += len(chunk)
    if total == 0:
        raise DataValidationError(f"{path}: the file has a header but no data rows")
