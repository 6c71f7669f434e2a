"""random_split / time_split: disjoint, complete, deterministic; time order respected, ties kept together."""

import numpy as np
import pandas as pd
import pytest

from data.splits import random_split, time_split


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 1003
    return pd.DataFrame({"ts": rng.integers(0, 50, size=n), "x": rng.random(n)}, index=np.arange(100, 100 + n))


def _check_partition(parts, table):
    indices = [set(p.index) for p in parts]
    for i in range(len(indices)):
        for j in range(i + 1, len(indices)):
            assert not indices[i] & indices[j]
    assert set().union(*indices) == set(table.index)
    assert sum(len(p) for p in parts) == len(table)


def test_random_split_is_a_seeded_partition(table):
    parts = random_split(table, (0.8, 0.1, 0.1), seed=7)
    _check_partition(parts, table)
    assert [len(p) for p in parts] == [803, 100, 100]  # 802.4, 100.3, 100.3 → largest remainder
    again = random_split(table, (0.8, 0.1, 0.1), seed=7)
    for a, b in zip(parts, again, strict=True):
        pd.testing.assert_frame_equal(a, b)
    other = random_split(table, (0.8, 0.1, 0.1), seed=8)
    assert set(other[1].index) != set(parts[1].index)
    assert all(p.index.is_monotonic_increasing for p in parts)  # original order kept


def test_time_split_past_before_future_and_ties_together(table):
    train, val, test = time_split(table, "ts", (0.7, 0.15, 0.15))
    _check_partition((train, val, test), table)
    assert train["ts"].max() < val["ts"].min() <= val["ts"].max() < test["ts"].min()
    for value in table["ts"].unique():  # every timestamp lives in exactly one split
        assert sum(value in set(p["ts"]) for p in (train, val, test)) == 1
    assert abs(len(train) / len(table) - 0.7) < 0.05


def test_time_split_datetime_strings():
    df = pd.DataFrame({"when": ["2024-01-03", "2024-01-01", "2024-01-02", "2024-01-04"], "x": range(4)})
    train, test = time_split(df, "when", (0.5, 0.5))
    assert sorted(train["when"]) == ["2024-01-01", "2024-01-02"]
    assert sorted(test["when"]) == ["2024-01-03", "2024-01-04"]


def test_time_split_all_ties_go_to_one_side():
    df = pd.DataFrame({"ts": [5] * 10})
    train, test = time_split(df, "ts", (0.5, 0.5))
    assert (len(train), len(test)) == (0, 10)


def test_split_errors(table):
    with pytest.raises(ValueError, match="fractions must sum to 1"):
        random_split(table, (0.5, 0.2))
    with pytest.raises(ValueError, match="non-negative"):
        random_split(table, (1.2, -0.2))
    with pytest.raises(ValueError, match="column 'time' is not in the table"):
        time_split(table, "time")
    with pytest.raises(ValueError, match=r"column 'ts' has missing.*rows \[1\]"):
        time_split(pd.DataFrame({"ts": [1.0, np.nan]}), "ts", (0.5, 0.5))
