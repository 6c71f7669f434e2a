"""Task relatedness: MMoE vs OMoE vs shared-bottom on the MMoE paper's synthetic data.

For each task correlation p the paper's generator (``data.generators.synthetic``) makes two
regression tasks; each architecture is trained over several seeds and scored by test MSE per task.
The paper (Ma et al. 2018, Fig. 4) expects MMoE's advantage to grow as the correlation falls.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from training.experiments import common

DEFAULT_FIT = common.FitOptions(batch_size=512, learning_rate=3e-3)

ARCHITECTURES = ("mmoe", "omoe", "shared_bottom")
CORRELATIONS = (0.5, 0.9, 1.0)


def run(
    rows: int = 8000,
    correlations: Sequence[float] = CORRELATIONS,
    architectures: Sequence[str] = ARCHITECTURES,
    seeds: int = 3,
    fit: common.FitOptions = DEFAULT_FIT,
    figures_dir: str | Path | None = None,
    dim: int = 16,
) -> pd.DataFrame:
    """Sweep correlation × architecture × seed; return mean/std test MSE per task (one row per setting)."""
    records = []
    tasks: tuple[str, ...] = ()
    for p in correlations:
        for seed in range(seeds):
            df, schema = common.synthetic_data(rows, p, seed, dim)
            splits = common.split(df, seed)
            tasks = tuple(t.name for t in schema.tasks)
            for arch in architectures:
                _, scores = common.train_and_evaluate(schema, splits, architecture=arch, seed=seed, fit=fit)
                records.append({"correlation": p, "architecture": arch, "seed": seed, **scores})
    raw = pd.DataFrame.from_records(records)
    table = common.aggregate(raw, ["correlation", "architecture"], list(tasks))
    table = table.rename(columns={f"{t}_{s}": f"mse_{t}_{s}" for t in tasks for s in ("mean", "std")})
    plot(table, tasks, common.figure_path("relatedness", figures_dir))
    return table


def plot(table: pd.DataFrame, tasks: Sequence[str], path: Path) -> Path:
    """Test MSE vs correlation, one panel per task, one line (± std) per architecture."""
    fig, axes = common.new_figure(len(tasks))
    for ax, task in zip(axes, tasks, strict=True):
        common.plot_architecture_lines(ax, table, "correlation", f"mse_{task}")
        ax.set_xlabel("task correlation p")
        ax.set_ylabel("test MSE")
        ax.set_title(task)
    return common.save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> pd.DataFrame:
    """CLI: ``python -m training.experiments relatedness [--rows N --seeds S --correlations …]``."""
    parser = argparse.ArgumentParser(prog="python -m training.experiments relatedness", description=__doc__)
    common.add_size_arguments(parser, rows=8000, seeds=3, fit=DEFAULT_FIT)
    parser.add_argument("--correlations", type=float, nargs="+", default=list(CORRELATIONS))
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES))
    parser.add_argument("--dim", type=int, default=16, help="input dimension (default 16; paper: 100)")
    args = parser.parse_args(argv)
    table = run(
        args.rows,
        args.correlations,
        args.architectures,
        args.seeds,
        common.fit_options(args),
        args.figures_dir,
        args.dim,
    )
    common.print_result(
        "relatedness: test MSE per task (mean ± std over seeds)",
        table,
        common.figure_path("relatedness", args.figures_dir),
        {"rows": args.rows, "dim": args.dim, "split": "random 80/10/10 per seed"},
    )
    return table
