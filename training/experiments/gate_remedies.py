"""Gate-polarisation remedies: what gate dropout, a gate temperature and a load-balancing penalty do to MMoE's gates.

Each remedy is a ``ModelConfig`` option: ``gate_dropout`` (Zhao et al., RecSys 2019), ``gate_temperature`` and
``gate_balance_weight`` (the importance loss of Shazeer et al. 2017). A variant is ``none`` or ``field=value``
(several joined with ``+``); every variant is fitted on the same data sets as ``none`` (same seed: same data,
split and initial weights), in two settings, MMoE with the experiments' common sizes (8 experts × 16, towers 8):

- ``relatedness``: the MMoE paper's synthetic regression tasks (d = 100) at correlations 0, 0.5 and 1.0, 10,000
  rows, the main stage of ``gates_vs_relatedness`` (batch 512, learning rate 3e-2, patience 3, cap 30 epochs);
  test metric MSE per task;
- ``scarcity``: the impression simulator (200k rows) with 1 % of the satisfaction labels kept in train and
  validation, as ``scarcity`` does it (batch 1024, learning rate 1e-3, patience 3, cap 30 epochs); test AUC per task.

Per fit, from MMoE's top-level gates on the test split: specialisation (``task_expert_mi``, ``specialised_experts``
and the gate similarities of :func:`training.experiments.gates_vs_relatedness.gate_measures`), collapse
(``gate_entropy`` = normalised entropy per task, ``gate_collapsed`` = 1 when ``training.gate_analysis`` flags the
task's gate as collapsed, ``gate_max_weight`` = mean top weight per task, ``unused_experts`` = share of experts with
under 1/10 of an even share of the gate mass) and the test metric.

Rows (``docs/results/gate_remedies.json``, :mod:`training.experiments.gate_remedies_summary`): per setting × level ×
variant × task × metric, the mean with its 95 % t-interval over seeds, ``gain_vs_none`` = the paired difference to
``none`` on the same seeds (for MSE: none − variant, so positive = better; for everything else variant − none) and
``effect`` (``better``/``worse`` for test metrics, ``higher``/``lower`` for gate measures, when the interval excludes 0;
``none detected`` otherwise); one ``metric=default_choice`` row holds ``decision``: which variant, if any, improves a
test metric with an interval excluding 0 in some cell and worsens none, and per variant a ``metric=summary`` row counts
the cells where it moves specialisation, gate entropy, collapse and the test metric. Each fit is one JSON file under
``<results>/raw/gate_remedies/``; a rerun skips the fits already there, and ``--jobs N`` runs N fits at a time.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.experiments import common, fit_files
from training.experiments.gate_remedies_summary import BASELINE, FIT_FIELDS, METRIC, NAME, SETTINGS, summarise
from training.experiments.gates_vs_relatedness import gate_measures
from training.experiments.results import RESULTS_DIR

REMEDY_FIELDS = ("gate_dropout", "gate_temperature", "gate_balance_weight")
# dropout 0.1 as Zhao et al.; T = 2 flatter, 0.5 sharper (the opposite direction, for contrast); balance 0.1 is Shazeer
# et al.'s weight, 0.01 a tenth of it (CV² is at most K − 1 = 7, a near-uniform gate's well under 1)
VARIANTS = (
    BASELINE,
    "gate_dropout=0.1",
    "gate_temperature=2",
    "gate_temperature=0.5",
    "gate_balance_weight=0.01",
    "gate_balance_weight=0.1",
)
CORRELATIONS = (0.0, 0.5, 1.0)
LABEL_FRACTION = 0.01
RELATEDNESS_FIT = common.FitOptions(epochs=30, batch_size=512, patience=3, learning_rate=3e-2)
SCARCITY_FIT = common.FitOptions(epochs=30, batch_size=1024, patience=3, learning_rate=1e-3)
KEY = ("setting", "level", "variant", "seed", "rows", "learning_rate")
ARCHITECTURE = "mmoe"


def parse_variant(name: str) -> dict[str, float]:
    """The ``ModelConfig`` overrides of a variant: ``{}`` for ``none``, else ``field=value`` items joined by ``+``.

    Raises:
        ValueError: an item is not ``field=value`` with a remedy field (``REMEDY_FIELDS``) and a number.

    Example:
        >>> parse_variant("gate_dropout=0.1+gate_temperature=2")
        {'gate_dropout': 0.1, 'gate_temperature': 2.0}
    """
    if name == BASELINE:
        return {}
    overrides = {}
    for item in name.split("+"):
        field, sep, value = item.partition("=")
        if not sep or field not in REMEDY_FIELDS:
            raise ValueError(f"variant {name!r}: expected 'none' or field=value with a field of {REMEDY_FIELDS}")
        try:
            overrides[field] = float(value)
        except ValueError:
            raise ValueError(f"variant {name!r}: {value!r} is not a number") from None
    return overrides


def variant_name(name: str) -> str:
    """The canonical spelling of a variant (``gate_temperature=2.0`` → ``gate_temperature=2``)."""
    overrides = parse_variant(name)
    return "+".join(f"{k}={v:g}" for k, v in overrides.items()) or BASELINE


def _path(job: Mapping[str, Any]) -> Path:
    return fit_files.fit_path(Path(job["folder"]), job, KEY)


def _splits(job: Mapping[str, Any]) -> tuple[Any, tuple]:
    """The schema and (train, val, test) of ``job``'s data set (the same for every variant of a seed)."""
    seed, rows = job["seed"], job["rows"]
    if job["setting"] == "relatedness":
        df, schema = common.synthetic_data(rows, job["level"], seed, job["dim"])
        return schema, common.split(df, seed)
    full, schema = common.impressions_data(rows, seed)
    test = common.split(full, seed)[2]
    # as in scarcity: same rows and split, only the kept satisfaction labels differ (test keeps all of them)
    train, val, _ = common.split(common.impressions_data(rows, seed, label_keep_fraction=job["level"])[0], seed)
    return schema, (train, val, test)


def gate_collapse(gates: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Per task ``collapsed`` (0/1) and ``mean_max_weight``, and ``unused_experts`` (share): ``analyze_gate_weights``.

    Example:
        >>> gate_collapse({"a": np.array([[1.0, 0.0]]), "b": np.array([[0.5, 0.5]])})["tasks"]["a"]["collapsed"]
        1
    """
    from training.gate_analysis import analyze_gate_weights

    logging.getLogger("training.gate_analysis").setLevel(logging.ERROR)  # recorded here, not warned per fit
    analysis = analyze_gate_weights(gates)
    tasks = {
        task: {"collapsed": int(t["collapsed"]), "mean_max_weight": t["mean_max_weight"]}
        for task, t in analysis["tasks"].items()
    }
    return {"tasks": tasks, "unused_experts": len(analysis["unused_experts"]) / analysis["num_experts"]}


def _fit_one(job: dict[str, Any]) -> dict[str, Any]:
    """One fit (``job``: setting, level, variant, seed, fit options, raw folder); its record, also written to a file."""
    from data import feature_arrays
    from mmoe_tf import gate_model

    common.limit_threads()
    path = _path(job)
    if path.is_file():
        return json.loads(path.read_text())
    schema, splits = _splits(job)
    fit = common.FitOptions(job["epochs"], job["batch_size"], job["patience"], job["learning_rate"])
    result = common.fit_and_score(
        schema, splits, architecture=ARCHITECTURE, seed=job["seed"], fit=fit, **parse_variant(job["variant"])
    )
    gates = common.predict(gate_model(result.model), feature_arrays(splits[2], schema))
    record: dict[str, Any] = {
        **{k: job[k] for k in (*KEY, *FIT_FIELDS)},
        "val_loss": result.best_values[fit.monitor],
        "best_epoch": result.best_epochs[fit.monitor],
        "epochs_run": result.epochs_run,
        "seconds": result.seconds,
        "metric": METRIC[job["setting"]],
        "scores": result.scores[fit.monitor],
        "gates": gate_measures(gates),
        "collapse": gate_collapse(gates),
        "mean_gates": {t: g.mean(axis=0).tolist() for t, g in gates.items()},
    }
    if job["setting"] == "scarcity":
        record["train_labels"] = int(splits[0]["satisfaction"].notna().sum())
    fit_files.write_record(path, record)
    return record


def jobs_for(
    settings: Sequence[str],
    variants: Sequence[str],
    seeds: int,
    scarcity_seeds: int,
    correlations: Sequence[float],
    label_fraction: float,
    fits: Mapping[str, common.FitOptions],
    rows: Mapping[str, int],
    folder: Path,
) -> list[dict[str, Any]]:
    """Every fit of the grid, seeds outermost (a stopped run has every cell at a similar seed count)."""
    levels = {"relatedness": list(correlations), "scarcity": [label_fraction]}
    counts = {"relatedness": seeds, "scarcity": scarcity_seeds}
    todo = []
    for seed in range(max((counts[s] for s in settings), default=0)):
        for setting in settings:
            if seed >= counts[setting]:
                continue
            fit = fits[setting]
            base = {
                "setting": setting,
                "seed": seed,
                "rows": rows[setting],
                "dim": 100,
                "epochs": fit.epochs,
                "batch_size": fit.batch_size,
                "patience": fit.patience,
                "learning_rate": fit.learning_rate,
                "folder": str(folder),
            }
            todo += [{**base, "level": level, "variant": v} for level in levels[setting] for v in variants]
    return todo


def run(
    settings: Sequence[str] = SETTINGS,
    variants: Sequence[str] = VARIANTS,
    seeds: int = 10,
    scarcity_seeds: int = 5,
    correlations: Sequence[float] = CORRELATIONS,
    label_fraction: float = LABEL_FRACTION,
    fits: Mapping[str, common.FitOptions] | None = None,
    rows: Mapping[str, int] | None = None,
    jobs: int = 1,
    results_dir: str | Path | None = None,
    figures_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Fit every setting × level × seed × variant not recorded yet, then summarise every recorded fit.

    Returns:
        The summary rows (also in ``<results_dir>/gate_remedies.json``).
    """
    fits = dict(fits or {"relatedness": RELATEDNESS_FIT, "scarcity": SCARCITY_FIT})
    rows = dict(rows or {"relatedness": 10_000, "scarcity": 200_000})
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ValueError(f"unknown settings {unknown}; expected some of {SETTINGS}")
    variants = list(dict.fromkeys([BASELINE, *(variant_name(v) for v in variants)]))  # none: the pairs' baseline
    folder = (Path(results_dir) if results_dir is not None else RESULTS_DIR) / "raw" / NAME
    todo = jobs_for(settings, variants, seeds, scarcity_seeds, correlations, label_fraction, fits, rows, folder)
    ran = fit_files.run_pending(todo, _fit_one, _path, jobs)
    print(f"{NAME}: {ran} fits run, {len(todo) - ran} already recorded", flush=True)
    return summarise(folder, {s: fits[s] for s in settings}, rows, results_dir, figures_dir, variant_order=VARIANTS)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """CLI: ``python -m training.experiments gate_remedies [--variants … --seeds S --jobs J …]``."""
    parser = argparse.ArgumentParser(prog=f"python -m training.experiments {NAME}", description=__doc__)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument(
        "--variants", nargs="+", default=list(VARIANTS), help=f"none or field=value[+…] (default {' '.join(VARIANTS)})"
    )
    parser.add_argument("--seeds", type=int, default=10, help="relatedness data sets per correlation (default 10)")
    parser.add_argument("--scarcity-seeds", type=int, default=5, help="scarcity data sets (default 5)")
    parser.add_argument("--correlations", type=float, nargs="+", default=list(CORRELATIONS))
    parser.add_argument("--label-fraction", type=float, default=LABEL_FRACTION, help="scarcity: labels kept")
    parser.add_argument("--rows", type=int, default=10_000, help="relatedness rows per data set (default 10000)")
    parser.add_argument("--scarcity-rows", type=int, default=200_000, help="scarcity rows (default 200000)")
    parser.add_argument("--epochs", type=int, default=30, help="max epochs of every fit (default 30)")
    parser.add_argument("--jobs", type=int, default=1, help="fits run at a time (processes; default 1)")
    parser.add_argument("--results-dir", default=None, help="where the JSON goes (default docs/results)")
    parser.add_argument("--figures-dir", default=None, help="where the PNG goes (default docs/figures)")
    args = parser.parse_args(argv)
    for name in args.variants:
        parse_variant(name)  # a typo fails before any fit
    fits = {
        "relatedness": common.FitOptions(args.epochs, 512, 3, RELATEDNESS_FIT.learning_rate),
        "scarcity": common.FitOptions(args.epochs, 1024, 3, SCARCITY_FIT.learning_rate),
    }
    table = run(
        args.settings,
        args.variants,
        args.seeds,
        args.scarcity_seeds,
        args.correlations,
        args.label_fraction,
        fits,
        {"relatedness": args.rows, "scarcity": args.scarcity_rows},
        args.jobs,
        args.results_dir,
        args.figures_dir,
    )
    common.print_rows(f"{NAME}: MMoE gate remedies, mean [95 % CI] over seeds; gain = paired vs none", table)
    return table
