"""Summaries of the labels of a table: how many rows observe each task and what the labels look like."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.schema import Schema


def label_report(df: pd.DataFrame, schema: Schema) -> dict[str, dict[str, float | int | None]]:
    """Per task: rows, observed labels, and positives / positive rate (binary) or mean / std (regression).

    Args:
        df: A table holding every task's label column (NaN/blank = not observed).
        schema: The tasks.

    Returns:
        ``{task: {"rows", "observed", "observed_fraction", "positives", "positive_rate"}}`` for binary
        tasks (rate over observed rows; ``None`` when nothing is observed) and
        ``{task: {"rows", "observed", "observed_fraction", "mean", "std"}}`` for regression tasks.

    Example:
        >>> label_report(df, schema)["click"]["positive_rate"]  # doctest: +SKIP
        0.21
    """
    report: dict[str, dict[str, float | int | None]] = {}
    for t in schema.tasks:
        if t.label_column not in df.columns:
            raise ValueError(f"label_report: label column {t.label_column!r} (task {t.name!r}) is not in the table")
        values = pd.to_numeric(df[t.label_column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        observed = values[~np.isnan(values)]
        entry: dict[str, float | int | None] = {
            "rows": len(values),
            "observed": len(observed),
            "observed_fraction": float(len(observed) / len(values)) if len(values) else None,
        }
        if t.type == "binary":
            positives = int((observed == 1).sum())
            entry.update(positives=positives, positive_rate=float(positives / len(observed)) if len(observed) else None)
        else:
            entry.update(
                mean=float(observed.mean()) if len(observed) else None,
                std=float(observed.std()) if len(observed) else None,
            )
        report[t.name] = entry
    return report
