"""The embedded default data set: 4,000 simulated impressions committed under ``data/sample/``.

``impressions.csv`` and ``impressions.schema.yaml`` are generated deterministically by
:func:`data.generators.impressions.simulate_impressions` with :data:`SAMPLE_ARGS`;
``python -m data.sample`` regenerates them byte for byte. About 80 % of the rows have a blank
``satisfaction`` (not clicked, so not observed).

Example:
    >>> df, schema = load_default()
    >>> len(df), schema.task_names
    (4000, ('click', 'satisfaction'))
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from data.generators.impressions import simulate_impressions
from data.loading import load_table
from data.schema import Schema

SAMPLE_DIR = Path(__file__).resolve().parent
SAMPLE_CSV = "impressions.csv"
SAMPLE_SCHEMA = "impressions.schema.yaml"
SAMPLE_ARGS = {
    "n_rows": 4000,
    "click_rate": 0.2,
    "satisfaction_rate": 0.5,
    "relatedness": 0.5,
    "label_keep_fraction": 1.0,
    "seed": 2018,
    "n_users": 200,
    "n_items": 100,
    "click_strength": 2.0,
    "satisfaction_strength": 2.0,
}


def write_sample(out_dir: str | Path = SAMPLE_DIR) -> tuple[Path, Path]:
    """Generate the default sample and write ``impressions.csv`` + ``impressions.schema.yaml``.

    Args:
        out_dir: Target folder (default: this package's folder, i.e. regenerate the committed files).

    Returns:
        ``(csv_path, schema_path)``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df, schema = simulate_impressions(**SAMPLE_ARGS)
    df = df.astype({"click": "Int64", "satisfaction": "Int64"})  # "1" / "0" / "" (not observed)
    csv_path = out_dir / SAMPLE_CSV
    df.to_csv(csv_path, index=False, lineterminator="\n")
    return csv_path, schema.to_file(out_dir / SAMPLE_SCHEMA)


def load_default() -> tuple[pd.DataFrame, Schema]:
    """The committed sample, validated: ``(DataFrame, Schema)``."""
    schema = Schema.from_file(SAMPLE_DIR / SAMPLE_SCHEMA)
    return load_table(SAMPLE_DIR / SAMPLE_CSV, schema), schema


__all__ = ["SAMPLE_ARGS", "SAMPLE_DIR", "load_default", "write_sample"]
