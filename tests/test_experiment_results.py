"""Experiment results: seed statistics, raw records, JSON rows and the generated docs/results.md."""

import json
import math

import pytest
from scipy import stats as scipy_stats

from training.experiments import report
from training.experiments.results import RawStore, rows_table, summarize, write_results
from training.experiments.stats import mean_ci, paired_ci


def test_mean_ci_is_the_student_t_interval():
    mean, (low, high) = mean_ci([1.0, 2.0, 3.0, float("nan")])
    half = scipy_stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)
    assert mean == 2.0 and (low, high) == pytest.approx((2.0 - half, 2.0 + half))
    assert mean_ci([0.5]) == (0.5, None)
    assert paired_ci([3.0, 5.0], [1.0, 2.0])[0] == 2.5
    with pytest.raises(ValueError, match="2 values vs 1 baseline"):
        paired_ci([1.0, 2.0], [1.0])


def _records():
    out = []
    for seed, (a, b) in enumerate([(0.70, 0.75), (0.72, 0.73), (0.69, 0.74)]):
        out += [
            {"arch": "base", "seed": seed, "task": "t", "metric": "auc", "value": a},
            {"arch": "new", "seed": seed, "task": "t", "metric": "auc", "value": b},
            {"arch": "base", "seed": seed, "task": "t", "metric": "mse", "value": 1.0 + seed},
            {"arch": "new", "seed": seed, "task": "t", "metric": "mse", "value": 0.5 + seed},
        ]
    return out


def test_summarize_pairs_on_seeds_and_signs_gains_by_metric():
    rows = summarize(_records(), ["arch"], compare=("arch", "base", "gain_vs_base"))
    assert [(r["arch"], r["metric"]) for r in rows] == [
        ("base", "auc"),
        ("new", "auc"),
        ("base", "mse"),
        ("new", "mse"),
    ]
    auc, mse = rows[1], rows[3]
    assert auc["mean"] == pytest.approx(0.74) and auc["seeds"] == 3
    assert auc["gain_vs_base"]["mean"] == pytest.approx(0.0366667, abs=1e-6)
    assert auc["gain_vs_base"]["ci95"] == pytest.approx(
        list(paired_ci([0.75, 0.73, 0.74], [0.70, 0.72, 0.69])[1]), abs=1e-6
    )
    assert mse["gain_vs_base"]["mean"] == pytest.approx(0.5)  # lower MSE counts as a positive gain
    assert "gain_vs_base" not in rows[0]
    # a seed the baseline lacks is not paired
    partial = summarize(_records()[:-4] + _records()[-3:-2], ["arch"], compare=("arch", "base", "g"))
    assert summarize(_records() + _records()[:1], ["arch"]) == summarize(_records(), ["arch"])  # duplicate fit
    new_auc = next(r for r in partial if r["arch"] == "new" and r["metric"] == "auc")
    assert new_auc["seeds"] == 3 and new_auc["g"]["seeds"] == 2


def test_raw_store_appends_and_finds(tmp_path):
    store = RawStore("x", tmp_path)
    assert store.records() == [] and not store.has(seed=0)
    store.add([{"seed": 0, "value": float("nan")}, {"seed": 1, "value": 0.5}])
    store.add([{"seed": 2, "value": 0.25}])
    assert store.records() == [{"seed": 0, "value": None}, {"seed": 1, "value": 0.5}, {"seed": 2, "value": 0.25}]
    assert store.has(seed=2, value=0.25) and not store.has(seed=2, value=0.5)


def test_rows_table_formats_intervals_and_gains():
    rows = summarize(_records(), ["arch"], compare=("arch", "base", "gain_vs_base"))
    text = rows_table(rows, hide=["task"]).splitlines()
    assert text[0] == "| arch | metric | mean [95 % CI] | seeds | gain_vs_base |"
    assert text[3].startswith("| new | auc | 0.7400 [0.7152, 0.7648] | 3 | +0.0367 [")


def test_render_tables_and_values(tmp_path):
    write_results("exp", summarize(_records(), ["arch"], compare=("arch", "base", "gain_vs_base")), tmp_path)
    template = "A\n{{table exp metric=auc hide=task}}\nB {{value exp arch=new metric=mse gain_vs_base}} C\n"
    text = report.render(template, tmp_path)
    assert text.startswith(report.HEADER)
    body = text[len(report.HEADER) :].splitlines()
    assert body[1] == "| arch | mean [95 % CI] | seeds | gain_vs_base |" and len(body) == 6
    assert body[-1].startswith("B +0.5000 [") and body[-1].endswith("] C")
    with pytest.raises(report.ReportError, match=r"2 rows of exp\.json match"):
        report.render("{{value exp arch=new mean}}", tmp_path)
    with pytest.raises(report.ReportError, match=r"no row of exp\.json matches"):
        report.render("{{table exp arch=none}}", tmp_path)
    with pytest.raises(report.ReportError, match="no results for 'nope'"):
        report.render("{{table nope}}", tmp_path)


def test_results_md_is_generated_from_the_json_files():
    """docs/results.md must equal the template rendered from docs/results/*.json (no hand-edited numbers)."""
    assert report.OUTPUT.read_text() == report.render(report.TEMPLATE.read_text()), (
        "docs/results.md is stale: run python -m training.experiments.report"
    )
    for path in report.RESULTS_DIR.glob("*.json"):
        rows = json.loads(path.read_text())
        assert isinstance(rows, list) and rows, path
        for row in rows:
            assert {"task", "metric", "mean", "ci95", "seeds"} <= set(row), (path, row)
