"""The commonest predict request, one row-format instance of bare scalars, read without numpy.

Example:
    >>> ScalarInstanceReader({"price": "float32"}).read({"instances": [{"price": 2}]})
    {'price': 2}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from serving.json_request import FLOAT_DTYPES, INT_DTYPES, numpy_dtype


class ScalarInstanceReader:
    """Reads the commonest predict request, one row-format instance of bare scalars, without numpy, so that a batch of
    them becomes one array per input (:meth:`columns`) instead of one small array per request and input.

    :meth:`read` accepts only a request that :func:`decode_request` would decode to the same values: one instance, an
    object holding exactly the signature's inputs, each a number of the input's JSON type within range or a string.
    Anything else returns ``None`` and takes :func:`decode_request`, which also writes the errors.

    Args:
        input_dtypes: ``{input_name: dtype name}`` of the signature; a dtype other than float, int or string makes
            every :meth:`read` return ``None``.

    Attributes:
        example_key: ``(name, dtype.str, ())`` per input, sorted: how ``serving.batching`` keys array requests of
            the same inputs, so that examples and arrays share batches.

    Example:
        >>> reader = ScalarInstanceReader({"price": "float32", "device": "string"})
        >>> example = reader.read({"instances": [{"price": 1.5, "device": "ios"}]})
        >>> example
        {'price': 1.5, 'device': b'ios'}
        >>> reader.columns([example, example])["price"]
        array([1.5, 1.5], dtype=float32)
    """

    _FLOAT, _INT, _STRING = 0, 1, 2

    def __init__(self, input_dtypes: Mapping[str, str]) -> None:
        self.dtypes = {n: np.dtype(numpy_dtype(dt)) for n, dt in input_dtypes.items()}
        # what serving.batching keys array requests by, for the arrays of columns(): examples share their batches
        self.example_key = tuple(sorted((n, dt.str, ()) for n, dt in self.dtypes.items()))
        checks: list[tuple[str, int, int, int]] | None = []
        for name, dtype in input_dtypes.items():
            if dtype in FLOAT_DTYPES:  # ints too, within 64 bits (beyond that the per-value caster decides)
                checks.append((name, self._FLOAT, -(2**63), 2**64 - 1))
            elif dtype in INT_DTYPES:
                info = np.iinfo(dtype)
                checks.append((name, self._INT, int(info.min), int(info.max)))
            elif dtype == "string":
                checks.append((name, self._STRING, 0, 0))
            else:
                checks = None
                break
        self._checks = checks

    def read(self, data: Mapping[str, Any]) -> dict[str, Any] | None:
        """The request's one example as ``{input_name: Python scalar}`` (strings as UTF-8 bytes), or ``None``."""
        checks = self._checks
        if checks is None or "inputs" in data:
            return None
        rows = data.get("instances")
        if type(rows) is not list or len(rows) != 1:
            return None
        row = rows[0]
        if type(row) is not dict or len(row) != len(checks):
            return None
        example = {}
        for name, kind, low, high in checks:
            value = row.get(name, row)  # a missing input reads as the row itself (a dict), refused below
            kind_of = type(value)
            if kind == self._STRING:
                if kind_of is not str:
                    return None
                try:
                    value = value.encode("utf-8")
                except UnicodeEncodeError:  # a lone surrogate: the caster names it
                    return None
            elif kind_of is int:
                if not low <= value <= high:
                    return None
            elif kind == self._INT or kind_of is not float:
                return None
            example[name] = value
        return example

    def columns(self, examples: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        """One ``[len(examples)]`` array per input, as :func:`decode_request` builds for the same rows."""
        out = {}
        for name, dtype in self.dtypes.items():
            values = [example[name] for example in examples]
            if dtype.kind == "O":
                array = np.empty(len(values), dtype=object)
                array[:] = values
                out[name] = array
            else:
                out[name] = np.array(values, dtype=dtype)
        return out
