"""Field checks shared by the declarative specs: every error is a ``ValueError`` naming the owner and the field."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn


def fail(owner: str, field: str, message: str) -> NoReturn:
    """Raise ``ValueError("<owner>: field '<field>' <message>")``."""
    raise ValueError(f"{owner}: field '{field}' {message}")


def check_name(owner: str, name: Any) -> None:
    """A spec's name: a non-empty string without ``/`` or ``:`` (both appear in layer and output names)."""
    if not isinstance(name, str) or not name or "/" in name or ":" in name:
        fail(owner, "name", "must be a non-empty string without '/' or ':'")


def positive_units(owner: str, field: str, units: Sequence[int], allow_empty: bool) -> tuple[int, ...]:
    """``units`` as a tuple of positive integers (layer sizes); empty only when ``allow_empty``."""
    units = tuple(units)
    if not allow_empty and not units:
        fail(owner, field, "must list at least one layer size")
    for u in units:
        if not isinstance(u, int) or isinstance(u, bool) or u <= 0:
            fail(owner, field, f"must hold positive integers, got {units!r}")
    return units


def from_mapping(cls: type, data: Mapping[str, Any], owner: str) -> Any:
    """``cls(**data)`` for a dataclass ``cls``; unknown keys raise ``ValueError`` naming them."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{owner}: expected a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{owner}: unknown key(s) {unknown}; known keys are {sorted(known)}")
    return cls(**data)
