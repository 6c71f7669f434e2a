"""Each experiment runs end to end at a tiny size and returns a table of the expected shape."""

import numpy as np
import pandas as pd
import pytest

from training.experiments import ceiling, census, common, gates_vs_relatedness, relatedness, scarcity
from training.experiments.__main__ import main as dispatch

TINY = common.FitOptions(epochs=1, batch_size=128, patience=1)


def _assert_finite(table: pd.DataFrame, columns: list[str]) -> None:
    values = table[columns].to_numpy(dtype=float)
    assert np.isfinite(values).all(), table[columns]


def test_relatedness_tiny(tmp_path):
    table = relatedness.run(
        rows=300,
        correlations=(0.5, 1.0),
        architectures=("shared_bottom",),
        seeds=1,
        fit=TINY,
        figures_dir=tmp_path,
        dim=4,
    )
    assert list(table["correlation"]) == [0.5, 1.0]
    assert list(table["architecture"]) == ["shared_bottom"] * 2
    mse = [c for c in table.columns if c.startswith("mse_") and c.endswith("_mean")]
    assert len(mse) == 2
    _assert_finite(table, mse)
    assert (table[mse].to_numpy() > 0).all()
    assert (tmp_path / "relatedness.png").stat().st_size > 0


def test_scarcity_tiny(tmp_path):
    table = scarcity.run(
        rows=2000, fractions=(0.1,), architectures=("single_task", "mmoe"), seeds=1, fit=TINY, figures_dir=tmp_path
    )
    assert list(table["label_fraction"]) == [0.1, 0.1]
    assert list(table["architecture"]) == ["single_task", "mmoe"]
    _assert_finite(table, ["train_labels", "auc_click_mean", "auc_satisfaction_mean"])
    # 2,000 rows × 80 % train × ~20 % clicks × 10 % kept ≈ 32 labels
    assert 0 < table["train_labels"].iloc[0] < 0.2 * 0.8 * 2000
    assert ((table["auc_satisfaction_mean"] >= 0) & (table["auc_satisfaction_mean"] <= 1)).all()
    auc = table["auc_satisfaction_mean"]
    assert table["gain_vs_single_satisfaction"].tolist() == pytest.approx([0.0, auc.iloc[1] - auc.iloc[0]])
    assert (tmp_path / "scarcity.png").stat().st_size > 0


@pytest.mark.real_data
def test_census_tiny(tmp_path, shared_data):
    table = census.run(
        rows=1500,
        groups=(1,),
        architectures=("mmoe",),
        seeds=1,
        fit=TINY,
        data_root=shared_data,
        figures_dir=tmp_path,
    )
    assert list(table["architecture"]) == ["mmoe"]
    assert table["tasks"].iloc[0] == "income_50k & never_married"
    _assert_finite(table, ["auc_task1_mean", "auc_task2_mean"])
    assert (tmp_path / "census.png").stat().st_size > 0


def test_gates_vs_relatedness_tiny(tmp_path):
    table = gates_vs_relatedness.run(rows=300, correlations=(0.0, 1.0), seeds=1, fit=TINY, figures_dir=tmp_path, dim=4)
    assert list(table["correlation"]) == [0.0, 1.0]
    mse = [c for c in table.columns if c.startswith("mse_") and c.endswith("_mean")]
    assert len(mse) == 2
    _assert_finite(table, ["js_similarity_mean", "cosine_mean", *mse])
    assert ((table["js_similarity_mean"] >= 0) & (table["js_similarity_mean"] <= 1)).all()
    assert (tmp_path / "gates_vs_relatedness.png").stat().st_size > 0


def test_ceiling_tiny(tmp_path):
    table = ceiling.run(rows=3000, seeds=1, fit=TINY, figures_dir=tmp_path)
    assert set(table["task"]) >= {"click", "satisfaction"}
    _assert_finite(table, ["model_auc_mean", "oracle_auc_mean", "gap_mean"])
    assert ((table["oracle_auc_mean"] > 0.5) & (table["oracle_auc_mean"] <= 1)).all()
    assert np.allclose(table["gap_mean"], table["oracle_auc_mean"] - table["model_auc_mean"])
    assert (tmp_path / "ceiling.png").stat().st_size > 0


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
