"""Click → conversion samples: Ali-CCP (click → purchase) and AliExpress (click → conversion).

Both are read by path (never copied) from ``<repo>/../shared/data`` by default. Tasks are ``click``
and ``conversion``; a conversion can only happen after a click, so where ``click == 0`` the
conversion label is structurally unobserved and set to NaN (sample weight 0 for that task). A
conversion without a click raises :class:`DataValidationError`. ``esmm=True`` instead declares
``conversion`` as ``conditional_on="click"`` and keeps the 0 labels (ESMM trains p(click and
conversion) on all rows; the conditional head's labels are only used where click = 1).

Feature mapping: sparse (already label-encoded) fields → categorical int64 features; dense fields
→ numeric. Ali-CCP's numeric field names (``101``…) get an ``f_`` prefix as feature names
(``column`` keeps the original); AliExpress's ``search_id`` is an id column.

Example:
    >>> df, schema = load_ali_ccp("train")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from data.errors import DataValidationError, describe_rows
from data.real.paths import resolve
from data.schema import Schema
from data.table_files import read_header
from data.validation import validate_frame
from mmoe_tf.feature_specs import FeatureSpec
from mmoe_tf.task_specs import TaskSpec

ALI_CCP_FILES = {s: ("ali-ccp-sample", f"ali_ccp_{s}_sample.csv") for s in ("train", "val", "test")}
ALIEXPRESS_FILES = {
    ("torch-rechub", "train"): ("aliexpress-sample", "aliexpress_train_sample.csv"),
    ("torch-rechub", "test"): ("aliexpress-sample", "aliexpress_test_sample.csv"),
    ("fuxictr", "train"): ("aliexpress-sample", "fuxictr-tiny_mtl", "train.csv"),
    ("fuxictr", "test"): ("aliexpress-sample", "fuxictr-tiny_mtl", "test.csv"),
}


def _tasks(conversion_column: str, esmm: bool) -> tuple[TaskSpec, TaskSpec]:
    return TaskSpec("click"), TaskSpec(
        "conversion", label_column=conversion_column, conditional_on="click" if esmm else None
    )


def _load(path: Path, schema: Schema, conversion_column: str, esmm: bool) -> pd.DataFrame:
    dtype = {f.column: str for f in schema.features if f.dtype == "int64"}
    raw = pd.read_csv(path, dtype=dtype)
    for column in ("click", conversion_column):
        if column not in raw.columns:
            raise DataValidationError(f"{path}: missing label column {column!r}")
    click = pd.to_numeric(raw["click"], errors="coerce").to_numpy()
    conversion = pd.to_numeric(raw[conversion_column], errors="coerce").to_numpy()
    bad = np.flatnonzero((conversion == 1) & (click != 1))
    if len(bad):
        raise DataValidationError(
            f"{path}: label column {conversion_column!r} is 1 without a click in {describe_rows(bad, 0, True)}; "
            "a conversion must follow a click"
        )
    if not esmm:
        raw[conversion_column] = np.where(click == 1, conversion, np.nan)
    return validate_frame(raw, schema, source=str(path), csv_lines=True)


def ali_ccp_schema(path: str | Path, esmm: bool = False) -> Schema:
    """Schema from an Ali-CCP file's header: ``D…`` columns numeric, other fields categorical int64."""
    header = read_header(path)
    fields = [c for c in header if c not in ("click", "purchase")]
    features = tuple(
        FeatureSpec(f"f_{c}", "numeric", column=c)
        if c.startswith("D")
        else FeatureSpec(f"f_{c}", "categorical", dtype="int64", column=c, embedding_dim=4)
        for c in fields
    )
    return Schema(features=features, tasks=_tasks("purchase", esmm))


def load_ali_ccp(
    split: str = "train", path: str | Path | None = None, esmm: bool = False
) -> tuple[pd.DataFrame, Schema]:
    """The Ali-CCP sample (100 / 50 / 50 rows): tasks ``click`` and ``conversion`` (= ``purchase``).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        path: The CSV file itself (default ``<repo>/../shared/data/ali-ccp-sample/ali_ccp_<split>_sample.csv``).
        esmm: Declare ``conversion`` conditional on ``click`` and keep its 0 labels (see module docs).

    Returns:
        ``(df, schema)``; ``purchase`` is NaN where ``click == 0`` unless ``esmm``.
    """
    if split not in ALI_CCP_FILES:
        raise ValueError(f"split must be one of {sorted(ALI_CCP_FILES)}, got {split!r}")
    file_path = resolve(path, *ALI_CCP_FILES[split])
    schema = ali_ccp_schema(file_path, esmm)
    return _load(file_path, schema, "purchase", esmm), schema


def aliexpress_schema(esmm: bool = False) -> Schema:
    """``categorical_1..16`` categorical int64, ``numerical_1..63`` numeric, ``search_id`` id column."""
    features = tuple(
        FeatureSpec(f"categorical_{i}", "categorical", dtype="int64", embedding_dim=4) for i in range(1, 17)
    )
    features += tuple(FeatureSpec(f"numerical_{i}", "numeric") for i in range(1, 64))
    return Schema(features=features, tasks=_tasks("conversion", esmm), id_columns=("search_id",))


def load_aliexpress(
    split: str = "train", variant: str = "torch-rechub", path: str | Path | None = None, esmm: bool = False
) -> tuple[pd.DataFrame, Schema]:
    """An AliExpress sample: tasks ``click`` and ``conversion``.

    Args:
        split: ``"train"`` or ``"test"``.
        variant: ``"torch-rechub"`` (clicks over-represented, 50–60 %) or ``"fuxictr"`` (3–6 % clicks).
        path: The CSV file itself (default under ``<repo>/../shared/data/aliexpress-sample/``).
        esmm: Declare ``conversion`` conditional on ``click`` and keep its 0 labels.

    Returns:
        ``(df, schema)``; ``conversion`` is NaN where ``click == 0`` unless ``esmm``.
    """
    if (variant, split) not in ALIEXPRESS_FILES:
        raise ValueError(f"(variant, split) must be one of {sorted(ALIEXPRESS_FILES)}, got {(variant, split)!r}")
    file_path = resolve(path, *ALIEXPRESS_FILES[(variant, split)])
    schema = aliexpress_schema(esmm)
    return _load(file_path, schema, "conversion", esmm), schema
