"""The one column check every command runs before it reads a table's rows: which schema columns are absent.

A column the schema (or a served model's signature) needs that the table lacks is an error naming it, with the
table's closest column names (``missing column 'device' (feature 'device', optional: default 'unknown'); did you mean
'devcie'?``). The only way around it is the user's explicit opt-in ``allow_missing_features`` (run config
``data.allow_missing_features``; ``--allow-missing-features`` for ``evaluate`` / ``gates``): absent columns of
*optional* features (those with a schema ``default``) are then filled with their defaults, and one warning names
every defaulted column. A required feature, label, timestamp, id or extra column is never defaulted.

Example:
    >>> check_columns(["user_id", "devcie"], schema)  # doctest: +SKIP
    DataValidationError: table: missing column 'device' (feature 'device', optional: default 'unknown'); did you …
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Sequence
from typing import Any

from data.errors import DataValidationError

LOGGER = logging.getLogger("data")
SWITCH = "data.allow_missing_features=true (evaluate and gates: --allow-missing-features)"


def close_matches(name: str, available: Sequence[str]) -> list[str]:
    """Up to three names of ``available`` that look like ``name`` (a misspelling, another case)."""
    by_lower = {a.lower(): a for a in available}
    matches = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)
    return [by_lower[m] for m in matches]


def missing_phrase(column: str, role: str, available: Sequence[str], kind: str = "column") -> str:
    """``missing column 'x' (role); did you mean 'y'?`` (the hint only when a column looks alike)."""
    matches = close_matches(column, [a for a in available if a != column])
    hint = f"; did you mean {' or '.join(map(repr, matches))}?" if matches else ""
    return f"missing {kind} {column!r}{f' ({role})' if role else ''}{hint}"


def raise_missing(source: str, problems: Sequence[str], columns: Sequence[str], advice: str = "") -> None:
    """Raise the one :class:`DataValidationError` for absent columns (a no-op when ``problems`` is empty)."""
    if not problems:
        return
    text = "; ".join(problems)
    shown = f"{list(columns[:30])}{' …' if len(columns) > 30 else ''}"
    raise DataValidationError(f"{source}: {text}{'' if text.endswith('?') else '.'} Columns present: {shown}{advice}")


def check_columns(
    columns: Sequence[str],
    schema: Any,
    require_labels: bool = True,
    source: str = "table",
    allow_missing_features: bool = False,
    warn: bool = True,
) -> list[str]:
    """Check that ``columns`` hold every column ``schema`` needs; return the optional feature columns to default.

    Args:
        columns: The table's column names.
        schema: A :class:`data.Schema`.
        require_labels: Training data (``True``): labels, timestamp, id and extra columns are needed too;
            inference data (``False``): only the features.
        source: The table's name in messages (a path).
        allow_missing_features: Accept absent columns of optional features (filled with their defaults).
        warn: Log the warning naming the defaulted columns (off for the second check of a table's chunks).

    Returns:
        The absent optional feature columns that take their schema default (empty unless
        ``allow_missing_features``).

    Raises:
        DataValidationError: naming every absent column with its role and close matches.
    """
    columns = [str(c) for c in columns]
    available = set(columns)
    problems, optional, defaulted = [], [], []
    for f in schema.features:
        if f.column in available or f.column in defaulted:
            continue
        if f.required:
            problems.append(missing_phrase(f.column, f"feature {f.name!r}", columns))
        elif allow_missing_features:
            defaulted.append(f.column)
        else:
            optional.append(missing_phrase(f.column, f"feature {f.name!r}, optional: default {f.default!r}", columns))
    if require_labels:
        for t in schema.tasks:
            if t.label_column not in available:
                problems.append(missing_phrase(t.label_column, f"task {t.name!r}", columns, "label column"))
        roles = [(schema.timestamp_column, "timestamp")] if schema.timestamp_column else []
        roles += [(c, "id") for c in schema.id_columns] + [(c, "extra") for c in schema.extra_columns]
        problems += [missing_phrase(c, "", columns, f"{role} column") for c, role in roles if c not in available]
    advice = ""
    if optional and not problems:
        advice = f". To give every row the schema default of an absent optional feature instead, set {SWITCH}"
    raise_missing(source, problems + optional, columns, advice)
    if defaulted and warn:
        defaults = {f.column: f.default for f in schema.features if f.column in defaulted}
        named = ", ".join(f"{c!r} (default {d!r})" for c, d in defaults.items())
        LOGGER.warning(
            "%s: absent optional feature column(s) %s: every row takes the schema default (allow_missing_features)",
            source,
            named,
        )
    return defaulted


def check_inputs(columns: Sequence[str], inputs: Sequence[str], source: str = "table") -> None:
    """The same check for a served model: every signature input must be a column of the table.

    Raises:
        DataValidationError: naming every absent input with close matches.
    """
    columns = [str(c) for c in columns]
    available = set(columns)
    problems = [missing_phrase(name, f"model input {name!r}", columns) for name in inputs if name not in available]
    raise_missing(source, problems, columns)
