"""Rows of the ``gate_remedies`` fits: per-cell means and paired gains, the default-choice decision, the figure.

Reads the fit records that :mod:`training.experiments.gate_remedies` writes under ``<results>/raw/gate_remedies/``
and turns them into ``docs/results/gate_remedies.json``: per setting × level × variant × task × metric, the mean with
its 95 % t-interval over seeds, ``gain_vs_none`` (the paired difference to ``none``; for MSE none − variant, so
positive = better) and ``effect`` (:func:`effect`); per variant a ``metric=summary`` row (:func:`variant_summaries`)
and one ``metric=default_choice`` row (:func:`default_choice`). :func:`plot` draws ``docs/figures/gate_remedies.png``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.experiments import common, fit_files
from training.experiments.results import summarize, write_results

NAME = "gate_remedies"
SETTINGS = ("relatedness", "scarcity")
BASELINE = "none"
LEVEL = {"relatedness": "correlation", "scarcity": "label_fraction"}
METRIC = {"relatedness": "mse", "scarcity": "auc"}
FIT_FIELDS = ("rows", "epochs", "batch_size", "patience", "learning_rate")
SPECIALISATION = ("task_expert_mi", "specialised_experts", "js_similarity", "cosine", "per_example_js")
PER_TASK_GATE = ("gate_entropy", "gate_collapsed", "gate_max_weight")


def long_records(fits: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per fit, one record per task × metric (test metric, gate measures, collapse) for :func:`summarize`."""
    long = []
    for f in fits:
        cell = {"setting": f["setting"], LEVEL[f["setting"]]: f["level"], "variant": f["variant"], "seed": f["seed"]}
        cell["epochs_run"] = f["epochs_run"]
        long += [{**cell, "task": t, "metric": f["metric"], "value": v} for t, v in f["scores"].items()]
        for measure, value in f["gates"].items():
            if measure.startswith("entropy_"):
                long.append({**cell, "task": measure[len("entropy_") :], "metric": "gate_entropy", "value": value})
            else:
                long.append({**cell, "task": "both", "metric": measure, "value": value})
        for task, c in f["collapse"]["tasks"].items():
            long.append({**cell, "task": task, "metric": "gate_collapsed", "value": c["collapsed"]})
            long.append({**cell, "task": task, "metric": "gate_max_weight", "value": c["mean_max_weight"]})
        long.append({**cell, "task": "both", "metric": "unused_experts", "value": f["collapse"]["unused_experts"]})
    return long


def effect(row: Mapping[str, Any]) -> str:
    """``better``/``worse`` (test metrics) or ``higher``/``lower`` (gate measures) when ``gain_vs_none``'s interval
    excludes 0, ``none detected`` when it does not, ``n/a`` without an interval (one seed) or for ``none`` itself."""
    gain = row.get("gain_vs_none")
    if not gain or gain.get("ci95") is None:
        return "n/a"
    low, high = gain["ci95"]
    quality = row["metric"] in METRIC.values()
    if low > 0:
        return "better" if quality else "higher"
    if high < 0:
        return "worse" if quality else "lower"
    return "none detected"


def default_choice(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``default_choice`` row: the variants that improve a test metric somewhere (interval excluding 0) and
    worsen none; the defaults stay unless there is one."""
    quality = [r for r in rows if r["metric"] in METRIC.values() and r["variant"] != BASELINE]
    variants = list(dict.fromkeys(r["variant"] for r in quality))
    better = {v: [r for r in quality if r["variant"] == v and r["effect"] == "better"] for v in variants}
    worse = {v: [r for r in quality if r["variant"] == v and r["effect"] == "worse"] for v in variants}
    winners = [v for v in variants if better[v] and not worse[v]]
    cells = {v: sum(r["variant"] == v for r in quality) for v in variants}
    if winners:
        text = "candidates for a new default: " + "; ".join(
            f"{v} (better in {len(better[v])} of {cells[v]} setting × task cells, worse in none)" for v in winners
        )
    else:
        text = (
            "the defaults stay (no gate dropout, temperature 1, no balance penalty): no remedy improves a test metric "
            "with a 95 % interval excluding 0 without worsening another"
        )
    mixed = [v for v in variants if better[v] and worse[v]]
    if mixed:
        text += "; better in some cells but worse in others: " + ", ".join(mixed)
    seeds = min((int(r["seeds"]) for r in quality), default=0)
    return {
        "setting": "all",
        "variant": "all",
        "task": "all",
        "metric": "default_choice",
        "mean": None,
        "ci95": None,
        "seeds": seeds,
        "decision": text,
    }


def _count(rows: Sequence[Mapping[str, Any]], up: str, down: str) -> str:
    """``"<up> in a, <down> in b of n"`` over ``rows``' ``effect`` (``n`` = rows with an interval)."""
    known = [r for r in rows if r["effect"] != "n/a"]
    ups, downs = (sum(r["effect"] == e for r in known) for e in (up, down))
    return f"{up} in {ups}, {down} in {downs} of {len(known)}"


def variant_summaries(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per variant (not ``none``), one ``metric=summary`` row counting the cells (setting × level × task) whose
    paired interval excludes 0: ``specialisation`` (``task_expert_mi``, ``specialised_experts``), ``gate_entropy``,
    ``collapse`` (``gate_collapsed``) and ``quality`` (test MSE/AUC)."""
    groups = {
        "specialisation": (("task_expert_mi", "specialised_experts"), "higher", "lower"),
        "gate_entropy": (("gate_entropy",), "higher", "lower"),
        "collapse": (("gate_collapsed",), "higher", "lower"),
        "quality": (tuple(METRIC.values()), "better", "worse"),
    }
    out = []
    for variant in dict.fromkeys(r["variant"] for r in rows if r["variant"] != BASELINE):
        mine = [r for r in rows if r["variant"] == variant]
        row: dict[str, Any] = {"setting": "all", "variant": variant, "task": "all", "metric": "summary"}
        row |= {"mean": None, "ci95": None, "seeds": min(int(r["seeds"]) for r in mine)}
        for column, (metrics, up, down) in groups.items():
            row[column] = _count([r for r in mine if r["metric"] in metrics], up, down)
        out.append(row)
    return out


def summarise(
    folder: Path,
    fits_wanted: Mapping[str, common.FitOptions],
    rows: Mapping[str, int],
    results_dir: str | Path | None = None,
    figures_dir: str | Path | None = None,
    variant_order: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Rows of the fits in ``folder`` whose sizes match ``fits_wanted`` and ``rows``; writes the JSON and figure.

    Args:
        folder: the fit records (``<results>/raw/gate_remedies/``).
        fits_wanted: per setting, the fit options a record must have been fitted with (settings missing: skipped).
        rows: per setting, the data-set rows a record must have.
        results_dir: where ``gate_remedies.json`` goes (default ``docs/results``).
        figures_dir: where ``gate_remedies.png`` goes (default ``docs/figures``).
        variant_order: variants listed first (after ``none``) within a cell; the others follow as recorded.

    Returns:
        The rows, also written to ``<results_dir>/gate_remedies.json``.
    """
    fits = [
        f
        for f in fit_files.read_records(folder)
        if f["setting"] in fits_wanted
        and f["rows"] == rows[f["setting"]]
        and all(f[k] == getattr(fits_wanted[f["setting"]], k) for k in FIT_FIELDS if k != "rows")
    ]
    order = {v: i for i, v in enumerate(dict.fromkeys([BASELINE, *variant_order, *(f["variant"] for f in fits)]))}
    table: list[dict[str, Any]] = []
    for setting in SETTINGS:
        part = long_records([f for f in fits if f["setting"] == setting])
        if not part:
            continue
        level = LEVEL[setting]
        rows_ = summarize(
            part, ["setting", level, "variant"], compare=("variant", BASELINE, "gain_vs_none"), extras=("epochs_run",)
        )
        metric_order = [METRIC[setting], *SPECIALISATION, *PER_TASK_GATE, "unused_experts"]
        rows_.sort(key=lambda r: (metric_order.index(r["metric"]), r["task"], r[level], order[r["variant"]]))
        table += rows_
    for row in table:
        row["effect"] = effect(row)
    if table:
        table += [*variant_summaries(table), default_choice(table)]
    write_results(NAME, table, results_dir)
    plot(table, common.figure_path(NAME, figures_dir))
    return table


def plot(table: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Left: task–expert MI vs correlation per variant. Middle: normalised gate entropy (task y1). Right: scarcity
    test-AUC gain vs none per variant and task (mean, 95 % interval)."""
    fig, (left, middle, right) = common.new_figure(3, width=4.6)
    related = [r for r in table if r["setting"] == "relatedness"]
    for ax, metric, task, label in (
        (left, "task_expert_mi", "both", "task–expert MI, bits"),
        (middle, "gate_entropy", "y1", "gate entropy / log K, y1"),
    ):
        picked = [r for r in related if r["metric"] == metric and r["task"] == task]
        if picked:
            common.plot_rows(ax, picked, "correlation", group="variant")
        ax.set_xlabel("task correlation p")
        ax.set_ylabel(label)
    gains = [r for r in table if r["setting"] == "scarcity" and r["metric"] == "auc" and r.get("gain_vs_none")]
    for offset, task in enumerate(sorted({r["task"] for r in gains})):
        part = [r for r in gains if r["task"] == task]
        means = np.array([r["gain_vs_none"]["mean"] for r in part], dtype=float)
        cis = [r["gain_vs_none"]["ci95"] or [m, m] for r, m in zip(part, means, strict=True)]
        err = [means - np.array([c[0] for c in cis]), np.array([c[1] for c in cis]) - means]
        xs = np.arange(len(part)) + 0.15 * offset
        right.errorbar(xs, means, yerr=err, fmt="o", capsize=3, label=task)
        right.set_xticks(np.arange(len(part)), [r["variant"] for r in part], rotation=30, ha="right", fontsize="small")
    right.axhline(0.0, color="grey", lw=0.8)
    if gains:
        right.legend()
    right.set_ylabel("scarcity: test AUC − none's (paired)")
    return common.save_figure(fig, path)
