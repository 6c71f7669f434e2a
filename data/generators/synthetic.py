"""The synthetic two-task regression benchmark of the MMoE paper (Ma et al., KDD 2018, §4.1).

Generative story (numpy, seeded):

1. Draw two orthogonal unit vectors ``u1, u2 ∈ R^d`` (Gram–Schmidt on Gaussian draws).
2. Given a scale ``c`` and a task correlation ``p ∈ [-1, 1]``, set ``w1 = c·u1`` and
   ``w2 = c·(p·u1 + sqrt(1 − p²)·u2)``, so ``cos(w1, w2) = p``.
3. Draw inputs ``x ∈ R^d`` with i.i.d. ``N(0, 1)`` elements.
4. Labels ``y_i = w_iᵀx + Σ_{j=1..m} sin(α_j·w_iᵀx + β_j) + ε_i`` with ``ε_i ~ N(0, noise_std²)``
   (the paper's ``N(0, 0.01)`` is ``noise_std = 0.1``); ``α_j, β_j ~ N(0, 1)`` are shared by
   both tasks and drawn once from the seed.

Because of the sinusoids the labels' Pearson correlation is not exactly ``p``, but it rises
monotonically with it (the paper's Figure 2), from ≈0 at ``p = 0`` to ≈1 at ``p = 1``.

Example:
    >>> df, schema = make_synthetic(n_rows=1000, correlation=0.5, seed=0)
    >>> list(df.columns[-2:])
    ['y1', 'y2']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.schema import Schema
from mmoe_tf.feature_specs import FeatureSpec
from mmoe_tf.task_specs import TaskSpec


def task_weights(dim: int, correlation: float, scale: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(w1, w2)`` with ``|w1| = |w2| = scale`` and ``cos(w1, w2) = correlation``."""
    u1, u2 = np.linalg.qr(rng.standard_normal((dim, 2)))[0].T
    w1 = scale * u1
    w2 = scale * (correlation * u1 + np.sqrt(1.0 - correlation**2) * u2)
    return w1, w2


def synthetic_schema(dim: int) -> Schema:
    """Numeric features ``x_0..x_{dim-1}``; regression tasks ``y1`` and ``y2`` (MSE)."""
    return Schema(
        features=tuple(FeatureSpec(f"x_{i}", "numeric") for i in range(dim)),
        tasks=(TaskSpec("y1", "regression"), TaskSpec("y2", "regression")),
    )


def make_synthetic(
    n_rows: int = 10_000,
    correlation: float = 0.5,
    dim: int = 100,
    num_sin: int = 10,
    scale: float = 1.0,
    noise_std: float = 0.1,
    seed: int = 0,
) -> tuple[pd.DataFrame, Schema]:
    """Generate the MMoE paper's synthetic data set.

    Args:
        n_rows: Number of rows.
        correlation: Cosine similarity ``p`` of the two tasks' weight vectors, in ``[-1, 1]``.
        dim: Input dimension ``d`` (paper: 100).
        num_sin: Number of sinusoids ``m`` (paper: 10).
        scale: Weight norm ``c`` (paper: 1).
        noise_std: Standard deviation of the label noise (paper: variance 0.01 → 0.1).
        seed: Seed of every random draw (weights, α/β, inputs, noise).

    Returns:
        ``(df, schema)``: columns ``x_0..x_{d-1}`` (float32) and labels ``y1``, ``y2`` (float32).
    """
    if not -1.0 <= correlation <= 1.0:
        raise ValueError(f"correlation must be in [-1, 1], got {correlation!r}")
    for name, value, minimum in (("n_rows", n_rows, 1), ("dim", dim, 2), ("num_sin", num_sin, 0)):
        if not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if noise_std < 0:
        raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")
    rng = np.random.default_rng(seed)
    w1, w2 = task_weights(dim, correlation, scale, rng)
    alpha, beta = rng.standard_normal(num_sin), rng.standard_normal(num_sin)
    x = rng.standard_normal((n_rows, dim))
    labels = {}
    for name, w in (("y1", w1), ("y2", w2)):
        z = x @ w
        labels[name] = z + np.sin(np.outer(z, alpha) + beta).sum(axis=1) + noise_std * rng.standard_normal(n_rows)
    df = pd.DataFrame(x.astype(np.float32), columns=[f"x_{i}" for i in range(dim)])
    for name, y in labels.items():
        df[name] = y.astype(np.float32)
    return df, synthetic_schema(dim)
