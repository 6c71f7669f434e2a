"""Gates vs relatedness: do MMoE's per-task gates follow the task correlation, and where do they beat one gate?

At the MMoE paper's setup (Ma et al., KDD 2018: synthetic data with input dimension 100, 8 experts ×
16 units, towers of 8) MMoE and OMoE (one shared gate) are trained on the same data sets
(``data.generators.synthetic``, one per correlation × seed) at every learning rate of a small grid.
Per correlation and architecture the learning rate with the lowest mean best validation loss is
kept; every number below comes from the fits at that rate.

From MMoE's top-level gates on the test split (``mmoe_tf.gate_model``), per data set:

- ``js_similarity``: 1 − Jensen-Shannon distance (base 2) of the two tasks' mean gate distributions;
- ``cosine``: cosine similarity of the mean gate distributions;
- ``per_example_js``: mean over test examples of the JS distance of the two tasks' gates (0 = same);
- ``entropy_<task>``: the task's mean per-example gate entropy divided by ``log K`` (1 = uniform);
- ``task_expert_mi``: mutual information (bits) between the task (uniform over the two) and the expert
  drawn from its mean gate, i.e. the JS divergence of the mean gates (0 = both tasks use the experts
  alike, 1 = disjoint experts);
- ``specialised_experts``: share of experts whose gate mass comes ≥ 75 % from one task (one task
  weighs it at least 3× the other).

Rows: ``gates_vs_relatedness.json`` (means with 95 % t-intervals per correlation, MMoE's test MSE and
``gain_vs_omoe``, the paired MMoE − OMoE test-MSE difference, positive = MMoE better),
``gates_vs_relatedness_trend.json`` (Spearman rank correlation of each measure with the task correlation
over the data sets, with a bootstrap 95 % interval and the p-value) and ``gates_vs_relatedness_lr.json`` (the learning
rate choice). Each fit is one JSON file under ``<results>/raw/gates_vs_relatedness/``; a rerun skips
the fits already there, and ``--jobs N`` runs N fits at a time.
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

from training.experiments import common, fit_files
from training.experiments.results import RESULTS_DIR, summarize, write_results

NAME = "gates_vs_relatedness"
DEFAULT_FIT = common.FitOptions(epochs=30, batch_size=512, patience=3, learning_rate=1e-2)
CORRELATIONS = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)
ARCHITECTURES = ("mmoe", "omoe")
LEARNING_RATES = (3e-3, 1e-2, 3e-2)
TUNING_SEED = 1000
KEY = ("stage", "architecture", "correlation", "seed", "learning_rate", "rows", "dim")
SPECIALISED_SHARE = 0.75
GATE_MEASURES = ("js_similarity", "cosine", "per_example_js", "task_expert_mi", "specialised_experts")


def gate_measures(gates: Mapping[str, np.ndarray], specialised_share: float = SPECIALISED_SHARE) -> dict[str, float]:
    """Similarity, entropy and specialisation of two tasks' gates.

    Args:
        gates: ``{task: [N, K]}`` gate weights of exactly two tasks (rows sum to 1).
        specialised_share: An expert is specialised when at least this share of its gate mass comes from one task.

    Returns:
        ``js_similarity``, ``cosine``, ``per_example_js``, ``task_expert_mi`` (bits),
        ``specialised_experts`` (share of experts) and ``entropy_<task>`` (normalised) per task.

    Example:
        >>> m = gate_measures({"a": np.array([[1.0, 0.0]]), "b": np.array([[0.0, 1.0]])})
        >>> m["js_similarity"], m["task_expert_mi"], m["specialised_experts"]
        (0.0, 1.0, 1.0)
    """
    if len(gates) != 2:
        raise ValueError(f"gate_measures needs exactly two tasks, got {list(gates)}")
    (name_a, a), (name_b, b) = ((n, np.asarray(g, dtype=float)) for n, g in gates.items())
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    k = a.shape[1]
    js_mean = float(jensenshannon(mean_a, mean_b, base=2))
    per_example = np.nan_to_num(jensenshannon(a, b, axis=1, base=2))
    mass = mean_a + mean_b
    share = np.divide(mean_a, mass, out=np.full(k, 0.5), where=mass > 0)
    out = {
        "js_similarity": 1.0 - js_mean,
        "cosine": float(mean_a @ mean_b / max(np.linalg.norm(mean_a) * np.linalg.norm(mean_b), 1e-12)),
        "per_example_js": float(per_example.mean()),
        "task_expert_mi": js_mean**2,
        "specialised_experts": float(np.mean((share >= specialised_share) | (share <= 1 - specialised_share))),
    }
    for name, g in ((name_a, a), (name_b, b)):
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = np.where(g > 0, -g * np.log(g), 0.0).sum(axis=1)
        out[f"entropy_{name}"] = float(entropy.mean() / np.log(k))
    return out


def _run_path(folder: Path, key: Mapping[str, Any]) -> Path:
    return fit_files.fit_path(folder, key, KEY)


def _fit_one(job: dict[str, Any]) -> dict[str, Any]:
    """One fit (``job``: settings, fit options, raw folder); its record, also written to its own file."""
    from data import feature_arrays
    from mmoe_tf import gate_model

    common.limit_threads()
    key = {k: job[k] for k in KEY}
    path = _run_path(Path(job["folder"]), key)
    if path.is_file():
        return json.loads(path.read_text())
    df, schema = common.synthetic_data(job["rows"], job["correlation"], job["seed"], job["dim"])
    splits = common.split(df, job["seed"])
    fit = common.FitOptions(job["epochs"], job["batch_size"], job["patience"], job["learning_rate"])
    result = common.fit_and_score(schema, splits, architecture=job["architecture"], seed=job["seed"], fit=fit)
    record: dict[str, Any] = {
        **key,
        "val_loss": result.best_values["val_loss"],
        "best_epoch": result.best_epochs["val_loss"],
        "epochs_run": result.epochs_run,
        "seconds": result.seconds,
        "mse": result.scores["val_loss"],
    }
    if job["architecture"] == "mmoe":
        gates = common.predict(gate_model(result.model), feature_arrays(splits[2], schema))
        record["gates"] = gate_measures(gates)
        record["mean_gates"] = {t: g.mean(axis=0).tolist() for t, g in gates.items()}
    fit_files.write_record(path, record)  # atomic: a stopped run leaves no half-written record
    return record


def choose_learning_rates(records: Sequence[Mapping[str, Any]]) -> dict[tuple[float, str], float]:
    """Per (correlation, architecture): the learning rate with the lowest mean best validation loss."""
    means: dict[tuple[float, str, float], list[float]] = {}
    for r in records:
        means.setdefault((r["correlation"], r["architecture"], r["learning_rate"]), []).append(r["val_loss"])
    best: dict[tuple[float, str], tuple[float, float]] = {}
    for (p, arch, lr), values in means.items():
        score = float(np.mean(values))
        if (p, arch) not in best or score < best[(p, arch)][1]:
            best[(p, arch)] = (lr, score)
    return {cell: lr for cell, (lr, _) in best.items()}


def spearman_trend(
    records: Sequence[Mapping[str, Any]], measures: Sequence[str], boot: int = 2000
) -> list[dict[str, Any]]:
    """Per measure: Spearman's rho of its per-data-set value against the task correlation.

    Rows in the results format: ``mean`` = rho, ``ci95`` = percentile bootstrap interval over data sets
    (``boot`` resamples, fixed seed), ``seeds`` = data sets, ``p_value`` = scipy's two-sided p-value.
    """
    rows = []
    rng = np.random.default_rng(0)
    for measure in measures:
        pairs = np.array(
            [(r["correlation"], r["value"]) for r in records if r["metric"] == measure and r["value"] is not None]
        )
        if len(pairs) < 3 or len(set(pairs[:, 0])) < 2:
            continue
        rho, p_value = stats.spearmanr(pairs[:, 0], pairs[:, 1])
        with warnings.catch_warnings():  # a constant resample gives NaN (dropped below)
            warnings.simplefilter("ignore", stats.ConstantInputWarning)
            draws = [stats.spearmanr(*pairs[rng.integers(0, len(pairs), len(pairs))].T)[0] for _ in range(boot)]
        draws = np.asarray(draws, dtype=float)
        draws = draws[np.isfinite(draws)]
        ci = [float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))] if len(draws) else None
        row = {"task": "both", "metric": measure, "mean": float(rho), "ci95": ci, "seeds": len(pairs)}
        rows.append({**row, "p_value": float(p_value)})
    return rows


def _execute(todo: Sequence[dict[str, Any]], jobs: int) -> None:
    """Run the fits of ``todo`` not recorded yet, ``jobs`` at a time."""
    fit_files.run_pending(todo, _fit_one, lambda job: _run_path(Path(job["folder"]), job), jobs)


def _records(folder: Path, rows: int, dim: int, correlations: Sequence[float]) -> list[dict[str, Any]]:
    fits = fit_files.read_records(folder)
    return [f for f in fits if f["rows"] == rows and f["dim"] == dim and f["correlation"] in correlations]


def run(
    rows: int = 12_000,
    correlations: Sequence[float] = CORRELATIONS,
    seeds: int = 10,
    fit: common.FitOptions = DEFAULT_FIT,
    figures_dir: str | Path | None = None,
    dim: int = 100,
    results_dir: str | Path | None = None,
    learning_rates: Sequence[float] = LEARNING_RATES,
    jobs: int = 1,
) -> list[dict[str, Any]]:
    """Tune the learning rate per correlation × architecture, then sweep seed × correlation × architecture.

    The rate is chosen on a separate tuning data set per correlation (seed ``TUNING_SEED``). Seeds run
    outermost, so a stopped run has every correlation at a similar seed count; the summaries use every
    fit recorded for these ``rows``/``dim``/``correlations``. Writes the three JSON files and the figure.
    """
    folder = (Path(results_dir) if results_dir is not None else RESULTS_DIR) / "raw" / NAME
    base = {"rows": rows, "dim": dim, "epochs": fit.epochs, "batch_size": fit.batch_size, "patience": fit.patience}
    base["folder"] = str(folder)
    tune = [
        {**base, "stage": "tune", "architecture": a, "correlation": p, "seed": TUNING_SEED, "learning_rate": lr}
        for p in correlations
        for a in ARCHITECTURES
        for lr in learning_rates
    ]
    _execute(tune, jobs)
    tuned = [f for f in _records(folder, rows, dim, correlations) if f["stage"] == "tune"]
    chosen = choose_learning_rates([f for f in tuned if f["learning_rate"] in learning_rates])
    main = [
        {**base, "stage": "main", "architecture": a, "correlation": p, "seed": s, "learning_rate": chosen[(p, a)]}
        for s in range(seeds)
        for p in correlations
        for a in ARCHITECTURES
    ]
    _execute(main, jobs)
    return summarise(folder, rows, dim, correlations, learning_rates, results_dir, figures_dir)


def summarise(
    folder: Path,
    rows: int,
    dim: int,
    correlations: Sequence[float],
    learning_rates: Sequence[float],
    results_dir: str | Path | None = None,
    figures_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Summaries of the fits recorded in ``folder`` (see the module docstring); returns the main rows."""
    fits = _records(folder, rows, dim, correlations)
    tuned = [f for f in fits if f["stage"] == "tune" and f["learning_rate"] in learning_rates]
    chosen = choose_learning_rates(tuned)
    write_results(f"{NAME}_lr", _lr_rows(tuned, chosen), results_dir)
    kept = [
        f for f in fits if f["stage"] == "main" and chosen[(f["correlation"], f["architecture"])] == f["learning_rate"]
    ]
    long = []
    for f in kept:
        cell = {"correlation": f["correlation"], "seed": f["seed"], "architecture": f["architecture"]}
        long += [{**cell, "task": t, "metric": "mse", "value": v} for t, v in f["mse"].items()]
        for measure, value in f.get("gates", {}).items():
            entropy = measure.startswith("entropy_")
            task, metric = (measure[len("entropy_") :], "gate_entropy") if entropy else ("both", measure)
            long.append({**cell, "task": task, "metric": metric, "value": value})
    table = summarize(long, ["correlation", "architecture"], compare=("architecture", "omoe", "gain_vs_omoe"))
    for row in table:
        row["learning_rate"] = chosen[(row["correlation"], row["architecture"])]
    table.sort(key=lambda r: (r["architecture"] != "mmoe", r["metric"] != "mse", r["correlation"]))
    write_results(NAME, table, results_dir)
    gate_long = [r for r in long if r["architecture"] == "mmoe" and r["metric"] != "mse"]
    trend = spearman_trend(gate_long, GATE_MEASURES)
    for task in sorted({r["task"] for r in gate_long if r["metric"] == "gate_entropy"}):
        trend += [
            {**row, "task": task}
            for row in spearman_trend([r for r in gate_long if r["task"] == task], ["gate_entropy"])
        ]
    mse_gain = [
        {"correlation": r["correlation"], "metric": f"gain_vs_omoe_{r['task']}", "value": r["value"] - omoe["value"]}
        for r in long
        if r["architecture"] == "mmoe" and r["metric"] == "mse"
        for omoe in long
        if omoe["architecture"] == "omoe"
        and omoe["metric"] == "mse"
        and (omoe["correlation"], omoe["seed"], omoe["task"]) == (r["correlation"], r["seed"], r["task"])
    ]
    for row in mse_gain:
        row["value"] = -row["value"]  # OMoE − MMoE test MSE: positive = MMoE better
    for name in sorted({r["metric"] for r in mse_gain}):
        trend += [
            {**row, "task": name[len("gain_vs_omoe_") :], "metric": "gain_vs_omoe"}
            for row in spearman_trend(mse_gain, [name])
        ]
    write_results(f"{NAME}_trend", trend, results_dir)
    mean_gates = {
        f["correlation"]: f["mean_gates"] for f in sorted(kept, key=lambda f: -f["seed"]) if "mean_gates" in f
    }
    plot(table, mean_gates, common.figure_path(NAME, figures_dir))
    return table


def _lr_rows(fits: Sequence[Mapping[str, Any]], chosen: Mapping[tuple[float, str], float]) -> list[dict[str, Any]]:
    long = [
        {k: f[k] for k in ("correlation", "architecture", "learning_rate", "seed")}
        | {"task": "all", "metric": "val_loss", "value": f["val_loss"], "best_epoch": f["best_epoch"]}
        for f in fits
    ]
    out = summarize(long, ["correlation", "architecture", "learning_rate"], extras=("best_epoch",))
    for row in out:
        row["chosen"] = chosen[(row["correlation"], row["architecture"])] == row["learning_rate"]
    return out


def plot(table: Sequence[Mapping[str, Any]], mean_gates: Mapping[float, Mapping[str, list]], path: Path) -> Path:
    """Left: gate similarity and specialisation vs correlation. Middle: MMoE − OMoE test MSE. Right: mean gates."""
    fig, (left, middle, right) = common.new_figure(3, width=4.6)
    mmoe = [r for r in table if r["architecture"] == "mmoe" and r["task"] in ("both",)]
    common.plot_rows(left, [r for r in mmoe if r["metric"] in GATE_MEASURES], "correlation", group="metric")
    left.set_xlabel("task correlation p")
    left.set_ylabel("MMoE gate measure (mean, 95 % CI)")
    gains = [
        {**r, "mean": r["gain_vs_omoe"]["mean"], "ci95": r["gain_vs_omoe"]["ci95"]}
        for r in table
        if r["architecture"] == "mmoe" and r["metric"] == "mse" and "gain_vs_omoe" in r
    ]
    if gains:
        common.plot_rows(middle, gains, "correlation", group="task")
    middle.axhline(0.0, color="grey", lw=0.8)
    middle.set_xlabel("task correlation p")
    middle.set_ylabel("OMoE − MMoE test MSE (> 0: MMoE better)")
    if mean_gates:
        ends = sorted({min(mean_gates), max(mean_gates)})
        bars = [(p, task, np.asarray(w)) for p in ends for task, w in mean_gates[p].items()]
        width = 0.8 / len(bars)
        for i, (p, task, weights) in enumerate(bars):
            right.bar(np.arange(len(weights)) + i * width, weights, width=width, label=f"p={p:g} {task}")
        right.legend(fontsize="small")
    right.set_xlabel("expert")
    right.set_ylabel("MMoE mean gate weight (test, one data set)")
    return common.save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """CLI: ``python -m training.experiments gates_vs_relatedness [--rows N --seeds S --jobs J …]``."""
    parser = argparse.ArgumentParser(prog=f"python -m training.experiments {NAME}", description=__doc__)
    common.add_size_arguments(parser, rows=12_000, seeds=10, fit=DEFAULT_FIT)
    parser.add_argument("--correlations", type=float, nargs="+", default=list(CORRELATIONS))
    parser.add_argument("--dim", type=int, default=100, help="input dimension (default 100, as the paper)")
    parser.add_argument("--learning-rates", type=float, nargs="+", default=list(LEARNING_RATES))
    parser.add_argument("--jobs", type=int, default=1, help="fits run at a time (processes; default 1)")
    parser.add_argument("--results-dir", default=None, help="where the JSON goes (default docs/results)")
    args = parser.parse_args(argv)
    table = run(
        args.rows,
        args.correlations,
        args.seeds,
        common.fit_options(args),
        args.figures_dir,
        args.dim,
        args.results_dir,
        args.learning_rates,
        args.jobs,
    )
    common.print_rows(f"{NAME}: MMoE gates and MMoE vs OMoE test MSE, mean [95 % CI] over data sets", table)
    return table
