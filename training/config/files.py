"""Run-config files and ``--set`` overrides: YAML (``.yaml``/``.yml``/``.json``) or TOML, then ``a.b.c=value`` strings.

Example:
    >>> cfg = load_run_config(None, ["model.num_experts=8", "train.epochs=3"])
    >>> cfg.model["num_experts"], cfg.train.epochs
    (8, 3)
"""

import pathlib
import re
import tomllib
from collections.abc import Iterable
from typing import Any

import yaml

from training.config.errors import RunConfigError, describe
from training.config.run_config import RunConfig


class _YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, also reading ``1e-3`` as a float (YAML 1.2; PyYAML's 1.1 rules need a dot: ``1.0e-3``)."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """YAML text as Python values (safe loader; ``1e-3`` is the float 0.001, not the string ``"1e-3"``)."""
    return yaml.load(text, Loader=_YamlLoader)  # a SafeLoader subclass


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value`` (value read as YAML: ``8``, ``[64, 32]``, ``null``, ``click``).

    Returns:
        (key path, value).
    """
    if "=" not in text:
        raise RunConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. model.num_experts=8")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise RunConfigError(f"--set {text!r}: bad key {key!r}; expected dotted names like train.epochs")
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise RunConfigError(f"{key}: cannot parse value {raw!r}: {err}") from None
    return parts, value


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``--set`` strings to a raw (unvalidated) config mapping, in place; returns it."""
    for text in overrides:
        parts, value = parse_override(text)
        node = raw
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise RunConfigError(
                    f"{'.'.join(parts[: i + 1])}: is {describe(child)}, not a section; cannot set {text!r}"
                )
            node = child
        node[parts[-1]] = value
    return raw


def read_config_file(path: str | pathlib.Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``/``.json``) or TOML (``.toml``) run config into a dict."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise RunConfigError(f"--config: file not found: {path}")
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else load_yaml(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as err:
        raise RunConfigError(f"--config {path}: cannot parse: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RunConfigError(f"--config {path}: top level must be a mapping, got {type(data).__name__}")
    return data


def load_run_config(
    path: str | pathlib.Path | None = None, overrides: Iterable[str] = (), keep_unused_model_fields: bool = False
) -> RunConfig:
    """Read, override and validate a run config.

    Args:
        path: YAML/TOML file; ``None`` starts from the built-in defaults.
        overrides: ``a.b=c`` strings applied after the file.
        keep_unused_model_fields: Keep model fields the architecture does not use (see ``RunConfig.from_dict``).

    Returns:
        The validated :class:`RunConfig`.

    Raises:
        RunConfigError: naming the dotted key at fault.
    """
    raw = read_config_file(path) if path is not None else {}
    return RunConfig.from_dict(apply_overrides(raw, overrides), keep_unused_model_fields)
