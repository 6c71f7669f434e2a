"""The docs are executable: every shell command and Python snippet in README.md and docs/*.md runs and must succeed.

What runs: fenced blocks whose info string starts with ``bash``, ``sh``, ``shell`` or ``python``. Other fences
(diagrams, ``csv``/``yaml`` examples, output) are not run.

**Markers** — an HTML comment on the line right above the opening fence (invisible when rendered)::

    <!-- docs-test: illustrative — why it cannot run in CI -->
        Not run. The reason after the dash is required. For Docker / docker compose / a real TF Serving,
        several machines, the whole test suite, anything needing hardware or services CI lacks.
    <!-- docs-test: covered-by tests/test_x.py -->
        Not run here because that test runs it (the named file must exist and mention the block's first command).
    <!-- docs-test: background -->
        A server (e.g. ``python -m serving serve ... --port 8501``): started in the background, waited for until its
        ``--port`` answers HTTP, stopped when the file is done.
    <!-- docs-test: fresh-process — why -->
        Run the block's ``python -m`` commands in their own interpreter (e.g. ``train.logical_cpus`` must be set
        before TensorFlow starts). Without it they run in this test's interpreter, to stay within the CI budget.

**How it runs**: each doc file gets a fresh temporary copy of the repository's source folders (``.venv`` linked),
which is the working directory of all its blocks, in file order. Python blocks of one file share one namespace (a
later snippet may use an earlier one's variables), like a notebook. ``python -m MODULE ARGS`` commands without
shell syntax run in-process (``runpy``); everything else runs under ``bash -euo pipefail`` in the copy. Output that
the in-process code would write under the real repository (module-level paths such as the figures folder) is
redirected into the copy, and the test fails if a new top-level entry or a changed file under :data:`GUARDED`
appears in the real repository.

**Sizes are shrunk, commands are not** (appended options win, see :data:`SHRINK`): ``python -m training train``
gets ``data.max_rows=600``, one epoch, no progress output; ``python -m training.experiments NAME`` its smallest
rows/epochs/seeds and one point of its grid, its figures in the copy; a further command of an experiment (or of
``training compare``) already run for the same file only has its options parsed (its ``run`` / ``compare`` is not
called); ports 8501 (REST) and 8500 (gRPC) become
free ports. Experiments in
:data:`NEEDS_SHARED_DATA` run only when ``../shared/data`` exists (otherwise that command alone is left out and
listed as "not run" in the test's output; the rest of the file still runs).

Adding docs: a new command that trains or loops over a grid needs a rule in :data:`SHRINK` (or the test gets slow);
a command that cannot run in CI needs the ``illustrative`` marker with its reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from serving.testing import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
# Templates (``docs/results.template.md``) are sources of generated pages: the generated page is what runs.
DOCS = [
    REPO_ROOT / "README.md",
    *sorted(p for p in (REPO_ROOT / "docs").glob("*.md") if not p.name.endswith(".template.md")),
]
SHELL_LANGS = ("bash", "sh", "shell")
COPIED = ("data", "docs", "mmoe_tf", "scripts", "serving", "training", "bench", "requirements.txt", "pyproject.toml")
MARKER_KINDS = ("illustrative", "covered-by", "background", "fresh-process")
MARKER = re.compile(rf"<!--\s*docs-test:\s*({'|'.join(MARKER_KINDS)})(?![\w-])\s*(?:[—–-]+\s*)?(.*?)\s*-->")

TINY_TRAIN = ["--set", "data.max_rows=600", "--set", "train.epochs=1", "--set", "train.verbose=0"]
EXPERIMENT_SIZES = ["--epochs", "1", "--seeds", "1", "--figures-dir", "figures"]
# Appended to a command whose module (and first argument) match: the last value of an option wins.
SHRINK: dict[tuple[str, ...], list[str]] = {
    ("training", "train"): TINY_TRAIN,
    ("training", "compare"): [
        *TINY_TRAIN,
        *("--architectures", "single_task", "mmoe", "--seeds", "2", "--jobs", "1", "--no-progress"),
    ],
    ("training.experiments", "relatedness"): [
        *EXPERIMENT_SIZES,
        "--rows",
        "600",
        "--correlations",
        "0.5",
        "--architectures",
        "mmoe",
    ],
    ("training.experiments", "scarcity"): [
        *EXPERIMENT_SIZES,
        "--rows",
        "1500",
        "--fractions",
        "0.1",
        "--architectures",
        "mmoe",
    ],
    ("training.experiments", "census"): [
        *EXPERIMENT_SIZES,
        "--rows",
        "2000",
        "--groups",
        "1",
        "--architectures",
        "mmoe",
        "--learning-rates",
        "1e-3",
        "--widths",
        "1",
    ],
    ("training.experiments", "ceiling"): [*EXPERIMENT_SIZES, "--rows", "1500"],
    ("training.experiments", "ceiling_reference"): ["--rows", "3000", "--seeds", "1"],
    ("training.experiments",): [*EXPERIMENT_SIZES, "--rows", "600"],
}
NEEDS_SHARED_DATA = {("training.experiments", "census")}
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
DOC_PORT = "8501"
DOC_GRPC_PORT = "8500"


@dataclasses.dataclass
class Block:
    """One fenced block: where it is, its language, its marker (kind, reason) and its text."""

    doc: Path
    line: int
    lang: str
    marker: str | None
    reason: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(REPO_ROOT)}:{self.line}"


def extract_blocks(doc: Path) -> list[Block]:
    """Every ``bash``/``sh``/``shell``/``python`` fenced block of ``doc``, with the marker right above it."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = re.match(r"^(`{3,})\s*([\w+-]*)", lines[i])
        if not match:
            i += 1
            continue
        fence, lang, start = match.group(1), match.group(2).lower(), i
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1
        if lang not in (*SHELL_LANGS, "python"):
            continue
        previous = lines[start - 1].strip() if start else ""
        marker = MARKER.fullmatch(previous)
        kind, reason = (marker.group(1), marker.group(2) or "") if marker else (None, "")
        blocks.append(Block(doc, start + 1, lang, kind, reason, "\n".join(body)))
    return blocks


def shell_commands(text: str) -> list[str]:
    """Logical commands of a shell block: continuation lines joined, comment and blank lines dropped."""
    commands, current = [], ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1].rstrip() + " "
            continue
        commands.append((current + line.strip()).strip())
        current = ""
    if current:
        commands.append(current.strip())
    return commands


def _tokens(command: str) -> list[str] | None:
    """Shell words of ``command`` (comments dropped, operators as their own tokens); ``None`` if unparsable."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split, lexer.commenters = True, "#"
    try:
        return list(lexer)
    except ValueError:
        return None


def python_module_command(command: str) -> tuple[str, list[str]] | None:
    """``(module, args)`` for ``[.venv/bin/]python -m MODULE ARGS`` without shell syntax, else ``None``."""
    tokens = _tokens(command)
    if tokens is None or "$" in command or "`" in command:
        return None
    if any(set(t) <= set("();<>|&") for t in tokens):  # pipes, redirections, lists, subshells
        return None
    if tokens[:1] == ["nice"]:  # a priority prefix (`nice -n 10 python -m ...`) changes nothing here
        tokens = tokens[3:] if tokens[1:2] == ["-n"] else tokens[1:]
    if len(tokens) < 3 or not re.fullmatch(r"(\.venv/bin/)?python3?", tokens[0]) or tokens[1] != "-m":
        return None
    return tokens[2], tokens[3:]


def shrink(module: str, args: list[str]) -> list[str]:
    """``args`` with the smallest sizes of :data:`SHRINK` appended (most specific rule first)."""
    first = args[0] if args else ""
    for key in ((module, first), (module,)):
        if key in SHRINK:
            return [*args, *SHRINK[key]]
    return args


class DocRun:
    """Runs one doc's blocks in a temporary copy of the repository."""

    def __init__(self, copy: Path, port: str, grpc_port: str) -> None:
        self.copy, self.port, self.grpc_port = copy, port, grpc_port
        self.namespace: dict[str, object] = {"__name__": "__docs__"}
        self.servers: list[subprocess.Popen] = []
        self.not_run: list[str] = []
        self.commands_run: set[str | None] = set()
        self.env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONPATH": str(copy),
            "PATH": f"{copy / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def ported(self, text: str) -> str:
        for doc_port, port in ((DOC_PORT, self.port), (DOC_GRPC_PORT, self.grpc_port)):
            text = text.replace(f":{doc_port}", f":{port}").replace(f"-port {doc_port}", f"-port {port}")
        return text

    def run(self, block: Block) -> None:
        if block.marker in ("illustrative", "covered-by"):
            return
        text = self.ported(block.text)
        if block.lang == "python":
            code = compile(text, block.where, "exec")
            with _chdir(self.copy):
                exec(code, self.namespace)
            return
        for command in shell_commands(text):
            self.run_command(command, block)

    def run_command(self, command: str, block: Block) -> None:
        parsed = python_module_command(command)
        if parsed is not None:
            module, args = parsed
            key = (module, args[0] if args else "")
            if key in NEEDS_SHARED_DATA and not SHARED_DATA.is_dir():
                self.not_run.append(f"{block.where}: `{command}` (reads {SHARED_DATA}, absent in this checkout)")
                return
            args = shrink(module, args)
            if block.marker == "background":
                self.start_server([sys.executable, "-m", module, *args], block)
            elif block.marker == "fresh-process":
                self.bash(shlex.join([sys.executable, "-m", module, *args]), block)
            else:
                self.in_process(module, args, block)
            return
        if block.marker == "background":
            raise AssertionError(f"{block.where}: a background block must be a `python -m` command: {command}")
        self.bash(command, block)

    def in_process(self, module: str, args: list[str], block: Block) -> None:
        argv = sys.argv
        sys.argv = [module, *args]
        try:
            with _chdir(self.copy), self.parse_only_if_repeated(module, args):
                runpy.run_module(module, run_name="__main__", alter_sys=False)
        except _ParsedOnlyError:
            pass
        except SystemExit as stop:
            assert stop.code in (0, None), f"{block.where}: `python -m {module} {shlex.join(args)}` exited {stop.code}"
        finally:
            sys.argv = argv

    @contextlib.contextmanager
    def parse_only_if_repeated(self, module: str, args: list[str]):
        """A second command of an experiment, or of ``training compare``, already run for this file: parse its
        options (and, for ``compare``, load its run config), skip the training."""
        if module == "training.experiments" and args:
            name, target, attribute = args[0], f"training.experiments.{args[0]}", "run"
        elif module == "training" and args[:1] == ["compare"]:
            name, target, attribute = "training compare", "training.compare", "compare"
        else:
            name = None
        if name is None or name not in self.commands_run:
            self.commands_run.add(name)
            yield
            return
        import importlib

        owner = importlib.import_module(target)
        original = getattr(owner, attribute)

        def parsed(*_args: object, **_kwargs: object) -> None:
            raise _ParsedOnlyError

        setattr(owner, attribute, parsed)
        try:
            yield
        finally:
            setattr(owner, attribute, original)

    def bash(self, command: str, block: Block) -> None:
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command],
            cwd=self.copy,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, (
            f"{block.where}: `{command}` failed (exit {proc.returncode}):\n"
            f"STDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-3000:]}"
        )

    def start_server(self, cmd: list[str], block: Block) -> None:
        proc = subprocess.Popen(cmd, cwd=self.copy, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.servers.append(proc)
        url = f"http://127.0.0.1:{self.port}/"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"{block.where}: server exited {proc.returncode}:\n{proc.stdout.read().decode()}")
            with contextlib.suppress(requests.RequestException):
                requests.get(url, timeout=1)
                return
            time.sleep(0.3)
        raise AssertionError(f"{block.where}: server did not answer on {url} within 120 s")

    def stop(self) -> None:
        for proc in self.servers:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class _ParsedOnlyError(Exception):
    """Raised instead of training when a repeated experiment command has parsed its options."""


@contextlib.contextmanager
def _chdir(path: Path):
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def _copy_repo(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "figures")
    for name in COPIED:
        src = REPO_ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.is_file():
            shutil.copy2(src, dest / name)
    (dest / ".venv").symlink_to((REPO_ROOT / ".venv").resolve(), target_is_directory=True)
    return dest


def _redirect_repo_paths(monkeypatch: pytest.MonkeyPatch, copy: Path) -> None:
    """Point module-level paths under the real repository (e.g. the figures folder) into ``copy``."""
    import importlib

    from training.experiments import EXPERIMENTS

    modules = ["common", "results", "report", *EXPERIMENTS]  # results: docs/results/*.json and raw/*.jsonl
    for name in (f"training.experiments.{m}" for m in modules):
        module = importlib.import_module(name)
        for attr, value in list(vars(module).items()):
            if isinstance(value, Path) and value != REPO_ROOT and value.is_relative_to(REPO_ROOT):
                monkeypatch.setattr(module, attr, copy / value.relative_to(REPO_ROOT))


GUARDED = ("docs/figures", "docs/results", "docs/examples", "data/sample")


def _repo_state() -> dict[str, int]:
    """Top-level names and file mtimes under :data:`GUARDED`: what an escaped docs command would change."""
    state = {f"top:{p.name}": 0 for p in REPO_ROOT.iterdir()}
    for folder in GUARDED:
        for path in (REPO_ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                state[str(path.relative_to(REPO_ROOT))] = path.stat().st_mtime_ns
    return state


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_doc_runs(doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = extract_blocks(doc)
    copy = _copy_repo(tmp_path / "repo")
    _redirect_repo_paths(monkeypatch, copy)
    before = _repo_state()
    runner = DocRun(copy, str(free_port()), str(free_port()))
    try:
        for block in blocks:
            started = time.perf_counter()
            runner.run(block)
            print(f"{block.where} [{block.marker or block.lang}] {time.perf_counter() - started:.1f} s")
    finally:
        runner.stop()
    for line in runner.not_run:
        print(f"not run: {line}")
    after = _repo_state()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"a docs command wrote into the real repository: {changed}"


def test_markers_are_well_formed() -> None:
    """Every marker is known, illustrative/fresh-process ones give a reason, covered-by names a test that exists."""
    for doc in DOCS:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            if "docs-test" not in line:
                continue
            marker = MARKER.fullmatch(line.strip())
            assert marker, f"{doc.name}:{number}: unknown docs-test marker {line!r}; known: {MARKER_KINDS}"
        for block in extract_blocks(doc):
            if block.marker in ("illustrative", "fresh-process"):
                assert block.reason, f"{block.where}: the {block.marker} marker needs a reason after a dash"
            if block.marker == "covered-by":
                test_file = REPO_ROOT / block.reason.split()[0]
                assert test_file.is_file(), f"{block.where}: covered-by names {test_file}, which does not exist"
                words = shlex.split(shell_commands(block.text)[0], comments=True)[1:]  # after the interpreter
                paths = [w for w in words if ("/" in w or w.endswith(".sh")) and not w.endswith("/python")]
                if "-m" in words:  # a module's command: the test names its subcommand (or the module)
                    module = words[words.index("-m") + 1 :]
                    paths += [module[1] if len(module) > 1 and not module[1].startswith("-") else module[0]]
                text = test_file.read_text()
                assert any(p in text for p in paths), f"{block.where}: {test_file.name} mentions none of {paths}"


def test_readme_example_data_matches_the_shipped_files() -> None:
    """The README's CSV and schema blocks are the head of docs/examples/my.csv and all of my.schema.yaml."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    csv_block = re.search(r"```csv\n(.*?)```", text, re.S).group(1)
    yaml_block = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    csv_lines = csv_block.strip().splitlines()
    shipped = (REPO_ROOT / "docs/examples/my.csv").read_text().splitlines()
    assert shipped[: len(csv_lines)] == csv_lines
    assert yaml_block == (REPO_ROOT / "docs/examples/my.schema.yaml").read_text()


def test_shell_parsing_and_shrinking() -> None:
    """The helpers the docs test relies on: continuation lines, comments, in-process detection, size rules."""
    text = "# a comment\n.venv/bin/python -m training train --config a.yaml \\\n    --set x=1   # trailing\n\ncurl -s u"
    assert shell_commands(text) == [
        ".venv/bin/python -m training train --config a.yaml --set x=1   # trailing",
        "curl -s u",
    ]
    assert python_module_command(shell_commands(text)[0]) == (
        "training",
        ["train", "--config", "a.yaml", "--set", "x=1"],
    )
    assert python_module_command("TF_CONFIG='{}' python -m training train") is None
    assert python_module_command("python -m x | tee log") is None
    assert python_module_command("nice -n 10 .venv/bin/python -m training.experiments census --seeds 5") == (
        "training.experiments",
        ["census", "--seeds", "5"],
    )
    assert shrink("training", ["train"])[-len(TINY_TRAIN) :] == TINY_TRAIN
    assert "--figures-dir" in shrink("training.experiments", ["anything_new"])
