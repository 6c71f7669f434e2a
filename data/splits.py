"""Train / validation / test splits: seeded random, or by time (train = past, test = future).

Both return one DataFrame per fraction, every row in exactly one of them, each keeping the original
row order (and index).

Example:
    >>> train, val, test = random_split(df, (0.8, 0.1, 0.1), seed=0)      # doctest: +SKIP
    >>> train, val, test = time_split(df, "timestamp", (0.8, 0.1, 0.1))   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.ndim != 1 or len(fr) < 1 or np.any(fr < 0) or not np.isfinite(fr).all():
        raise ValueError(f"fractions must be a sequence of non-negative numbers, got {fractions!r}")
    if abs(fr.sum() - 1.0) > 1e-6:
        raise ValueError(f"fractions must sum to 1, got {fractions!r} (sum {fr.sum():g})")
    return fr


def _sizes(n: int, fractions: np.ndarray) -> np.ndarray:
    """Row counts per split summing to ``n`` (largest-remainder rounding)."""
    exact = fractions * n
    sizes = np.floor(exact).astype(np.int64)
    remainder = n - sizes.sum()
    order = np.argsort(-(exact - sizes), kind="stable")
    sizes[order[:remainder]] += 1
    return sizes


def random_split(
    df: pd.DataFrame, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> tuple[pd.DataFrame, ...]:
    """Split rows at random (reproducible from ``seed``) into ``len(fractions)`` parts.

    Args:
        df: The table.
        fractions: Share of rows per part; must sum to 1.
        seed: Seed of the permutation; the same seed gives the same split.

    Returns:
        One DataFrame per fraction (sizes rounded to whole rows), rows in original order.
    """
    fr = _check_fractions(fractions)
    perm = np.random.default_rng(seed).permutation(len(df))
    bounds = np.cumsum(_sizes(len(df), fr))[:-1]
    return tuple(df.iloc[np.sort(part)] for part in np.split(perm, bounds))


def time_split(df: pd.DataFrame, column: str, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> tuple[pd.DataFrame, ...]:
    """Split rows by time: the first part holds the earliest rows, the last the latest.

    Boundaries are the time quantiles at the cumulative fractions (the time of the row that would
    start the next part by count). A row whose time equals a boundary goes to the LATER part, so all
    rows sharing a time stay together and every row of an earlier part is strictly older than every
    row of a later part. With many ties, parts may hold fewer rows than their fraction (even none).

    Args:
        df: The table.
        column: Time column (numbers or date-times, no missing values).
        fractions: Share of rows per part; must sum to 1.

    Returns:
        One DataFrame per fraction, rows in original order.
    """
    fr = _check_fractions(fractions)
    if column not in df.columns:
        raise ValueError(f"time_split: column {column!r} is not in the table; columns are {list(df.columns)[:30]}")
    times = df[column]
    if not (pd.api.types.is_numeric_dtype(times.dtype) or pd.api.types.is_datetime64_any_dtype(times.dtype)):
        times = pd.to_datetime(times, errors="coerce", format="mixed")
    missing = np.flatnonzero(times.isna().to_numpy())
    if len(missing):
        raise ValueError(
            f"time_split: column {column!r} has missing or unparseable times in rows {missing[:5].tolist()} "
            f"({len(missing)} in total)"
        )
    values = times.to_numpy()
    ordered = np.sort(values, kind="stable")
    starts = np.cumsum(_sizes(len(df), fr))[:-1]
    bounds = [ordered[s] if s < len(ordered) else None for s in starts]
    part = np.zeros(len(df), dtype=np.int64)
    for b in bounds:
        if b is not None:
            part += values >= b
    return tuple(df.iloc[np.flatnonzero(part == k)] for k in range(len(fr)))
