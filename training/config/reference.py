"""The configuration reference, rendered from the declarations: ``--help`` lines, README's table, the JSON Schema.

Example:
    >>> next(e for e in reference_entries() if e.key == "train.epochs").default
    15
"""

import json
import textwrap
from collections.abc import Iterator
from typing import Any, NamedTuple

from training.config.errors import type_at
from training.config.model_section import TASK_OVERRIDE_FIELDS, ModelSection, architectures_using
from training.config.run_config import RUN_CONFIG, RunConfig

README_START = "<!-- config-reference:start (python -m training config --readme README.md) -->"
README_END = "<!-- config-reference:end -->"


class Entry(NamedTuple):
    """One configuration key: dotted ``key``, its built-in ``default`` (plain JSON value) and ``description``."""

    key: str
    default: Any
    description: str


def _fields(tp: Any) -> dict[str, Any] | None:
    return getattr(tp, "__pydantic_fields__", None) if isinstance(tp, type) else None


def _walk(cls: type, prefix: str) -> Iterator[Entry]:
    for name, field in _fields(cls).items():
        key = f"{prefix}{name}"
        section = type_at(cls, [name])
        if _fields(section) is not None:
            yield from _walk(section, f"{key}.")
            continue
        if cls is ModelSection and name == "tasks":
            continue
        description = field.description or ""
        if cls is ModelSection and architectures_using(name):
            description += f" ({architectures_using(name)})"
        default = field.get_default(call_default_factory=True)
        yield Entry(key, json.loads(json.dumps(list(default) if isinstance(default, tuple) else default)), description)


def reference_entries() -> list[Entry]:
    """Every key of a run config with its default and description, in declaration order."""
    return list(_walk(RunConfig, ""))


TASKS_KEY = "model.tasks.<task>.<field>"
TASKS_HELP = "per-task " + ", ".join(f"`{f}`" for f in TASK_OVERRIDE_FIELDS) + " (default: the schema's)"


def config_reference(width: int = 120) -> str:
    """One line per config key with its default, for ``--help`` (``key = default  description``)."""
    lines = []
    for key, default, description in [*reference_entries(), Entry(TASKS_KEY, "...", TASKS_HELP)]:
        head = f"  {key} = {json.dumps(default) if key != TASKS_KEY else '{}'}".ljust(43) + " "
        text = description.replace("`", "")
        lines.append(
            textwrap.fill(text, width, initial_indent=head, subsequent_indent=" " * 44, break_on_hyphens=False)
        )
    return "\n".join(lines)


def markdown_reference() -> str:
    """README's configuration table (key, default, meaning), between :data:`README_START` and :data:`README_END`."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for key, default, description in reference_entries():
        rows.append(f"| `{key}` | `{json.dumps(default)}` | {description.replace('|', chr(92) + '|')} |")
    rows.append(f"| `{TASKS_KEY}` | from the schema | {TASKS_HELP} |")
    return "\n".join(rows)


def render_readme(text: str) -> str:
    """``text`` (README.md) with the block between the reference markers replaced by :func:`markdown_reference`.

    Raises:
        ValueError: the markers are missing.
    """
    try:
        start = text.index(README_START) + len(README_START)
        end = text.index(README_END, start)
    except ValueError:
        raise ValueError(f"README: markers {README_START!r} ... {README_END!r} not found") from None
    return f"{text[:start]}\n{markdown_reference()}\n{text[end:]}"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a run config file (YAML/TOML/JSON), for editors and ``python -m training config --schema``."""
    schema = RUN_CONFIG.json_schema()
    schema.update(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "mmoe-tf run config",
            "description": "python -m training train --config FILE; every key optional (built-in defaults).",
        }
    )
    return schema
