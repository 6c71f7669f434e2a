"""Seed statistics of the experiments: means with 95 % t-intervals, and paired differences.

Example:
    >>> m, (lo, hi) = mean_ci([0.70, 0.72, 0.71])
    >>> round(m, 3), lo < m < hi
    (0.71, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, list[float] | None]:
    """Mean of ``values`` and its Student-t confidence interval (``None`` for fewer than 2 finite values).

    Args:
        values: One number per seed (NaNs are dropped).
        confidence: Two-sided level, 0.95 by default.

    Returns:
        ``(mean, [low, high])``.
    """
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(x) == 0:
        return float("nan"), None
    mean = float(x.mean())
    if len(x) < 2:
        return mean, None
    half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, [mean - half, mean + half]


def paired_ci(
    values: Sequence[float], baseline: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, list[float] | None]:
    """Mean and t-interval of ``values[i] - baseline[i]`` (pairs share a seed, hence data and split).

    Raises:
        ValueError: the two sequences differ in length.
    """
    if len(values) != len(baseline):
        raise ValueError(f"paired_ci: {len(values)} values vs {len(baseline)} baseline values")
    return mean_ci([float(a) - float(b) for a, b in zip(values, baseline, strict=True)], confidence)
