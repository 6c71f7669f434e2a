"""JSON request bodies -> numpy inputs, following the TF Serving REST contract (``shared/specs/tf-serving-rest.md``).

Values are checked against the signature's dtype (ints stay ints, ``3.0`` for an int input is an error, strings may
be ``{"b64": ...}``, floats accept the ``NaN``/``Infinity`` tokens) and against raggedness. Every malformed body is a
:class:`RequestError` (HTTP 400): invalid JSON or UTF-8, integers past Python's 4,300-digit conversion limit or
beyond a float's range, lone surrogates in strings, nesting too deep.

``orjson`` (C) parses request bodies; bodies holding ``NaN``/``Infinity`` tokens or integers that may not fit in 64
bits take the standard-library parser, so the values are the same either way (``docs/serving.md`` has the measured
stages).

Example:
    >>> decode_tensor([[1, 2], [3, 4]], "int64", "ids").shape
    (2, 2)
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from serving.errors import RequestError

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
MAX_RANK = 32
# Digits → "9", everything else → " ": a run of 19 nines marks an integer that may not fit in 64 bits
# (one translate and one substring search: 4 µs against 62 µs for a regular expression over a 4 kB body).
_DIGIT_MASK = bytes(0x39 if 0x30 <= c <= 0x39 else 0x20 for c in range(256))
_LONG_RUN = b"9" * 19


def loads_request(body: bytes | str) -> dict[str, Any]:
    """Parse a request body as a JSON object (``NaN``/``Infinity`` tokens accepted).

    Raises:
        RequestError: the body is not valid JSON or not an object.
    """
    raw = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
    if b"NaN" in raw or b"Infinity" in raw or _LONG_RUN in raw.translate(_DIGIT_MASK):
        # orjson rejects the NaN/Infinity tokens TF Serving accepts, and reads integers beyond 64 bits as floats
        data = _stdlib_loads(body)
    else:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:  # invalid: the standard parser writes the error message
            data = _stdlib_loads(body)
    if not isinstance(data, dict):
        raise RequestError(f"JSON Value: {_short(data)} Is not an object: the request body must be a JSON object")
    return data


def _stdlib_loads(body: bytes | str) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RequestError(f"JSON Parse error: {err}") from None
    except ValueError as err:  # an integer past Python's 4,300-digit conversion limit
        raise RequestError(f"JSON Parse error: {err}") from None
    except RecursionError:
        raise RequestError("JSON Parse error: the document is nested too deeply") from None


def _short(value: Any, limit: int = 80) -> str:
    try:
        text = json.dumps(value, default=str)
    except (ValueError, RecursionError):  # an integer too long to print, a value nested too deeply
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _shape_of(value: Any, name: str) -> tuple[int, ...]:
    """Shape of a nested list; ``RequestError`` naming ``name`` when the lists are ragged."""
    if not isinstance(value, list):
        return ()
    if not value:
        return (0,)
    inner = _shape_of(value[0], name)
    for item in value[1:]:
        if _shape_of(item, name) != inner:
            raise RequestError(f"Input '{name}': ragged list {_short(value)}; all entries must have the same shape")
    return (len(value), *inner)


def _flatten(value: Any, out: list[Any]) -> list[Any]:
    if isinstance(value, list):
        for item in value:
            _flatten(item, out)
    else:
        out.append(value)
    return out


@functools.lru_cache(maxsize=1024)
def _leaf_caster(dtype: str, name: str):
    """A function checking one JSON leaf and returning the Python value to store for ``dtype``.

    Cached: row-format requests decode every input of every instance, and the (dtype, name) pairs are the
    signatures' inputs.
    """
    if dtype in FLOAT_DTYPES:

        def cast(v: Any) -> float:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise RequestError(f"Input '{name}' has dtype {dtype}; got {_short(v)}, which is not a number")
            try:
                return float(v)
            except OverflowError:  # an integer beyond any float
                message = f"Input '{name}': an integer of {v.bit_length()} bits is out of range for {dtype}"
                raise RequestError(message) from None

    elif dtype in INT_DTYPES:
        info = np.iinfo(dtype)

        def cast(v: Any) -> int:
            if isinstance(v, bool) or not isinstance(v, int):
                raise RequestError(
                    f"Input '{name}' has dtype {dtype}; got {_short(v)}, which is not an integer "
                    "(send integers without a decimal point)"
                )
            if not info.min <= v <= info.max:
                raise RequestError(f"Input '{name}': value {_short(v)} is out of range for {dtype}")
            return v

    elif dtype == "bool":

        def cast(v: Any) -> bool:
            if not isinstance(v, bool):
                raise RequestError(f"Input '{name}' has dtype bool; got {_short(v)}, expected true or false")
            return v

    elif dtype == "string":

        def cast(v: Any) -> bytes:
            if isinstance(v, str):
                try:
                    return v.encode("utf-8")
                except UnicodeEncodeError:  # a lone surrogate such as "\ud800"
                    raise RequestError(
                        f"Input '{name}': the string {_short(v)} holds a lone UTF-16 surrogate"
                    ) from None
            if isinstance(v, dict) and set(v) == {"b64"} and isinstance(v["b64"], str):
                try:
                    return base64.b64decode(v["b64"], validate=True)
                except (binascii.Error, ValueError):
                    raise RequestError(f"Input '{name}': invalid base64 in {_short(v)}") from None
            raise RequestError(
                f"Input '{name}' has dtype string; got {_short(v)}, expected a string or {{\"b64\": ...}}"
            )

    else:
        raise RequestError(f"Input '{name}' has dtype {dtype}, which the JSON codec does not support")
    return cast


def numpy_dtype(dtype: str) -> Any:
    """The numpy dtype storing a TF dtype name (``string`` -> ``object`` of bytes)."""
    return object if dtype == "string" else np.dtype("float32" if dtype == "bfloat16" else dtype)


def decode_tensor(value: Any, dtype: str, name: str) -> np.ndarray:
    """Convert a JSON value (nested lists of leaves) into a numpy array of ``dtype``.

    Args:
        value: The decoded JSON value.
        dtype: TF dtype name (``tf.DType.name``), e.g. ``float32``, ``int64``, ``string``.
        name: Input name used in error messages.

    Returns:
        An array shaped like the nesting of ``value``; strings become ``object`` arrays of ``bytes``.

    Raises:
        RequestError: ragged lists or leaves that cannot become ``dtype``.
    """
    if isinstance(value, dict) and not (dtype == "string" and set(value) == {"b64"}):
        raise RequestError(f"Input '{name}': got an object {_short(value)} where a value or list was expected")
    try:
        shape = _shape_of(value, name)
        leaves = _flatten(value, [])
    except RecursionError:
        raise RequestError(f"Input '{name}': the value is nested too deeply") from None
    if len(shape) > MAX_RANK:
        raise RequestError(f"Input '{name}': the value has rank {len(shape)}; at most {MAX_RANK} is supported")
    cast = _leaf_caster(dtype, name)
    leaves = [cast(v) for v in leaves]
    array = np.empty(len(leaves), dtype=numpy_dtype(dtype))
    if leaves:
        array[:] = leaves
    return array.reshape(shape)


def stack_rows(rows: list[np.ndarray], name: str) -> np.ndarray:
    """Stack per-instance arrays into a batch; ``RequestError`` when their shapes differ (ragged instances)."""
    shapes = {row.shape for row in rows}
    if len(shapes) > 1:
        raise RequestError(
            f"Input '{name}': instances have different shapes {sorted(shapes)}; "
            "all instances must share the shape of each input"
        )
    return np.stack(rows) if rows else np.empty((0,))


def decode_request(
    data: Mapping[str, Any], input_dtypes: Mapping[str, str]
) -> tuple[str, dict[str, np.ndarray], int | None]:
    """Turn a predict request body into named input arrays for one signature.

    Args:
        data: The parsed request body (``signature_name`` already removed or ignored).
        input_dtypes: ``{input_name: dtype name}`` of the signature.

    Returns:
        ``(format, inputs, batch_size)`` where format is ``"row"`` or ``"columnar"`` and batch_size is the
        number of instances (row format) or ``None`` (columnar).

    Raises:
        RequestError: both or neither of ``instances``/``inputs``, missing/extra inputs, ragged or ill-typed values.
    """
    has_rows, has_cols = "instances" in data, "inputs" in data
    if has_rows == has_cols:
        which = "both" if has_rows else "neither"
        raise RequestError(f"Missing 'inputs' or 'instances' key: exactly one is required, the request has {which}")
    names = list(input_dtypes)
    single = len(names) == 1
    if has_cols:
        value = data["inputs"]
        if single and not (isinstance(value, dict) and names[0] in value):
            return "columnar", {names[0]: decode_tensor(value, input_dtypes[names[0]], names[0])}, None
        if not isinstance(value, dict):
            raise RequestError(f"'inputs' must be an object keyed by input name {names}; got {_short(value)}")
        missing = [n for n in names if n not in value]
        if missing:
            raise RequestError(f"'inputs' is missing input(s) {missing}; the signature takes {names}")
        return "columnar", {n: decode_tensor(value[n], input_dtypes[n], n) for n in names}, None
    rows = data["instances"]
    if not isinstance(rows, list) or not rows:
        raise RequestError(f"'instances' must be a non-empty list; got {_short(rows)}")
    fast = _scalar_rows(rows, names, input_dtypes)
    if fast is not None:
        return "row", fast, len(rows)
    per_input: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for i, row in enumerate(rows):
        if single and not (isinstance(row, dict) and names[0] in row):
            per_input[names[0]].append(decode_tensor(row, input_dtypes[names[0]], names[0]))
            continue
        if not isinstance(row, dict):
            raise RequestError(f"instances[{i}] must be an object keyed by input name {names}; got {_short(row)}")
        missing = [n for n in names if n not in row]
        extra = sorted(set(row) - set(names))
        if missing or extra:
            problems = []
            if missing:
                problems.append(f"is missing input(s) {missing}")
            if extra:
                problems.append(f"has unknown input(s) {extra}")
            raise RequestError(f"instances[{i}] {' and '.join(problems)}; the signature takes {names}")
        for n in names:
            per_input[n].append(decode_tensor(row[n], input_dtypes[n], n))
    return "row", {n: stack_rows(per_input[n], n) for n in names}, len(rows)


def _scalar_rows(rows: list[Any], names: list[str], input_dtypes: Mapping[str, str]) -> dict[str, np.ndarray] | None:
    """Row-format inputs when every instance is an object holding exactly the inputs as bare scalars, else ``None``.

    The common ranking request (one scalar per feature per example) is decoded column by column into one array per
    input instead of one small array per instance and input; anything else (lists, ``b64`` objects, missing or extra
    keys, a single unnamed input) returns ``None`` so the general path reports the exact problem.
    """
    if not all(type(row) is dict and len(row) == len(names) for row in rows):
        return None
    try:
        columns = {n: [row[n] for row in rows] for n in names}
    except KeyError:
        return None
    out = {}
    for n, values in columns.items():
        kinds = set(map(type, values))
        if list in kinds or dict in kinds:
            return None
        array = _uniform_column(values, kinds, input_dtypes[n])
        if array is None:  # mixed or out-of-range values: per-value checks name the problem
            cast = _leaf_caster(input_dtypes[n], n)
            array = np.empty(len(values), dtype=numpy_dtype(input_dtypes[n]))
            array[:] = [cast(v) for v in values]
        out[n] = array
    return out


def _uniform_column(values: list[Any], kinds: set[type], dtype: str) -> np.ndarray | None:
    """One numpy conversion for a column whose values all have the input's JSON type, else ``None``.

    (≈ 0.1 µs a value instead of ≈ 0.5 µs for the per-value caster; same values: Python floats and ints
    converted by numpy round exactly as ``float(v)`` stored into the array does.)
    """
    try:
        if (dtype in FLOAT_DTYPES and kinds <= {float, int}) or (dtype in INT_DTYPES and kinds == {int}):
            return np.array(values, dtype=numpy_dtype(dtype))  # an integer out of range: OverflowError
        if dtype == "string" and kinds == {str}:
            array = np.empty(len(values), dtype=object)
            array[:] = [v.encode("utf-8") for v in values]
            return array
    except (OverflowError, ValueError):
        return None
    return None
