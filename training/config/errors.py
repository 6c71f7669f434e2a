"""Run-config errors: a pydantic ``ValidationError`` turned into one line that starts with the dotted key at fault.

Example:
    >>> from training.config import load_run_config
    >>> load_run_config(None, ["train.epoch=3"])  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    RunConfigError: train.epoch: unknown key; did you mean 'epochs'? (known keys: [...])
"""

import difflib
import types
import typing
from collections.abc import Sequence
from typing import Annotated, Any, Union

from pydantic import ValidationError
from pydantic.fields import FieldInfo


class RunConfigError(ValueError):
    """A run-config problem; the message starts with the dotted key at fault."""


_KIND = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "iterable_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dataclass_type": "a mapping",
    "dataclass_args_type": "a mapping",
}
_BOUND = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
_BOUND_KEY = {"greater_than_equal": "ge", "greater_than": "gt", "less_than_equal": "le", "less_than": "lt"}
_UNKNOWN_KEY = ("extra_forbidden", "unexpected_keyword_argument")


def describe(value: Any) -> str:
    """``'three' (str)``: a value and its type, for messages."""
    return f"{value!r} ({type(value).__name__})"


def dotted(loc: Sequence[str | int]) -> str:
    """``("model", "expert_units", 0)`` → ``model.expert_units[0]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _fields(tp: Any) -> dict[str, FieldInfo] | None:
    return getattr(tp, "__pydantic_fields__", None) if isinstance(tp, type) else None


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``| None``."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _field_type(field: FieldInfo) -> Any:
    """A field's declared type; a field validated as another type (``json_schema_input_type``) reads as that type."""
    for meta in field.metadata:
        declared = getattr(meta, "json_schema_input_type", Any)
        if _fields(declared) is not None:
            return declared
    return field.annotation


def type_at(root: type, loc: Sequence[str | int]) -> Any:
    """The declared type at ``loc`` under ``root`` (a section class), or ``None`` if the path leaves the declaration."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        fields = _fields(tp)
        if fields is not None:
            if part not in fields:
                return None
            tp = _field_type(fields[part])
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        elif typing.get_origin(tp) in (list, tuple):
            tp = typing.get_args(tp)[0]
        else:
            return None
    return tp


def _nullable(tp: Any) -> bool:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return typing.get_origin(tp) in (Union, types.UnionType) and type(None) in typing.get_args(tp)


def _unknown_key(root: type, loc: tuple[str | int, ...]) -> str:
    known = sorted(_fields(_unwrap(type_at(root, loc[:-1]))) or ())
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown key{hint} (known keys: {known})"


def message(error: dict[str, Any], root: type) -> str:
    """One pydantic error (an item of ``ValidationError.errors()``) as ``dotted.key: what was expected, got what``."""
    loc, kind, ctx, value = tuple(error["loc"]), error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "run_config":
        if ctx.get("field"):
            loc += (ctx["field"],)
        return f"{dotted(loc) or 'run config'}: {ctx['message']}"
    where = dotted(loc) or "run config"
    if kind in _UNKNOWN_KEY:
        return f"{where}: {_unknown_key(root, loc)}"
    declared = type_at(root, loc)
    null = " or null" if _nullable(declared) else ""
    if kind in _KIND:
        expected = _KIND[kind]
    elif kind == "literal_error":
        expected = f"one of {typing.get_args(_unwrap(declared)) or ctx.get('expected')}"
    elif kind in _BOUND:
        number = "an integer" if isinstance(value, int) else "a number"
        expected = f"{number} {_BOUND[kind]} {ctx[_BOUND_KEY[kind]]}"
    elif kind == "too_short":
        expected = f"at least {ctx['min_length']} item(s)"
    elif kind == "too_long":
        expected = f"at most {ctx['max_length']} item(s)"
    elif kind in ("missing", "missing_keyword_argument"):
        return f"{where}: required"
    elif kind == "value_error":
        return f"{where}: {ctx.get('error', error['msg'])}"
    else:
        return f"{where}: {error['msg']}, got {describe(value)}"
    return f"{where}: expected {expected}{null}, got {describe(value)}"


def from_validation_error(err: ValidationError, root: type) -> RunConfigError:
    """The first error of ``err`` (raised validating ``root``) as a :class:`RunConfigError`."""
    return RunConfigError(message(err.errors(include_url=False)[0], root))


__all__ = ["RunConfigError", "describe", "dotted", "from_validation_error", "message", "type_at"]
