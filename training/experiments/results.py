"""Machine-readable experiment results: per-fit raw records and ``docs/results/<name>.json`` summaries.

Raw records (one JSON object per line in ``docs/results/raw/<name>.jsonl``) are appended as fits
finish, so a long experiment can be stopped and resumed, and several invocations (say, one per label
fraction) add up to one table. Each record holds the settings (e.g. ``label_fraction``,
``architecture``), ``seed``, ``task``, ``metric`` and ``value``.

:func:`summarize` turns records into the published rows: the settings, ``task``, ``metric``, ``mean``,
``ci95`` ``[low, high]`` (Student t over seeds), ``seeds``, and, when asked, a paired comparison
``gain_<name>`` = ``{"mean", "ci95", "seeds"}`` against a baseline setting on the same seeds (positive =
better: higher AUC, lower MSE/loss).

Example:
    >>> recs = [{"arch": a, "seed": s, "task": "t", "metric": "auc", "value": v}
    ...         for a, s, v in [("x", 0, 0.70), ("x", 1, 0.72), ("y", 0, 0.75), ("y", 1, 0.78)]]
    >>> rows = summarize(recs, ["arch"], compare=("arch", "x", "gain_vs_x"))
    >>> rows[1]["gain_vs_x"]["mean"]
    0.055
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from training.experiments.stats import mean_ci, paired_ci

RESULTS_DIR = Path(__file__).resolve().parents[2] / "docs" / "results"
LOWER_IS_BETTER = ("mse", "loss", "gap")
DIGITS = 6


def _results_dir(folder: str | os.PathLike | None) -> Path:
    return Path(folder) if folder is not None else RESULTS_DIR


class RawStore:
    """Append-only per-fit records of one experiment (``<folder>/raw/<name>.jsonl``).

    Args:
        name: Experiment name.
        folder: Results folder (default ``docs/results``).
    """

    def __init__(self, name: str, folder: str | os.PathLike | None = None) -> None:
        self.path = _results_dir(folder) / "raw" / f"{name}.jsonl"

    def records(self) -> list[dict[str, Any]]:
        """Every record so far (empty if none)."""
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def has(self, **key: Any) -> bool:
        """Whether some record matches every ``key`` item (e.g. the settings and seed of a fit)."""
        return any(all(r.get(k) == v for k, v in key.items()) for r in self.records())

    def add(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append ``records`` (one fit's worth at a time, so a stopped run loses at most one fit)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as out:
            for record in records:
                out.write(json.dumps(_plain(record), sort_keys=False) + "\n")


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to ``None``, floats rounded."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float):
        return round(value, DIGITS) if math.isfinite(value) else None
    return value


def higher_is_better(metric: str) -> bool:
    """``False`` for error-like metrics (mse, loss, gap), ``True`` otherwise (auc, similarity)."""
    return not metric.endswith(LOWER_IS_BETTER)


def summarize(
    records: Sequence[Mapping[str, Any]],
    settings: Sequence[str],
    *,
    compare: tuple[str, Any, str] | None = None,
    extras: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """One row per settings × task × metric: mean, 95 % interval and seed count over seeds.

    Args:
        records: Raw records with ``settings`` columns, ``seed``, ``task``, ``metric`` and ``value``.
        settings: Columns that define a cell (in output order).
        compare: ``(column, baseline value, key)``: add ``key`` = the paired difference against the row
            with ``column == baseline`` and the other settings equal, over the seeds both have.
        extras: Other per-record columns to report as their mean over seeds (e.g. ``train_labels``).

    Returns:
        Rows in first-appearance order of the settings.
    """
    df = pd.DataFrame.from_records(list(records))
    if df.empty:
        return []
    by = [*settings, "task", "metric"]
    # two processes may have finished the same fit: count each seed once per cell
    df = df.drop_duplicates([*by, "seed"], keep="first").reset_index(drop=True)
    rows = []
    for key, group in df.groupby(by, sort=False, dropna=False):
        group = group.sort_values("seed")
        mean, ci = mean_ci(group["value"].tolist())
        row: dict[str, Any] = dict(zip(by, key, strict=True))
        row.update({"mean": mean, "ci95": ci, "seeds": int(group["value"].notna().sum())})
        for extra in extras:
            if extra in group:
                row[extra] = float(group[extra].mean())
        if compare is not None:
            column, base_value, name = compare
            if row[column] != base_value:
                mask = pd.Series(True, index=df.index)
                for col, value in row.items():
                    if col in by:
                        mask &= df[col] == (base_value if col == column else value)
                base = df[mask].set_index("seed")["value"]
                mine = group.set_index("seed")["value"]
                seeds = sorted(set(base.index) & set(mine.index))
                if seeds:
                    sign = 1.0 if higher_is_better(str(row["metric"])) else -1.0
                    diff, diff_ci = paired_ci([sign * mine[s] for s in seeds], [sign * base[s] for s in seeds])
                    row[name] = {"mean": diff, "ci95": diff_ci, "seeds": len(seeds)}
        rows.append(row)
    return _plain(rows)


def write_results(name: str, rows: Sequence[Mapping[str, Any]], folder: str | os.PathLike | None = None) -> Path:
    """Write ``rows`` to ``<folder or docs/results>/<name>.json`` (a JSON list) and return the path."""
    path = _results_dir(folder) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_plain(list(rows)), indent=1) + "\n")
    return path


def read_results(name: str, folder: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The rows of ``<folder or docs/results>/<name>.json``.

    Raises:
        FileNotFoundError: no such results file (the experiment has not been run).
    """
    path = _results_dir(folder) / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no results for {name!r}; run python -m training.experiments {name}")
    return json.loads(path.read_text())


def format_interval(mean: float | None, ci: Sequence[float] | None, signed: bool = False, digits: int = 4) -> str:
    """``"0.7123 [0.7001, 0.7245]"`` (``signed``: ``"+0.0123 [-0.0010, +0.0256]"``); ``"n/a"`` without a mean."""
    if mean is None:
        return "n/a"
    spec = f"{'+' if signed else ''}.{digits}f"
    text = format(mean, spec)
    if ci is not None:
        text += f" [{format(ci[0], spec)}, {format(ci[1], spec)}]"
    return text


def format_value(value: Any, digits: int = 4) -> str:
    """A table cell: gain dicts as signed intervals, floats with ``digits`` decimals (short ones as is)."""
    if isinstance(value, Mapping) and "mean" in value:
        return format_interval(value["mean"], value.get("ci95"), signed=True, digits=digits)
    if isinstance(value, float):
        return f"{value:.{digits}f}" if value != round(value, 3) else f"{value:g}"
    return "" if value is None else str(value)


def rows_table(rows: Sequence[Mapping[str, Any]], hide: Sequence[str] = (), digits: int = 4) -> str:
    """A GitHub-markdown table of summary rows: ``mean``/``ci95`` as one "mean [low, high]" column.

    Args:
        rows: :func:`summarize` rows (or ``docs/results/<name>.json``).
        hide: Keys not to show (e.g. settings every row shares).
        digits: Decimals of the numbers.
    """
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns and k not in hide and k != "ci95"]
    header = ["mean [95 % CI]" if c == "mean" else c for c in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [
            format_interval(row.get("mean"), row.get("ci95"), digits=digits)
            if c == "mean"
            else format_value(row.get(c), digits)
            for c in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
