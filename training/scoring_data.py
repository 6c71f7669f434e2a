"""Which table and split ``evaluate`` and ``gates`` score: by default the run's own data and its test split.

A model saved by ``python -m training train`` sits in a run folder next to ``run_config.yaml`` (how the data was
read and split) and ``schema.yaml`` (the columns it was trained on). Without ``--data`` the scored table is that
run's table, split exactly as in training, and the ``test`` split is scored; ``--data`` scores another table
(all of it unless ``--split`` asks for one of its splits, cut with the run's split settings).

A table that lacks the column of a feature the model was trained on is an error naming the column — even when the
schema gives that feature a ``default`` (every row would silently take it); ``allow_missing_features=True`` accepts
the defaults explicitly.

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


def _columns_of(source: str) -> list[str]:
    from data.loading import read_header

    if source == "default":
        from data.sample import DEFAULT_CSV, SAMPLE_DIR

        return read_header(SAMPLE_DIR / DEFAULT_CSV)
    return read_header(source)


def check_model_features(
    config: ModelConfig, schema: Any, columns: list[str], source: str, allow_missing_features: bool = False
) -> None:
    """Refuse a schema or table that lacks a feature the model was trained on.

    Args:
        config: The model's config (its features).
        schema: The schema the table is read with.
        columns: The table's column names.
        source: The table's name for messages.
        allow_missing_features: Accept absent columns of features that have a ``default`` (each row takes it).

    Raises:
        RunConfigError: naming the feature and column.
    """
    absent = [f.name for f in config.features if f.name not in schema.feature_names]
    if absent:
        raise RunConfigError(
            f"--schema: lacks feature(s) {absent} that the model was trained on; the model takes "
            f"{list(config.feature_names)}"
        )
    missing = [schema.feature(f.name) for f in config.features if schema.feature(f.name).column not in columns]
    if not missing:
        return
    if allow_missing_features and all(not f.required for f in missing):
        return
    parts = []
    for f in missing:
        if f.required:
            parts.append(f"column {f.column!r} (feature {f.name!r}, required)")
        else:
            parts.append(f"column {f.column!r} (feature {f.name!r}, optional: default {f.default!r})")
    hint = (
        "; pass --allow-missing-features to score with the optional features' defaults"
        if all(not f.required for f in missing)
        else ""
    )
    raise RunConfigError(
        f"{source}: missing {'; '.join(parts)} — the model was trained on these features{hint}. "
        f"Columns present: {columns[:30]}"
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
        allow_missing_features: See :func:`check_model_features`.

    Returns:
        A :class:`ScoringTable`.

    Raises:
        RunConfigError: no run folder and no ``data``, an unknown split, or a missing feature.
    """
    from training.runner import load_data, read_table, split_data

    if split is not None and split not in SPLITS:
        raise RunConfigError(f"--split: expected one of {SPLITS}, got {split!r}")
    run_dir = pathlib.Path(model_path).parent
    run_config_path, run_schema = run_dir / "run_config.yaml", run_dir / "schema.yaml"
    run_config = load_run_config(run_config_path) if run_config_path.is_file() else None
    if schema_path is None and run_schema.is_file():
        schema_path = run_schema
    if data is None:
        if run_config is None:
            raise RunConfigError(
                f"--data: required: {run_dir} holds no run_config.yaml (not a run folder), so the model's own data "
                "is unknown; pass --data TABLE --schema SCHEMA (or --data default for the embedded sample)"
            )
        cfg = run_config.data
        data_cfg = dataclasses.replace(cfg, schema=str(schema_path) if schema_path else cfg.schema)
        if nan_policy is not None:
            data_cfg = dataclasses.replace(data_cfg, nan_policy=nan_policy)
        run_config = dataclasses.replace(run_config, data=data_cfg)
        source, split = cfg.path, split or "test"
        schema = _schema(schema_path)
        check_model_features(config, schema, _columns_of(source), source, allow_missing_features)
        df, schema = load_data(run_config)
    else:
        if data != "default" and schema_path is None:
            raise RunConfigError("--schema: required (no schema.yaml next to the model and --data is not 'default')")
        if data != "default" and not pathlib.Path(data).exists():
            raise FileNotFoundError(f"--data: no such file: {data}")
        source, split = data, split or "all"
        schema = _schema(schema_path)
        check_model_features(config, schema, _columns_of(source), source, allow_missing_features)
        policy = nan_policy or (run_config.data.nan_policy if run_config else "error")
        df, schema = read_table(data, schema_path, policy)
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
