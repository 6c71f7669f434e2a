"""A recommender impression-log simulator with known true click and satisfaction probabilities.

Generative story (numpy, one seeded ``Generator``; every knob is an argument):

1. **Users** (``n_users``): a segment (6 values), an activity level (log-normal) and a small
   personal bias per task (N(0, 0.25²)). **Items** (``n_items``): a category (8 values), a price
   (log-normal around a per-category level), a popularity (Beta(1.2, 6)), a small bias per task
   and a hidden quality (N(0, 0.5²)) that only drives satisfaction.
2. **Impressions** (``n_rows``): a user drawn ∝ activity, an item drawn ∝ popularity^0.5, a
   device (mobile 60 % / desktop 30 % / tablet 10 %), an hour of day (diurnal), a list position
   (1 + geometric, capped at 20) and a timestamp within ``days`` days from ``start`` (rows sorted
   by time; ``hour`` is the timestamp's hour).
3. **Click signal** ``z_c``: segment × category affinity (the main effect) + device + hour
   (evening peak) − log price + popularity − log position + activity + user/item biases,
   standardised. ``p_click = σ(a_c + click_strength · z_c)`` with ``a_c`` solved so that the mean
   of ``p_click`` equals ``click_rate``.
4. **Satisfaction signal**: its own score ``z_o`` (a different segment × category affinity,
   device, + log price, ``quality_strength`` · item quality, user/item biases; standardised) mixed
   with the click score:
   ``z_s = standardise(relatedness · z_c + (1 − relatedness) · z_o)``.
   ``p_satisfaction = σ(a_s + satisfaction_strength · z_s)`` is p(satisfied | click), with ``a_s``
   solved so that E[p_satisfaction | click] equals ``satisfaction_rate``.
5. **Labels**: ``click ~ Bernoulli(p_click)``; ``satisfaction ~ Bernoulli(p_satisfaction)`` is
   observed only where ``click == 1`` (NaN elsewhere), and of those observed labels only a random
   ``label_keep_fraction`` is kept (the rest NaN: label scarcity).
6. **Item rating** (only with ``item_rating=True``): the item's average past rating on a 1–5 star
   scale, ``clip(4 + 0.8 · quality + ε / √n, 1, 5)`` with ``n = 1 + Poisson(200 · popularity)``
   past ratings and ``ε ~ N(0, 1)`` — an observable, noisy view of the hidden quality (popular
   items' ratings are the more precise). Satisfaction depends on it through the quality; clicks do
   not (the rating is not what the user sees in the list). Drawn after everything else, so the other
   columns are the same with or without it.

The true probabilities are written as ``p_click`` / ``p_satisfaction``; :func:`oracle_auc` gives the
best AUC any model can reach on a table.

Example:
    >>> df, schema = simulate_impressions(n_rows=2000, seed=1)
    >>> bool(df.loc[df["click"] == 0, "satisfaction"].isna().all())
    True
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.schema import Schema
from mmoe_tf.feature_specs import FeatureSpec
from mmoe_tf.task_specs import TaskSpec

SEGMENTS = ("student", "professional", "family", "senior", "bargain_hunter", "enthusiast")
CATEGORIES = ("electronics", "fashion", "home", "books", "sports", "beauty", "toys", "grocery")
DEVICES = ("mobile", "desktop", "tablet")
DEVICE_SHARE = (0.6, 0.3, 0.1)
MAX_POSITION = 20
RATINGS_PER_POPULARITY = 200.0


def impressions_schema(item_rating: bool = False) -> Schema:
    """Schema of :func:`simulate_impressions` tables: 10 features (11 with ``item_rating``), tasks ``click`` and
    ``satisfaction``."""
    rating = (FeatureSpec("item_rating", "numeric"),) if item_rating else ()
    return Schema(
        features=(
            FeatureSpec("user_id", "hashed", dtype="string", num_bins=2048, embedding_dim=8),
            FeatureSpec("item_id", "hashed", dtype="string", num_bins=1024, embedding_dim=8),
            FeatureSpec("device", "categorical", dtype="string", embedding_dim=4),
            FeatureSpec("item_category", "categorical", dtype="string", embedding_dim=4),
            FeatureSpec("user_segment", "categorical", dtype="string", embedding_dim=4),
            FeatureSpec("hour", "categorical", dtype="int64", embedding_dim=4),
            FeatureSpec("item_price", "numeric"),
            FeatureSpec("user_activity", "numeric"),
            FeatureSpec("item_popularity", "numeric"),
            FeatureSpec("position", "numeric"),
            *rating,
        ),
        tasks=(TaskSpec("click"), TaskSpec("satisfaction")),
        timestamp_column="timestamp",
        extra_columns=("p_click", "p_satisfaction"),
    )


def _standardise(z: np.ndarray) -> np.ndarray:
    std = z.std()
    return (z - z.mean()) / (std if std > 0 else 1.0)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _solve_intercept(score: np.ndarray, target: float, weights: np.ndarray | None = None) -> float:
    """Intercept ``a`` with weighted mean of ``σ(a + score)`` equal to ``target`` (bisection)."""
    lo, hi = -30.0, 30.0
    for _ in range(100):
        mid = (lo + hi) / 2
        mean = np.average(_sigmoid(mid + score), weights=weights)
        lo, hi = (mid, hi) if mean < target else (lo, mid)
    return (lo + hi) / 2


def _check_rate(name: str, value: float, low_open: bool = True) -> None:
    ok = (0.0 < value < 1.0) if low_open else (0.0 <= value <= 1.0)
    if not isinstance(value, (int, float)) or not ok:
        raise ValueError(f"{name} must be in {'(0, 1)' if low_open else '[0, 1]'}, got {value!r}")


def simulate_impressions(
    n_rows: int = 4000,
    click_rate: float = 0.2,
    satisfaction_rate: float = 0.5,
    relatedness: float = 0.5,
    label_keep_fraction: float = 1.0,
    seed: int = 0,
    n_users: int = 200,
    n_items: int = 100,
    click_strength: float = 2.0,
    satisfaction_strength: float = 2.0,
    start: str = "2024-01-01",
    days: int = 14,
    item_rating: bool = False,
    quality_strength: float = 1.0,
) -> tuple[pd.DataFrame, Schema]:
    """Simulate an impression log (see the module docstring for the generative story).

    Args:
        n_rows: Impressions.
        click_rate: Target mean click probability, in (0, 1).
        satisfaction_rate: Target p(satisfied | click), in (0, 1).
        relatedness: Share (0..1) of the satisfaction score taken from the click score; 1 makes the
            tasks share one signal, 0 makes them unrelated.
        label_keep_fraction: Fraction (0..1) of the observed satisfaction labels kept; the rest NaN.
        seed: Seed of every random draw; equal arguments give equal tables.
        n_users: Distinct users.
        n_items: Distinct items.
        click_strength: Scale of the click logit (larger = more predictable clicks).
        satisfaction_strength: Scale of the satisfaction logit.
        start: First day (``YYYY-MM-DD``, UTC) of the ``timestamp`` window.
        days: Length of the window in days.
        item_rating: Add the ``item_rating`` feature (step 6 of the story) to the table and schema.
        quality_strength: Weight (>= 0) of the hidden item quality in the satisfaction score.

    Returns:
        ``(df, schema)`` with columns ``timestamp`` (int64 epoch seconds), ``user_id``, ``item_id``,
        ``device``, ``item_category``, ``user_segment``, ``hour``, ``item_price``,
        ``user_activity``, ``item_popularity``, ``position``, ``item_rating`` (only with
        ``item_rating=True``), ``click``, ``satisfaction`` (NaN when not observed), ``p_click``,
        ``p_satisfaction``.
    """
    if not isinstance(n_rows, int) or n_rows < 1:
        raise ValueError(f"n_rows must be a positive integer, got {n_rows!r}")
    _check_rate("click_rate", click_rate)
    _check_rate("satisfaction_rate", satisfaction_rate)
    _check_rate("relatedness", relatedness, low_open=False)
    _check_rate("label_keep_fraction", label_keep_fraction, low_open=False)
    if not isinstance(quality_strength, (int, float)) or not quality_strength >= 0:
        raise ValueError(f"quality_strength must be >= 0, got {quality_strength!r}")
    rng = np.random.default_rng(seed)
    n_seg, n_cat = len(SEGMENTS), len(CATEGORIES)

    # 1. users, items and the hidden parameters of both tasks
    user_seg = rng.integers(n_seg, size=n_users)
    user_activity = rng.lognormal(0.0, 0.6, size=n_users)
    user_bias_c, user_bias_s = rng.normal(0.0, 0.25, size=(2, n_users))
    item_cat = rng.integers(n_cat, size=n_items)
    item_price = np.exp(rng.uniform(2.0, 5.0, size=n_cat)[item_cat] + rng.normal(0.0, 0.5, size=n_items))
    item_pop = rng.beta(1.2, 6.0, size=n_items)
    item_bias_c, item_bias_s = rng.normal(0.0, 0.25, size=(2, n_items))
    item_quality = rng.normal(0.0, 0.5, size=n_items)
    affinity_c = rng.normal(0.0, 1.0, size=(n_seg, n_cat))
    affinity_s = rng.normal(0.0, 1.0, size=(n_seg, n_cat))
    device_c, device_s = rng.normal(0.0, 0.4, size=(2, len(DEVICES)))

    # 2. impressions
    u = rng.choice(n_users, size=n_rows, p=user_activity / user_activity.sum())
    pop_w = np.sqrt(item_pop)
    i = rng.choice(n_items, size=n_rows, p=pop_w / pop_w.sum())
    device = rng.choice(len(DEVICES), size=n_rows, p=DEVICE_SHARE)
    hour_w = 1.0 + 0.8 * np.sin((np.arange(24) - 10) / 24 * 2 * np.pi)
    hour = rng.choice(24, size=n_rows, p=hour_w / hour_w.sum())
    position = np.minimum(1 + rng.geometric(0.25, size=n_rows) - 1, MAX_POSITION)
    day = rng.integers(days, size=n_rows)
    t0 = int(pd.Timestamp(start, tz="UTC").timestamp())
    timestamp = t0 + day * 86_400 + hour * 3_600 + rng.integers(3_600, size=n_rows)

    # 3. click score
    log_price = np.log(item_price[i])
    evening = np.cos((hour - 20) / 24 * 2 * np.pi)
    z_click = _standardise(
        affinity_c[user_seg[u], item_cat[i]]
        + device_c[device]
        + 0.4 * evening
        - 0.4 * _standardise(log_price)
        + 0.5 * _standardise(item_pop[i])
        - 0.5 * np.log(position)
        + 0.2 * _standardise(np.log(user_activity[u]))
        + user_bias_c[u]
        + item_bias_c[i]
    )
    p_click = _sigmoid(_solve_intercept(click_strength * z_click, click_rate) + click_strength * z_click)

    # 4. satisfaction score (p(satisfied | click))
    z_own = _standardise(
        affinity_s[user_seg[u], item_cat[i]]
        + device_s[device]
        + 0.4 * _standardise(log_price)
        + quality_strength * item_quality[i]
        + user_bias_s[u]
        + item_bias_s[i]
    )
    z_sat = _standardise(relatedness * z_click + (1.0 - relatedness) * z_own)
    a_sat = _solve_intercept(satisfaction_strength * z_sat, satisfaction_rate, weights=p_click)
    p_sat = _sigmoid(a_sat + satisfaction_strength * z_sat)

    # 5. labels
    click = (rng.random(n_rows) < p_click).astype(np.float64)
    satisfied = (rng.random(n_rows) < p_sat).astype(np.float64)
    keep = rng.random(n_rows) < label_keep_fraction
    satisfaction = np.where((click == 1) & keep, satisfied, np.nan)

    # 6. the item's average past rating, a noisy view of its quality (drawn last: other columns unchanged)
    if item_rating:
        n_ratings = 1 + rng.poisson(RATINGS_PER_POPULARITY * item_pop)
        noise = rng.normal(0.0, 1.0, size=n_items) / np.sqrt(n_ratings)
        rating = np.clip(4.0 + 0.8 * item_quality + noise, 1.0, 5.0)

    df = pd.DataFrame(
        {
            "timestamp": timestamp.astype(np.int64),
            "user_id": np.char.add("u", np.char.zfill(u.astype(str), 5)).astype(object),
            "item_id": np.char.add("i", np.char.zfill(i.astype(str), 5)).astype(object),
            "device": np.asarray(DEVICES, dtype=object)[device],
            "item_category": np.asarray(CATEGORIES, dtype=object)[item_cat[i]],
            "user_segment": np.asarray(SEGMENTS, dtype=object)[user_seg[u]],
            "hour": hour.astype(np.int64),
            "item_price": np.round(item_price[i], 2),
            "user_activity": np.round(user_activity[u], 3),
            "item_popularity": np.round(item_pop[i], 4),
            "position": position.astype(np.int64),
            **({"item_rating": np.round(rating[i], 2)} if item_rating else {}),
            "click": click,
            "satisfaction": satisfaction,
            "p_click": np.round(p_click, 6),
            "p_satisfaction": np.round(p_sat, 6),
        }
    )
    df = df.sort_values("timestamp", kind="stable").reset_index(drop=True)
    return df, impressions_schema(item_rating=item_rating)


def oracle_auc(df: pd.DataFrame, task: str) -> float:
    """AUC of the true probability ``p_<task>`` against the observed labels of ``task`` (best achievable).

    Args:
        df: A simulated table (with ``p_click`` / ``p_satisfaction``).
        task: ``"click"`` or ``"satisfaction"``; rows with a NaN label are ignored.

    Returns:
        The ROC AUC, or NaN when the observed labels hold a single class.
    """
    prob_column = f"p_{task}"
    for c in (task, prob_column):
        if c not in df.columns:
            raise ValueError(f"oracle_auc: column {c!r} is not in the table")
    labels = df[task].to_numpy(dtype=np.float64)
    observed = ~np.isnan(labels)
    positive = labels[observed] == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # Mann–Whitney U with average ranks for ties (equals sklearn's roc_auc_score)
    ranks = pd.Series(df[prob_column].to_numpy(dtype=np.float64)[observed]).rank(method="average").to_numpy()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
