"""One column check for every way a table is read: a schema column absent from the table is an error naming it
with a did-you-mean, unless ``data.allow_missing_features`` opts into the defaults, which then warns naming every
defaulted column. ``train``, ``compare``, the library loaders and the experiments' feature arrays all say the same.
(``evaluate``, ``gates`` and ``serving predict`` are checked in ``test_cli_paths.py``, on a trained run.)
"""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from data import DataValidationError, Schema, feature_arrays, load_table
from data.loading import iter_table_chunks
from training.cli import main
from training.config import load_run_config
from training.runner import load_data

TYPO = "missing column 'device' (feature 'device', optional: default 'unknown'); did you mean 'devcie'?"


@pytest.fixture(scope="module")
def typo_table(tmp_path_factory, repo_root):
    """The README's example table with ``device`` misspelt ``devcie`` (the issue's case), and its schema."""
    folder = tmp_path_factory.mktemp("typo")
    df = pd.read_csv(repo_root / "docs/examples/my.csv").head(300).rename(columns={"device": "devcie"})
    df.to_csv(folder / "typo.csv", index=False)
    return folder / "typo.csv", repo_root / "docs/examples/my.schema.yaml"


def test_a_misspelt_optional_column_is_an_error_with_a_did_you_mean(typo_table):
    path, schema_path = typo_table
    schema = Schema.from_file(schema_path)
    with pytest.raises(DataValidationError) as err:
        load_table(path, schema)
    assert TYPO in str(err.value) and "data.allow_missing_features" in str(err.value)
    frame = pd.read_csv(path)
    for read in (
        lambda: load_table(frame, schema),
        lambda: next(iter_table_chunks(path, schema, chunksize=50)),
        lambda: feature_arrays(frame.drop(columns=["click", "satisfaction"]), schema),  # the experiments' path
    ):
        with pytest.raises(DataValidationError, match="did you mean 'devcie'"):
            read()


def test_opting_in_fills_defaults_and_warns_naming_every_defaulted_column(typo_table, caplog):
    path, schema_path = typo_table
    schema = Schema.from_file(schema_path)
    frame = pd.read_csv(path).drop(columns=["price"])
    with caplog.at_level(logging.WARNING):
        df = load_table(frame, schema, allow_missing_features=True)
    assert df["device"].unique().tolist() == ["unknown"] and df["price"].unique().tolist() == [0.0]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1, warned
    assert "'device'" in warned[0] and "'price'" in warned[0] and "default" in warned[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # chunked reads warn once, not once per chunk
        chunks = list(iter_table_chunks(path, schema, chunksize=100, allow_missing_features=True))
    assert len(chunks) == 3 and len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_a_required_column_stays_an_error_even_when_opting_in(typo_table):
    path, schema_path = typo_table
    frame = pd.read_csv(path).rename(columns={"user_id": "userid"})
    with pytest.raises(DataValidationError, match=r"column 'user_id' .*did you mean 'userid'"):
        load_table(frame, Schema.from_file(schema_path), allow_missing_features=True)


def test_train_refuses_the_misspelt_column_before_writing_anything(typo_table, tmp_path, capsys):
    path, schema_path = typo_table
    out = tmp_path / "run"
    args = ["train", "--output-dir", str(out), "--set", f"data.path={path}", "--set", f"data.schema={schema_path}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert TYPO in err and "Traceback" not in err
    assert not out.exists()


def test_the_config_switch_opts_train_into_the_defaults(typo_table, caplog):
    path, schema_path = typo_table
    sets = [f"data.path={path}", f"data.schema={schema_path}", "data.allow_missing_features=true"]
    with caplog.at_level(logging.WARNING):
        df, _ = load_data(load_run_config(None, sets))
    assert (df["device"] == "unknown").all()
    assert any("'device'" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_compare_refuses_the_misspelt_column_before_training(typo_table, tmp_path, capsys):
    path, schema_path = typo_table
    out = tmp_path / "cmp"
    args = ["compare", "--output-dir", str(out), "--no-progress", "--seeds", "2"]
    args += ["--set", f"data.path={path}", "--set", f"data.schema={schema_path}"]
    assert main(args) == 2
    assert TYPO in capsys.readouterr().err
    assert not out.exists()
