"""What every maintained benchmark shares: alternated rounds, medians with their spread, CPU time, the machine, output.

Each benchmark prints one JSON object as its last line and writes it to ``--out`` (``docs/bench/NAME.json`` is what
``render_docs.py`` renders). DeepCTR and the profiler's trace converter live in :func:`bench_python`'s environment.

Example:
    >>> alternate(["a", "b"], 2, lambda name, r: r)
    {'a': [0, 1], 'b': [0, 1]}
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
sys.path.insert(0, str(REPO))  # importing the harness first makes the repository's packages importable
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow is imported
BENCH_PINS = ("deepctr==0.9.4", "tensorboard-plugin-profile==2.24.2")  # DeepCTR; xprof for per-op profiles


def parser(doc: str, rounds: int | None = None) -> argparse.ArgumentParser:
    """A benchmark's parser, described by the first line of its ``doc``, with ``--out`` and, given a default number
    of ``rounds``, ``--rounds``."""
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    if rounds is not None:
        p.add_argument("--rounds", type=int, default=rounds, help="alternated rounds; figures are their medians")
    p.add_argument("--out", type=pathlib.Path, default=None, help="also write the JSON result to this file")
    return p


def alternate(names: Sequence[str], rounds: int, run: Callable[[str, int], Any]) -> dict[str, list[Any]]:
    """``{name: [run(name, 0), run(name, 1), ...]}``, the names run in reversed order every other round."""
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
    cpuinfo = pathlib.Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    model = next((ln.split(":", 1)[1].strip() for ln in lines if "model name" in ln), "")
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
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result), flush=True)
    return result


def reexec_in_bench_env() -> None:
    """Re-run this script with the same arguments in :func:`bench_python`'s environment unless already there."""
    if os.environ.get("MMOE_BENCH_ENV") == "1":
        return
    python = str(bench_python())
    os.environ["MMOE_BENCH_ENV"] = "1"
    os.execv(python, [python, *sys.argv])


def bench_python() -> pathlib.Path:
    """The interpreter of an environment outside the repository: this one's packages (through a ``.pth`` file) plus
    :data:`BENCH_PINS`, built once, so DeepCTR never enters ``requirements.txt``."""
    import site

    requirements = (REPO / "requirements.txt").read_bytes()
    key = hashlib.sha256(requirements + "".join(BENCH_PINS).encode() + sys.prefix.encode()).hexdigest()[:16]
    cache = pathlib.Path(os.environ.get("MMOE_VENV_CACHE", pathlib.Path.home() / ".cache/mmoe-tf"))
    venv = cache / f"bench-{key}"
    python = venv / "bin/python"
    if not (venv / ".complete").exists():
        print(f"[bench] building {venv} (this environment + {', '.join(BENCH_PINS)}); one-time", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        purelib = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
        (purelib / "mmoe_bench_base.pth").write_text("\n".join(dict.fromkeys(site.getsitepackages())) + "\n")
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *BENCH_PINS], check=True)
        (venv / ".complete").touch()
    return python
