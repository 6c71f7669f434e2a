"""UCI Census-Income (KDD): test AUC per task for each architecture on the MMoE paper's task groups.

Only the 99,762-row UCI *test* file is available (``../shared/data/census-income``), so it is split
here with a seeded random 80/10/10 train/validation/test split; the numbers are therefore not
directly comparable with the paper's (which trains on the 199,523-row training file).
Task groups (``data.real.census``): 1 = income > 50K & marital status never married,
2 = education (at least college) & marital status.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from training.experiments import common

DEFAULT_FIT = common.FitOptions(epochs=8, batch_size=1024, patience=2)

ARCHITECTURES = ("single_task", "shared_bottom", "omoe", "mmoe")
GROUPS = (1, 2)


def run(
    rows: int | None = None,
    groups: Sequence[int] = GROUPS,
    architectures: Sequence[str] = ARCHITECTURES,
    seeds: int = 1,
    fit: common.FitOptions = DEFAULT_FIT,
    data_root: str | Path | None = None,
    figures_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Task group × architecture × seed; return mean/std test AUC of both tasks (one row per setting)."""
    records = []
    for group in groups:
        df, schema = common.census_data(group, data_root)
        if rows is not None and rows < len(df):
            df = df.sample(n=rows, random_state=0).reset_index(drop=True)
        tasks = [t.name for t in schema.tasks]
        for seed in range(seeds):
            splits = common.split(df, seed)
            for arch in architectures:
                _, scores = common.train_and_evaluate(schema, splits, architecture=arch, seed=seed, fit=fit)
                records.append(
                    {
                        "group": group,
                        "tasks": " & ".join(tasks),
                        "architecture": arch,
                        "seed": seed,
                        "auc_task1": scores[tasks[0]],
                        "auc_task2": scores[tasks[1]],
                    }
                )
    raw = pd.DataFrame.from_records(records)
    table = common.aggregate(raw, ["group", "tasks", "architecture"], ["auc_task1", "auc_task2"])
    plot(table, common.figure_path("census", figures_dir))
    return table


def plot(table: pd.DataFrame, path: Path) -> Path:
    """Grouped bars of both tasks' test AUC, one panel per task group."""
    groups = list(table.groupby("group", sort=False))
    fig, axes = common.new_figure(len(groups), width=5.5)
    for ax, (_, part) in zip(axes, groups, strict=True):
        names = part["tasks"].iloc[0].split(" & ")
        x = range(len(part))
        for offset, (column, name) in enumerate(zip(("auc_task1", "auc_task2"), names, strict=True)):
            ax.bar(
                [i + 0.4 * offset for i in x],
                part[f"{column}_mean"],
                width=0.4,
                yerr=part[f"{column}_std"],
                capsize=3,
                label=name,
            )
        ax.set_xticks([i + 0.2 for i in x], part["architecture"], rotation=20)
        low = min(part["auc_task1_mean"].min(), part["auc_task2_mean"].min())
        ax.set_ylim(max(0.0, low - 0.05), 1.0)
        ax.set_ylabel("test AUC")
        ax.set_title(part["tasks"].iloc[0])
        ax.legend(loc="lower right")
    return common.save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    """CLI: ``python -m training.experiments census [--groups 1 2 --seeds S --rows N]``."""
    parser = argparse.ArgumentParser(prog="python -m training.experiments census", description=__doc__)
    common.add_size_arguments(parser, rows=0, seeds=1, fit=DEFAULT_FIT)
    parser.add_argument("--groups", type=int, nargs="+", default=list(GROUPS), choices=GROUPS)
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES))
    parser.add_argument("--data-root", default=None, help="folder holding census-income/ (default ../shared/data)")
    args = parser.parse_args(argv)
    rows = args.rows or None
    table = run(
        rows, args.groups, args.architectures, args.seeds, common.fit_options(args), args.data_root, args.figures_dir
    )
    common.print_result(
        "census: test AUC per task (mean ± std over seeds)",
        table,
        common.figure_path("census", args.figures_dir),
        {
            "rows": rows or "all 99,762 of the UCI test file",
            "split": "seeded random 80/10/10 of the UCI test file (the training file is not available)",
        },
    )
    return table
