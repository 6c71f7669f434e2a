"""Each experiment runs end to end at a tiny size and returns a table of the expected shape."""

import json

import numpy as np
import pandas as pd
import pytest

from training.experiments import (
    ceiling,
    ceiling_reference,
    census,
    common,
    gates_vs_relatedness,
    relatedness,
    scarcity,
)
from training.experiments.__main__ import main as dispatch

TINY = common.FitOptions(epochs=1, batch_size=128, patience=1)


def _assert_finite(table: pd.DataFrame, columns: list[str]) -> None:
    values = table[columns].to_numpy(dtype=float)
    assert np.isfinite(values).all(), table[columns]


def _rows(rows, **where):
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


def test_relatedness_tiny(tmp_path):
    rows = relatedness.run(
        rows=300,
        correlations=(1.0,),
        architectures=("mmoe", "shared_bottom"),
        seeds=2,
        fit=TINY,
        figures_dir=tmp_path,
        dim=4,
        learning_rates=(1e-3, 1e-2),
        results_dir=tmp_path,
        tune_correlations=(1.0,),
    )
    assert [(r["correlation"], r["architecture"], r["task"]) for r in rows] == [
        (1.0, a, t) for a in ("mmoe", "shared_bottom") for t in ("y1", "y2")
    ]
    assert all(r["metric"] == "mse" and r["mean"] > 0 and r["seeds"] == 2 for r in rows)
    assert all(r["ci95"][0] <= r["mean"] <= r["ci95"][1] for r in rows)
    # the shared bottom is sized to MMoE's parameter count (within one bottom unit's worth)
    mmoe, bottom = _rows(rows, architecture="mmoe")[0], _rows(rows, architecture="shared_bottom")[0]
    assert abs(mmoe["parameters"] - bottom["parameters"]) / mmoe["parameters"] < 0.05
    assert all("gain_vs_baseline" in r for r in _rows(rows, architecture="mmoe"))
    tuning = json.loads((tmp_path / "relatedness_lr.json").read_text())
    assert {(r["architecture"], r["learning_rate"]) for r in tuning} == {
        (a, lr) for a in ("mmoe", "shared_bottom") for lr in (1e-3, 1e-2)
    }
    for arch in ("mmoe", "shared_bottom"):
        chosen = [r for r in tuning if r["architecture"] == arch and r["chosen"]]
        assert len(chosen) == 1 and chosen[0]["mean"] == min(r["mean"] for r in tuning if r["architecture"] == arch)
        assert _rows(rows, architecture=arch)[0]["learning_rate"] == chosen[0]["learning_rate"]
    assert json.loads((tmp_path / "relatedness.json").read_text()) == rows
    assert (tmp_path / "relatedness.png").stat().st_size > 0


def test_scarcity_tiny_pairs_gains_and_resumes(tmp_path):
    kwargs = dict(rows=2000, fractions=(0.1,), architectures=("single_task", "mmoe"), fit=TINY, figures_dir=tmp_path)
    rows = scarcity.run(seeds=2, results_dir=tmp_path, **kwargs)
    assert [(r["architecture"], r["task"]) for r in rows] == [
        (a, t) for a in ("single_task", "mmoe") for t in ("click", "satisfaction")
    ]
    # 2,000 rows × 80 % train × ~20 % clicks × 10 % kept ≈ 32 labels
    assert all(0 < r["train_labels"] < 0.2 * 0.8 * 2000 and r["seeds"] == 2 for r in rows)
    assert all(r["monitor"] == "val_loss" for r in rows)
    raw = [json.loads(line) for line in (tmp_path / "raw" / "scarcity.jsonl").read_text().splitlines()]
    assert {r["monitor"] for r in raw} == {"val_mean_task_auc", "val_loss", "val_satisfaction_auc"}
    for task in ("click", "satisfaction"):
        per_seed = {
            a: [
                r["value"]
                for r in sorted(raw, key=lambda r: r["seed"])
                if r["architecture"] == a and r["task"] == task and r["primary"]
            ]
            for a in ("single_task", "mmoe")
        }
        gain = _rows(rows, architecture="mmoe", task=task)[0]["gain_vs_single_task"]
        assert gain["seeds"] == 2
        assert gain["mean"] == pytest.approx(np.mean(per_seed["mmoe"]) - np.mean(per_seed["single_task"]), abs=1e-5)
    selection = json.loads((tmp_path / "model_selection.json").read_text())
    assert {r["monitor"] for r in selection} == {"val_mean_task_auc", "val_loss", "val_satisfaction_auc"}
    # a rerun with one more seed trains only that seed's fits
    before = len(raw)
    rows = scarcity.run(seeds=3, results_dir=tmp_path, **kwargs)
    after = (tmp_path / "raw" / "scarcity.jsonl").read_text().splitlines()
    assert len(after) == before * 3 // 2 and all(r["seeds"] == 3 for r in rows)
    assert (tmp_path / "scarcity.png").stat().st_size > 0


@pytest.mark.real_data
def test_census_tiny(tmp_path, shared_data):
    rows = census.run(
        rows=1500,
        groups=(1,),
        architectures=("mmoe",),
        seeds=2,
        fit=TINY,
        data_root=shared_data,
        figures_dir=tmp_path,
        learning_rates=(1e-3,),
        widths=(1, 2),
        results_dir=tmp_path,
    )
    assert [(r["architecture"], r["task"]) for r in rows] == [("mmoe", "income_50k"), ("mmoe", "never_married")]
    assert all(r["tasks"] == "income_50k & never_married" and r["seeds"] == 2 for r in rows)
    grid = json.loads((tmp_path / "census_grid.json").read_text())
    assert {(r["architecture"], r["width"]) for r in grid} == {("mmoe", 1), ("mmoe", 2)}
    for arch in ("mmoe",):
        chosen = [r for r in grid if r["architecture"] == arch and r["chosen"]]
        assert {r["width"] for r in chosen} == {_rows(rows, architecture=arch)[0]["width"]}
        best = min if TINY.monitor == "val_loss" else max  # chosen on the validation monitor, in its direction
        assert chosen[0]["val_monitor"] == best(r["val_monitor"] for r in grid if r["architecture"] == arch)
    assert (tmp_path / "census.png").stat().st_size > 0


def test_gate_measures_known_cases():
    same = gates_vs_relatedness.gate_measures({"a": np.full((3, 4), 0.25), "b": np.full((3, 4), 0.25)})
    assert same["js_similarity"] == pytest.approx(1.0) and same["cosine"] == pytest.approx(1.0)
    assert same["per_example_js"] == pytest.approx(0.0, abs=1e-7) and same["task_expert_mi"] == pytest.approx(0.0)
    assert same["specialised_experts"] == 0.0 and same["entropy_a"] == pytest.approx(1.0)
    eye = np.eye(4)
    apart = gates_vs_relatedness.gate_measures({"a": eye[[0, 1]], "b": eye[[2, 3]]})
    assert apart["js_similarity"] == pytest.approx(0.0) and apart["task_expert_mi"] == pytest.approx(1.0)
    assert apart["specialised_experts"] == 1.0 and apart["entropy_b"] == pytest.approx(0.0)
    # per example the gates can differ while the means agree: mean similarity 1, per-example JS 1
    swapped = gates_vs_relatedness.gate_measures({"a": eye[[0, 1]], "b": eye[[1, 0]]})
    assert swapped["js_similarity"] == pytest.approx(1.0) and swapped["per_example_js"] == pytest.approx(1.0)


def test_choose_learning_rates_per_correlation():
    fits = [
        {"correlation": p, "architecture": "omoe", "learning_rate": lr, "val_loss": loss}
        for p, lr, loss in [(0.0, 0.01, 1.0), (0.0, 0.03, 0.5), (1.0, 0.01, 0.2), (1.0, 0.03, 0.9)]
    ]
    assert gates_vs_relatedness.choose_learning_rates(fits) == {(0.0, "omoe"): 0.03, (1.0, "omoe"): 0.01}


def test_gates_vs_relatedness_tiny_and_resumable(tmp_path, monkeypatch):
    options = dict(
        rows=300, correlations=(0.0, 1.0), seeds=2, fit=TINY, dim=4, learning_rates=(1e-2,), results_dir=tmp_path
    )
    rows = gates_vs_relatedness.run(figures_dir=tmp_path, **options)
    assert {(r["architecture"], r["correlation"]) for r in rows} == {(a, p) for a in ("mmoe", "omoe") for p in (0, 1)}
    gates = {r["metric"] for r in rows if r["architecture"] == "mmoe" and r["task"] == "both"}
    assert gates == set(gates_vs_relatedness.GATE_MEASURES)
    assert {r["task"] for r in rows if r["metric"] == "gate_entropy"} == {"y1", "y2"}
    for row in rows:
        assert row["seeds"] == 2 and row["ci95"] is not None
    mse = [r for r in rows if r["architecture"] == "mmoe" and r["metric"] == "mse"]
    assert len(mse) == 4 and all(r["gain_vs_omoe"]["seeds"] == 2 for r in mse)
    similarity = [r["mean"] for r in rows if r["metric"] == "js_similarity"]
    assert all(0.0 <= s <= 1.0 for s in similarity)
    assert json.loads((tmp_path / "gates_vs_relatedness.json").read_text()) == rows
    trend = {
        (r["metric"], r["task"]): r for r in json.loads((tmp_path / "gates_vs_relatedness_trend.json").read_text())
    }
    assert {
        ("js_similarity", "both"),
        ("task_expert_mi", "both"),
        ("gate_entropy", "y1"),
        ("gain_vs_omoe", "y2"),
    } <= set(trend)
    rho = trend[("js_similarity", "both")]
    assert rho["seeds"] == 4 and -1.0 <= rho["mean"] <= 1.0 and 0.0 <= rho["p_value"] <= 1.0
    tuning = json.loads((tmp_path / "gates_vs_relatedness_lr.json").read_text())
    assert len(tuning) == 4 and all(r["chosen"] for r in tuning)
    assert (tmp_path / "gates_vs_relatedness.png").stat().st_size > 0
    raw = tmp_path / "raw" / "gates_vs_relatedness"
    assert len(list(raw.glob("*.json"))) == 4 + 8  # tuning fits + main fits, one file each
    # resumable: a rerun fits only what is missing
    missing = sorted(raw.glob("stagemain_architectureomoe_correlation1.0_seed1_*.json"))
    assert len(missing) == 1
    missing[0].unlink()
    calls = []
    fit_and_score = common.fit_and_score
    monkeypatch.setattr(common, "fit_and_score", lambda *a, **k: calls.append(k) or fit_and_score(*a, **k))
    again = gates_vs_relatedness.run(figures_dir=tmp_path, **options)
    assert [(c["architecture"], c["seed"]) for c in calls] == [("omoe", 1)]
    assert len(again) == len(rows)


def test_ceiling_tiny(tmp_path):
    rows = ceiling.run(rows=3000, seeds=2, fit=TINY, figures_dir=tmp_path, results_dir=tmp_path)
    primary = [r for r in rows if r["monitor"] == "val_loss"]
    assert {(r["task"], r["metric"]) for r in primary} == {
        (t, m) for t in ("click", "satisfaction") for m in ("auc", "oracle_auc", "gap")
    }
    for task in ("click", "satisfaction"):
        cell = {r["metric"]: r for r in primary if r["task"] == task}
        assert 0.5 < cell["oracle_auc"]["mean"] <= 1
        assert cell["gap"]["mean"] == pytest.approx(cell["oracle_auc"]["mean"] - cell["auc"]["mean"], abs=1e-5)
        assert cell["gap"]["within_target"] == (cell["gap"]["mean"] <= ceiling.TARGET_GAP)
    assert {r["monitor"] for r in rows} == {"val_mean_task_auc", "val_loss", "val_satisfaction_auc"}
    assert (tmp_path / "ceiling_batch_size128_epochs1_patience1.png").stat().st_size > 0  # non-default fit: a variant


def test_ceiling_variants_keep_their_own_records_and_files(tmp_path):
    argv = ["--rows", "3000", "--seeds", "1", "--epochs", "1", "--batch-size", "256", "--patience", "1"]
    argv += ["--results-dir", str(tmp_path), "--figures-dir", str(tmp_path)]
    changes = ["--set", "expert_dropout=0.1", "--feature-set", "user_id.embedding_dim=2"]
    changes += ["--loss-weight", "satisfaction=2"]
    ceiling.main(argv)
    ceiling.main([*argv, *changes])
    slug = "batch_size256_epochs1_expert_dropout0.1_features_user_id_embedding_dim2"
    slug += "_loss_weights_satisfaction2.0_patience1"
    assert (tmp_path / f"ceiling_{slug}.json").exists() and (tmp_path / f"ceiling_{slug}.png").exists()
    variants = {r["variant"] for r in ceiling.RawStore("ceiling", tmp_path).records()}
    assert len(variants) == 2
    table = ceiling.summarize_variants(rows=3000, results_dir=tmp_path)
    assert {r["slug"] for r in table} == {"batch_size256_epochs1_patience1", slug}
    assert {r["seeds_used"] for r in table} == {"0-2"} and {r["metric"] for r in table} == {"gap"}
    with pytest.raises(ValueError, match="no feature or task named"):
        ceiling.main([*argv, "--feature-set", "nope.embedding_dim=2"])
    with pytest.raises(SystemExit):
        ceiling.main([*argv, "--feature-set", "user_id=2"])


def test_ceiling_reference_is_close_to_the_oracle_on_enough_rows(tmp_path):
    rows = ceiling_reference.run(rows=20_000, seeds=1, results_dir=tmp_path)
    gaps = {r["task"]: r["mean"] for r in rows if r["metric"] == "gap"}
    assert set(gaps) == {"click", "satisfaction"}
    assert 0 <= gaps["click"] < 0.02 and -0.01 < gaps["satisfaction"] < 0.05, gaps
    assert (tmp_path / "ceiling_reference.json").exists()


def test_aggregate_and_markdown():
    raw = pd.DataFrame({"arch": ["a", "a", "b"], "seed": [0, 1, 0], "m": [1.0, 3.0, 2.0]})
    table = common.aggregate(raw, ["arch"], ["m"])
    assert table["m_mean"].tolist() == [2.0, 2.0]
    assert table["m_std"].tolist() == pytest.approx([np.sqrt(2.0), 0.0])
    assert table["seeds"].tolist() == [2, 1]
    text = common.markdown_table(table)
    assert "| arch | m | seeds |" in text
    assert "2.0000 ± 1.4142" in text


def test_dispatch_rejects_unknown_name(capsys):
    assert dispatch(["nope"]) == 2
    assert "usage" in capsys.readouterr().err


def test_variant_slug_flattens_nested_lists():
    from training.experiments.ceiling import _slug

    fields = {"feature_crosses": [["a", "b"], ["c", "d"]], "expert_units": [64, 32]}
    assert _slug(fields) == "expert_units64x32_feature_crossesaxb_cxd"
