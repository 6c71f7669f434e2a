"""Gate analysis: how each task's gate spreads its weight over the experts.

From per-example gate weights ``{task: [N, K]}`` (``mmoe_tf.gate_model``) it computes, per task,
the mean weight per expert, the mean per-example entropy (also divided by ``log K``) and the mean
max weight; between tasks, ``1 - Jensen-Shannon distance`` (base 2, in [0, 1]) and cosine
similarity of the mean gate distributions; per expert, its share of the total gate mass, flagging
experts nobody uses. A task whose gate collapses onto one expert (mean max weight above
``collapse_max_weight`` or normalised entropy below ``collapse_entropy``) is logged as a WARNING.

For PLE a task's gate weighs its own experts, then the shared ones: expert shares and task
similarity are computed over the real experts (``expert_names``), and ``ple`` adds, per level, the
share of each task's gate mass on its own vs the shared experts (:func:`ple_level_shares`). PLE and stacked
MMoE (``num_levels > 1``) also get ``levels``: every gate's mean weights, level by level
(:mod:`training.gate_levels`, one heatmap per level).

Example:
    >>> import numpy as np
    >>> a = analyze_gate_weights({"click": np.full((4, 2), 0.5), "satisfaction": np.full((4, 2), 0.5)})
    >>> a["tasks"]["click"]["normalized_entropy"], a["similarity"]["click|satisfaction"]["js_similarity"]
    (1.0, 1.0)
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon

from training.gate_levels import level_mean_weights, plot_level_gates
from training.gate_summary import format_sentences, summarize_gates

LOGGER = logging.getLogger("training.gate_analysis")


def _entropy(p: np.ndarray) -> np.ndarray:
    """Row-wise Shannon entropy (nats) of ``[N, K]`` probabilities."""
    p = np.clip(p, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    return terms.sum(axis=-1)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / denom) if denom > 0 else 0.0


def analyze_gate_weights(
    gate_weights: Mapping[str, np.ndarray],
    collapse_max_weight: float = 0.9,
    collapse_entropy: float = 0.1,
    unused_share: float | None = None,
    expert_names: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Summarise gate weights.

    Args:
        gate_weights: ``{task: [N, K]}`` rows of non-negative weights summing to 1; same K for all.
        collapse_max_weight: A task collapses when its mean max weight exceeds this.
        collapse_entropy: ... or when its mean normalised entropy is below this.
        unused_share: An expert is unused when its share of the total gate mass is below this;
            ``None`` means ``0.1 / (number of experts)``.
        expert_names: Per task, which expert each weight column is (``mmoe_tf.gates.gate_expert_names``);
            needed when columns of different tasks are different experts (PLE). ``None``: column i of
            every task is expert ``"i"``.

    Returns:
        JSON-ready dict: ``available``, ``num_experts``, ``num_examples``, ``tasks`` (per task:
        ``mean_weights``, ``entropy``, ``normalized_entropy``, ``mean_max_weight``, ``top_expert``,
        ``collapsed``, ``collapse_reason``), ``similarity`` (``"a|b"`` → ``js_similarity``,
        ``cosine``, over the real experts), ``expert_names`` (per task, its columns), ``experts``
        (``expert``, ``name``, ``share``, ``unused``), ``unused_experts``, ``collapsed_tasks``, ``thresholds``,
        ``summary`` (plain sentences and the rules behind them: :func:`training.gate_summary.summarize_gates`).

    Raises:
        ValueError: empty input, a non-2D array, mismatched K or N, or rows not summing to 1.
    """
    if not gate_weights:
        raise ValueError("gate_weights: expected at least one task")
    arrays = {}
    for task, w in gate_weights.items():
        w = np.asarray(w, dtype=np.float64)
        if w.ndim != 2 or w.shape[1] < 1 or w.shape[0] < 1:
            raise ValueError(f"gate_weights[{task!r}]: expected a non-empty [N, K] array, got shape {w.shape}")
        sums = w.sum(axis=1)
        if not np.allclose(sums, 1.0, atol=1e-3):
            bad = int(np.argmax(np.abs(sums - 1.0)))
            raise ValueError(f"gate_weights[{task!r}]: row {bad} sums to {sums[bad]:.4f}, expected 1 (softmax weights)")
        arrays[task] = w
    shapes = {task: w.shape for task, w in arrays.items()}
    if len({s[1] for s in shapes.values()}) != 1:
        raise ValueError(f"gate_weights: tasks disagree on the number of experts K: {shapes}")
    num_examples, k = next(iter(shapes.values()))
    names = _column_names(arrays, expert_names)
    seen = list(dict.fromkeys(n for task_names in names.values() for n in task_names))
    universe = sorted(seen, key=lambda n: (n.startswith("shared/"), seen.index(n)))  # ple: own experts, then shared
    unused_share = 0.1 / len(universe) if unused_share is None else unused_share

    tasks = {}
    for task, w in arrays.items():
        mean = w.mean(axis=0)
        entropy = float(_entropy(w).mean())
        normalized = entropy / math.log(k) if k > 1 else 0.0
        mean_max = float(w.max(axis=1).mean())
        reasons = []
        if mean_max > collapse_max_weight:
            reasons.append(f"mean max weight {mean_max:.3f} > {collapse_max_weight}")
        if normalized < collapse_entropy:
            reasons.append(f"normalised entropy {normalized:.3f} < {collapse_entropy}")
        tasks[task] = {
            "mean_weights": [float(v) for v in mean],
            "entropy": entropy,
            "normalized_entropy": float(normalized),
            "mean_max_weight": mean_max,
            "top_expert": int(np.argmax(mean)),
            "collapsed": bool(reasons),
            "collapse_reason": "; ".join(reasons) or None,
        }
        if reasons:
            LOGGER.warning(
                "gate of task %r collapsed onto expert %d (%s)", task, tasks[task]["top_expert"], "; ".join(reasons)
            )

    spread = {task: _scatter(t["mean_weights"], names[task], universe) for task, t in tasks.items()}
    similarity = {}
    for a, b in itertools.combinations(arrays, 2):
        pa, pb = spread[a], spread[b]
        js = float(jensenshannon(pa, pb, base=2)) if len(universe) > 1 else 0.0
        similarity[f"{a}|{b}"] = {"js_similarity": float(1.0 - js), "cosine": _cosine(pa, pb)}

    share = np.mean(list(spread.values()), axis=0)
    experts = [
        {"expert": i, "name": name, "share": float(s), "unused": bool(s < unused_share)}
        for i, (name, s) in enumerate(zip(universe, share, strict=True))
    ]
    unused = [e["expert"] for e in experts if e["unused"]]
    if unused:
        LOGGER.warning("experts %s receive less than %.3f of the total gate mass (unused)", unused, unused_share)
    analysis = {
        "available": True,
        "num_experts": int(k),
        "num_examples": int(num_examples),
        "expert_names": names,
        "tasks": tasks,
        "similarity": similarity,
        "experts": experts,
        "unused_experts": unused,
        "collapsed_tasks": [t for t, v in tasks.items() if v["collapsed"]],
        "thresholds": {
            "collapse_max_weight": collapse_max_weight,
            "collapse_entropy": collapse_entropy,
            "unused_share": unused_share,
        },
    }
    analysis["summary"] = summarize_gates(analysis)
    return analysis


def _column_names(
    arrays: Mapping[str, np.ndarray], expert_names: Mapping[str, Sequence[str]] | None
) -> dict[str, list[str]]:
    if expert_names is None:
        return {task: [str(i) for i in range(w.shape[1])] for task, w in arrays.items()}
    names = {}
    for task, w in arrays.items():
        if task not in expert_names or len(expert_names[task]) != w.shape[1]:
            raise ValueError(
                f"expert_names[{task!r}]: expected {w.shape[1]} names (one per weight column), "
                f"got {list(expert_names.get(task, []))}"
            )
        names[task] = [str(n) for n in expert_names[task]]
    return names


def _scatter(weights: Sequence[float], names: Sequence[str], universe: Sequence[str]) -> np.ndarray:
    """A task's mean weights placed on the list of all experts (zero on experts it cannot see)."""
    out = np.zeros(len(universe))
    index = {name: i for i, name in enumerate(universe)}
    for name, w in zip(names, weights, strict=True):
        out[index[name]] += w
    return out


def ple_level_shares(
    level_weights: Mapping[str, np.ndarray], expert_names: Mapping[str, Sequence[str]]
) -> list[dict[str, Any]]:
    """Per PLE level: each task's mean gate mass on its own vs the shared experts.

    Args:
        level_weights: ``{"level<l>/<gate>": [N, K]}`` from ``mmoe_tf.gates.level_gate_model``; ``<gate>``
            is a task or ``shared`` (the shared gate of every level but the last).
        expert_names: ``mmoe_tf.gates.gate_expert_names(config)``: expert names ``<task>/<i>`` and
            ``shared/<i>`` per gate.

    Returns:
        One dict per level: ``{"level": l, "tasks": {task: {"own": x, "shared": 1 - x}},
        "shared_gate": {task_or_shared: share} or None}``.

    Example:
        >>> ple_level_shares({"level0/a": np.array([[0.25, 0.75]])}, {"a": ["a/0", "shared/0"]})
        [{'level': 0, 'tasks': {'a': {'own': 0.25, 'shared': 0.75}}, 'shared_gate': None}]
    """
    levels: dict[int, dict[str, Any]] = {}
    for key, weights in level_weights.items():
        level_text, _, gate = key.partition("/")
        if not level_text.startswith("level") or not level_text[5:].isdigit() or gate not in expert_names:
            raise ValueError(f"level_weights: key {key!r} is not 'level<l>/<gate>' with a gate in {list(expert_names)}")
        owners = [name.rpartition("/")[0] for name in expert_names[gate]]
        mean = np.asarray(weights, dtype=np.float64).mean(axis=0)
        if mean.shape != (len(owners),):
            raise ValueError(f"level_weights[{key!r}]: expected {len(owners)} columns, got shape {np.shape(weights)}")
        mass = {owner: float(mean[[o == owner for o in owners]].sum()) for owner in dict.fromkeys(owners)}
        entry = levels.setdefault(int(level_text[5:]), {"level": int(level_text[5:]), "tasks": {}, "shared_gate": None})
        if gate == "shared":
            entry["shared_gate"] = mass
        else:
            entry["tasks"][gate] = {"own": mass.get(gate, 0.0), "shared": mass.get("shared", 0.0)}
    return [levels[level] for level in sorted(levels)]


def compute_gate_weights(model: Any, features: Any, batch_size: int = 1024) -> dict[str, np.ndarray]:
    """Per-example gate weights ``{task: [N, K]}`` of a trained model.

    Args:
        model: A model from ``mmoe_tf.build_model``.
        features: Feature arrays keyed by feature name, or a ``tf.data.Dataset`` of features.
        batch_size: Prediction batch size (ignored for datasets).

    Raises:
        ValueError: the architecture has no gates (from ``mmoe_tf.gate_model``).
    """
    from mmoe_tf.gates import gate_model

    gates = gate_model(model)
    kwargs = {} if hasattr(features, "element_spec") else {"batch_size": batch_size}
    out = gates.predict(features, verbose=0, **kwargs)
    if not isinstance(out, Mapping):
        out = dict(zip(gates.output_names, out if isinstance(out, list) else [out], strict=True))
    return {task: np.asarray(w) for task, w in out.items()}


def analyze_model_gates(model: Any, features: Any, batch_size: int = 1024, **thresholds: Any) -> dict[str, Any]:
    """:func:`analyze_gate_weights` on a model; architectures without gates give ``available: False``.

    Example:
        >>> analysis = analyze_model_gates(model, feature_arrays(test_df, schema))  # doctest: +SKIP
    """
    try:
        weights = compute_gate_weights(model, features, batch_size=batch_size)
    except ValueError as err:
        LOGGER.info("no gate analysis: %s", err)
        return {"available": False, "reason": str(err)}
    from mmoe_tf.gates import gate_expert_names, level_gate_model
    from mmoe_tf.saving import config_of

    config = config_of(model)
    names = gate_expert_names(config)
    analysis = analyze_gate_weights(weights, expert_names={t: names[t] for t in weights}, **thresholds)
    if config.architecture == "ple" or config.num_levels > 1:
        kwargs = {} if hasattr(features, "element_spec") else {"batch_size": batch_size}
        per_level = level_gate_model(model).predict(features, verbose=0, **kwargs)
        analysis["levels"] = level_mean_weights(per_level, names)
        if config.architecture == "ple":
            analysis["ple"] = {"levels": ple_level_shares(per_level, names)}
    return analysis


def _column_labels(analysis: Mapping[str, Any]) -> list[str]:
    """Header labels of the weight columns: ``e<i>`` (mmoe/omoe), or ``own<i>``/``sh<i>`` (ple)."""
    names = analysis.get("expert_names") or {
        t: [str(i) for i in range(analysis["num_experts"])] for t in analysis["tasks"]
    }
    labels = []
    for j in range(analysis["num_experts"]):
        column = {task: task_names[j] for task, task_names in names.items()}
        if len(set(column.values())) == 1 and "/" not in next(iter(column.values())):
            labels.append(f"e{j}")
        elif all(name.startswith("shared/") for name in column.values()):
            labels.append(f"sh{next(iter(column.values())).rpartition('/')[2]}")
        else:
            labels.append(f"own{next(iter(column.values())).rpartition('/')[2]}")
    return labels


def _ple_lines(ple: Mapping[str, Any]) -> list[str]:
    levels = ple["levels"]
    tasks = list(levels[0]["tasks"]) if levels else []
    width = max(len("task"), *(len(t) for t in tasks)) if tasks else 4
    head = f"{'task':<{width}}  " + "  ".join(f"{'level ' + str(lv['level']) + ' own/shared':>22}" for lv in levels)
    lines = ["gate mass on the task's own vs the shared experts, per level:", head, "-" * len(head)]
    for task in tasks:
        cells = [f"{lv['tasks'][task]['own']:.3f} / {lv['tasks'][task]['shared']:.3f}" for lv in levels]
        lines.append(f"{task:<{width}}  " + "  ".join(f"{c:>22}" for c in cells))
    for lv in levels:
        if lv["shared_gate"]:
            parts = ", ".join(f"{owner}={share:.3f}" for owner, share in lv["shared_gate"].items())
            lines.append(f"shared gate, level {lv['level']}: experts of {parts}")
    return lines


def format_gate_summary(analysis: Mapping[str, Any]) -> str:
    """A short table: one row per task (weights per expert, entropy, max weight, collapse flag).

    For PLE the columns are ``own<i>`` (the row's task's own expert i) and ``sh<i>`` (shared expert i),
    followed by the own/shared share of each task's gate mass per level.
    """
    if not analysis.get("available"):
        return f"gate analysis not available: {analysis.get('reason', 'no gates')}"
    labels = _column_labels(analysis)
    width = max(len("task"), *(len(t) for t in analysis["tasks"]))
    head = (
        f"{'task':<{width}}  " + " ".join(f"{label:>6}" for label in labels) + "  entropy  norm_ent  max_w  collapsed"
    )
    lines = [head, "-" * len(head)]
    for task, t in analysis["tasks"].items():
        weights = " ".join(f"{w:6.3f}" for w in t["mean_weights"])
        lines.append(
            f"{task:<{width}}  {weights}  {t['entropy']:7.3f}  {t['normalized_entropy']:8.3f}  "
            f"{t['mean_max_weight']:5.3f}  {'YES' if t['collapsed'] else 'no'}"
        )
    if len(analysis["experts"]) == analysis["num_experts"]:
        share = " ".join(f"{e['share']:6.3f}" for e in analysis["experts"])
        lines.append(f"{'share':<{width}}  {share}")
    else:
        lines.append(
            "expert share: " + ", ".join(f"{e.get('name', e['expert'])}={e['share']:.3f}" for e in analysis["experts"])
        )
    for pair, s in analysis["similarity"].items():
        lines.append(f"similarity {pair}: 1-JS={s['js_similarity']:.3f} cosine={s['cosine']:.3f}")
    if analysis["unused_experts"]:
        unused = [analysis["experts"][i].get("name", i) for i in analysis["unused_experts"]]
        lines.append(f"unused experts: {unused}")
    if analysis.get("ple"):
        lines += ["", *_ple_lines(analysis["ple"])]
    if analysis.get("summary"):
        lines += ["", format_sentences(analysis)]
    return "\n".join(lines)


def plot_gates(analysis: Mapping[str, Any], path: str | pathlib.Path) -> pathlib.Path | None:
    """Heatmap tasks × experts of mean gate weights, values annotated (Agg canvas, no display).

    For PLE a second heatmap shows, per task and level, the share of the gate mass on the shared experts.

    Returns:
        The written path, or ``None`` when gates are not available.
    """
    if not analysis.get("available"):
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = list(analysis["tasks"])
    matrix = np.array([analysis["tasks"][t]["mean_weights"] for t in tasks])
    k = matrix.shape[1]
    levels = (analysis.get("ple") or {}).get("levels") or []
    width = max(4.0, 0.9 * k + 2) + (max(3.5, 0.9 * len(levels) + 2.5) if levels else 0)
    fig = Figure(figsize=(width, max(2.5, 0.7 * len(tasks) + 1.5)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2 if levels else 1, 1)
    labels = _column_labels(analysis)
    prefixes = (("own", "own "), ("sh", "shared "), ("e", "expert "))
    xticks = [
        next(long + label[len(short) :] for short, long in prefixes if label.startswith(short)) for label in labels
    ]
    _heatmap(fig, ax, matrix, xticks, tasks, "mean gate weight per expert")
    if levels:
        shared = np.array([[lv["tasks"][t]["shared"] for lv in levels] for t in tasks])
        ax2 = fig.add_subplot(1, 2, 2)
        _heatmap(fig, ax2, shared, [f"level {lv['level']}" for lv in levels], tasks, "gate mass on shared experts", 1.0)
    fig.tight_layout()
    path = pathlib.Path(path)
    fig.savefig(path, dpi=100)
    return path


def _heatmap(
    fig: Any, ax: Any, matrix: np.ndarray, xticks: list[str], yticks: list[str], title: str, vmax: float | None = None
) -> None:
    top = vmax if vmax is not None else max(1e-9, float(np.nanmax(matrix)))
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap="viridis", vmin=0.0, vmax=top, aspect="auto")
    for (i, j), value in np.ndenumerate(matrix):
        if np.isnan(value):  # an expert this gate does not weigh
            continue
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.6 * top else "black")
    ax.set_xticks(range(matrix.shape[1]), xticks)
    ax.set_yticks(range(len(yticks)), yticks)
    ax.set_title(title)
    fig.colorbar(image, ax=ax)


def write_gate_analysis(analysis: Mapping[str, Any], out_dir: str | pathlib.Path) -> None:
    """Write ``gates.json`` and (when gates exist) ``gates.png`` into ``out_dir``; PLE and stacked MMoE also get
    one heatmap per level, ``gates_level<l>.png`` (:func:`training.gate_levels.plot_level_gates`)."""
    out_dir = pathlib.Path(out_dir)
    (out_dir / "gates.json").write_text(json.dumps(analysis, indent=2) + "\n")
    plot_gates(analysis, out_dir / "gates.png")
    if analysis.get("available") and analysis.get("levels"):
        plot_level_gates(analysis["levels"], out_dir)
