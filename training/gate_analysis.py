"""Gate analysis: how each task's gate spreads its weight over the experts.

From per-example gate weights ``{task: [N, K]}`` (``mmoe_tf.gate_model``) it computes, per task,
the mean weight per expert, the mean per-example entropy (also divided by ``log K``) and the mean
max weight; between tasks, ``1 - Jensen-Shannon distance`` (base 2, in [0, 1]) and cosine
similarity of the mean gate distributions; per expert, its share of the total gate mass, flagging
experts nobody uses. A task whose gate collapses onto one expert (mean max weight above
``collapse_max_weight`` or normalised entropy below ``collapse_entropy``) is logged as a WARNING.

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
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon

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
) -> dict[str, Any]:
    """Summarise gate weights.

    Args:
        gate_weights: ``{task: [N, K]}`` rows of non-negative weights summing to 1; same K for all.
        collapse_max_weight: A task collapses when its mean max weight exceeds this.
        collapse_entropy: ... or when its mean normalised entropy is below this.
        unused_share: An expert is unused when its share of the total gate mass is below this;
            ``None`` means ``0.1 / K``.

    Returns:
        JSON-ready dict: ``available``, ``num_experts``, ``num_examples``, ``tasks`` (per task:
        ``mean_weights``, ``entropy``, ``normalized_entropy``, ``mean_max_weight``, ``top_expert``,
        ``collapsed``, ``collapse_reason``), ``similarity`` (``"a|b"`` → ``js_similarity``,
        ``cosine``), ``experts`` (``share``, ``unused``), ``unused_experts``, ``collapsed_tasks``,
        ``thresholds``.

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
    unused_share = 0.1 / k if unused_share is None else unused_share

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

    similarity = {}
    for a, b in itertools.combinations(arrays, 2):
        pa, pb = np.asarray(tasks[a]["mean_weights"]), np.asarray(tasks[b]["mean_weights"])
        js = float(jensenshannon(pa, pb, base=2)) if k > 1 else 0.0
        similarity[f"{a}|{b}"] = {"js_similarity": float(1.0 - js), "cosine": _cosine(pa, pb)}

    share = np.mean([t["mean_weights"] for t in tasks.values()], axis=0)
    experts = [{"expert": i, "share": float(s), "unused": bool(s < unused_share)} for i, s in enumerate(share)]
    unused = [e["expert"] for e in experts if e["unused"]]
    if unused:
        LOGGER.warning("experts %s receive less than %.3f of the total gate mass (unused)", unused, unused_share)
    return {
        "available": True,
        "num_experts": int(k),
        "num_examples": int(num_examples),
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
    return analyze_gate_weights(weights, **thresholds)


def format_gate_summary(analysis: Mapping[str, Any]) -> str:
    """A short table: one row per task (weights per expert, entropy, max weight, collapse flag)."""
    if not analysis.get("available"):
        return f"gate analysis not available: {analysis.get('reason', 'no gates')}"
    k = analysis["num_experts"]
    width = max(len("task"), *(len(t) for t in analysis["tasks"]))
    head = (
        f"{'task':<{width}}  "
        + " ".join(f"{'e' + str(i):>6}" for i in range(k))
        + "  entropy  norm_ent  max_w  collapsed"
    )
    lines = [head, "-" * len(head)]
    for task, t in analysis["tasks"].items():
        weights = " ".join(f"{w:6.3f}" for w in t["mean_weights"])
        lines.append(
            f"{task:<{width}}  {weights}  {t['entropy']:7.3f}  {t['normalized_entropy']:8.3f}  "
            f"{t['mean_max_weight']:5.3f}  {'YES' if t['collapsed'] else 'no'}"
        )
    share = " ".join(f"{e['share']:6.3f}" for e in analysis["experts"])
    lines.append(f"{'share':<{width}}  {share}")
    for pair, s in analysis["similarity"].items():
        lines.append(f"similarity {pair}: 1-JS={s['js_similarity']:.3f} cosine={s['cosine']:.3f}")
    if analysis["unused_experts"]:
        lines.append(f"unused experts: {analysis['unused_experts']}")
    return "\n".join(lines)


def plot_gates(analysis: Mapping[str, Any], path: str | pathlib.Path) -> pathlib.Path | None:
    """Heatmap tasks × experts of mean gate weights, values annotated (Agg canvas, no display).

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
    fig = Figure(figsize=(max(4.0, 0.9 * k + 2), max(2.5, 0.7 * len(tasks) + 1.5)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=max(1e-9, float(matrix.max())), aspect="auto")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(
            j, i, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.6 * matrix.max() else "black"
        )
    ax.set_xticks(range(k), [f"expert {j}" for j in range(k)])
    ax.set_yticks(range(len(tasks)), tasks)
    ax.set_title("mean gate weight per expert")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    path = pathlib.Path(path)
    fig.savefig(path, dpi=100)
    return path


def write_gate_analysis(analysis: Mapping[str, Any], out_dir: str | pathlib.Path) -> None:
    """Write ``gates.json`` and (when gates exist) ``gates.png`` into ``out_dir``."""
    out_dir = pathlib.Path(out_dir)
    (out_dir / "gates.json").write_text(json.dumps(analysis, indent=2) + "\n")
    plot_gates(analysis, out_dir / "gates.png")
