"""Building blocks of the run-config declarations: strict scalars, section settings, field errors.

Scalars are strict (``"3"`` is not an integer, ``true`` is not 1; an integer is a valid float), sections refuse
unknown keys, and a section left empty in YAML (``train:``) takes its defaults.
"""

from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, Strict
from pydantic_core import PydanticCustomError

SECTION = ConfigDict(extra="forbid", allow_inf_nan=False)
"""Settings shared by every section: unknown keys are errors, floats are finite (dataclasses add ``frozen=True``)."""
FROZEN_SECTION = ConfigDict(**SECTION, frozen=True)
""":data:`SECTION` for a ``BaseModel`` section: also immutable."""

Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
Units = list[Annotated[int, Strict(), Field(ge=1)]]
"""Layer sizes: a list of positive integers."""

ARCHITECTURES_KEY = "x-architectures"
EXPERT_TYPE_KEY = "x-expert-type"


def _empty_if_none(value: Any) -> Any:
    return {} if value is None else value


EMPTY_IF_NONE = BeforeValidator(_empty_if_none)
"""Annotate a section field with it so that ``section:`` (null in YAML) means "all defaults"."""


def used_by(*architectures: str, expert_type: str | None = None) -> dict[str, Any]:
    """``Field`` keywords marking a model field used only by some architectures (or one expert type).

    The marks land in the JSON Schema (``x-architectures``, ``x-expert-type``); the run config refuses a non-default
    value of a field the configured architecture does not use, and leaves the field out of ``run_config.yaml``.

    Example:
        >>> from pydantic import Field
        >>> Field(4, ge=1, description="experts K", **used_by("mmoe", "omoe")).json_schema_extra
        {'x-architectures': ['mmoe', 'omoe']}
    """
    extra: dict[str, Any] = {}
    if architectures:
        extra[ARCHITECTURES_KEY] = list(architectures)
    if expert_type:
        extra[EXPERT_TYPE_KEY] = expert_type
    return {"json_schema_extra": extra}


def config_error(message: str, field: str | None = None) -> PydanticCustomError:
    """An error for a validator to raise; ``field`` extends the dotted key (for checks that span a section).

    Example:
        >>> config_error("required when data.path is not 'default'", field="schema").context["field"]
        'schema'
    """
    return PydanticCustomError("run_config", "{message}", {"message": message, "field": field})
