"""Which table and split ``evaluate`` and ``gates`` score: by default the run's own data and its test split.

A model saved by ``python -m training train`` sits in a run folder next to ``run_config.yaml`` (how the data was
read and split) and ``schema.yaml`` (the columns it was trained on). Without ``--data`` the scored table is that
run's table, split exactly as in training, and the ``test`` split is scored; ``--data`` scores another table
(all of it unless ``--split`` asks for one of its splits, cut with the run's split settings).

The table is read through the same column check as training (``data.columns``): a column it lacks is an error naming
it with a did-you-mean — even when the schema gives that feature a ``default`` (every row would silently take it);
``allow_missing_features=True`` (``--allow-missing-features``, or the run's ``data.allow_missing_features``) accepts
the defaults explicitly, with a warning naming each defaulted column.

Example:
    >>> table = scoring_table("output/latest/model.keras", config)  # doctest: +SKIP
    >>> table.describe()  # doctest: +SKIP
    'embedded sample (data/sample/impressions.csv.gz), split test: 6000 rows'
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import pandas as pd

from mmoe_tf.config import ModelConfig
from training.config import RunConfig, RunConfigError, load_run_config

SPLITS = ("train", "validation", "test", "all")


@dataclasses.dataclass(frozen=True)
class ScoringTable:
    """The rows to score.

    Attributes:
        df: The validated rows of the chosen split.
        schema: Their ``data.Schema``.
        source: The table (a path, or ``default`` for the embedded sample).
        split: ``train``, ``validation``, ``test`` or ``all``.
    """

    df: pd.DataFrame
    schema: Any
    source: str
    split: str

    def describe(self) -> str:
        """One line: which table, which split, how many rows."""
        name = "embedded sample (data/sample/impressions.csv.gz)" if self.source == "default" else self.source
        return f"{name}, split {self.split}: {len(self.df)} rows"


def check_model_features(config: ModelConfig, schema: Any) -> None:
    """Refuse a schema that lacks a feature the model was trained on (its columns are checked on reading).

    Raises:
        RunConfigError: naming the features.
    """
    absent = [f.name for f in config.features if f.name not in schema.feature_names]
    if absent:
        raise RunConfigError(
            f"--schema: lacks feature(s) {absent} that the model was trained on; the model takes "
            f"{list(config.feature_names)}"
        )


def scoring_table(
    model_path: str | pathlib.Path,
    config: ModelConfig,
    data: str | None = None,
    schema_path: str | pathlib.Path | None = None,
    split: str | None = None,
    nan_policy: str | None = None,
    allow_missing_features: bool = False,
) -> ScoringTable:
    """Load the rows ``evaluate``/``gates`` score (see the module docstring).

    Args:
        model_path: The saved model; its folder is searched for ``run_config.yaml`` and ``schema.yaml``.
        config: The model's ModelConfig.
        data: A CSV/Parquet table or ``default``; ``None`` = the run's own table.
        schema_path: Schema of ``data``; default the run folder's ``schema.yaml``.
        split: One of :data:`SPLITS`; default ``test`` for the run's table, ``all`` for ``data``.
        nan_policy: ``error`` or ``fill``; default the run's ``data.nan_policy`` (else ``error``).
        allow_missing_features: Give absent optional feature columns their defaults (with a warning); also on
            when the run was trained with ``data.allow_missing_features``.

    Returns:
        A :class:`ScoringTable`.

    Raises:
        RunConfigError: no run folder and no ``data``, an unknown split, or a schema without a model feature.
        data.DataValidationError: a missing column (with a did-you-mean) or bad values.
    """
    from training.runner import load_data, read_table, split_data

    if split is not None and split not in SPLITS:
        raise RunConfigError(f"--split: expected one of {SPLITS}, got {split!r}")
    run_dir = pathlib.Path(model_path).parent
    run_config_path, run_schema = run_dir / "run_config.yaml", run_dir / "schema.yaml"
    run_config = load_run_config(run_config_path) if run_config_path.is_file() else None
    if schema_path is None and run_schema.is_file():
        schema_path = run_schema
    allow = allow_missing_features or bool(run_config and run_config.data.allow_missing_features)
    if data is None:
        if run_config is None:
            raise RunConfigError(
                f"--data: required: {run_dir} holds no run_config.yaml (not a run folder), so the model's own data "
                "is unknown; pass --data TABLE --schema SCHEMA (or --data default for the embedded sample)"
            )
        cfg = run_config.data
        data_cfg = dataclasses.replace(
            cfg, schema=str(schema_path) if schema_path else cfg.schema, allow_missing_features=allow
        )
        if nan_policy is not None:
            data_cfg = dataclasses.replace(data_cfg, nan_policy=nan_policy)
        run_config = dataclasses.replace(run_config, data=data_cfg)
        source, split = cfg.path, split or "test"
        check_model_features(config, _schema(schema_path))
        df, schema = load_data(run_config)
    else:
        if data != "default" and schema_path is None:
            raise RunConfigError("--schema: required (no schema.yaml next to the model and --data is not 'default')")
        if data != "default" and not pathlib.Path(data).exists():
            raise FileNotFoundError(f"--data: no such file: {data}")
        source, split = data, split or "all"
        check_model_features(config, _schema(schema_path))
        policy = nan_policy or (run_config.data.nan_policy if run_config else "error")
        df, schema = read_table(data, schema_path, policy, allow)
    if split != "all":
        df = split_data(df, schema, run_config or RunConfig())[split]
    return ScoringTable(df.reset_index(drop=True), schema, str(source), split)


def _schema(schema_path: str | pathlib.Path | None) -> Any:
    """The schema at ``schema_path``, else the embedded sample's."""
    from data import Schema

    if schema_path is not None:
        return Schema.from_file(schema_path)
    from data.sample import SAMPLE_DIR, SAMPLE_SCHEMA

    return Schema.from_file(SAMPLE_DIR / SAMPLE_SCHEMA)
