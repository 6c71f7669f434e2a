"""Gate analysis in plain sentences: which experts each task uses, how much two tasks share, what each expert does.

Wording rules (the thresholds are :data:`RULES`, also written into ``gates.json``'s ``summary``):

- **A task mostly uses an expert** when the expert's mean gate weight is at least ``1.5 / K`` (K = the number of
  experts the task's gate weighs): half again the share a uniform gate gives. With no such expert, a task **leans
  towards** the experts whose mean weight is at least ``1.2 / K`` (a fifth over uniform: 0.30 of 4 experts), the
  soft preference of gates that share strongly yet differ, as the quick start's on the embedded sample. A task with
  neither **spreads its weight evenly** (on average; when
  its per-example top weight, averaged, still reaches ``1.5 / K``, the sentence adds that the gate picks experts
  example by example); a collapsed gate (``collapse_max_weight`` / ``collapse_entropy`` of
  :func:`training.gate_analysis.analyze_gate_weights`) **relies on one expert** when that expert also holds at least
  half of its mean weight, and otherwise has **collapsed example by example** (each input sends almost all its weight
  to one expert, different inputs to different ones).
- **Sharing** between two tasks is read from ``1 - JS`` (one minus the base-2 Jensen-Shannon distance of the two mean
  gate distributions, in [0, 1]): **little** below 0.3, **moderate** from 0.3 to below 0.7, **strong** from 0.7. When
  two gates put a mass ``o`` on the same experts in the same amounts and the rest on experts the other never uses,
  ``1 - JS = 1 - sqrt(1 - o)``; so 0.3 is about half the mass in common (``o`` = 0.51) and 0.7 about nine tenths
  (``o`` = 0.91). Two gates that both spread evenly share strongly, but learned nothing task-specific, and the
  sentence says so.
- **An expert** is *specialised* when exactly one task mostly uses it, *shared* when several do, *favoured* when no
  task mostly uses it but one or more lean towards it, *unused* when the analysis flags it (share of all gate mass
  below ``unused_share``), and *in the background* otherwise.

Experts are listed in order of weight. For PLE a task's gate weighs its own experts and the shared ones, named
``its own expert 0`` / ``shared expert 1`` in the sentences (``click/0`` / ``shared/1`` in ``gates.json``).

Example:
    >>> from training.gate_analysis import analyze_gate_weights
    >>> import numpy as np
    >>> weights = {"click": np.tile([0.6, 0.2, 0.1, 0.1], (2, 1)), "satisfaction": np.full((2, 4), 0.25)}
    >>> print(analyze_gate_weights(weights)["summary"]["pairs"]["click|satisfaction"]["sentence"])  # doctest: +ELLIPSIS
    click uses expert 0 mostly, satisfaction spreads ...; their gates are 0.68 similar — moderate sharing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MOSTLY_USED_FACTOR = 1.5
LEANS_FACTOR = 1.2
ONE_EXPERT_WEIGHT = 0.5  # a collapsed gate "relies on one expert" when that expert has at least this mean weight
SHARING_BANDS = ((0.7, "strong"), (0.3, "moderate"), (0.0, "little"))
RULES = {
    "mostly_used": f"an expert's mean gate weight >= {MOSTLY_USED_FACTOR} / K (K = experts the task's gate weighs)",
    "mostly_used_factor": MOSTLY_USED_FACTOR,
    "leans_towards": f"no expert mostly used; an expert's mean gate weight >= {LEANS_FACTOR} / K",
    "leans_factor": LEANS_FACTOR,
    "sharing_measure": "1 - Jensen-Shannon distance (base 2) of the two tasks' mean gate distributions",
    "sharing_bands": {"little": "< 0.3", "moderate": "0.3 to < 0.7", "strong": ">= 0.7"},
}


def sharing_band(similarity: float) -> str:
    """``little`` / ``moderate`` / ``strong`` for a ``1 - JS`` similarity (:data:`SHARING_BANDS`)."""
    return next(band for low, band in SHARING_BANDS if similarity >= low)


def _join(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _experts(names: Sequence[str], task: str | None = None) -> str:
    """``expert 3`` / ``experts 0, 3 and 7`` (mmoe/omoe); ple names ``<owner>/<i>`` read ``its own expert 0``,
    ``shared expert 1``, ``click's expert 0``."""
    if not any("/" in n for n in names):
        return f"expert{'s' if len(names) > 1 else ''} {_join(names)}"
    phrases = []
    for name in names:
        owner, _, index = name.rpartition("/")
        own = "its own" if owner == task else "shared" if owner == "shared" else f"{owner}'s"
        phrases.append(f"{own} expert {index}")
    return _join(phrases)


def _uses(task: str, t: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    k = len(t["mean_weights"])
    cutoff = MOSTLY_USED_FACTOR / k
    ranked = sorted(range(k), key=lambda i: -t["mean_weights"][i])
    mostly = [i for i in ranked if t["mean_weights"][i] >= cutoff]
    onto_one = t["collapsed"] and max(t["mean_weights"]) >= ONE_EXPERT_WEIGHT
    leans = [] if mostly or onto_one else [i for i in ranked if t["mean_weights"][i] >= LEANS_FACTOR / k]
    if onto_one:
        top = t["top_expert"]
        phrase = f"relies on {_experts([names[top]], task)} alone (its gate collapsed)"
    elif mostly:
        phrase = f"uses {_experts([names[i] for i in mostly], task)} mostly"
    elif leans:
        phrase = f"leans towards {_experts([names[i] for i in leans], task)}"
    else:
        phrase = f"spreads its weight evenly over its {k} experts"
    return {
        "mostly_used": [names[i] for i in mostly],
        "mostly_used_mass": float(sum(t["mean_weights"][i] for i in mostly)),
        "leans_towards": [names[i] for i in leans],
        "leaning_mass": float(sum(t["mean_weights"][i] for i in leans)),
        "cutoff": cutoff,
        "even": not mostly and not leans and not onto_one,
        "onto_one": onto_one,
        "phrase": phrase,
    }


def summarize_gates(analysis: Mapping[str, Any]) -> dict[str, Any]:
    """Plain sentences for an :func:`~training.gate_analysis.analyze_gate_weights` result (rules: module docstring).

    Returns:
        ``{"rules", "tasks": {task: {mostly_used, mostly_used_mass, leans_towards, leaning_mass, cutoff, even,
        onto_one, sentence}},
        "pairs": {"a|b": {js_similarity, band, common, sentence}}, "experts": [{expert, name, used_by, role,
        sentence}], "sentences": [pair sentences, then task sentences, then expert sentences]}``.
    """
    names = analysis.get("expert_names") or {
        task: [str(i) for i in range(analysis["num_experts"])] for task in analysis["tasks"]
    }
    uses = {task: _uses(task, t, names[task]) for task, t in analysis["tasks"].items()}
    tasks = {}
    for task, u in uses.items():
        t = analysis["tasks"][task]
        num = len(t["mean_weights"])
        if u["onto_one"]:
            detail = t["collapse_reason"]
        elif u["leans_towards"]:
            detail = (
                f"{u['leaning_mass']:.0%} of its gate weight, each ≥ {LEANS_FACTOR / num:.2f} = "
                f"{LEANS_FACTOR} / {num}, none ≥ {u['cutoff']:.2f}"
            )
        elif u["even"]:
            detail = f"none reaches {LEANS_FACTOR / num:.2f} = {LEANS_FACTOR} / {num}"
        else:
            detail = f"{u['mostly_used_mass']:.0%} of its gate weight, each ≥ {u['cutoff']:.2f}"
        sentence = f"{task} {u['phrase']} ({detail}; normalised entropy {t['normalized_entropy']:.2f})"
        if t["collapsed"] and not u["onto_one"]:
            sentence += f", and example by example its gate has collapsed ({t['collapse_reason']})"
        elif u["even"] and t["mean_max_weight"] >= u["cutoff"]:
            sentence += (
                f", but example by example its gate does pick: its top expert gets {t['mean_max_weight']:.2f} on "
                f"average (uniform {1 / num:.2f}), a different one for different inputs"
            )
        sentence += "."
        tasks[task] = {key: v for key, v in u.items() if key != "phrase"} | {"sentence": sentence}
    pairs = {}
    for pair, s in analysis["similarity"].items():
        a, b = pair.split("|")
        sim, band = s["js_similarity"], sharing_band(s["js_similarity"])
        common = [n for n in uses[a]["mostly_used"] if n in uses[b]["mostly_used"]]
        if uses[a]["even"] and uses[b]["even"]:
            head = f"{a} and {b} both spread their weight evenly"
            tail = " (on average neither gate prefers experts of its own)"
        else:
            head = f"{a} {uses[a]['phrase']}, {b} {uses[b]['phrase']}"
            leaning = [n for n in uses[a]["leans_towards"] if n in uses[b]["leans_towards"]]
            tail = f" (both mostly use {_experts(common)})" if common else ""
            tail = tail or (f" (both lean towards {_experts(leaning)})" if leaning else "")
        sentence = f"{head}; their gates are {sim:.2f} similar — {band} sharing{tail}."
        pairs[pair] = {"js_similarity": sim, "band": band, "common": common, "sentence": sentence}
    experts = []
    for e in analysis["experts"]:
        name = e.get("name", str(e["expert"]))
        users = [task for task, u in uses.items() if name in u["mostly_used"]]
        leaning = [task for task, u in uses.items() if name in u["leans_towards"]]
        weights = ", ".join(
            f"{task} {analysis['tasks'][task]['mean_weights'][names[task].index(name)]:.2f}"
            for task in analysis["tasks"]
            if name in names[task]
        )
        label = f"expert {name}"
        if e["unused"]:
            role, what = "unused", f"is unused ({e['share']:.1%} of all gate mass)"
        elif len(users) == 1:
            role, what = "specialised", f"specialises in {users[0]}"
        elif users:
            role, what = "shared", f"is shared by {_join(users)}"
        elif leaning:
            role, what = "favoured", f"is favoured by {_join(leaning)}"
        else:
            role, what = "background", "is in the background: no task uses it mostly"
        experts.append(
            {
                "expert": e["expert"],
                "name": name,
                "used_by": users,
                "role": role,
                "sentence": f"{label} {what} ({weights}).",
            }
        )
    sentences = [p["sentence"] for p in pairs.values()] + [t["sentence"] for t in tasks.values()]
    return {
        "rules": RULES,
        "tasks": tasks,
        "pairs": pairs,
        "experts": experts,
        "sentences": sentences + [e["sentence"] for e in experts],
    }


def format_sentences(analysis: Mapping[str, Any]) -> str:
    """The summary's sentences as a short paragraph list (``""`` when gates are not available)."""
    summary = analysis.get("summary") if analysis.get("available") else None
    if not summary:
        return ""
    return "\n".join(["What the gates learned:", *(f"- {s}" for s in summary["sentences"])])
