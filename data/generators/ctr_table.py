"""A wide click/satisfaction table for speed benchmarks: many numeric and categorical columns, two tasks.

Generative story (numpy, one seeded ``Generator``):

1. ``n_numeric`` numeric columns ``num_0..``: a standard normal ``z_j`` per row, stored raw as
   ``offset_j + scale_j · z_j`` (offsets and scales vary by column, so normalisation matters).
2. One categorical column ``cat_j`` per entry of ``cardinalities``: a category index drawn from a
   Zipf-like law (``p(r) ∝ 1 / (r + 1)^0.8``), stored as a raw int64 id (a seeded injective map of
   the index into ``[0, 10·cardinality)``), so a model needs a vocabulary to use it.
3. Click logit: ``w_cᵀz + Σ_j e_cj[cat_j] + 0.5 · z_0 · z_1`` (an interaction), standardised and
   scaled by ``strength``. Satisfaction logit: the same construction with weights and effects
   correlated with the click ones at ``relatedness``, plus its own interaction ``0.5 · z_2 · z_3``.
4. Labels ``click ~ Bernoulli(σ(logit_c + a_c))`` and ``satisfaction ~ Bernoulli(σ(logit_s + a_s))``,
   both observed on every row (a throughput table: no label masking), with intercepts set so the
   base rates are ``click_rate`` / ``satisfaction_rate``.

Example:
    >>> df, schema = simulate_ctr_table(n_rows=1000, seed=0)
    >>> len(schema.features), list(df.columns[-2:])
    (20, ['click', 'satisfaction'])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from data.schema import Schema
from mmoe_tf.feature_specs import FeatureSpec
from mmoe_tf.task_specs import TaskSpec

DEFAULT_CARDINALITIES = (100, 1_000, 20, 5_000)


def ctr_table_schema(n_numeric: int = 16, cardinalities: Sequence[int] = DEFAULT_CARDINALITIES) -> Schema:
    """Schema of :func:`simulate_ctr_table`: numeric ``num_i``, int64 categorical ``cat_j`` (embedding 8)."""
    features = [FeatureSpec(f"num_{i}", "numeric") for i in range(n_numeric)]
    features += [
        FeatureSpec(f"cat_{j}", "categorical", dtype="int64", embedding_dim=8) for j in range(len(cardinalities))
    ]
    return Schema(features=tuple(features), tasks=(TaskSpec("click"), TaskSpec("satisfaction")))


def _correlated(base: np.ndarray, relatedness: float, rng: np.random.Generator) -> np.ndarray:
    return relatedness * base + np.sqrt(1.0 - relatedness**2) * rng.standard_normal(base.shape)


def _logit(
    z: np.ndarray, codes: list[np.ndarray], weights: np.ndarray, effects: list[np.ndarray], pair: int
) -> np.ndarray:
    score = z @ weights + 0.5 * z[:, pair] * z[:, pair + 1]
    for code, effect in zip(codes, effects, strict=True):
        score = score + effect[code]
    return (score - score.mean()) / (score.std() or 1.0)


def _intercept(logit: np.ndarray, rate: float) -> float:
    low, high = -20.0, 20.0
    for _ in range(60):
        mid = (low + high) / 2
        if (1 / (1 + np.exp(-(logit + mid)))).mean() < rate:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def simulate_ctr_table(
    n_rows: int = 200_000,
    n_numeric: int = 16,
    cardinalities: Sequence[int] = DEFAULT_CARDINALITIES,
    relatedness: float = 0.7,
    strength: float = 2.5,
    click_rate: float = 0.2,
    satisfaction_rate: float = 0.3,
    seed: int = 0,
) -> tuple[pd.DataFrame, Schema]:
    """Generate a wide two-task table (see the module docstring).

    Args:
        n_rows: Rows.
        n_numeric: Numeric columns (>= 4: the interactions use ``z_0..z_3``).
        cardinalities: One categorical column per entry, with that many distinct values.
        relatedness: Correlation of the satisfaction weights/effects with the click ones, in [0, 1].
        strength: Scale of the standardised logits (higher: more separable, higher AUC).
        click_rate: Mean click probability.
        satisfaction_rate: Mean satisfaction probability.
        seed: Seed of every draw.

    Returns:
        ``(df, schema)``: columns ``num_*`` (float32), ``cat_*`` (int64), ``click``, ``satisfaction`` (float32).
    """
    if not isinstance(n_rows, int) or n_rows < 1:
        raise ValueError(f"n_rows must be an integer >= 1, got {n_rows!r}")
    if not isinstance(n_numeric, int) or n_numeric < 4:
        raise ValueError(f"n_numeric must be an integer >= 4, got {n_numeric!r}")
    if any(not isinstance(c, int) or c < 2 for c in cardinalities):
        raise ValueError(f"cardinalities must be integers >= 2, got {list(cardinalities)!r}")
    if not 0.0 <= relatedness <= 1.0:
        raise ValueError(f"relatedness must be in [0, 1], got {relatedness!r}")
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_rows, n_numeric))
    offsets, scales = rng.normal(0, 50, n_numeric), rng.lognormal(0, 1.5, n_numeric)
    codes, ids = [], []
    for card in cardinalities:
        p = 1.0 / np.arange(1, card + 1) ** 0.8
        code = rng.choice(card, size=n_rows, p=p / p.sum())
        raw = rng.choice(10 * card, size=card, replace=False).astype(np.int64)
        codes.append(code)
        ids.append(raw[code])
    w_click = rng.standard_normal(n_numeric) / np.sqrt(n_numeric)
    e_click = [0.6 * rng.standard_normal(card) for card in cardinalities]
    w_sat = _correlated(w_click, relatedness, rng)
    e_sat = [_correlated(e, relatedness, rng) for e in e_click]
    logits = {
        "click": strength * _logit(z, codes, w_click, e_click, 0),
        "satisfaction": strength * _logit(z, codes, w_sat, e_sat, 2),
    }
    rates = {"click": click_rate, "satisfaction": satisfaction_rate}
    columns: dict[str, np.ndarray] = {
        f"num_{i}": (offsets[i] + scales[i] * z[:, i]).astype(np.float32) for i in range(n_numeric)
    }
    columns.update({f"cat_{j}": ids[j] for j in range(len(cardinalities))})
    for task, logit in logits.items():
        p = 1 / (1 + np.exp(-(logit + _intercept(logit, rates[task]))))
        columns[task] = (rng.random(n_rows) < p).astype(np.float32)
    return pd.DataFrame(columns), ctr_table_schema(n_numeric, cardinalities)
