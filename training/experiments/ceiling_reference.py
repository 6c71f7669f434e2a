"""How close can *any* model fitted on the same rows get to the oracle? A well-specified reference.

The simulator's click and satisfaction logits are linear in one-hot user, item, user segment × item
category, device and hour indicators plus log price, popularity, log position and log activity
(``data.generators.impressions``). A logistic regression on exactly those terms is therefore
*correctly specified*: with infinite data it reaches the oracle AUC. On
the same 200k-row splits as ``ceiling`` (same seeds), with its L2 strength chosen on the validation
split, its test AUC gap to the oracle is what estimating ~300 per-user and per-item effects from the
observed labels costs any model: the finite-data floor the neural models' gap should be read against.

Writes ``docs/results/ceiling_reference.json`` (rows: ``architecture: well_specified_logistic``,
``task``, ``metric`` ∈ {auc, oracle_auc, gap}, ``mean``, ``ci95``, ``seeds``, plus ``best_c``).

Usage: ``python -m training.experiments ceiling_reference [--rows 200000 --seeds 3]``
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.experiments import common
from training.experiments.results import summarize, write_results

NAME = "ceiling_reference"
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
# The simulator's terms (its source: data/generators/impressions.py, steps 3 and 4). Satisfaction's
# logit mixes its own score with the click score (``relatedness`` 0.5 by default), so both tasks take
# all of them; per-user and per-item indicators also absorb activity, price and popularity.
_CATEGORICAL = ("user_id", "item_id", "segment_x_category", "device", "hour")
_NUMERIC = ("log_price", "item_popularity", "log_position", "log_user_activity")
CATEGORICAL_TERMS = {"click": _CATEGORICAL, "satisfaction": _CATEGORICAL}
NUMERIC_TERMS = {"click": _NUMERIC, "satisfaction": _NUMERIC}


def design(df: pd.DataFrame, task: str, levels: dict[str, list]) -> Any:
    """Sparse design matrix of ``task``'s simulator terms (one-hot categorical levels + numeric columns)."""
    from scipy import sparse

    frame = _terms(df)
    blocks = []
    for term in CATEGORICAL_TERMS[task]:
        index = {v: i for i, v in enumerate(levels[term])}
        cols = frame[term].map(index).fillna(-1).to_numpy(np.int64)
        rows = np.nonzero(cols >= 0)[0]
        blocks.append(sparse.csr_matrix((np.ones(len(rows)), (rows, cols[rows])), shape=(len(df), len(index))))
    blocks.append(sparse.csr_matrix(frame[list(NUMERIC_TERMS[task])].to_numpy(np.float64)))
    return sparse.hstack(blocks).tocsr()


def _terms(df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": df["user_id"],
            "item_id": df["item_id"],
            "segment_x_category": df["user_segment"].astype(str) + "|" + df["item_category"].astype(str),
            "device": df["device"],
            "hour": df["hour"],
            "log_price": np.log(df["item_price"].to_numpy(np.float64)),
            "item_popularity": df["item_popularity"].to_numpy(np.float64),
            "log_position": np.log(df["position"].to_numpy(np.float64)),
            "log_user_activity": np.log(df["user_activity"].to_numpy(np.float64)),
        }
    )


def fit_one(splits: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame], task: str) -> tuple[float, float]:
    """Test AUC of the well-specified logistic regression for ``task`` (L2 chosen on validation) and its C."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import MaxAbsScaler

    train, val, test = (s[s[task].notna()] for s in splits)
    frame = _terms(train)
    levels = {term: sorted(frame[term].unique().tolist()) for term in CATEGORICAL_TERMS[task]}
    scaler = MaxAbsScaler().fit(design(train, task, levels))
    x_train, x_val, x_test = (scaler.transform(design(s, task, levels)) for s in (train, val, test))
    best = (-1.0, None, None)
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=2000).fit(x_train, train[task].to_numpy())
        score = roc_auc_score(val[task].to_numpy(), model.predict_proba(x_val)[:, 1])
        if score > best[0]:
            best = (score, c, model)
    _, c, model = best
    return float(roc_auc_score(test[task].to_numpy(), model.predict_proba(x_test)[:, 1])), float(c)


def run(rows: int = 200_000, seeds: int = 3, results_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Per task: the reference's test AUC, the oracle's, and the gap (95 % intervals over seeds)."""
    records = []
    for seed in range(seeds):
        df, schema = common.impressions_data(rows, seed)
        splits = common.split(df, seed)
        oracle = common.oracle_aucs(splits[2], schema)
        for task in CATEGORICAL_TERMS:
            auc, c = fit_one(splits, task)
            for metric, value in (("auc", auc), ("oracle_auc", oracle[task]), ("gap", oracle[task] - auc)):
                records.append(
                    {
                        "architecture": "well_specified_logistic",
                        "rows": rows,
                        "seed": seed,
                        "task": task,
                        "metric": metric,
                        "value": value,
                        "best_c": c,
                    }
                )
    table = summarize(records, ["architecture", "rows"], extras=("best_c",))
    write_results(NAME, table, results_dir)
    return table


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """CLI: ``python -m training.experiments ceiling_reference [--rows N --seeds S]``."""
    parser = argparse.ArgumentParser(prog="python -m training.experiments ceiling_reference", description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--results-dir", default=None, help="where the JSON goes (default docs/results)")
    args = parser.parse_args(argv)
    table = run(args.rows, args.seeds, args.results_dir)
    common.print_rows(f"{NAME}: well-specified logistic regression vs the oracle", table)
    return table
