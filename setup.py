"""Installed layout of mmoe-tf (metadata, dependencies and package data are in pyproject.toml).

The repository keeps ``mmoe_tf/``, ``data/``, ``training/`` and ``serving/`` at its root and runs from there
(``python -m training``). Installed, ``mmoe_tf`` keeps its name, and the three application folders become
subpackages of one namespace, ``mmoe_tf_app``, so the wheel puts nothing named ``data``, ``training`` or ``serving``
into site-packages::

    data/      -> mmoe_tf_app.data         python -m mmoe_tf_app.training --help
    training/  -> mmoe_tf_app.training     (console scripts: mmoe-train, mmoe-serving)
    serving/   -> mmoe_tf_app.serving

The code imports those folders by their repository names (``from data.schema import Schema``), so the wheel's copy
of each module has its absolute imports of ``data``/``training``/``serving`` prefixed with ``mmoe_tf_app.``
(:func:`rewrite_imports`: only the module name of an import statement changes, every line keeps its number, so
tracebacks point at the same lines as in the repository). ``mmoe_tf_app`` is a namespace package with no code of
its own: importing ``mmoe_tf_app.serving`` does not import ``mmoe_tf``. ``training/experiments/`` is not installed:
it regenerates the repository's ``docs/results``. An editable install (``pip install -e .``) is refused, as it would
run the unrewritten code; develop in the checkout (``.venv``, ``python -m training``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

NAMESPACE = "mmoe_tf_app"
APP_FOLDERS = ("data", "training", "serving")
NOT_INSTALLED = ("training.experiments", "training.experiments.*")
HERE = Path(__file__).resolve().parent


class ImportRewriteError(ValueError):
    """An import of an application folder that cannot be rewritten without changing what it binds."""


def _is_app_module(name: str | None) -> bool:
    return name is not None and name.split(".")[0] in APP_FOLDERS


def rewrite_imports(source: str, filename: str = "<source>") -> str:
    """``source`` with every absolute import of ``data``, ``training`` or ``serving`` moved under ``mmoe_tf_app``.

    Args:
        source: A module's text.
        filename: Named in errors.

    Returns:
        The text with ``from data.x import y`` → ``from mmoe_tf_app.data.x import y``, ``import data`` → ``from
        mmoe_tf_app import data`` and ``import serving.x as s`` → ``import mmoe_tf_app.serving.x as s``; nothing
        else changes (strings, comments and docstrings included), and no line moves.

    Raises:
        ImportRewriteError: ``import data.x`` without ``as`` (it binds ``data``), or an app import sharing an
            ``import`` statement with other modules.

    Example:
        >>> rewrite_imports("from data.schema import Schema\\n")
        'from mmoe_tf_app.data.schema import Schema\\n'
    """
    tree = ast.parse(source, filename)
    lines = source.splitlines(keepends=True)
    edits: list[tuple[int, int, str, str]] = []  # (line index, char offset, old text, new text)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and _is_app_module(node.module):
            edits.append(_from_edit(lines, node, filename))
        elif isinstance(node, ast.Import) and any(_is_app_module(alias.name) for alias in node.names):
            edits.append(_import_edit(lines, node, filename))
    for index, offset, old, new in sorted(edits, reverse=True):
        line = lines[index]
        lines[index] = line[:offset] + new + line[offset + len(old) :]
    return "".join(lines)


def _char_offset(line: str, byte_offset: int) -> int:
    return len(line.encode()[:byte_offset].decode())


def _from_edit(lines: list[str], node: ast.ImportFrom, filename: str) -> tuple[int, int, str, str]:
    line = lines[node.lineno - 1]
    match = re.compile(r"from\s+([\w.]+)").match(line, _char_offset(line, node.col_offset))
    if match is None or match.group(1) != node.module:
        raise ImportRewriteError(f"{filename}:{node.lineno}: write the module of this import on one line: {line!r}")
    return node.lineno - 1, match.start(1), node.module, f"{NAMESPACE}.{node.module}"


def _import_edit(lines: list[str], node: ast.Import, filename: str) -> tuple[int, int, str, str]:
    line = lines[node.lineno - 1]
    where = f"{filename}:{node.lineno}"
    if len(node.names) != 1:
        raise ImportRewriteError(f"{where}: import data/training/serving modules in an import statement of their own")
    alias = node.names[0]
    if "." in alias.name and alias.asname is None:
        raise ImportRewriteError(f"{where}: `import {alias.name}` binds `{alias.name.split('.')[0]}`; write `from`")
    start = _char_offset(line, node.col_offset)
    match = re.compile(r"import\s+([\w.]+)").match(line, start)
    if match is None or match.group(1) != alias.name:
        raise ImportRewriteError(f"{where}: write this import on one line: {line!r}")
    if alias.asname is not None:
        return node.lineno - 1, match.start(1), alias.name, f"{NAMESPACE}.{alias.name}"
    return node.lineno - 1, start, match.group(0), f"from {NAMESPACE} import {alias.name}"


def package_layout() -> tuple[list[str], dict[str, str]]:
    """(installed package names, package_dir) for setuptools: ``mmoe_tf`` as is, the app folders under NAMESPACE."""
    packages = find_packages(str(HERE), include=["mmoe_tf", "mmoe_tf.*"])
    package_dir = {"mmoe_tf": "mmoe_tf"}
    for folder in APP_FOLDERS:
        package_dir[f"{NAMESPACE}.{folder}"] = folder
        found = find_packages(
            str(HERE / folder), exclude=[n.split(".", 1)[1] for n in NOT_INSTALLED if n.startswith(f"{folder}.")]
        )
        packages += [f"{NAMESPACE}.{folder}", *(f"{NAMESPACE}.{folder}.{name}" for name in found)]
    return packages, package_dir


class BuildPyWithAppImports(build_py):
    """build_py that rewrites the application packages' imports in the built copy (see :func:`rewrite_imports`)."""

    def run(self) -> None:
        if getattr(self, "editable_mode", False):
            raise SystemExit(
                "mmoe-tf: editable installs are not supported (the installed names differ from the checkout's); "
                "run from the checkout (bash scripts/setup_env.sh; .venv/bin/python -m training) or pip install ."
            )
        super().run()

    def build_module(self, module: str, module_file: str, package: str | list[str]) -> tuple[str, bool]:
        outfile, copied = super().build_module(module, module_file, package)
        package_name = package if isinstance(package, str) else ".".join(package)
        if package_name.split(".")[0] == NAMESPACE and not self.dry_run:
            path = Path(outfile)
            text = path.read_text(encoding="utf-8")
            rewritten = rewrite_imports(text, module_file)
            if rewritten != text:
                path.write_text(rewritten, encoding="utf-8")
        return outfile, copied


if __name__ == "__main__":
    packages, package_dir = package_layout()
    setup(packages=packages, package_dir=package_dir, cmdclass={"build_py": BuildPyWithAppImports})
