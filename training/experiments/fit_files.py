"""One JSON file per fit: how the experiments that record rich per-fit results resume and run fits in parallel.

A fit is described by a job (a dict of its settings); its record goes to ``<folder>/<key>.json``, where the
file name joins the job's key fields (``stage<…>_seed<…>_…``). The file is written atomically, so a stopped run
leaves only whole records, a rerun skips the fits whose file exists, and ``jobs > 1`` runs fits in that many
spawned processes (each fit function must be a module-level function, so the processes can import it).

Example:
    >>> fit_path(Path("raw/x"), {"seed": 0, "variant": "none"}, ("variant", "seed")).name
    'variantnone_seed0.json'
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


def fit_path(folder: Path, job: Mapping[str, Any], key: Sequence[str]) -> Path:
    """``<folder>/<field><value>_….json`` for the ``key`` fields of ``job``."""
    return folder / ("_".join(f"{k}{job[k]}" for k in key) + ".json")


def write_record(path: Path, record: Mapping[str, Any]) -> None:
    """Write ``record`` as JSON to ``path`` atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)


def run_pending(
    todo: Sequence[Mapping[str, Any]], fit_one: Callable[[Any], Any], path_of: Callable[[Any], Path], jobs: int = 1
) -> int:
    """Run ``fit_one(job)`` for every job of ``todo`` whose ``path_of(job)`` does not exist, ``jobs`` at a time.

    Returns:
        How many fits ran.
    """
    pending = [job for job in todo if not path_of(job).is_file()]
    if jobs > 1 and len(pending) > 1:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(fit_one, pending))
    else:
        for job in pending:
            fit_one(job)
    return len(pending)


def read_records(folder: Path) -> list[dict[str, Any]]:
    """Every record in ``folder`` (``*.json``, sorted by name); empty when the folder does not exist."""
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
