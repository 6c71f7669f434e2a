"""Ceiling: how close does a trained MMoE get to the oracle AUC of the impression simulator?

The simulator (``data.generators.impressions``) knows each row's true probabilities, so the best
achievable AUC on a test split is the oracle AUC of those probabilities
(``data.generators.impressions.oracle_auc``). MMoE is trained with early stopping on a validation
split and each task's test AUC is compared with its oracle. Target: within 0.01 at 200k rows.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from training.experiments import common

DEFAULT_FIT = common.FitOptions(epochs=40, batch_size=1024, patience=3)

TARGET_GAP = 0.01


def run(
    rows: int = 200_000,
    seeds: int = 1,
    architecture: str = "mmoe",
    fit: common.FitOptions = DEFAULT_FIT,
    figures_dir: str | Path | None = None,
    overrides: dict | None = None,
) -> pd.DataFrame:
    """Per task: mean/std test AUC of the model, of the oracle, and their gap over seeds.

    ``overrides`` are ``ModelConfig`` fields replacing the experiments' common sizes (e.g. larger experts).
    """
    records = []
    for seed in range(seeds):
        df, schema = common.impressions_data(rows, seed)
        splits = common.split(df, seed)
        _, scores = common.train_and_evaluate(
            schema, splits, architecture=architecture, seed=seed, fit=fit, **(overrides or {})
        )
        oracle = common.oracle_aucs(splits[2], schema)
        for task in scores:
            records.append(
                {
                    "task": task,
                    "seed": seed,
                    "model_auc": scores[task],
                    "oracle_auc": oracle[task],
                    "gap": oracle[task] - scores[task],
                }
            )
    raw = pd.DataFrame.from_records(records)
    table = common.aggregate(raw, ["task"], ["model_auc", "oracle_auc", "gap"])
    table["within_target"] = table["gap_mean"] <= TARGET_GAP
    plot(table, architecture, common.figure_path("ceiling", figures_dir))
    return table


def plot(table: pd.DataFrame, architecture: str, path: Path) -> Path:
    """Bars of model vs oracle test AUC per task."""
    fig, (ax,) = common.new_figure(1, width=5.0)
    x = range(len(table))
    ax.bar(
        [i - 0.2 for i in x],
        table["model_auc_mean"],
        width=0.4,
        yerr=table["model_auc_std"],
        capsize=3,
        label=architecture,
    )
    ax.bar([i + 0.2 for i in x], table["oracle_auc_mean"], width=0.4, label="oracle (true probabilities)")
    ax.set_xticks(list(x), table["task"])
    low = min(table["model_auc_mean"].min(), table["oracle_auc_mean"].min())
    ax.set_ylim(max(0.0, low - 0.05), min(1.0, table["oracle_auc_mean"].max() + 0.05))
    ax.set_ylabel("test AUC")
    ax.legend(loc="upper right")
    return common.save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    """CLI: ``python -m training.experiments ceiling [--rows N --seeds S]``."""
    parser = argparse.ArgumentParser(prog="python -m training.experiments ceiling", description=__doc__)
    common.add_size_arguments(parser, rows=200_000, seeds=1, fit=DEFAULT_FIT)
    parser.add_argument("--architecture", default="mmoe")
    parser.add_argument("--num-experts", type=int, help="experts (default: the experiments' common 8)")
    parser.add_argument("--expert-units", type=int, nargs="+", help="expert hidden sizes (default: 16)")
    parser.add_argument("--tower-units", type=int, nargs="+", help="tower hidden sizes (default: 8)")
    args = parser.parse_args(argv)
    overrides = {
        key: tuple(value) if isinstance(value, list) else value
        for key, value in (
            ("num_experts", args.num_experts),
            ("expert_units", args.expert_units),
            ("tower_units", args.tower_units),
        )
        if value is not None
    }
    table = run(args.rows, args.seeds, args.architecture, common.fit_options(args), args.figures_dir, overrides)
    common.print_result(
        f"ceiling: {args.architecture} test AUC vs oracle AUC (target gap <= {TARGET_GAP})",
        table,
        common.figure_path("ceiling", args.figures_dir),
        {"rows": args.rows, "split": "random 80/10/10 per seed", "model_overrides": overrides or "common sizes"},
    )
    return table
