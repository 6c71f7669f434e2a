"""Run folders and result files: a new folder per run, resuming an unfinished one, never overwriting a result.

Example:
    >>> new_run_dir("output/runs")  # doctest: +SKIP
    PosixPath('output/runs/20250101T120000Z')
"""

from __future__ import annotations

import datetime
import pathlib
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import yaml

from training.config import RunConfig

DEFAULT_RUNS_DIR = pathlib.Path("output") / "runs"


def new_run_dir(base: str | pathlib.Path = DEFAULT_RUNS_DIR) -> pathlib.Path:
    """``base/<UTC timestamp>`` (with a numeric suffix if that name is taken); not created."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate, n = pathlib.Path(base) / stamp, 1
    while candidate.exists():
        candidate, n = pathlib.Path(base) / f"{stamp}-{n}", n + 1
    return candidate


def prepare_run_dir(run_dir: pathlib.Path, run_config: RunConfig) -> bool:
    """Create the run folder or check it can be resumed.

    Returns:
        True when resuming an unfinished run.

    Raises:
        FileExistsError: the folder holds a finished run, something that is not a run, or a run
            with a different config.
    """
    resolved = run_config.to_dict()
    if run_dir.exists() and any(run_dir.iterdir()):
        saved = run_dir / "run_config.yaml"
        if (run_dir / "model.keras").exists():
            raise FileExistsError(f"output_dir {run_dir}: holds a finished run (model.keras); choose a new output dir")
        if not saved.is_file():
            raise FileExistsError(
                f"output_dir {run_dir}: exists, is not empty and is not a run folder (no run_config.yaml)"
            )
        previous = yaml.safe_load(saved.read_text())
        diff = _diff_keys(previous, resolved)
        if diff:
            raise FileExistsError(
                f"output_dir {run_dir}: holds an unfinished run with a different config (keys {diff}); "
                "rerun with the same config to resume, or choose a new output dir"
            )
        return True
    run_dir.mkdir(parents=True, exist_ok=True)
    return False


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _diff_keys(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def dedupe_history(path: pathlib.Path) -> None:
    """Keep the last row per epoch (a run killed between backup and log could repeat one)."""
    if path.is_file() and path.stat().st_size:
        hist = pd.read_csv(path)
        if "epoch" in hist:
            hist.drop_duplicates("epoch", keep="last").sort_values("epoch").to_csv(path, index=False)


def refuse_overwrite(paths: Iterable[str | pathlib.Path], flag: str, force: bool = False) -> None:
    """``FileExistsError`` naming the first of ``paths`` that exists, unless ``force`` (checked before any work).

    Args:
        paths: The files a command is about to write.
        flag: The option that chose them, for the message (``--output``, ``--output-dir``).
        force: The user's ``--force``: replace them.
    """
    if force:
        return
    taken = [str(p) for p in paths if pathlib.Path(p).exists()]
    if taken:
        raise FileExistsError(
            f"{flag}: {taken[0]} exists{f' (and {len(taken) - 1} more of its files)' if len(taken) > 1 else ''}; "
            "results are never overwritten: choose a new name, or pass --force to replace it"
        )
