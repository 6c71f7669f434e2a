"""load_table / validate_frame: every validation error names the column, the rows and the expectation."""

import numpy as np
import pandas as pd
import pytest

from data import DataValidationError, feature_arrays, iter_table_chunks, label_report, labels_and_weights, load_table
from data.schema import Schema
from mmoe_tf.feature_specs import FeatureSpec
from mmoe_tf.task_specs import TaskSpec

HEADER = "price,device,hour,user_id,click,satisfaction"
GOOD_ROWS = [
    "1.5,mobile,3,007,1,1",
    "2.0,desktop,23,12,0,",
    "0.5,tablet,0,u9,1,0",
    "3.25,mobile,7,0012,0,",
]


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema(
        features=(
            FeatureSpec("price", "numeric"),
            FeatureSpec("device", "categorical", dtype="string"),
            FeatureSpec("hour", "categorical", dtype="int64"),
            FeatureSpec("user_id", "hashed", dtype="string"),
        ),
        tasks=(TaskSpec("click"), TaskSpec("satisfaction")),
    )


@pytest.fixture(scope="module")
def with_default(schema) -> Schema:
    """``schema`` plus an optional feature (``discount``, default 0.25) the test tables lack."""
    return schema.replace(features=(*schema.features, FeatureSpec("discount", "numeric", default=0.25)))


def write(tmp_path, rows, header=HEADER, name="t.csv"):
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n" if header is not None else "")
    return path


def test_good_csv_types_and_optional_default(tmp_path, with_default):
    schema = with_default
    with pytest.raises(
        DataValidationError, match=r"missing column 'discount' \(feature 'discount', optional: default 0\.25\)"
    ):
        load_table(write(tmp_path, GOOD_ROWS), schema)
    df = load_table(write(tmp_path, GOOD_ROWS), schema, allow_missing_features=True)
    assert len(df) == 4
    assert df["price"].dtype == np.float32 and df["hour"].dtype == np.int64
    assert df["user_id"].tolist() == ["007", "12", "u9", "0012"]  # ids are never float-ified
    assert df["discount"].tolist() == [0.25] * 4  # absent optional feature, opted in → its default
    assert np.isnan(df["satisfaction"][1]) and df["satisfaction"][0] == 1
    arrays = feature_arrays(df, schema)
    assert set(arrays) == {"price", "device", "hour", "user_id", "discount"}
    assert arrays["device"].dtype == object and arrays["hour"].dtype == np.int64


def test_blank_label_gets_weight_zero_and_finite_placeholder(tmp_path, schema):
    df = load_table(write(tmp_path, GOOD_ROWS), schema)
    labels, weights = labels_and_weights(df, schema)
    np.testing.assert_array_equal(weights["satisfaction"], [1, 0, 1, 0])
    np.testing.assert_array_equal(labels["satisfaction"], [1, 0, 0, 0])
    np.testing.assert_array_equal(weights["click"], [1, 1, 1, 1])
    assert all(np.isfinite(v).all() for v in labels.values())
    report = label_report(df, schema)
    assert report["satisfaction"] == {
        "rows": 4,
        "observed": 2,
        "observed_fraction": 0.5,
        "positives": 1,
        "positive_rate": 0.5,
    }
    assert report["click"]["positives"] == 2


def test_label_report_regression():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1.0, np.nan, 3.0]})
    schema = Schema(features=(FeatureSpec("x", "numeric"),), tasks=(TaskSpec("y", "regression"),))
    report = label_report(df, schema)["y"]
    assert report["observed"] == 2 and report["mean"] == 2.0 and report["std"] == 1.0


def test_missing_column_lists_close_matches(tmp_path, schema):
    path = write(tmp_path, GOOD_ROWS, header="pirce,device,hour,user_id,click,satisfaction")
    with pytest.raises(
        DataValidationError, match=r"missing column 'price' \(feature 'price'\); did you mean 'pirce'\?"
    ):
        load_table(path, schema)


def test_missing_label_column_named(tmp_path, schema):
    path = write(tmp_path, [r.rsplit(",", 1)[0] for r in GOOD_ROWS], header="price,device,hour,user_id,click")
    with pytest.raises(DataValidationError, match=r"missing label column 'satisfaction' \(task 'satisfaction'\)"):
        load_table(path, schema)
    assert "satisfaction" not in load_table(path, schema, require_labels=False).columns


def test_non_numeric_text_shows_values_and_rows(tmp_path, schema):
    rows = [*GOOD_ROWS, "abc,mobile,1,u1,0,", "1e3,mobile,1,u1,0,", "12 USD,mobile,1,u2,0,"]
    with pytest.raises(DataValidationError) as err:
        load_table(write(tmp_path, rows), schema)
    message = str(err.value)
    assert "column 'price'" in message and "expects numbers" in message
    assert "'abc' (row 4)" in message and "'12 USD' (row 6)" in message
    assert "file lines 6, 8" in message


def test_non_binary_label(tmp_path, schema):
    rows = [*GOOD_ROWS[:2], "1.0,mobile,1,u1,2,", "1.0,mobile,1,u1,0.5,"]
    with pytest.raises(DataValidationError) as err:
        load_table(write(tmp_path, rows), schema)
    message = str(err.value)
    assert "label column 'click'" in message and "expects 0 or 1" in message
    assert "found 2.0 (row 2), 0.5 (row 3)" in message  # CSV labels are parsed as numbers
    assert "rows 2, 3 (file lines 4, 5)" in message


def test_nan_in_numeric_feature_error_policy(tmp_path, schema):
    rows = [*GOOD_ROWS, ",mobile,1,u1,0,", "NaN,mobile,1,u1,0,"]
    with pytest.raises(DataValidationError, match=r"column 'price' \(feature 'price'.*missing.*rows 4, 5"):
        load_table(write(tmp_path, rows), schema)


def test_inf_in_numeric_feature(schema):
    df = pd.DataFrame({"price": [1.0, np.inf], "device": ["a", "b"], "hour": [1, 2], "user_id": ["u", "v"]})
    df["click"], df["satisfaction"] = [0, 1], [np.nan, 1]
    with pytest.raises(DataValidationError, match=r"column 'price'.*infinite.*row 1"):
        load_table(df, schema)


def test_fill_policy_uses_default_and_requires_one(with_default):
    schema = with_default
    df = pd.DataFrame(
        {"price": [1.0, 2.0], "device": ["a", "b"], "hour": [1, 2], "user_id": ["u", "v"], "discount": [np.nan, 0.5]}
    )
    df["click"], df["satisfaction"] = [0, 1], [np.nan, 1]
    with pytest.raises(DataValidationError, match=r"column 'discount'.*row 0"):
        load_table(df, schema)
    assert load_table(df, schema, nan_policy="fill")["discount"].tolist() == [0.25, 0.5]
    df.loc[1, "price"] = np.nan
    with pytest.raises(DataValidationError, match=r"column 'price'.*row 1.*no 'default'"):
        load_table(df, schema, nan_policy="fill")


def test_blank_category_is_missing(tmp_path, schema):
    rows = [*GOOD_ROWS, "1.0,,1,u1,0,"]
    with pytest.raises(DataValidationError, match=r"column 'device'.*missing.*row 4"):
        load_table(write(tmp_path, rows), schema)


def test_int_category_rejects_text_and_fractions(tmp_path, schema):
    with pytest.raises(DataValidationError, match=r"column 'hour'.*expects numbers.*'noon' \(row 4\)"):
        load_table(write(tmp_path, [*GOOD_ROWS, "1.0,mobile,noon,u1,0,"]), schema)
    with pytest.raises(DataValidationError, match=r"column 'hour'.*expects integers.*'3.5' \(row 4\)"):
        load_table(write(tmp_path, [*GOOD_ROWS, "1.0,mobile,3.5,u1,0,"]), schema)


def test_large_int_ids_are_exact():
    schema = Schema(features=(FeatureSpec("item", "categorical", dtype="int64"),), tasks=(TaskSpec("click"),))
    big = 2**60 + 1
    df = load_table(pd.DataFrame({"item": [str(big), "3"], "click": [1, 0]}), schema)
    assert df["item"].tolist() == [big, 3]


def test_empty_file_and_header_only(tmp_path, schema):
    with pytest.raises(DataValidationError, match="file is empty"):
        load_table(write(tmp_path, [], header=None), schema)
    with pytest.raises(DataValidationError, match="header but no data rows"):
        load_table(write(tmp_path, []), schema)


def test_duplicate_columns_detected_from_header(tmp_path, schema):
    path = write(tmp_path, [r + ",9" for r in GOOD_ROWS], header=HEADER + ",price")
    with pytest.raises(DataValidationError, match=r"duplicate column name\(s\).*'price' at positions \[0, 6\]"):
        load_table(path, schema)
    df = pd.read_csv(path)
    df.columns = [*df.columns[:-1], "price"]
    with pytest.raises(DataValidationError, match="duplicate column"):
        load_table(df, schema)


def test_parquet_matches_csv(tmp_path, schema):
    csv_df = load_table(write(tmp_path, GOOD_ROWS), schema)
    raw = pd.read_csv(tmp_path / "t.csv", dtype={"user_id": str})
    raw.to_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(load_table(tmp_path / "t.parquet", schema), csv_df)


def test_unsupported_suffix(tmp_path, schema):
    path = tmp_path / "t.xlsx"
    path.write_text("x")
    with pytest.raises(DataValidationError, match="unsupported file type"):
        load_table(path, schema)


def test_chunked_reading_counts_rows_from_file_start(tmp_path, schema):
    rows = [*GOOD_ROWS, *GOOD_ROWS, "oops,mobile,1,u1,0,"]
    path = write(tmp_path, rows)
    chunks = iter_table_chunks(path, schema, chunksize=3)
    first = next(chunks)
    assert len(first) == 3
    with pytest.raises(DataValidationError, match=r"'oops' \(row 8\)"):
        list(chunks)
    whole = pd.concat(list(iter_table_chunks(write(tmp_path, GOOD_ROWS * 2), schema, chunksize=3)), ignore_index=True)
    pd.testing.assert_frame_equal(whole, load_table(tmp_path / "t.csv", schema))


def test_rows_are_never_dropped(schema):
    n = 1000
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "price": rng.random(n),
            "device": rng.choice(["a", "b"], n),
            "hour": rng.integers(24, size=n),
            "user_id": [f"u{i}" for i in range(n)],
            "click": rng.integers(2, size=n),
            "satisfaction": np.where(rng.random(n) < 0.5, np.nan, 1.0),
        }
    )
    out = load_table(df, schema)
    assert len(out) == n
    np.testing.assert_allclose(out["price"], df["price"].astype(np.float32))
    assert out["user_id"].tolist() == df["user_id"].tolist()
