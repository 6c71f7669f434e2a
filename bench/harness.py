"""What every maintained benchmark shares: alternated rounds, medians with their spread, CPU time, the machine, output.

A benchmark alternates its contenders over rounds (:func:`alternate`: the order reversed every other round, so no
contender always runs first or after the same one), summarises each figure as the median with the per-round values
(:func:`spread`), records the machine it ran on (:func:`machine`) and ends with :func:`emit`: one JSON object as the
last printed line, also written to ``--out`` when given (``docs/bench/<benchmark>.json`` is the copy the docs render).

DeepCTR and the profiler's trace converter are benchmark-only dependencies: :func:`bench_python` builds a virtual
environment outside the repository (the pinned requirements plus :data:`BENCH_PINS`) on first use.

Example:
    >>> rounds = alternate(["a", "b"], 3, lambda name, r: {"x": r})
    >>> spread([1.0, 3.0, 2.0])["median"]
    2.0
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
BENCH_PINS = ("deepctr==0.9.4", "tensorboard-plugin-profile==2.24.2")  # DeepCTR; xprof for per-op profiles


def add_common_args(parser: argparse.ArgumentParser, rounds: int) -> None:
    """``--rounds`` and ``--out``, the options every benchmark takes."""
    parser.add_argument("--rounds", type=int, default=rounds, help="alternated rounds; figures are their medians")
    parser.add_argument("--out", type=pathlib.Path, default=None, help="also write the JSON result to this file")


def alternate(names: Sequence[str], rounds: int, run: Callable[[str, int], Any]) -> dict[str, list[Any]]:
    """``run(name, round)`` for every name in every round, in reversed order every other round.

    Returns:
        ``{name: [result of round 0, result of round 1, ...]}``.
    """
    results: dict[str, list[Any]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else list(reversed(names)):
            results[name].append(run(name, r))
    return results


def spread(values: Sequence[float], digits: int = 1) -> dict[str, Any]:
    """The median of per-round ``values`` with their minimum, maximum and every round."""
    return {
        "median": round(float(statistics.median(values)), digits),
        "min": round(float(min(values)), digits),
        "max": round(float(max(values)), digits),
        "rounds": [round(float(v), digits) for v in values],
    }


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds (all threads) spent in ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def machine() -> dict[str, Any]:
    """Cores, load average, model name and library versions: the context a figure needs."""
    model = ""
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if "model name" in ln), "")
    facts: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
    }
    if "tensorflow" in sys.modules:
        facts["tensorflow"] = sys.modules["tensorflow"].__version__
    return facts


def run_facts(load_before: float, started: float, **extra: Any) -> dict[str, Any]:
    """The fields a serving benchmark's JSON ends with: ``extra``, cores, load average before/after, wall seconds."""
    return {
        **extra,
        "cpu_count": os.cpu_count(),
        "load_average_1m_before": load_before,
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def emit(result: dict[str, Any], out: pathlib.Path | None = None) -> dict[str, Any]:
    """Print ``result`` as the last line (one JSON object) and write it to ``out`` when given."""
    text = json.dumps(result)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
    print(text, flush=True)
    return result


def last_json(stdout: str) -> dict[str, Any]:
    """The JSON object a benchmark (or one of its worker processes) printed last."""
    return json.loads(stdout.strip().splitlines()[-1])


def reexec_in_bench_env() -> None:
    """Re-run this script with the same arguments in :func:`bench_python`'s environment unless already there."""
    if os.environ.get("MMOE_BENCH_ENV") == "1":
        return
    python = str(bench_python())
    os.environ["MMOE_BENCH_ENV"] = "1"
    os.execv(python, [python, *sys.argv])


def bench_python() -> pathlib.Path:
    """The benchmark environment's interpreter: this environment's packages plus :data:`BENCH_PINS` (built once).

    The environment sits outside the repository and sees this interpreter's site-packages through a ``.pth`` file,
    so only the pins (and what they need beyond the project's requirements) are installed; DeepCTR never enters
    ``requirements.txt``.
    """
    import site
    import sysconfig

    requirements = (REPO / "requirements.txt").read_bytes()
    key = hashlib.sha256(requirements + "".join(BENCH_PINS).encode() + sys.prefix.encode()).hexdigest()[:16]
    cache = pathlib.Path(os.environ.get("MMOE_VENV_CACHE", pathlib.Path.home() / ".cache/mmoe-tf"))
    venv = cache / f"bench-{key}"
    python = venv / "bin/python"
    if not (venv / ".complete").exists():
        print(f"[bench] building {venv} (this environment + {', '.join(BENCH_PINS)}); one-time", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        purelib = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        ours = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
        pathlib.Path(purelib, "mmoe_bench_base.pth").write_text("\n".join(dict.fromkeys(ours)) + "\n")
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *BENCH_PINS], check=True)
        (venv / ".complete").touch()
    return python
