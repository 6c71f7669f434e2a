"""Gate weights level by level (PLE, stacked MMoE): every gate's mean weight per expert, and one heatmap per level.

A PLE level's task gate weighs the task's own experts and the shared ones; the shared gate of every level but the
last weighs all experts. :func:`level_mean_weights` places every gate's mean weights on the level's full list of
experts (``None`` where the gate cannot see the expert), and :func:`plot_level_gates` draws one heatmap per level,
gates × experts, into ``gates_level<l>.png`` (blank cells: experts the gate does not weigh).

Example:
    >>> names = {"a": ["a/0", "shared/0"], "b": ["b/0", "shared/0"]}
    >>> level_mean_weights({"level0/a": np.array([[0.25, 0.75]]), "level0/b": np.array([[1.0, 0.0]])}, names)
    [{'level': 0, 'experts': ['a/0', 'b/0', 'shared/0'], 'gates': {'a': [0.25, None, 0.75], 'b': [None, 1.0, 0.0]}}]
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _level_and_gate(key: str, gates: Sequence[str]) -> tuple[int, str]:
    level_text, _, gate = key.partition("/")
    if not level_text.startswith("level") or not level_text[5:].isdigit() or gate not in gates:
        raise ValueError(f"level_weights: key {key!r} is not 'level<l>/<gate>' with a gate in {list(gates)}")
    return int(level_text[5:]), gate


def level_mean_weights(
    level_weights: Mapping[str, np.ndarray], expert_names: Mapping[str, Sequence[str]]
) -> list[dict[str, Any]]:
    """Per level, every gate's mean weight on each of the level's experts.

    Args:
        level_weights: ``{"level<l>/<gate>": [N, K]}`` from ``mmoe_tf.gates.level_gate_model``.
        expert_names: ``mmoe_tf.gates.gate_expert_names(config)``: which expert each column of a gate is.

    Returns:
        One dict per level, in level order: ``{"level": l, "experts": [names: task-owned experts in task order,
        then shared], "gates": {gate: [mean weight, or None for an expert the gate does not weigh]}}``.
    """
    grouped: dict[int, dict[str, np.ndarray]] = {}
    for key, weights in level_weights.items():
        level, gate = _level_and_gate(key, list(expert_names))
        mean = np.asarray(weights, dtype=np.float64).mean(axis=0)
        if mean.shape != (len(expert_names[gate]),):
            raise ValueError(
                f"level_weights[{key!r}]: expected {len(expert_names[gate])} columns, got shape {np.shape(weights)}"
            )
        grouped.setdefault(level, {})[gate] = mean
    out = []
    for level in sorted(grouped):
        seen = list(dict.fromkeys(n for gate in grouped[level] for n in expert_names[gate]))
        experts = sorted(seen, key=lambda n: (n.startswith("shared/"), seen.index(n)))
        gates = {}
        for gate, mean in grouped[level].items():
            by_name = dict(zip(expert_names[gate], mean.tolist(), strict=True))
            gates[gate] = [by_name.get(name) for name in experts]
        out.append({"level": level, "experts": experts, "gates": gates})
    return out


def plot_level_gates(levels: Sequence[Mapping[str, Any]], out_dir: str | pathlib.Path) -> list[pathlib.Path]:
    """One heatmap per level (gates × experts, mean weight) written to ``out_dir/gates_level<l>.png``.

    Returns:
        The written paths, in level order (none for an empty ``levels``).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from training.gate_analysis import _heatmap

    paths = []
    for lv in levels:
        gates = list(lv["gates"])
        matrix = np.array([[np.nan if w is None else w for w in lv["gates"][g]] for g in gates], dtype=np.float64)
        fig = Figure(figsize=(max(4.0, 0.9 * len(lv["experts"]) + 2), max(2.5, 0.7 * len(gates) + 1.5)))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        title = f"level {lv['level']}: mean gate weight per expert"
        _heatmap(fig, ax, matrix, list(lv["experts"]), [f"gate {g}" for g in gates], title)
        fig.tight_layout()
        path = pathlib.Path(out_dir) / f"gates_level{lv['level']}.png"
        fig.savefig(path, dpi=100)
        paths.append(path)
    return paths
