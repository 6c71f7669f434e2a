"""Evaluation report and gate analysis on hand-made numpy arrays (no model, no training)."""

import json
import logging
import math

import numpy as np
import pytest

from mmoe_tf.config import ModelConfig
from mmoe_tf.feature_specs import FeatureSpec
from mmoe_tf.task_specs import TaskSpec
from training.evaluation import binary_metrics, evaluate_predictions, format_report, regression_metrics
from training.gate_analysis import analyze_gate_weights, format_gate_summary, plot_gates, write_gate_analysis

FEATURES = (FeatureSpec("x", "numeric"),)


# ---- evaluation --------------------------------------------------------------------------------
def test_binary_metrics_known_values():
    y = np.array([0, 0, 1, 1, np.nan, 1.0])
    p = np.array([0.1, 0.4, 0.35, 0.8, 0.99, 0.5])
    w = np.array([1, 1, 1, 1, 0, 0.0])  # last two unobserved: ignored
    m = binary_metrics(y, p, w)
    assert (m["rows"], m["observed"], m["positives"]) == (6, 4, 2)
    assert m["auc"] == pytest.approx(0.75)
    expected_ll = -np.mean(np.log([0.9, 0.6, 0.35, 0.8]))
    assert m["log_loss"] == pytest.approx(expected_ll, rel=1e-6)
    assert m["mean_prediction"] == pytest.approx(np.mean([0.1, 0.4, 0.35, 0.8]))
    assert m["observed_rate"] == pytest.approx(0.5)
    assert m["calibration_ratio"] == pytest.approx(m["mean_prediction"] / 0.5)
    assert m["notes"] == []


def test_binary_metrics_degenerate_labels():
    one_class = binary_metrics([1, 1, 1], [0.2, 0.5, 0.9], [1, 1, 1])
    assert one_class["auc"] is None
    assert any("only one class" in n for n in one_class["notes"])
    assert one_class["log_loss"] == pytest.approx(-np.mean(np.log([0.2, 0.5, 0.9])))
    all_negative = binary_metrics([0, 0], [0.2, 0.1], [1, 1])
    assert all_negative["auc"] is None and all_negative["calibration_ratio"] is None
    assert all_negative["observed_rate"] == 0.0
    nothing = binary_metrics([0, 1], [0.2, 0.1], [0, 0])
    assert nothing["observed"] == 0 and nothing["log_loss"] is None and nothing["auc"] is None
    assert any("no observed labels" in n for n in nothing["notes"])
    json.dumps([one_class, all_negative, nothing])  # JSON-ready (no NaN objects)


def test_regression_metrics():
    m = regression_metrics([1.0, 2.0, 3.0, 100.0], [1.5, 2.0, 2.0, 0.0], [1, 1, 1, 0])
    assert m["observed"] == 3
    assert m["mse"] == pytest.approx((0.25 + 0 + 1) / 3)
    assert m["mae"] == pytest.approx(1.5 / 3)
    assert regression_metrics([1.0], [1.0], [0])["mse"] is None


def test_esmm_report_conditional_on_clicked_rows_joint_on_all():
    config = ModelConfig(features=FEATURES, tasks=(TaskSpec("click"), TaskSpec("satisfaction", conditional_on="click")))
    click = np.array([1, 1, 1, 0, 0, 0.0])
    sat = np.array([1, 0, 1, np.nan, np.nan, np.nan])
    labels = {"click": click, "satisfaction": sat}
    weights = {"click": np.ones(6), "satisfaction": np.array([1, 1, 1, 0, 0, 0.0])}
    preds = {
        "click": np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1]),
        "satisfaction": np.array([0.9, 0.2, 0.6, 0.5, 0.5, 0.5]),
        "click_and_satisfaction": np.array([0.81, 0.16, 0.42, 0.15, 0.1, 0.05]),
    }
    report = evaluate_predictions(config, labels, weights, preds)
    assert set(report) == {"click", "satisfaction", "click_and_satisfaction"}
    assert report["satisfaction"]["role"] == "conditional"
    assert report["satisfaction"]["observed"] == 3 and report["satisfaction"]["auc"] == 1.0
    joint = report["click_and_satisfaction"]
    assert joint["role"] == "joint" and joint["observed"] == 6 and joint["positives"] == 2
    assert joint["auc"] == 1.0  # 0.81, 0.42 above every joint negative
    text = format_report({"test": report})
    assert "click_and_satisfaction" in text and "joint" in text


def test_evaluate_predictions_names_missing_output():
    config = ModelConfig(features=FEATURES)
    with pytest.raises(KeyError, match="satisfaction"):
        evaluate_predictions(
            config, {"click": [1], "satisfaction": [1]}, {"click": [1], "satisfaction": [1]}, {"click": [0.5]}
        )


# ---- gate analysis ----------------------------------------------------------------------------
def test_gate_numbers_on_hand_made_example():
    uniform = np.full((10, 4), 0.25)
    half = np.tile([0.5, 0.5, 0.0, 0.0], (10, 1))
    a = analyze_gate_weights({"click": uniform, "satisfaction": half})
    click, sat = a["tasks"]["click"], a["tasks"]["satisfaction"]
    assert click["entropy"] == pytest.approx(math.log(4))
    assert click["normalized_entropy"] == pytest.approx(1.0)
    assert sat["entropy"] == pytest.approx(math.log(2))
    assert sat["normalized_entropy"] == pytest.approx(0.5)
    assert sat["mean_max_weight"] == pytest.approx(0.5)
    pair = a["similarity"]["click|satisfaction"]
    # JS divergence (base 2) of uniform-4 vs uniform-on-2: M=(3/8,3/8,1/8,1/8)
    m = np.array([3 / 8, 3 / 8, 1 / 8, 1 / 8])
    kl = lambda p, q: sum(pi * math.log2(pi / qi) for pi, qi in zip(p, q, strict=True) if pi > 0)  # noqa: E731
    js = math.sqrt(0.5 * kl([0.25] * 4, m) + 0.5 * kl([0.5, 0.5, 0, 0], m))
    assert pair["js_similarity"] == pytest.approx(1 - js)
    assert pair["cosine"] == pytest.approx(0.25 / (0.5 * math.sqrt(0.5)))  # dot / (|u| |h|)
    assert [e["share"] for e in a["experts"]] == pytest.approx([0.375, 0.375, 0.125, 0.125])
    assert a["unused_experts"] == [] and a["collapsed_tasks"] == []


def test_entropy_is_per_example_mean_not_entropy_of_mean():
    # each example is one-hot (entropy 0) but the mean is uniform: the gate is sharp per example
    onehot = np.eye(2)[[0, 1, 0, 1]]
    t = analyze_gate_weights({"click": onehot})["tasks"]["click"]
    assert t["entropy"] == pytest.approx(0.0)
    assert t["mean_weights"] == pytest.approx([0.5, 0.5])
    assert t["mean_max_weight"] == pytest.approx(1.0) and t["collapsed"]


def test_collapse_warning_and_unused_experts(caplog):
    collapsed = np.tile([0.96, 0.02, 0.02, 0.0], (8, 1))
    healthy = np.tile([0.4, 0.3, 0.3, 0.0], (8, 1))
    with caplog.at_level(logging.WARNING, logger="training.gate_analysis"):
        a = analyze_gate_weights({"click": healthy, "satisfaction": collapsed})
    assert a["collapsed_tasks"] == ["satisfaction"]
    assert "mean max weight 0.960 > 0.9" in a["tasks"]["satisfaction"]["collapse_reason"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'satisfaction' collapsed onto expert 0" in w for w in warnings)
    assert not any("'click'" in w for w in warnings)
    assert a["unused_experts"] == [3] and a["experts"][3]["unused"]
    # thresholds are configurable: a stricter max-weight threshold flags 'click' too
    strict = analyze_gate_weights({"click": healthy}, collapse_max_weight=0.35)
    assert strict["tasks"]["click"]["collapsed"]


def test_gate_input_errors_name_the_task():
    with pytest.raises(ValueError, match=r"gate_weights\['click'\]: row 1 sums to 0.5"):
        analyze_gate_weights({"click": np.array([[0.5, 0.5], [0.25, 0.25]])})
    with pytest.raises(ValueError, match="disagree on the number of experts"):
        analyze_gate_weights({"a": np.full((2, 2), 0.5), "b": np.full((2, 4), 0.25)})


def test_gate_outputs_written(tmp_path):
    a = analyze_gate_weights({"click": np.full((3, 3), 1 / 3), "satisfaction": np.tile([0.6, 0.3, 0.1], (3, 1))})
    write_gate_analysis(a, tmp_path)
    assert json.loads((tmp_path / "gates.json").read_text())["num_experts"] == 3
    assert (tmp_path / "gates.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = format_gate_summary(a)
    assert "satisfaction" in summary and "0.600" in summary and "1-JS=" in summary
    unavailable = {"available": False, "reason": "architecture 'shared_bottom' has no gates"}
    assert plot_gates(unavailable, tmp_path / "none.png") is None
    assert "not available" in format_gate_summary(unavailable)


# ---- gate summary in sentences --------------------------------------------------------------------
def test_gate_sentences_name_the_mostly_used_experts_and_the_sharing_band():
    sat = np.tile([0.05, 0.05, 0.4, 0.05, 0.05, 0.3, 0.05, 0.05], (4, 1))
    click = np.tile([0.25, 0.05, 0.05, 0.2, 0.05, 0.05, 0.05, 0.3], (4, 1))
    s = analyze_gate_weights({"satisfaction": sat, "click": click})["summary"]
    # 1.5 / K = 0.1875: experts at or above it, in order of weight
    assert s["tasks"]["satisfaction"]["mostly_used"] == ["2", "5"]
    assert s["tasks"]["click"]["mostly_used"] == ["7", "0", "3"]
    assert s["tasks"]["click"]["mostly_used_mass"] == pytest.approx(0.75)
    pair = s["pairs"]["satisfaction|click"]
    assert pair["band"] == "moderate" and pair["common"] == []
    assert pair["sentence"] == (
        "satisfaction uses experts 2 and 5 mostly, click uses experts 7, 0 and 3 mostly; "
        f"their gates are {pair['js_similarity']:.2f} similar — moderate sharing."
    )
    roles = {e["name"]: e["role"] for e in s["experts"]}
    assert roles == {"0": "specialised", "1": "background", "2": "specialised", "3": "specialised"} | {
        "4": "background",
        "5": "specialised",
        "6": "background",
        "7": "specialised",
    }
    assert "expert 2 specialises in satisfaction (satisfaction 0.40, click 0.05)." in s["sentences"]
    assert s["sentences"][0] == pair["sentence"] and len(s["sentences"]) == 1 + 2 + 8


def test_gate_sentences_for_even_collapsed_shared_and_unused():
    even = np.tile([0.26, 0.2, 0.29, 0.25], (4, 1))
    s = analyze_gate_weights({"click": even, "satisfaction": np.tile([0.2, 0.28, 0.27, 0.25], (4, 1))})["summary"]
    assert s["tasks"]["click"]["even"] and s["tasks"]["click"]["mostly_used"] == []
    assert s["tasks"]["click"]["leans_towards"] == []
    pair = s["pairs"]["click|satisfaction"]
    assert pair["band"] == "strong"
    assert pair["sentence"].startswith("click and satisfaction both spread their weight evenly; their gates are 0.9")
    assert "on average neither gate prefers experts of its own" in pair["sentence"]
    assert "none reaches 0.30 = 1.2 / 4" in s["tasks"]["click"]["sentence"]
    assert "example by example" not in s["tasks"]["click"]["sentence"]  # every row is the same near-uniform gate
    # uniform on average, but each example's gate favours another expert: it routes per example
    rows = 0.1 + 0.6 * np.eye(4)
    routed = analyze_gate_weights({"click": rows, "satisfaction": np.full((4, 4), 0.25)})["summary"]["tasks"]["click"]
    assert routed["even"] and "its top expert gets 0.70 on average (uniform 0.25)" in routed["sentence"]
    # one-hot per example, uniform on average: collapsed example by example, not onto one expert
    onehot = analyze_gate_weights({"click": np.eye(4), "satisfaction": np.full((4, 4), 0.25)})["summary"]["tasks"]
    assert onehot["click"]["even"] and not onehot["click"]["onto_one"]
    assert "spreads its weight evenly" in onehot["click"]["sentence"]
    assert "example by example its gate has collapsed (mean max weight 1.000 > 0.9" in onehot["click"]["sentence"]
    collapsed = np.tile([0.96, 0.02, 0.02, 0.0], (4, 1))
    shared = np.tile([0.5, 0.45, 0.05, 0.0], (4, 1))
    s = analyze_gate_weights({"click": collapsed, "satisfaction": shared})["summary"]
    assert s["tasks"]["click"]["sentence"].startswith("click relies on expert 0 alone (its gate collapsed)")
    assert "(both mostly use expert 0)" in s["pairs"]["click|satisfaction"]["sentence"]
    roles = {e["name"]: e["role"] for e in s["experts"]}
    assert roles["0"] == "shared" and roles["1"] == "specialised" and roles["3"] == "unused"


def test_gate_sentences_say_which_experts_soft_gates_lean_towards():
    # the quick start's gates on the embedded sample: no expert at 1.5 / K, different top experts per task
    click = np.tile([0.18, 0.19, 0.36, 0.27], (4, 1))
    sat = np.tile([0.31, 0.30, 0.21, 0.18], (4, 1))
    s = analyze_gate_weights({"click": click, "satisfaction": sat})["summary"]
    assert s["tasks"]["click"]["leans_towards"] == ["2"] and s["tasks"]["click"]["mostly_used"] == []
    assert s["tasks"]["satisfaction"]["leans_towards"] == ["0", "1"] and not s["tasks"]["satisfaction"]["even"]
    pair = s["pairs"]["click|satisfaction"]
    assert pair["sentence"] == (
        "click leans towards expert 2, satisfaction leans towards experts 0 and 1; "
        f"their gates are {pair['js_similarity']:.2f} similar — {pair['band']} sharing."
    )
    assert "36% of its gate weight, each ≥ 0.30 = 1.2 / 4, none ≥ 0.38" in s["tasks"]["click"]["sentence"]
    roles = {e["name"]: e["role"] for e in s["experts"]}
    assert roles == {"0": "favoured", "1": "favoured", "2": "favoured", "3": "background"}
    assert "expert 2 is favoured by click (click 0.36, satisfaction 0.21)." in s["sentences"]
    both = analyze_gate_weights({"click": np.tile([0.32, 0.2, 0.24, 0.24], (2, 1)), "satisfaction": sat[:2]})
    assert both["summary"]["pairs"]["click|satisfaction"]["sentence"].endswith("(both lean towards expert 0).")


def test_gate_sentences_for_ple_name_own_and_shared_experts():
    names = {"click": ["click/0", "shared/0", "shared/1"], "satisfaction": ["satisfaction/0", "shared/0", "shared/1"]}
    weights = {"click": np.tile([0.6, 0.3, 0.1], (3, 1)), "satisfaction": np.tile([0.1, 0.6, 0.3], (3, 1))}
    s = analyze_gate_weights(weights, expert_names=names)["summary"]
    assert s["tasks"]["click"]["mostly_used"] == ["click/0"]
    assert s["pairs"]["click|satisfaction"]["sentence"].startswith(
        "click uses its own expert 0 mostly, satisfaction uses shared expert 0 mostly;"
    )
    assert {e["name"]: e["role"] for e in s["experts"]}["shared/0"] == "specialised"


@pytest.mark.parametrize(
    ("similarity", "band"), [(0.0, "little"), (0.299, "little"), (0.3, "moderate"), (0.7, "strong")]
)
def test_sharing_bands(similarity, band):
    from training.gate_summary import sharing_band

    assert sharing_band(similarity) == band


@pytest.mark.parametrize("overlap", [0.51, 0.91])
def test_sharing_thresholds_match_the_documented_mass_overlap(overlap):
    # gates with `overlap` of their mass on common experts, the rest on experts the other never uses
    p = np.array([overlap, 1 - overlap, 0.0])
    q = np.array([overlap, 0.0, 1 - overlap])
    a = analyze_gate_weights({"a": p[None, :], "b": q[None, :]})
    expected = 1 - math.sqrt(1 - overlap)
    assert a["similarity"]["a|b"]["js_similarity"] == pytest.approx(expected)
    assert expected == pytest.approx(0.3 if overlap < 0.9 else 0.7, abs=0.01)


def test_gate_summary_in_json_and_text(tmp_path):
    a = analyze_gate_weights(
        {"click": np.tile([0.85, 0.1, 0.05], (3, 1)), "satisfaction": np.tile([0.05, 0.1, 0.85], (3, 1))}
    )
    write_gate_analysis(a, tmp_path)
    saved = json.loads((tmp_path / "gates.json").read_text())["summary"]
    assert saved["rules"]["sharing_bands"] == {"little": "< 0.3", "moderate": "0.3 to < 0.7", "strong": ">= 0.7"}
    text = format_gate_summary(a)
    assert "What the gates learned:" in text
    assert f"- {saved['pairs']['click|satisfaction']['sentence']}" in text
    assert "little sharing" in saved["pairs"]["click|satisfaction"]["sentence"]
