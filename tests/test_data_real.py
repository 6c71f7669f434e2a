"""Real-data adapters read ../shared/data by path (skipped with a reason when it is absent)."""

import numpy as np
import pytest

from data import label_report
from data.real import load_ali_ccp, load_aliexpress, load_census
from data.real.census import AT_LEAST_COLLEGE, census_schema

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def census(shared_data):
    return load_census(group=1, files=("test", "train_prefix"), path=shared_data)


def test_census_group1_rows_and_rates_match_the_readme(census):
    df, schema = census
    assert schema.task_names == ("income_50k", "never_married")
    counts = df.groupby("source_file").size().to_dict()
    assert counts == {"test": 99_762, "train_prefix": 1_891}
    test = df[df["source_file"] == "test"]
    assert int(test["income_50k"].sum()) == 6_186 and int(test["never_married"].sum()) == 43_143
    prefix = df[df["source_file"] == "train_prefix"]
    assert int(prefix["income_50k"].sum()) == 102 and int(prefix["never_married"].sum()) == 824


def test_census_features_exclude_labels_and_instance_weight(census):
    df, schema = census
    columns = set(schema.feature_columns)
    assert not columns & {"income", "marital_stat", "instance_weight"}
    assert "education" in columns and len(columns) == 39
    assert schema.feature("age").kind == "numeric" and schema.feature("year").kind == "categorical"
    assert df["year"].isin(["94", "95"]).all()  # coded columns stay strings, never floats
    assert df["age"].dtype == np.float32


def test_census_group2_education_mapping(shared_data):
    df, schema = load_census(group=2, files=("train_prefix",), path=shared_data)
    assert schema.task_names == ("college", "never_married")
    assert "education" not in schema.feature_columns
    report = label_report(df, schema)
    assert report["college"]["rows"] == 1_891 and 0.1 < report["college"]["positive_rate"] < 0.5
    with pytest.raises(ValueError, match="group must be 1"):
        census_schema(3)
    assert "Some college but no degree" in AT_LEAST_COLLEGE and "High school graduate" not in AT_LEAST_COLLEGE


@pytest.mark.parametrize("split,rows,clicks", [("train", 100, 7), ("val", 50, 3), ("test", 50, 2)])
def test_ali_ccp_conversion_only_observed_after_click(shared_data, split, rows, clicks):
    df, schema = load_ali_ccp(split, path=shared_data / "ali-ccp-sample" / f"ali_ccp_{split}_sample.csv")
    assert len(df) == rows and schema.task_names == ("click", "conversion")
    assert df.loc[df["click"] == 0, "purchase"].isna().all()
    assert df["purchase"].notna().sum() == clicks == int(df["click"].sum())
    assert schema.feature("f_101").dtype == "int64" and schema.feature("f_D508").kind == "numeric"


@pytest.mark.parametrize("variant,split,rows,clicks", [("torch-rechub", "train", 100, 60), ("fuxictr", "test", 100, 6)])
def test_aliexpress(shared_data, variant, split, rows, clicks):
    df, schema = load_aliexpress(split, variant)
    assert len(df) == rows and int(df["click"].sum()) == clicks
    assert df.loc[df["click"] == 0, "conversion"].isna().all()
    assert len(schema.features) == 79 and schema.id_columns == ("search_id",)
    esmm_df, esmm_schema = load_aliexpress(split, variant, esmm=True)
    assert esmm_schema.task("conversion").conditional_on == "click"
    assert esmm_df["conversion"].notna().all()


def test_conversion_without_click_is_rejected(shared_data, tmp_path):
    source = shared_data / "ali-ccp-sample" / "ali_ccp_train_sample.csv"
    lines = source.read_text().splitlines()
    lines[3] = "0,1" + lines[3][3:]  # data row 2: purchase without click
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"'purchase' is 1 without a click in row 2 \(file line 4\)"):
        load_ali_ccp(path=bad)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.csv: data file not found"):
        load_ali_ccp(path=tmp_path / "nowhere.csv")
