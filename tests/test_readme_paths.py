"""README: how to import the packages from your own code, and every file its commands write is git-ignored."""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
import sys

import pytest


def _section(readme: str, title: str) -> str:
    start = readme.index(f"## {title}")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else None]


def _written_paths(readme: str) -> list[str]:
    """Every path README commands and code write: ``--output``/``--output-dir``/``--base-path`` values and
    ``save_model(…, "path")`` targets."""
    paths = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", readme, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line.split(" #")[0]) if line.strip() and not line.lstrip().startswith("#") else []
            for flag, value in itertools.pairwise(words):
                if flag in ("--output", "--output-dir", "--base-path", "--figures-dir", "--results-dir"):
                    paths.append(value)
    for block in re.findall(r"```python\n(.*?)```", readme, re.S):
        paths += re.findall(r"save_model\([^,]+,\s*[\"']([^\"']+)[\"']", block)
    return paths


def test_readme_commands_write_only_into_ignored_folders(repo_root):
    if not (repo_root / ".git").exists():
        pytest.skip("not a git checkout")
    readme = (repo_root / "README.md").read_text()
    paths = _written_paths(readme)
    assert "runs/my" in " ".join(paths) and "model.keras" in paths  # the parser sees the commands
    tracked_results = [p for p in paths if not p.startswith("docs/")]  # docs/results is the experiments' record
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin"],
        input="\n".join(p.rstrip("/") + "/x" if "." not in p.rsplit("/", 1)[-1] else p for p in tracked_results),
        cwd=repo_root,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert len(ignored) == len(tracked_results), sorted(set(tracked_results) - {i.rsplit("/x", 1)[0] for i in ignored})


def test_using_the_library_says_how_to_make_the_packages_importable(repo_root, tmp_path):
    section = _section((repo_root / "README.md").read_text(), "Using the library")
    assert "pip install -e ." in section and "PYTHONPATH" in section
    script = tmp_path / "mine.py"
    script.write_text(  # finds the packages without importing TensorFlow (fast)
        "import importlib.util\n"
        "print(all(importlib.util.find_spec(p) for p in ('mmoe_tf', 'data', 'training', 'serving')))\n"
    )
    env = {"PYTHONPATH": str(repo_root), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "True", proc.stderr[-2000:]
