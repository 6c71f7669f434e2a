"""Packaging: declared dependencies (deptry, pins against requirements.txt) and the installed layout (setup.py).

The wheel itself is built, installed into a fresh environment and run by ``scripts/check_install.sh`` (CI's
``.ci/run``); these tests check, without building, what that relies on.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata
import itertools
import runpy
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
SOURCE_FOLDERS = ("mmoe_tf", "data", "training", "serving")
APP_FOLDERS = ("data", "training", "serving")


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def layout() -> dict:
    """setup.py's globals (its ``setup()`` call runs only as ``__main__``)."""
    return runpy.run_path(str(REPO / "setup.py"), run_name="mmoe_tf_setup")


def _deptry(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "deptry", "--no-ansi", *args, *SOURCE_FOLDERS]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_deptry_finds_every_import_declared_and_every_declaration_used() -> None:
    result = _deptry()
    assert result.returncode == 0, result.stdout + result.stderr


def test_deptry_reports_an_import_missing_from_the_declarations(pyproject: dict, tmp_path: Path) -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert '  "scipy==1.17.1",\n' in text
    config = tmp_path / "pyproject.toml"
    config.write_text(text.replace('  "scipy==1.17.1",\n', ""))
    result = _deptry("--config", str(config))
    output = result.stdout + result.stderr  # deptry reports on stderr
    assert result.returncode != 0
    assert "'scipy' imported but it is a transitive dependency" in output, output


def _requirements_txt() -> dict[str, Requirement]:
    lines = (REPO / "requirements.txt").read_text().splitlines()
    reqs = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    return {req.name.lower(): req for req in reqs}


def test_declared_dependencies_are_pinned_as_in_requirements_txt(pyproject: dict) -> None:
    pinned = _requirements_txt()
    project = pyproject["project"]
    declared = [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["dev"]]]
    names = [req.name.lower() for req in declared]
    assert len(names) == len(set(names)), "a dependency is declared twice"
    for req in declared:
        name = req.name.lower()
        if name in pinned:
            assert req.specifier == pinned[name].specifier, f"{req} != requirements.txt's {pinned[name]}"
        else:  # imported directly, its version set by a pinned package: unversioned, and installed with them
            assert not req.specifier, f"{req}: not in requirements.txt, so its version must come from the pins"
            importlib.metadata.version(req.name)
    assert sorted(pinned) == sorted(n for n in names if n in pinned), "requirements.txt pins an undeclared package"


def test_rewrite_imports_moves_only_app_imports_under_the_namespace(layout: dict) -> None:
    rewrite = layout["rewrite_imports"]
    source = (
        '"""from data.schema import Schema stays in a docstring."""\n'
        "import os\n"
        "import data\n"
        "import serving.client as client\n"
        "from data.schema import Schema  # from data import x stays in a comment\n"
        "from training.config import (\n"
        "    RunConfig,\n"
        ")\n"
        "from mmoe_tf import build_model\n"
        "from dataclasses import dataclass; from serving import cli\n"
        "from . import sibling\n"
        "if True:\n"
        "    from training import runner\n"
        'NAME = "training.cli"\n'
    )
    expected = (
        '"""from data.schema import Schema stays in a docstring."""\n'
        "import os\n"
        "from mmoe_tf_app import data\n"
        "import mmoe_tf_app.serving.client as client\n"
        "from mmoe_tf_app.data.schema import Schema  # from data import x stays in a comment\n"
        "from mmoe_tf_app.training.config import (\n"
        "    RunConfig,\n"
        ")\n"
        "from mmoe_tf import build_model\n"
        "from dataclasses import dataclass; from mmoe_tf_app.serving import cli\n"
        "from . import sibling\n"
        "if True:\n"
        "    from mmoe_tf_app.training import runner\n"
        'NAME = "training.cli"\n'
    )
    assert rewrite(source) == expected
    assert rewrite(expected) == expected  # idempotent: a rebuilt, already rewritten copy stays as it is


@pytest.mark.parametrize("statement", ["import data.schema\n", "import os, serving\n", "from data \\\n .x import y\n"])
def test_rewrite_imports_refuses_what_it_cannot_rewrite_faithfully(layout: dict, statement: str) -> None:
    with pytest.raises(layout["ImportRewriteError"]):
        layout["rewrite_imports"](statement, "m.py")


def _installed_modules(layout: dict) -> dict[str, Path]:
    """{installed package name: repository folder} of every package the wheel holds."""
    packages, package_dir = layout["package_layout"]()
    folders = {}
    for package in packages:
        root = max((name for name in package_dir if package == name or package.startswith(name + ".")), key=len)
        folders[package] = REPO / package_dir[root] / package[len(root) + 1 :].replace(".", "/")
    return folders


def test_installed_layout_has_no_generic_top_level_names(layout: dict) -> None:
    folders = _installed_modules(layout)
    assert {name.split(".")[0] for name in folders} == {"mmoe_tf", "mmoe_tf_app"}
    assert "mmoe_tf_app" not in folders, "mmoe_tf_app is a namespace package: importing it runs no code"
    for folder in (REPO / name for name in SOURCE_FOLDERS):
        for init in folder.rglob("__init__.py"):
            package_folder = init.parent
            expected = package_folder.relative_to(REPO).as_posix().startswith("training/experiments")
            assert (package_folder in folders.values()) != expected, f"{package_folder}: packaged={not expected}"


def test_every_installed_app_module_rewrites_to_imports_of_installed_names(layout: dict) -> None:
    rewrite = layout["rewrite_imports"]
    checked = 0
    for package, folder in _installed_modules(layout).items():
        if not package.startswith("mmoe_tf_app."):
            continue
        for path in folder.glob("*.py"):
            text = path.read_text()
            rewritten = rewrite(text, str(path))
            before, after = text.splitlines(), rewritten.splitlines()
            assert len(before) == len(after), path
            for old, new in zip(before, after, strict=True):
                if old != new:
                    assert new.lstrip().startswith(("from mmoe_tf_app", "import mmoe_tf_app")), (path, new)
            for node in ast.walk(ast.parse(rewritten)):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.level == 0:
                    modules = [node.module]
                assert not any(m.split(".")[0] in APP_FOLDERS for m in modules), (path, ast.unparse(node))
            checked += 1
    assert checked > 40


def test_files_read_at_run_time_are_package_data(layout: dict, pyproject: dict) -> None:
    """Every tracked non-Python file of an installed package folder is in that package's package-data."""
    package_data = pyproject["tool"]["setuptools"]["package-data"]
    owner = {folder: package for package, folder in _installed_modules(layout).items()}
    tracked = subprocess.run(
        ["git", "ls-files", *APP_FOLDERS], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    data_files = [REPO / name for name in tracked if not name.endswith(".py")]
    assert any(path.name == "impressions.csv.gz" for path in data_files)
    for path in data_files:
        folder = next((p for p in path.parents if p in owner), None)
        if folder is None:  # a folder that is not installed (training/experiments)
            continue
        relative = path.relative_to(folder).as_posix()
        patterns = package_data.get(owner[folder], [])
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), f"{path}: not in {owner[folder]}'s package-data"


def test_console_scripts_name_functions_of_installed_modules(layout: dict, pyproject: dict) -> None:
    folders = _installed_modules(layout)
    scripts = pyproject["project"]["scripts"]
    assert set(scripts) == {"mmoe-train", "mmoe-serving"}
    for target in scripts.values():
        module, function = target.split(":")
        package, name = module.rsplit(".", 1)
        tree = ast.parse((folders[package] / f"{name}.py").read_text())
        assert function in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, target


def _leading_text(node: ast.expr) -> str | None:
    """The literal start of a str constant or f-string, else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return str(node.values[0].value)
    return None


def _names_app_module_by_string(node: ast.AST) -> bool:
    """``[..., "-m", "serving", ...]`` or ``import_module("training.x")``: a module named by its repository name."""
    if isinstance(node, ast.List | ast.Tuple):
        texts = [_leading_text(element) for element in node.elts]
        return any(a == "-m" and b and b.split(".")[0] in APP_FOLDERS for a, b in itertools.pairwise(texts))
    if isinstance(node, ast.Call) and node.args:
        function = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        text = _leading_text(node.args[0])
        return function in {"import_module", "__import__"} and bool(text) and text.split(".")[0] in APP_FOLDERS
    return False


def test_installed_modules_name_their_own_modules_by_package_not_by_repository_name(layout: dict) -> None:
    """Installed, ``python -m serving`` would not find the package: such strings must come from ``__package__``."""

    def flagged(source: str) -> bool:
        return any(_names_app_module_by_string(node) for node in ast.walk(ast.parse(source)))

    assert flagged('cmd = [sys.executable, "-m", "serving._verify"]')
    assert flagged('importlib.import_module(f"training.experiments.{name}")')
    assert not flagged('cmd = [sys.executable, "-m", f"{__package__}._verify"]')
    assert not flagged('logging.getLogger("training")')
    offenders = []
    for package, folder in _installed_modules(layout).items():
        if package.startswith("mmoe_tf_app."):
            for path in folder.glob("*.py"):
                for node in ast.walk(ast.parse(path.read_text())):
                    if _names_app_module_by_string(node):
                        offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    assert not offenders, offenders
