"""Table files on disk: their format (from the suffix), their header, and the pandas read arguments per column.

CSV (``.csv``, ``.tsv``, ``.txt``, optionally ``.gz``/``.bz2``/``.zip``/``.xz``/``.zst`` compressed) and Parquet
(``.parquet``, ``.pq``). Ids and integer features are read as text so that pandas never turns them into floats.

Example:
    >>> table_format("impressions.csv.gz")
    'csv'
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from data.errors import DataValidationError
from data.schema import Schema

NA_STRINGS = ["", "NA", "N/A", "n/a", "NaN", "nan", "-NaN", "-nan", "NULL", "null", "None", "#N/A", "<NA>"]
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")


def table_format(path: str | Path) -> str:
    """``"csv"`` or ``"parquet"`` from the file suffix (``.gz``/``.bz2``/``.zip`` compressed CSV allowed)."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".zip", ".xz", ".zst"):
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in CSV_SUFFIXES:
        return "csv"
    if suffixes and suffixes[-1] in PARQUET_SUFFIXES:
        return "parquet"
    raise DataValidationError(f"{path}: unsupported file type; expected one of {CSV_SUFFIXES + PARQUET_SUFFIXES}")


def csv_separator(path: Path) -> str:
    """Tab for ``.tsv`` files, else comma."""
    return "\t" if ".tsv" in [s.lower() for s in path.suffixes] else ","


def read_header(path: str | Path) -> list[str]:
    """Column names exactly as written in the file's header (no pandas renaming of duplicates)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if table_format(path) == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    if path.stat().st_size == 0:
        raise DataValidationError(f"{path}: the file is empty (no header row, no data rows)")
    try:
        head = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False, sep=csv_separator(path))
    except pd.errors.EmptyDataError:
        raise DataValidationError(f"{path}: the file is empty (no header row, no data rows)") from None
    return [str(c) for c in head.iloc[0].tolist()]


def csv_read_args(schema: Schema, header: list[str]) -> dict:
    """``usecols``/``dtype``/``na_values`` so each column is read as the schema implies."""
    wanted = [c for c in schema.columns if c in header]
    dtype: dict[str, object] = {}
    na_values: dict[str, list[str]] = {}
    for f in schema.features:
        if f.dtype in ("string", "int64"):  # never float-ify ids: read text, convert ourselves
            dtype[f.column] = str
            na_values[f.column] = [""]
        else:
            na_values[f.column] = NA_STRINGS
    for c in schema.label_columns + ((schema.timestamp_column,) if schema.timestamp_column else ()):
        na_values[c] = NA_STRINGS
    for c in schema.id_columns:
        dtype[c] = str
        na_values[c] = [""]
    for c in schema.extra_columns:
        na_values.setdefault(c, NA_STRINGS)
    na_values = {c: v for c, v in na_values.items() if c in wanted}
    dtype = {c: v for c, v in dtype.items() if c in wanted}
    return {"usecols": wanted, "dtype": dtype, "na_values": na_values, "keep_default_na": False}
