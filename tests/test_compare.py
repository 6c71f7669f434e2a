"""``python -m training compare``: statistics, verdicts, output files, identical splits per seed, resume, jobs."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from training.cli import main
from training.compare import FIT_RESULT, Fit, compare, fit_run_config
from training.compare_report import (
    HELPS,
    NEGATIVE,
    NO_DIFFERENCE,
    format_markdown,
    gate_similarity,
    mean_interval,
    summarize,
    verdict,
)
from training.config import RunConfigError, load_run_config
from training.evaluation import format_baseline_comparison

TINY = [
    "data.max_rows=300",
    "train.epochs=1",
    "train.batch_size=64",
    "model.expert_units=[8]",
    "model.tower_units=[4]",
    "gates.enabled=false",
]
TINY_WITH_GATES = [item for item in TINY if item != "gates.enabled=false"]  # compare's gate similarity column


def test_mean_interval_is_student_t():
    s = mean_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2) * sd(=1) / sqrt(3)
    assert s["mean"] == pytest.approx(2.0) and s["n"] == 3
    assert (s["low"], s["high"], s["half_width"]) == pytest.approx((2.0 - half, 2.0 + half, half))
    assert mean_interval([0.5, float("nan"), None])["n"] == 1 and mean_interval([0.5])["low"] is None
    assert mean_interval([])["mean"] is None
    assert verdict({"low": 0.01, "high": 0.2}) == HELPS
    assert verdict({"low": -0.3, "high": -0.01}) == NEGATIVE
    assert verdict({"low": -0.1, "high": 0.1}) == verdict({"low": None, "high": None}) == NO_DIFFERENCE


def _fit(arch, seed, auc, mse):
    return {"architecture": arch, "seed": seed, "metrics": {"click": auc, "rating": mse}, "wall_seconds": 1.0 + seed}


def test_summarize_pairs_by_seed_signs_mse_and_recommends():
    base = {0: (0.60, 1.0), 1: (0.70, 2.0), 2: (0.65, 3.0)}
    fits = [_fit("single_task", s, *v) for s, v in base.items()]
    # mmoe: click better by 0.05 +- 0.001 on every seed (helps); rating MSE worse by ~0.5 (negative transfer)
    fits += [_fit("mmoe", s, a + 0.05 + 0.001 * s, m + 0.5 + 0.01 * s) for s, (a, m) in base.items()]
    # ple: click better by a little; rating better by 0.2 +- noise (lower MSE) and mixed signs
    fits += [_fit("ple", s, a + 0.01 * (s - 0.5), m - 0.2 + 0.3 * (s - 1)) for s, (a, m) in base.items()]
    metrics = {"click": "auc", "rating": "mse"}
    out = summarize(fits, ["single_task", "mmoe", "ple"], metrics, primary_task="click")
    assert out["summary"]["click"]["single_task"]["mean"] == pytest.approx(0.65)
    mmoe_click, mmoe_rating = out["paired"]["click"]["mmoe"], out["paired"]["rating"]["mmoe"]
    assert mmoe_click["mean"] == pytest.approx(0.051) and mmoe_click["verdict"] == HELPS
    assert mmoe_rating["mean"] == pytest.approx(-0.51) and mmoe_rating["verdict"] == NEGATIVE  # + = better: lower MSE
    assert out["paired"]["rating"]["ple"]["mean"] == pytest.approx(0.2)
    assert out["paired"]["rating"]["ple"]["verdict"] == NO_DIFFERENCE
    # mmoe helps on click but has negative transfer on rating: excluded; ple's better click mean is no detectable
    # difference, so the simplest model is recommended
    rec = out["recommended"]
    assert rec["architecture"] == "single_task" and rec["primary_task"] == "click"
    assert rec["excluded_for_negative_transfer"] == ["mmoe"] and rec["helps_on_primary"] == []
    assert "Excluded for negative transfer on some task: mmoe" in rec["reason"]
    assert out["wall_seconds"]["ple"]["per_seed"] == {"0": 1.0, "1": 2.0, "2": 3.0}
    # with rating primary, ple's lower MSE is not detectable either
    assert summarize(fits, ["single_task", "mmoe", "ple"], metrics, "rating")["recommended"]["architecture"] == (
        "single_task"
    )


def test_each_seed_shares_its_split_across_architectures(tmp_path):
    base = load_run_config(None, TINY)
    a = fit_run_config(base, Fit("mmoe", 4), tmp_path / "a")
    b = fit_run_config(base, Fit("ple", 4), tmp_path / "b")
    assert a.data == b.data and a.data.split.seed == 4 and a.train.seed == b.train.seed == 4
    assert a.model["architecture"] == "mmoe" and b.model["architecture"] == "ple" and a.model["seed"] == 4
    shared = (set(a.model) & set(b.model)) - {"architecture"}
    assert {k: a.model[k] for k in shared} == {k: b.model[k] for k in shared}
    assert set(a.model) ^ set(b.model) == {
        "num_experts",
        "num_shared_experts",
        "num_task_experts",
    }  # only the architecture-specific fields differ


def test_fields_of_another_architecture_are_dropped_per_fit(tmp_path):
    base = load_run_config(None, [*TINY, "model.num_experts=6"])
    ple = fit_run_config(base, Fit("ple", 0), tmp_path / "p")
    assert ple.model["architecture"] == "ple" and "num_experts" not in ple.model
    assert fit_run_config(base, Fit("mmoe", 0), tmp_path / "m").model["num_experts"] == 6


def test_one_config_sets_fields_of_several_architectures(tmp_path):
    """An mmoe config can size ple's experts for the comparison; a plain run of it still refuses them."""
    sizes = ["model.num_shared_experts=3", "model.num_task_experts=2"]
    with pytest.raises(RunConfigError, match="does not use num_shared_experts, num_task_experts"):
        load_run_config(None, [*TINY, *sizes])
    base = load_run_config(None, [*TINY, *sizes], keep_unused_model_fields=True)
    ple = fit_run_config(base, Fit("ple", 0), tmp_path / "p")
    assert (ple.model["num_shared_experts"], ple.model["num_task_experts"]) == (3, 2)
    mmoe = fit_run_config(base, Fit("mmoe", 0), tmp_path / "m")
    assert "num_shared_experts" not in mmoe.model and mmoe.model["architecture"] == "mmoe"
    with pytest.raises(RunConfigError, match="num_shared_experts"):
        load_run_config(None, [*TINY, "model.num_shared_experts=0"], keep_unused_model_fields=True)


def test_bad_arguments_name_the_flag(tmp_path, capsys):
    run_config = load_run_config(None, TINY)
    with pytest.raises(RunConfigError, match="--architectures: unknown"):
        compare(run_config, architectures=("mmoe", "transformer"), output_dir=tmp_path / "x")
    with pytest.raises(RunConfigError, match="--seeds"):
        compare(run_config, seeds=1, output_dir=tmp_path / "x")
    with pytest.raises(RunConfigError, match="--primary-task: no task 'ctr'"):
        compare(run_config, primary_task="ctr", output_dir=tmp_path / "x", progress=False)
    assert main(["compare", "--jobs", "0", "--output-dir", str(tmp_path / "y")]) == 2
    assert "--jobs" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare") / "cmp"
    args = ["compare", "--architectures", "ple", "--seeds", "2", "--output-dir", str(out), "--no-progress"]
    for item in TINY_WITH_GATES:
        args += ["--set", item]
    assert main(args) == 0
    return out


def test_compare_writes_json_markdown_and_figure(compared):
    result = json.loads((compared / "compare.json").read_text())
    assert result["architectures"] == ["single_task", "ple"]  # the baseline is added
    assert result["seeds"] == [0, 1] and result["metrics"] == {"click": "auc", "satisfaction": "auc"}
    counts = result["train_labels_first_seed"]
    assert result["primary_task"] == "satisfaction" and counts["satisfaction"] < counts["click"]
    assert [(f["architecture"], f["seed"]) for f in result["fits"]] == [
        ("single_task", 0),
        ("ple", 0),
        ("single_task", 1),
        ("ple", 1),
    ]
    for fit in result["fits"]:
        assert fit["wall_seconds"] >= fit["fit_seconds"] > 0
        run_config = (compared / "fits" / f"{fit['architecture']}-seed{fit['seed']}" / "run_config.yaml").read_text()
        assert f"seed: {fit['seed']}" in run_config
        report = json.loads(
            (compared / "fits" / f"{fit['architecture']}-seed{fit['seed']}" / "report.json").read_text()
        )
        assert fit["metrics"]["click"] == report["splits"]["test"]["click"]["auc"]
    for task in ("click", "satisfaction"):
        ple = [f["metrics"][task] for f in result["fits"] if f["architecture"] == "ple"]
        single = [f["metrics"][task] for f in result["fits"] if f["architecture"] == "single_task"]
        assert result["summary"][task]["ple"]["mean"] == pytest.approx(sum(ple) / 2)
        diff = result["paired"][task]["ple"]
        assert diff["mean"] == pytest.approx((ple[0] - single[0] + ple[1] - single[1]) / 2)
        assert diff["verdict"] in (HELPS, NO_DIFFERENCE, NEGATIVE) and diff["low"] <= diff["mean"] <= diff["high"]
    assert result["recommended"]["architecture"] in ("single_task", "ple")
    md = (compared / "compare.md").read_text()
    assert (
        "| ple |" in md
        and "Recommended:" in md
        and "Wall time per fit" in md
        and result["paired"]["click"]["ple"]["verdict"] in md
    )
    assert (compared / "compare.png").read_bytes()[:4] == b"\x89PNG"
    # ple's gate similarity per seed comes from each fit's own gates.json, single_task has none
    ple_fits = [f for f in result["fits"] if f["architecture"] == "ple"]
    per_seed = [json.loads((compared / "fits" / f"ple-seed{f['seed']}" / "gates.json").read_text()) for f in ple_fits]
    values = [g["similarity"]["click|satisfaction"]["js_similarity"] for g in per_seed]
    assert [f["gate_similarity"]["click|satisfaction"] for f in ple_fits] == pytest.approx(values)
    assert result["gate_similarity"]["ple"]["click|satisfaction"]["mean"] == pytest.approx(sum(values) / 2)
    assert list(result["gate_similarity"]) == ["ple"]
    assert "gates click ~ satisfaction (1 − JS)" in md and "| single_task |" in md and "no gates" in md


def test_resume_skips_finished_fits_and_runs_the_rest_in_parallel(compared):
    fits = compared / "fits"
    kept = {p.name: (p / FIT_RESULT).stat().st_mtime_ns for p in fits.iterdir()}
    for name in ("ple-seed0", "single_task-seed1"):  # as if the compare had been killed before these two
        shutil.rmtree(fits / name)
        kept.pop(name)
    before = json.loads((compared / "compare.json").read_text())
    seen = []
    run_config = load_run_config(None, TINY_WITH_GATES)
    result = compare(
        run_config, ("single_task", "ple"), seeds=2, jobs=2, output_dir=compared, progress=False, on_fit=seen.append
    )
    assert sorted((r["architecture"], r["seed"]) for r in seen) == [("ple", 0), ("single_task", 1)]
    assert {p.name: (p / FIT_RESULT).stat().st_mtime_ns for p in fits.iterdir() if p.name in kept} == kept
    refit = {(f["architecture"], f["seed"]): f for f in result["fits"]}
    old = {(f["architecture"], f["seed"]): f for f in before["fits"]}
    for key in (("ple", 0), ("single_task", 1)):  # same seed, same split, same weights: same numbers
        assert refit[key]["metrics"] == pytest.approx(old[key]["metrics"], abs=1e-6)
    other = load_run_config(None, [*TINY_WITH_GATES, "train.epochs=2"])
    with pytest.raises(FileExistsError, match="different run config"):
        compare(other, ("single_task", "ple"), seeds=2, output_dir=compared, progress=False)


def _two_task_fits(diffs: dict[str, list[tuple[float, float]]]) -> list[dict]:
    """Fits of single_task (click 0.70/0.72/0.71, rating MSE 1.0) and each architecture at paired differences."""
    base = {0: 0.70, 1: 0.72, 2: 0.71}
    fits = [_fit("single_task", s, a, 1.0) for s, a in base.items()]
    for arch, per_seed in diffs.items():
        fits += [_fit(arch, s, base[s] + d_auc, 1.0 - d_mse) for s, (d_auc, d_mse) in zip(base, per_seed, strict=True)]
    return fits


def test_no_detectable_difference_anywhere_recommends_the_simplest_model_and_says_why():
    """The issue's case: every interval contains 0, yet the old rule picked the best mean (here ple, +0.004)."""
    noisy = {
        "mmoe": [(0.02, 0.1), (-0.015, -0.1), (0.001, 0.02)],
        "ple": [(0.03, 0.05), (-0.02, -0.05), (0.002, 0.0)],
    }
    out = summarize(_two_task_fits(noisy), ["single_task", "mmoe", "ple"], {"click": "auc", "rating": "mse"}, "click")
    assert {p["verdict"] for task in out["paired"].values() for p in task.values()} == {NO_DIFFERENCE}
    rec = out["recommended"]
    assert rec["architecture"] == "single_task"
    assert "no multi-task architecture is detectably better than single_task" in rec["reason"]
    assert "--seeds" in rec["reason"]


def test_a_clear_winner_is_recommended():
    fits = _two_task_fits(
        {
            "mmoe": [(0.050, 0.0), (0.052, 0.01), (0.051, -0.01)],  # helps on click, nothing detectable on rating
            "ple": [(0.02, 0.0), (-0.01, 0.01), (0.005, -0.01)],  # best mean nowhere near detectable
        }
    )
    out = summarize(fits, ["single_task", "mmoe", "ple"], {"click": "auc", "rating": "mse"}, "click")
    assert out["recommended"]["architecture"] == "mmoe"
    assert "detectably better than single_task on `click`" in out["recommended"]["reason"]
    # with rating primary nothing is detectably better there: the simplest model, naming where mmoe helps
    other = summarize(fits, ["single_task", "mmoe", "ple"], {"click": "auc", "rating": "mse"}, "rating")["recommended"]
    assert other["architecture"] == "single_task" and "mmoe helps on click" in other["reason"]


def test_the_markdown_states_the_recommendation_rule():
    fits = _two_task_fits({"mmoe": [(0.05, 0.0), (0.052, 0.01), (0.051, -0.01)]})
    stats = summarize(fits, ["single_task", "mmoe"], {"click": "auc", "rating": "mse"}, "click")
    result = {
        "data": "t.csv",
        "architectures": ["single_task", "mmoe"],
        "seeds": [0, 1, 2],
        "metrics": {"click": "auc", "rating": "mse"},
        "parameters": {"single_task": 10, "mmoe": 12},
        **stats,
    }
    md = format_markdown(result)
    assert "**Recommended: `mmoe`**" in md and stats["recommended"]["reason"] in md


def test_train_baseline_gain_says_it_is_one_seed():
    report = {
        "model": {"architecture": "mmoe"},
        "splits": {"test": {"click": {"type": "binary", "auc": 0.71, "observed": 100}}},
        "baseline": {"architecture": "single_task", "splits": {"test": {"click": {"type": "binary", "auc": 0.70}}}},
    }
    text = format_baseline_comparison(report)
    assert "+0.0100" in text
    assert "one seed" in text and "training compare" in text


def test_gate_similarity_per_architecture_and_pair_with_intervals_in_the_markdown():
    fits = _two_task_fits(
        {"mmoe": [(0.05, 0.0), (0.052, 0.01), (0.051, -0.01)], "shared_bottom": [(0.0, 0.0), (0.01, 0.0), (0.0, 0.01)]}
    )
    for f, sim in zip([f for f in fits if f["architecture"] == "mmoe"], (0.60, 0.62, 0.64), strict=True):
        f["gate_similarity"] = {"click|rating": sim}
    for f in fits:
        if f["architecture"] != "mmoe":
            f["gate_similarity"] = None  # no gates
    archs = ["single_task", "mmoe", "shared_bottom"]
    stats = summarize(fits, archs, {"click": "auc", "rating": "mse"}, "click")
    sim = stats["gate_similarity"]
    assert list(sim) == ["mmoe"]
    expected = mean_interval([0.60, 0.62, 0.64])
    assert sim["mmoe"]["click|rating"] == pytest.approx({**expected, "band": "moderate"})
    result = {
        "data": "t.csv",
        "architectures": archs,
        "seeds": [0, 1, 2],
        "metrics": {"click": "auc", "rating": "mse"},
        "parameters": {"single_task": 10, "mmoe": 12, "shared_bottom": 11},
        **stats,
    }
    md = format_markdown(result).splitlines()
    head = next(line for line in md if line.startswith("| architecture | click AUC"))
    assert head.split(" | ")[3] == "gates click ~ rating (1 − JS)"
    mmoe_row = next(line for line in md if line.startswith("| mmoe |")).split(" | ")
    assert mmoe_row[3] == f"0.620 [{expected['low']:.3f}, {expected['high']:.3f}] moderate"
    assert next(line for line in md if line.startswith("| shared_bottom |")).split(" | ")[3] == "no gates"
    assert any("sharing band (little < 0.3 ≤ moderate < 0.7 ≤ strong" in line for line in md)
    # the interval stays within [0, 1], the range of 1 - JS
    near_one = [{"architecture": "mmoe", "gate_similarity": {"a|b": v}} for v in (0.90, 0.99, 1.0)]
    clipped = gate_similarity(near_one, ["mmoe"])["mmoe"]["a|b"]
    assert clipped["high"] == 1.0 and mean_interval([0.90, 0.99, 1.0])["high"] > 1.0
    assert clipped["low"] == pytest.approx(mean_interval([0.90, 0.99, 1.0])["low"]) and clipped["band"] == "strong"
    # records of a comparison made before fits recorded their gates: no column, nothing breaks
    for f in fits:
        f.pop("gate_similarity")
    assert summarize(fits, archs, {"click": "auc", "rating": "mse"}, "click")["gate_similarity"] == {}
