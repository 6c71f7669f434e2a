"""Generators (numpy only): the MMoE synthetic benchmark's correlation knob and the impression simulator."""

import itertools

import numpy as np
import pandas as pd
import pytest

from data.generators import make_synthetic, oracle_auc, simulate_impressions
from data.generators.synthetic import task_weights
from data.loading import load_table
from data.sample import DEFAULT_CSV, SAMPLE_CSV, SAMPLE_DIR, SAMPLE_SCHEMA, load_default, write_sample


def _label_corr(p: float, **kwargs) -> float:
    df, _ = make_synthetic(n_rows=40_000, correlation=p, dim=20, seed=11, **kwargs)
    return float(np.corrcoef(df["y1"], df["y2"])[0, 1])


def test_weight_cosine_is_the_knob():
    rng = np.random.default_rng(0)
    for p in (-0.5, 0.0, 0.3, 0.9):
        w1, w2 = task_weights(100, p, 2.0, rng)
        assert np.linalg.norm(w1) == pytest.approx(2.0) and np.linalg.norm(w2) == pytest.approx(2.0)
        assert w1 @ w2 / 4.0 == pytest.approx(p, abs=1e-9)


def test_linear_case_label_correlation_equals_knob():
    # Without the sinusoids y_i = w_iᵀx + ε, so corr(y1, y2) = p·c² / (c² + σ²) ≈ p.
    for p in (0.0, 0.3, 0.6, 0.9):
        assert _label_corr(p, num_sin=0) == pytest.approx(p, abs=0.03)


def test_paper_setting_label_correlation_rises_with_knob():
    ps = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)
    corr = [_label_corr(p) for p in ps]
    assert all(b > a for a, b in itertools.pairwise(corr)), corr
    assert abs(corr[0]) < 0.03 and corr[-1] > 0.98


def test_synthetic_schema_and_determinism():
    df, schema = make_synthetic(n_rows=100, dim=8, seed=3)
    assert schema.feature_names == tuple(f"x_{i}" for i in range(8)) and schema.task_names == ("y1", "y2")
    assert {t.type for t in schema.tasks} == {"regression"}
    again, _ = make_synthetic(n_rows=100, dim=8, seed=3)
    assert df.equals(again)
    with pytest.raises(ValueError, match="correlation"):
        make_synthetic(correlation=1.5)


@pytest.fixture(scope="module")
def impressions():
    return simulate_impressions(
        n_rows=40_000, click_rate=0.3, satisfaction_rate=0.6, label_keep_fraction=0.5, relatedness=0.5, seed=5
    )


def test_satisfaction_only_observed_after_click(impressions):
    df, _ = impressions
    assert df.loc[df["click"] == 0, "satisfaction"].isna().all()
    observed = df["satisfaction"].notna()
    assert (df.loc[observed, "click"] == 1).all()


def test_rates_and_keep_fraction_follow_the_knobs(impressions):
    df, _ = impressions
    clicked = df["click"] == 1
    assert df["click"].mean() == pytest.approx(0.3, abs=0.01)
    assert df["p_click"].mean() == pytest.approx(0.3, abs=0.002)
    assert df.loc[clicked, "satisfaction"].notna().mean() == pytest.approx(0.5, abs=0.02)
    assert df["satisfaction"].mean() == pytest.approx(0.6, abs=0.02)  # NaN skipped: rate among observed


def test_oracle_auc_is_informative(impressions):
    df, _ = impressions
    assert 0.75 < oracle_auc(df, "click") < 1.0
    assert 0.7 < oracle_auc(df, "satisfaction") < 1.0


def test_relatedness_knob_controls_task_relation():
    def logit_corr(r):
        df, _ = simulate_impressions(n_rows=20_000, relatedness=r, seed=1)
        p1, p2 = df["p_click"].clip(1e-6, 1 - 1e-6), df["p_satisfaction"].clip(1e-6, 1 - 1e-6)
        return np.corrcoef(np.log(p1 / (1 - p1)), np.log(p2 / (1 - p2)))[0, 1]

    low, mid, high = logit_corr(0.0), logit_corr(0.5), logit_corr(1.0)
    assert abs(low) < 0.1 and high > 0.99 and low < mid < high


def test_simulator_table_validates_against_its_schema(impressions):
    df, schema = impressions
    loaded = load_table(df.head(500), schema)
    assert loaded["user_id"].str.startswith("u").all() and loaded["hour"].between(0, 23).all()
    assert set(loaded["device"]) <= {"mobile", "desktop", "tablet"}
    again, _ = simulate_impressions(n_rows=500, seed=5, click_rate=0.3, satisfaction_rate=0.6, label_keep_fraction=0.5)
    assert not again.equals(df.head(500))  # n_rows is part of the draw; equal arguments give equal tables:
    assert again.equals(
        simulate_impressions(n_rows=500, seed=5, click_rate=0.3, satisfaction_rate=0.6, label_keep_fraction=0.5)[0]
    )


def test_item_rating_drives_satisfaction_and_not_click():
    """``item_rating`` is a noisy view of the hidden quality: it tracks p(satisfied | click), not p(click)."""
    args = {"n_rows": 20_000, "relatedness": 0.3, "seed": 3}
    df, schema = simulate_impressions(**args, item_rating=True)
    plain, plain_schema = simulate_impressions(**args)
    assert "item_rating" in schema.feature_names and "item_rating" not in plain_schema.feature_names
    assert df.drop(columns=["item_rating"]).equals(plain)  # drawn last: the other columns are unchanged
    assert df["item_rating"].between(1.0, 5.0).all() and 3.5 < df["item_rating"].median() < 4.5

    def logit(p):
        p = p.clip(1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))

    def corr_with_rating(frame, column):
        return float(np.corrcoef(frame["item_rating"], logit(frame[column]))[0, 1])

    assert corr_with_rating(df, "p_satisfaction") > 0.2 and abs(corr_with_rating(df, "p_click")) < 0.05
    strong, _ = simulate_impressions(**args, item_rating=True, quality_strength=4.0)
    assert corr_with_rating(strong, "p_satisfaction") > corr_with_rating(df, "p_satisfaction") + 0.2
    assert abs(corr_with_rating(strong, "p_click")) < 0.05 and strong["p_click"].equals(df["p_click"])


def test_simulator_rejects_bad_knobs():
    with pytest.raises(ValueError, match="label_keep_fraction"):
        simulate_impressions(label_keep_fraction=1.5)
    with pytest.raises(ValueError, match="click_rate"):
        simulate_impressions(click_rate=0.0)
    with pytest.raises(ValueError, match="quality_strength"):
        simulate_impressions(quality_strength=-1.0)


def test_sample_regenerates_byte_for_byte(tmp_path):
    gz_path, csv_path, schema_path = write_sample(tmp_path)
    assert gz_path.read_bytes() == (SAMPLE_DIR / DEFAULT_CSV).read_bytes()
    assert csv_path.read_bytes() == (SAMPLE_DIR / SAMPLE_CSV).read_bytes()
    assert schema_path.read_bytes() == (SAMPLE_DIR / SAMPLE_SCHEMA).read_bytes()


def test_load_default():
    df, schema = load_default()
    assert len(df) == 60000 and schema.task_names == ("click", "satisfaction")
    assert df["satisfaction"].isna().sum() > 40000  # not clicked → blank
    head = pd.read_csv(SAMPLE_DIR / SAMPLE_CSV)
    assert len(head) == 4000 and (head["user_id"] == df["user_id"].head(4000)).all()  # the plain-text head
    assert oracle_auc(df, "click") > 0.8


def test_oracle_auc_by_hand():
    import pandas as pd

    df = pd.DataFrame({"click": [0, 1, 0, 1, np.nan], "p_click": [0.1, 0.3, 0.35, 0.8, 0.9]})
    assert oracle_auc(df, "click") == pytest.approx(0.75)  # 3 of 4 positive/negative pairs ordered; NaN row ignored
