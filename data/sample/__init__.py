"""The embedded default data set: 60,000 simulated impressions committed under ``data/sample/``.

``impressions.csv.gz`` (the whole table, gzip-compressed), ``impressions.csv`` (its first 4,000 rows as plain text,
handy for examples, warm-up requests and quick tests) and ``impressions.schema.yaml`` are generated
deterministically by :func:`data.generators.impressions.simulate_impressions` with :data:`SAMPLE_ARGS`;
``python -m data.sample`` regenerates all three byte for byte. About 80 % of the rows have a blank ``satisfaction``
(not clicked, so not observed) — so a random 10 % test split holds about 1,200 rows where satisfaction is observed,
enough for its AUC to mean something. Satisfaction leans on the item's quality, which the table shows as
``item_rating`` (the item's average past rating; clicks ignore it), and is only moderately related to click
(``relatedness`` 0.3), so the two tasks' gates lean towards different experts in the quick start.

Example:
    >>> df, schema = load_default()
    >>> len(df), schema.task_names
    (60000, ('click', 'satisfaction'))
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from data.generators.impressions import simulate_impressions
from data.loading import load_table
from data.schema import Schema

SAMPLE_DIR = Path(__file__).resolve().parent
DEFAULT_CSV = "impressions.csv.gz"  # the whole default table
SAMPLE_CSV = "impressions.csv"  # its first HEAD_ROWS rows, plain text
SAMPLE_SCHEMA = "impressions.schema.yaml"
HEAD_ROWS = 4000
SAMPLE_ARGS = {
    "n_rows": 60000,
    "click_rate": 0.2,
    "satisfaction_rate": 0.5,
    "relatedness": 0.3,
    "label_keep_fraction": 1.0,
    "seed": 2018,
    "n_users": 200,
    "n_items": 100,
    "click_strength": 2.0,
    "satisfaction_strength": 3.0,
    "item_rating": True,
    "quality_strength": 4.0,
}


def write_sample(out_dir: str | Path = SAMPLE_DIR) -> tuple[Path, Path, Path]:
    """Generate the default data and write ``impressions.csv.gz``, ``impressions.csv`` and the schema.

    Args:
        out_dir: Target folder (default: this package's folder, i.e. regenerate the committed files).

    Returns:
        ``(gz_path, head_csv_path, schema_path)``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df, schema = simulate_impressions(**SAMPLE_ARGS)
    df = df.astype({"click": "Int64", "satisfaction": "Int64"})  # "1" / "0" / "" (not observed)
    gz_path, csv_path = out_dir / DEFAULT_CSV, out_dir / SAMPLE_CSV
    # mtime 0 in the gzip header: the same bytes on every run
    df.to_csv(gz_path, index=False, lineterminator="\n", compression={"method": "gzip", "mtime": 0})
    df.head(HEAD_ROWS).to_csv(csv_path, index=False, lineterminator="\n")
    return gz_path, csv_path, schema.to_file(out_dir / SAMPLE_SCHEMA)


EXAMPLE_DIR = SAMPLE_DIR.parents[1] / "docs" / "examples"
EXAMPLE_ROWS = 2000
EXAMPLE_SCHEMA_TEXT = """\
features:
  - {name: user_id, kind: hashed, num_bins: 100000}             # string or int64 ids, hashed → embedding
  - {name: item_id, kind: hashed, num_bins: 50000}
  - {name: device, kind: categorical, embedding_dim: 4, default: unknown}   # vocabulary adapted from data, OOV bucket
  - {name: price, kind: numeric, default: 0.0}                  # normalised with statistics adapted from data
tasks:
  - {name: click, type: binary}
  - {name: satisfaction, type: binary, loss_weight: 2.0}        # label_column defaults to the name
timestamp_column: timestamp
"""


def write_example(out_dir: str | Path = EXAMPLE_DIR) -> tuple[Path, Path]:
    """Write the README's "Bring your own data" example: ``my.csv`` (2,000 simulated rows) and ``my.schema.yaml``.

    Args:
        out_dir: Target folder (default ``docs/examples``, i.e. regenerate the committed files byte for byte).

    Returns:
        ``(csv_path, schema_path)``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df, _ = simulate_impressions(**{**SAMPLE_ARGS, "n_rows": EXAMPLE_ROWS, "seed": 7})
    df = df.rename(columns={"item_price": "price"})
    df["user_id"] = df["user_id"].str.replace("u00", "u", regex=False)
    df["item_id"] = df["item_id"].str.replace("i00", "i", regex=False)
    df = df[["timestamp", "user_id", "item_id", "device", "price", "click", "satisfaction"]]
    df = df.astype({"click": "Int64", "satisfaction": "Int64"})
    csv_path, schema_path = out_dir / "my.csv", out_dir / "my.schema.yaml"
    df.to_csv(csv_path, index=False, lineterminator="\n")
    schema_path.write_text(EXAMPLE_SCHEMA_TEXT)
    return csv_path, schema_path


def load_default() -> tuple[pd.DataFrame, Schema]:
    """The committed default table (all 60,000 rows), validated: ``(DataFrame, Schema)``."""
    schema = Schema.from_file(SAMPLE_DIR / SAMPLE_SCHEMA)
    return load_table(SAMPLE_DIR / DEFAULT_CSV, schema), schema


__all__ = [
    "DEFAULT_CSV",
    "EXAMPLE_DIR",
    "SAMPLE_ARGS",
    "SAMPLE_CSV",
    "SAMPLE_DIR",
    "load_default",
    "write_example",
    "write_sample",
]
