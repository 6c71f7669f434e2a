"""The error raised for bad input data, and helpers that phrase where the bad values are."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_EXAMPLES = 5


class DataValidationError(ValueError):
    """Input data does not match the schema; the message names the column, example rows and the expectation."""


def describe_rows(
    positions: Sequence[int] | np.ndarray, row_offset: int = 0, has_header_line: bool | None = None
) -> str:
    """``"rows 3, 17 (2 in total)"`` for 0-based data-row positions, plus file line numbers for CSV.

    Args:
        positions: 0-based positions of the bad rows within the frame being checked.
        row_offset: Position of the frame's first row in the whole table (chunked reads).
        has_header_line: When set, also give 1-based file line numbers (data row 0 is line 2).

    Returns:
        A short phrase naming at most ``MAX_EXAMPLES`` rows.
    """
    positions = np.asarray(positions, dtype=np.int64) + row_offset
    shown = positions[:MAX_EXAMPLES].tolist()
    text = f"row{'s' if len(positions) > 1 else ''} {', '.join(map(str, shown))}"
    if len(positions) > MAX_EXAMPLES:
        text += ", …"
    if has_header_line:
        lines = [p + 2 for p in shown]
        text += f" (file line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))})"
    return f"{text} [{len(positions)} row{'s' if len(positions) > 1 else ''} in total, data rows counted from 0]"


def describe_values(values: Sequence[object], positions: Sequence[int], row_offset: int = 0) -> str:
    """``"'abc' (row 3), 'x' (row 17)"`` for the first few offending values."""
    shown = [v.item() if isinstance(v, np.generic) else v for v in values[:MAX_EXAMPLES]]
    pairs = [f"{v!r} (row {int(p) + row_offset})" for v, p in zip(shown, positions[:MAX_EXAMPLES], strict=False)]
    return ", ".join(pairs) + (", …" if len(values) > MAX_EXAMPLES else "")
