"""JSON <-> numpy conversion following the TF Serving REST contract (``shared/specs/tf-serving-rest.md``): one
import for the three modules that do it.

- ``serving.json_request``: request bodies -> checked numpy inputs (``loads_request``, ``decode_request``).
- ``serving.json_instances``: ``ScalarInstanceReader``, the one-instance fast path that batches examples.
- ``serving.json_response``: outputs -> response bodies (``predictions_json``, ``one_row_answers``, ``encode_json``).

They import numpy, ``orjson`` and the standard library: an exported model is served without ``mmoe_tf``.

Example:
    >>> decode_tensor([[1, 2], [3, 4]], "int64", "ids").shape
    (2, 2)
    >>> encode_json({"outputs": np.array([0.1], dtype=np.float32)})
    '{"outputs": [0.1]}'
"""

from __future__ import annotations

import numpy as np  # noqa: F401  (the example above)

from serving.errors import RequestError
from serving.json_instances import ScalarInstanceReader
from serving.json_request import (
    FLOAT_DTYPES,
    INT_DTYPES,
    MAX_RANK,
    decode_request,
    decode_tensor,
    loads_request,
    numpy_dtype,
    stack_rows,
)
from serving.json_response import (
    SCALAR_ROWS_MIN_BATCH,
    encode_json,
    encode_predictions,
    one_row_answers,
    predictions_json,
    to_jsonable,
)

__all__ = [
    "FLOAT_DTYPES",
    "INT_DTYPES",
    "MAX_RANK",
    "SCALAR_ROWS_MIN_BATCH",
    "RequestError",
    "ScalarInstanceReader",
    "decode_request",
    "decode_tensor",
    "encode_json",
    "encode_predictions",
    "loads_request",
    "numpy_dtype",
    "one_row_answers",
    "predictions_json",
    "stack_rows",
    "to_jsonable",
]
