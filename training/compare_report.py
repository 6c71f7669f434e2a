"""Statistics and output files of ``python -m training compare``: means, paired differences, verdicts, plots.

Per task the test metric is AUC (binary; higher is better) or MSE (regression; lower is better).
Intervals are two-sided 95 % Student-t intervals over seeds. A multi-task architecture's paired
difference from ``single_task`` is taken seed by seed (both fits share the seed's data split) and
signed so that **positive means better** (``arch - single_task`` for AUC, ``single_task - arch``
for MSE). Verdict: ``helps`` (interval entirely above 0), ``negative transfer`` (entirely below 0),
otherwise ``no detectable difference``.

The recommendation follows the intervals, never a mean alone (:data:`RULE`): a multi-task architecture is
recommended only when it **helps** on the primary task and shows negative transfer on no task (the best primary mean
among such architectures); otherwise ``single_task``, the simplest model, with the reason — the comparison cannot
tell the architectures apart (or a multi-task one hurts), and more seeds narrow the intervals.

Example:
    >>> mean_interval([0.70, 0.72, 0.71])["mean"]
    0.71
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from training.gate_summary import sharing_band

BASELINE = "single_task"
HELPS, NO_DIFFERENCE, NEGATIVE = "helps", "no detectable difference", "negative transfer"
HIGHER_IS_BETTER = {"auc": True, "mse": False}
GATES_NOTE = (
    "Gates a ~ b: similarity of the two tasks' mean gate distributions on the test split (1 − Jensen-Shannon "
    "distance, base 2: 1 = the same experts in the same amounts, 0 = disjoint experts), mean [95 % interval, "
    "clipped to [0, 1]] over seeds, with its sharing band (little < 0.3 ≤ moderate < 0.7 ≤ strong; "
    "`training/gate_summary.py`). `omoe` has one gate for all tasks, so its similarity is 1 by construction."
)
RULE = (
    "a multi-task architecture is recommended only when its paired 95 % interval on the primary task lies above 0 "
    "(helps) and it has negative transfer on no task; otherwise single_task, the simplest model"
)


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean and Student-t interval of the finite ``values`` (``None`` bounds with fewer than 2 of them).

    Returns:
        ``{"mean", "low", "high", "half_width", "n"}`` (``mean`` is ``None`` when no value is finite).
    """
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return {"mean": None, "low": None, "high": None, "half_width": None, "n": 0}
    mean = float(x.mean())
    if n < 2:
        return {"mean": mean, "low": None, "high": None, "half_width": None, "n": n}
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return {"mean": mean, "low": mean - half, "high": mean + half, "half_width": half, "n": n}


def verdict(interval: Mapping[str, Any]) -> str:
    """``helps`` / ``negative transfer`` / ``no detectable difference`` from a difference's interval."""
    if interval["low"] is not None and interval["low"] > 0:
        return HELPS
    if interval["high"] is not None and interval["high"] < 0:
        return NEGATIVE
    return NO_DIFFERENCE


def summarize(
    fits: Sequence[Mapping[str, Any]],
    architectures: Sequence[str],
    metrics: Mapping[str, str],
    primary_task: str,
    primary_reason: str = "",
) -> dict[str, Any]:
    """Per task and architecture: mean ± interval; paired differences from ``single_task``; the recommendation.

    Args:
        fits: Records with ``architecture``, ``seed``, ``metrics`` (``{task: value}``) and ``wall_seconds``.
        architectures: Architectures in display order (``single_task`` among them).
        metrics: ``{task: "auc" | "mse"}``.
        primary_task: The task whose interval (then mean) picks the recommended architecture (:func:`recommend`).
        primary_reason: Why that task is the primary one, quoted in the recommendation's reason.

    Returns:
        ``{"summary", "paired", "recommended", "wall_seconds", "gate_similarity"}`` (:func:`gate_similarity`),
        JSON-ready.
    """
    by_arch = {a: {f["seed"]: f for f in fits if f["architecture"] == a} for a in architectures}
    summary = {
        task: {a: mean_interval([f["metrics"][task] for f in by_arch[a].values()]) for a in architectures}
        for task in metrics
    }
    paired: dict[str, dict[str, Any]] = {}
    for task, metric in metrics.items():
        sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
        paired[task] = {}
        for arch in architectures:
            if arch == BASELINE:
                continue
            seeds = sorted(set(by_arch[arch]) & set(by_arch[BASELINE]))
            diffs = [
                sign * (by_arch[arch][s]["metrics"][task] - by_arch[BASELINE][s]["metrics"][task])
                for s in seeds
                if _finite(by_arch[arch][s]["metrics"][task]) and _finite(by_arch[BASELINE][s]["metrics"][task])
            ]
            interval = mean_interval(diffs)
            paired[task][arch] = {**interval, "verdict": verdict(interval)}
    recommended = recommend(summary, paired, architectures, metrics, primary_task, primary_reason)
    wall = {
        a: {
            "mean": float(np.mean([f["wall_seconds"] for f in by_arch[a].values()])) if by_arch[a] else None,
            "per_seed": {str(s): f["wall_seconds"] for s, f in sorted(by_arch[a].items())},
        }
        for a in architectures
    }
    return {
        "summary": summary,
        "paired": paired,
        "recommended": recommended,
        "wall_seconds": wall,
        "gate_similarity": gate_similarity(fits, architectures),
    }


def gate_similarity(fits: Sequence[Mapping[str, Any]], architectures: Sequence[str]) -> dict[str, Any]:
    """Per gated architecture and task pair: ``1 - JS`` of the tasks' gates, mean [95 % interval] over seeds.

    Args:
        fits: Records with ``architecture`` and ``gate_similarity`` (``{"a|b": value}``, or ``None`` / absent for a
            fit without gates).

    Returns:
        ``{architecture: {"a|b": {mean, low, high, half_width, n, band}}}`` for the architectures with gate
        similarities (``low`` / ``high`` clipped to [0, 1], the range of ``1 - JS``; ``band``: ``little`` /
        ``moderate`` / ``strong`` sharing of the mean, :func:`training.gate_summary.sharing_band`).
    """
    out: dict[str, Any] = {}
    for arch in architectures:
        values: dict[str, list[float]] = {}
        for f in fits:
            if f["architecture"] == arch and f.get("gate_similarity"):
                for pair, value in f["gate_similarity"].items():
                    values.setdefault(pair, []).append(value)
        if values:
            out[arch] = {}
            for pair, vals in values.items():
                interval = mean_interval(vals)
                for bound in ("low", "high"):  # 1 - JS lies in [0, 1]; a t interval near 1 may overshoot
                    if interval[bound] is not None:
                        interval[bound] = min(1.0, max(0.0, interval[bound]))
                band = sharing_band(interval["mean"]) if interval["mean"] is not None else None
                out[arch][pair] = {**interval, "band": band}
    return out


def recommend(
    summary: Mapping[str, Mapping[str, Any]],
    paired: Mapping[str, Mapping[str, Any]],
    architectures: Sequence[str],
    metrics: Mapping[str, str],
    primary_task: str,
    primary_reason: str = "",
) -> dict[str, Any]:
    """The architecture :data:`RULE` picks, with the reason in words.

    Returns:
        ``{"architecture", "primary_task", "rule", "reason", "helps_on_primary", "excluded_for_negative_transfer"}``.
    """
    negative = sorted({a for task in paired for a, p in paired[task].items() if p["verdict"] == NEGATIVE})
    helping = [a for a, p in paired[primary_task].items() if p["verdict"] == HELPS and a not in negative]
    metric = metrics[primary_task].upper()
    task = f"`{primary_task}`" + (f" ({primary_reason})" if primary_reason else "")
    excluded = f" Excluded for negative transfer on some task: {', '.join(negative)}." if negative else ""
    if helping:
        better = 1.0 if HIGHER_IS_BETTER[metrics[primary_task]] else -1.0
        best = max(helping, key=lambda a: better * summary[primary_task][a]["mean"])
        p = paired[primary_task][best]
        reason = (
            f"detectably better than {BASELINE} on {task}: paired test {metric} difference "
            f"{_num(p['mean'], signed=True)} [{_num(p['low'], signed=True)}, {_num(p['high'], signed=True)}], "
            "and no negative transfer on any task"
            + (f"; the best mean among {', '.join(helping)}" if len(helping) > 1 else "")
            + f".{excluded}"
        )
    else:
        best = BASELINE
        elsewhere = [
            f"{a} helps on {t}"
            for t in paired
            if t != primary_task
            for a, p in paired[t].items()
            if p["verdict"] == HELPS and a not in negative
        ]
        n = summary[primary_task][BASELINE]["n"]
        why = (
            f"every paired interval there contains 0, so with {n} seeds this comparison cannot tell them apart"
            if not negative
            else "none of those without negative transfer on some task is detectably better there"
        )
        reason = (
            f"no multi-task architecture is detectably better than {BASELINE} on {task}: {why}; the simplest model "
            "(separate single-task models) is recommended, and more seeds (--seeds) narrow the intervals."
            + excluded
            + (f" ({'; '.join(elsewhere)}: --primary-task picks by that task instead.)" if elsewhere else "")
        )
    return {
        "architecture": best,
        "primary_task": primary_task,
        "rule": RULE,
        "reason": reason,
        "helps_on_primary": helping,
        "excluded_for_negative_transfer": negative,
    }


def _finite(value: Any) -> bool:
    return value is not None and math.isfinite(value)


def _num(value: Any, digits: int = 4, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def format_markdown(result: Mapping[str, Any]) -> str:
    """``compare.md``: metric table, paired-difference table with verdicts, recommendation, wall times."""
    archs, metrics, seeds = result["architectures"], result["metrics"], result["seeds"]
    tasks = list(metrics)
    pairs = list(dict.fromkeys(pair for arch in result.get("gate_similarity", {}).values() for pair in arch))
    gates_head = "".join(f" gates {pair.replace('|', ' ~ ')} (1 − JS) |" for pair in pairs)
    lines = [
        f"# Architecture comparison on `{result['data']}`",
        "",
        f"{len(seeds)} seeds ({', '.join(map(str, seeds))}); every architecture of a seed is trained and tested on the "
        "same split. Test metric per task: "
        + ", ".join(
            f"{t} {m.upper()} ({'higher' if HIGHER_IS_BETTER[m] else 'lower'} is better)" for t, m in metrics.items()
        )
        + "; mean [95 % interval] over seeds.",
        "",
        "| architecture | "
        + " | ".join(f"{t} {metrics[t].upper()}" for t in tasks)
        + " |"
        + gates_head
        + " parameters | s / fit |",
        "|---|" + "---|" * (len(tasks) + len(pairs) + 2),
    ]
    for a in archs:
        cells = []
        for t in tasks:
            s = result["summary"][t][a]
            cells.append(f"{_num(s['mean'])} [{_num(s['low'])}, {_num(s['high'])}]")
        cells += [_similarity_cell(result.get("gate_similarity", {}).get(a, {}).get(pair)) for pair in pairs]
        params = result["parameters"].get(a)
        wall = result["wall_seconds"][a]["mean"]
        lines.append(
            f"| {a} | " + " | ".join(cells) + f" | {params if params is not None else 'n/a'} | {_num(wall, 1)} |"
        )
    if pairs:
        lines += ["", GATES_NOTE]
    lines += [
        "",
        f"Paired difference from `{BASELINE}` (same seed; + = better), mean [95 % interval], verdict:",
        "",
        "| architecture | " + " | ".join(tasks) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    for a in archs:
        if a == BASELINE:
            continue
        cells = []
        for t in tasks:
            p = result["paired"][t][a]
            low, high = _num(p["low"], signed=True), _num(p["high"], signed=True)
            cells.append(f"{_num(p['mean'], signed=True)} [{low}, {high}] {p['verdict']}")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    rec = result["recommended"]
    lines += ["", f"**Recommended: `{rec['architecture']}`** — {rec['reason']}"]
    lines += ["", f"Rule: {rec.get('rule', RULE)}."]
    lines += ["", "Wall time per fit (s):", "", "| architecture | " + " | ".join(f"seed {s}" for s in seeds) + " |"]
    lines.append("|---|" + "---|" * len(seeds))
    for a in archs:
        per_seed = result["wall_seconds"][a]["per_seed"]
        lines.append(f"| {a} | " + " | ".join(_num(per_seed.get(str(s)), 1) for s in seeds) + " |")
    return "\n".join(lines) + "\n"


def _similarity_cell(s: Mapping[str, Any] | None) -> str:
    if not s or s["mean"] is None:
        return "no gates"
    return f"{_num(s['mean'], 3)} [{_num(s['low'], 3)}, {_num(s['high'], 3)}] {s['band']}"


def plot_compare(result: Mapping[str, Any], path: str | pathlib.Path) -> pathlib.Path:
    """``compare.png``: per task, metric per architecture (top) and paired difference (bottom), 95 % bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    archs, metrics = result["architectures"], result["metrics"]
    others = [a for a in archs if a != BASELINE]
    tasks = list(metrics)
    fig = Figure(figsize=(4.2 * len(tasks), 6.5))
    FigureCanvasAgg(fig)
    colors = {HELPS: "tab:green", NO_DIFFERENCE: "tab:gray", NEGATIVE: "tab:red"}
    for col, task in enumerate(tasks):
        ax = fig.add_subplot(2, len(tasks), col + 1)
        for i, a in enumerate(archs):
            s = result["summary"][task][a]
            if s["mean"] is not None:
                ax.errorbar(i, s["mean"], yerr=s["half_width"] or 0.0, fmt="o", capsize=4)
        ax.set_xticks(range(len(archs)), archs, rotation=20)
        ax.set_title(f"{task}: test {metrics[task].upper()}")
        ax = fig.add_subplot(2, len(tasks), len(tasks) + col + 1)
        ax.axhline(0.0, color="black", linewidth=0.8)
        for i, a in enumerate(others):
            p = result["paired"][task][a]
            if p["mean"] is not None:
                ax.errorbar(i, p["mean"], yerr=p["half_width"] or 0.0, fmt="o", capsize=4, color=colors[p["verdict"]])
        ax.set_xticks(range(len(others)), others, rotation=20)
        ax.set_title(f"{task}: paired difference vs {BASELINE} (+ = better)", fontsize=9)
    fig.tight_layout()
    path = pathlib.Path(path)
    fig.savefig(path, dpi=100)
    return path
