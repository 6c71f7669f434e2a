"""The ``gate_remedies`` experiment at tiny size: its rows, its verdicts, resuming, and its optional results section."""

from __future__ import annotations

import json

import pytest

from training.experiments import common, gate_remedies, gate_remedies_summary, report
from training.experiments.results import write_results

TINY = {
    "fits": {
        "relatedness": common.FitOptions(epochs=1, batch_size=256, patience=1, learning_rate=3e-2),
        "scarcity": common.FitOptions(epochs=1, batch_size=512, patience=1, learning_rate=1e-3),
    },
    "rows": {"relatedness": 300, "scarcity": 1500},
}


def test_variants_parse_and_refuse_typos():
    assert gate_remedies.parse_variant("none") == {}
    assert gate_remedies.variant_name("gate_temperature=2.0+gate_dropout=0.10") == "gate_temperature=2+gate_dropout=0.1"
    for bad in ("gate_dropuot=0.1", "gate_dropout", "gate_dropout=x"):
        with pytest.raises(ValueError, match="variant"):
            gate_remedies.parse_variant(bad)


def _gain_row(variant: str, metric: str, low: float, high: float) -> dict:
    row = {"setting": "relatedness", "variant": variant, "task": "y1", "metric": metric, "seeds": 10}
    row["gain_vs_none"] = {"mean": (low + high) / 2, "ci95": [low, high], "seeds": 10}
    row["effect"] = gate_remedies_summary.effect(row)
    return row


def test_effect_and_default_choice_follow_the_intervals():
    assert _gain_row("a", "mse", 0.01, 0.02)["effect"] == "better"
    assert _gain_row("a", "auc", -0.02, -0.01)["effect"] == "worse"
    assert _gain_row("a", "gate_entropy", 0.01, 0.02)["effect"] == "higher"
    assert _gain_row("a", "task_expert_mi", -0.01, 0.02)["effect"] == "none detected"
    assert gate_remedies_summary.effect({"variant": "none", "metric": "mse"}) == "n/a"
    unclear = [_gain_row("gate_dropout=0.1", "mse", -0.01, 0.02), _gain_row("gate_dropout=0.1", "auc", -0.01, 0.0)]
    assert gate_remedies_summary.default_choice(unclear)["decision"].startswith("the defaults stay")
    wins = [*unclear, _gain_row("gate_temperature=2", "mse", 0.001, 0.003)]
    decision = gate_remedies_summary.default_choice(wins)["decision"]
    assert decision.startswith("candidates for a new default: gate_temperature=2 (better in 1 of 1")
    mixed = [*wins, _gain_row("gate_temperature=2", "auc", -0.03, -0.01)]
    assert (
        "better in some cells but worse in others: gate_temperature=2"
        in gate_remedies_summary.default_choice(mixed)["decision"]
    )
    (summary,) = gate_remedies_summary.variant_summaries([r for r in wins if r["variant"] == "gate_temperature=2"])
    assert summary["quality"] == "better in 1, worse in 0 of 1" and summary["metric"] == "summary"


def test_tiny_run_writes_paired_rows_and_resumes(tmp_path, capsys):
    args = dict(
        variants=["none", "gate_balance_weight=0.01"],
        scarcity_seeds=1,
        correlations=[0.5],
        results_dir=tmp_path,
        figures_dir=tmp_path,
        **TINY,
    )
    gate_remedies.run(seeds=1, **args)
    assert "4 fits run, 0 already recorded" in capsys.readouterr().out
    rows = gate_remedies.run(seeds=2, **args)  # resumes: only the second relatedness seed is fitted
    assert "2 fits run, 4 already recorded" in capsys.readouterr().out
    raw = sorted((tmp_path / "raw" / "gate_remedies").glob("*.json"))
    assert len(raw) == 6  # relatedness 2 seeds x 2 variants, scarcity 1 seed x 2 variants
    assert json.loads((tmp_path / "gate_remedies.json").read_text()) == rows
    assert (tmp_path / "gate_remedies.png").is_file()
    for row in rows:
        assert {"setting", "variant", "task", "metric", "mean", "ci95", "seeds"} <= set(row)

    def pick(setting: str, variant: str, task: str, metric: str) -> dict:
        key = (setting, variant, task, metric)
        (row,) = [r for r in rows if (r["setting"], r["variant"], r["task"], r["metric"]) == key]
        return row

    mse = pick("relatedness", "gate_balance_weight=0.01", "y1", "mse")
    assert mse["correlation"] == 0.5 and mse["seeds"] == 2 and len(mse["ci95"]) == 2
    assert mse["gain_vs_none"]["seeds"] == 2 and mse["effect"] in ("better", "worse", "none detected")
    assert "gain_vs_none" not in pick("relatedness", "none", "y1", "mse")
    for metric in ("task_expert_mi", "specialised_experts", "unused_experts"):
        assert 0.0 <= pick("relatedness", "none", "both", metric)["mean"] <= 1.0
    for task in ("y1", "y2"):
        assert 0.0 < pick("relatedness", "none", task, "gate_entropy")["mean"] <= 1.0
        assert pick("relatedness", "none", task, "gate_collapsed")["mean"] in (0.0, 1.0)
    auc = pick("scarcity", "gate_balance_weight=0.01", "satisfaction", "auc")
    assert auc["label_fraction"] == 0.01 and auc["seeds"] == 1 and auc["effect"] == "n/a"  # one seed: no interval
    assert pick("all", "gate_balance_weight=0.01", "all", "summary")["quality"].endswith("of 2")  # y1, y2 with CIs
    assert pick("all", "all", "all", "default_choice")["decision"]
    assert (
        gate_remedies.run(seeds=0, scarcity_seeds=0, **{k: v for k, v in args.items() if k != "scarcity_seeds"}) == rows
    )
    assert "0 fits run, 0 already recorded" in capsys.readouterr().out  # summarising only: the same rows


def test_if_results_block_shows_a_section_only_when_its_results_exist(tmp_path):
    template = "A\n{{if-results exp}}\n{{table exp}}\n{{else}}\nnot run\n{{end}}\nB\n"
    assert report.render(template, tmp_path) == report.HEADER + "A\nnot run\nB\n"
    write_results("exp", [{"task": "t", "metric": "auc", "mean": 0.5, "ci95": None, "seeds": 1}], tmp_path)
    body = report.render(template, tmp_path)[len(report.HEADER) :]
    assert body.startswith("A\n| task | metric | mean [95 % CI] | seeds |") and body.endswith("B\n")
    assert "not run" not in body
    assert report.render("{{if-results nope}}\nx\n{{end}}\n", tmp_path) == report.HEADER
