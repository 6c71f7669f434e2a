"""UCI Census-Income (KDD) as set up in the MMoE paper (Ma et al., KDD 2018, §5.2).

Files (read by path, never copied): ``census-income/census-income.test.gz`` (99,762 rows) and
``census-income/train-prefix-1891/census-income.data`` (the first 1,891 rows of the training file).
Both are header-less, ", "-separated, 42 columns (:data:`COLUMNS`).

Task groups (binary labels, exact mapping):

- group 1: ``income_50k`` = 1 iff ``income == "50000+."``; ``never_married`` = 1 iff
  ``marital_stat == "Never married"``.
- group 2: ``college`` = 1 iff ``education`` is one of :data:`AT_LEAST_COLLEGE` (any college:
  "Some college but no degree", both Associates degrees, Bachelors, Masters, Prof school,
  Doctorate), else 0 (including "Children"); ``never_married`` as above.

The label source columns (``income``, ``marital_stat``, ``education`` in group 2) are removed from
the features; ``instance_weight`` (a survey weight) is dropped. The other columns are features:
the 7 continuous ones (:data:`CONTINUOUS`) numeric, all others (including coded ones like
``detailed_industry_recode`` and ``year``) categorical strings.

Example:
    >>> df, schema = load_census(group=1)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from data.real.paths import resolve
from data.schema import Schema
from data.validation import validate_frame
from mmoe_tf.feature_specs import FeatureSpec
from mmoe_tf.task_specs import TaskSpec

COLUMNS = (
    "age", "class_of_worker", "detailed_industry_recode", "detailed_occupation_recode", "education",
    "wage_per_hour", "enroll_in_edu_inst_last_wk", "marital_stat", "major_industry_code",
    "major_occupation_code", "race", "hispanic_origin", "sex", "member_of_a_labor_union",
    "reason_for_unemployment", "full_or_part_time_employment_stat", "capital_gains", "capital_losses",
    "dividends_from_stocks", "tax_filer_stat", "region_of_previous_residence",
    "state_of_previous_residence", "detailed_household_and_family_stat",
    "detailed_household_summary_in_household", "instance_weight", "migration_code_change_in_msa",
    "migration_code_change_in_reg", "migration_code_move_within_reg", "live_in_this_house_1_year_ago",
    "migration_prev_res_in_sunbelt", "num_persons_worked_for_employer", "family_members_under_18",
    "country_of_birth_father", "country_of_birth_mother", "country_of_birth_self", "citizenship",
    "own_business_or_self_employed", "fill_inc_questionnaire_for_veterans_admin", "veterans_benefits",
    "weeks_worked_in_year", "year", "income",
)  # fmt: skip
CONTINUOUS = (
    "age", "wage_per_hour", "capital_gains", "capital_losses", "dividends_from_stocks",
    "num_persons_worked_for_employer", "weeks_worked_in_year",
)  # fmt: skip
AT_LEAST_COLLEGE = (
    "Some college but no degree",
    "Associates degree-occup /vocational",
    "Associates degree-academic program",
    "Bachelors degree(BA AB BS)",
    "Masters degree(MA MS MEng MEd MSW MBA)",
    "Prof school degree (MD DDS DVM LLB JD)",
    "Doctorate degree(PhD EdD)",
)
FILES = {
    "test": ("census-income", "census-income.test.gz"),
    "train_prefix": ("census-income", "train-prefix-1891", "census-income.data"),
}
DROPPED = ("instance_weight",)


def census_schema(group: int = 1) -> Schema:
    """Schema of :func:`load_census` for task group 1 or 2."""
    if group not in (1, 2):
        raise ValueError(f"group must be 1 (income, never_married) or 2 (college, never_married), got {group!r}")
    labels = {"income", "marital_stat"} | ({"education"} if group == 2 else set())
    features = tuple(
        FeatureSpec(c, "numeric") if c in CONTINUOUS else FeatureSpec(c, "categorical", dtype="string", embedding_dim=4)
        for c in COLUMNS
        if c not in labels and c not in DROPPED
    )
    first = TaskSpec("income_50k") if group == 1 else TaskSpec("college")
    return Schema(features=features, tasks=(first, TaskSpec("never_married")))


def read_census_raw(path: str | Path) -> pd.DataFrame:
    """One census file as strings (continuous columns as numbers), columns named per :data:`COLUMNS`."""
    return pd.read_csv(
        path,
        header=None,
        names=list(COLUMNS),
        sep=",",
        skipinitialspace=True,
        dtype={c: (np.float64 if c in CONTINUOUS else str) for c in COLUMNS},
        keep_default_na=False,
    )


def load_census(
    group: int = 1, files: tuple[str, ...] = ("test",), path: str | Path | None = None
) -> tuple[pd.DataFrame, Schema]:
    """Load Census-Income (KDD) with the MMoE paper's task group 1 or 2.

    Args:
        group: 1 → tasks ``income_50k`` and ``never_married``; 2 → ``college`` and ``never_married``.
        files: Which files to read, concatenated in order: ``"test"`` (99,762 rows) and/or
            ``"train_prefix"`` (1,891 rows). A ``source_file`` id column records each row's file.
        path: Folder holding ``census-income/`` (default ``<repo>/../shared/data``).

    Returns:
        ``(df, schema)``: validated table (features, the two labels, ``source_file``).
    """
    schema = census_schema(group)
    unknown = [f for f in files if f not in FILES]
    if unknown or not files:
        raise ValueError(f"files must name some of {sorted(FILES)}, got {files!r}")
    frames = []
    for name in files:
        parts = FILES[name]
        file_path = resolve(None if path is None else Path(path).joinpath(*parts), *parts)
        raw = read_census_raw(file_path)
        raw["source_file"] = name
        frames.append(raw)
    raw = pd.concat(frames, ignore_index=True)
    raw["income_50k"] = (raw["income"] == "50000+.").astype(np.float32)
    raw["never_married"] = (raw["marital_stat"] == "Never married").astype(np.float32)
    raw["college"] = raw["education"].isin(AT_LEAST_COLLEGE).astype(np.float32)
    schema = schema.replace(id_columns=("source_file",))
    return validate_frame(raw, schema, source=f"census-income ({', '.join(files)})"), schema
