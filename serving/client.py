"""A client for TF Serving (or the local ``serving.server``) over REST or gRPC: predictions as a DataFrame.

Sends exactly the signature's declared dtypes (read once from the model metadata): over REST integers as JSON
integers, floats as numbers with ``NaN`` tokens for missing values, strings as strings; over gRPC the same values as
``TensorProto``s of the declared dtype. ``grpc://host:port`` selects gRPC (``tensorflow.serving.PredictionService``,
TF Serving's ``--port``, 8500), ``http(s)://`` REST (8501); ``predict``/``status``/``metadata`` answer the same on
both (gRPC answers are converted to the REST JSON shapes). Retries connection errors and 503/UNAVAILABLE with
exponential backoff; refused requests raise :class:`PredictError` carrying the server's error text.
Imports neither ``mmoe_tf`` nor ``data``.

Example:
    >>> client = PredictClient("http://127.0.0.1:8501", "mmoe")  # or "grpc://127.0.0.1:8500"  # doctest: +SKIP
    >>> client.predict(pd.DataFrame({"price": [1.0], "device": ["ios"]}))  # doctest: +SKIP
          click  satisfaction
    0  0.412301      0.087113
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

FLOAT_TYPES = ("DT_FLOAT", "DT_DOUBLE", "DT_HALF", "DT_BFLOAT16")
INT_TYPES = ("DT_INT8", "DT_INT16", "DT_INT32", "DT_INT64", "DT_UINT8", "DT_UINT16", "DT_UINT32", "DT_UINT64")


class PredictError(RuntimeError):
    """A request the server refused or could not answer.

    Attributes:
        status_code: HTTP status (``None`` when the server could not be reached); over gRPC the HTTP status TF
            Serving maps the gRPC code to (NOT_FOUND -> 404, INVALID_ARGUMENT -> 400, ...).
        error: The server's error text (or the connection problem).
        url: The request URL (over gRPC ``grpc://host:port/<method>``).
        code: The canonical status name over gRPC (``NOT_FOUND``, ...), ``None`` over REST.
    """

    def __init__(self, status_code: int | None, error: str, url: str, code: str | None = None) -> None:
        super().__init__(f"{code or status_code or 'no answer'} from {url}: {error}")
        self.status_code, self.error, self.url, self.code = status_code, error, url, code


class PredictClient:
    """Client for one model on a TF Serving REST or gRPC endpoint.

    Args:
        base_url: ``http://127.0.0.1:8501`` (REST) or ``grpc://127.0.0.1:8500`` (gRPC).
        model_name: Served model name.
        version: Pin a version (``/versions/N``); ``None`` uses the newest.
        timeout: Seconds per request (the gRPC deadline).
        retries: Retries on connection errors and 503 (exponential backoff).
        signature_name: Signature used by :meth:`predict`.
        label: Version label (``/labels/L``) instead of ``version``.
    """

    def __init__(
        self,
        base_url: str,
        model_name: str,
        version: int | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        signature_name: str = "serving_default",
        label: str | None = None,
    ) -> None:
        if version is not None and label is not None:
            raise ValueError("PredictClient: give 'version' or 'label', not both")
        self.base_url = base_url.rstrip("/")
        self.transport = "grpc" if self.base_url.startswith("grpc://") else "rest"
        self.model_name = model_name
        self.retries = retries
        self.version, self.label = version, label
        self.timeout = timeout
        self.signature_name = signature_name
        retry = Retry(
            total=retries,
            connect=retries,
            read=0,
            status=retries,
            backoff_factor=0.2,
            status_forcelist=(503,),
            allowed_methods=frozenset({"GET", "POST"}),
            raise_on_status=False,
        )
        self.session = requests.Session()
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        self._inputs: dict[str, dict[str, tuple[str, list[int]]]] = {}
        self._outputs: dict[str, list[str]] = {}
        self._grpc = _GrpcTransport(self) if self.transport == "grpc" else None

    @property
    def model_url(self) -> str:
        """``{base}/v1/models/{name}`` plus the version or label part."""
        url = f"{self.base_url}/v1/models/{self.model_name}"
        if self.version is not None:
            url += f"/versions/{self.version}"
        elif self.label is not None:
            url += f"/labels/{self.label}"
        return url

    def _request(self, method: str, url: str, body: str | None = None) -> Any:
        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            resp = self.session.request(method, url, data=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as err:
            raise PredictError(None, f"{type(err).__name__}: {err}", url) from err
        try:
            payload = json.loads(resp.text)
        except ValueError:
            payload = None
        if resp.status_code >= 400:
            error = payload.get("error") if isinstance(payload, dict) else None
            raise PredictError(resp.status_code, error or resp.text[:500], url)
        if payload is None:
            raise PredictError(resp.status_code, f"answer is not JSON: {resp.text[:200]!r}", url)
        return payload

    def status(self) -> dict[str, Any]:
        """The model's version status (``{"model_version_status": [...]}``, as REST writes it)."""
        if self._grpc is not None:
            return self._grpc.status()
        return self._request("GET", self.model_url)

    def metadata(self) -> dict[str, Any]:
        """The served version's metadata (SignatureDefs as proto-JSON, as REST writes it)."""
        if self._grpc is not None:
            return self._grpc.metadata()
        return self._request("GET", f"{self.model_url}/metadata")

    def close(self) -> None:
        """Close the HTTP session or gRPC channel."""
        self.session.close()
        if self._grpc is not None:
            self._grpc.channel.close()

    def __enter__(self) -> PredictClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def signature_inputs(self, signature_name: str | None = None) -> dict[str, tuple[str, list[int]]]:
        """``{input_name: (dtype, dims)}`` of a signature, e.g. ``{"price": ("DT_FLOAT", [-1])}`` (cached)."""
        name = signature_name or self.signature_name
        if name not in self._inputs:
            sigs = self.metadata()["metadata"]["signature_def"]["signature_def"]
            if name not in sigs:
                known = sorted(k for k in sigs if not k.startswith("__"))
                raise ValueError(f"signature {name!r} is not served; signatures are {known}")
            self._inputs[name] = {
                k: (v["dtype"], [int(d.get("size", -1)) for d in v.get("tensor_shape", {}).get("dim", [])])
                for k, v in sorted(sigs[name]["inputs"].items())
            }
            self._outputs[name] = sorted(sigs[name].get("outputs", {}))
        return self._inputs[name]

    def predict(self, data: pd.DataFrame | Iterable[Mapping[str, Any]], batch_size: int | None = None) -> pd.DataFrame:
        """Score rows; returns one column per output (``name_k`` columns for ``[-1, K]`` outputs).

        Args:
            data: A DataFrame (or records) with one column per signature input.
            batch_size: Split into requests of at most this many rows (e.g. the server's max batch size).

        Returns:
            A DataFrame indexed like ``data``.

        Raises:
            ValueError: a declared input is missing or cannot be converted to its dtype (naming it).
            PredictError: the server answered an error (with its text) or could not be reached.
        """
        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame.from_records(list(data))
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"predict: field 'batch_size' must be >= 1, got {batch_size}")
        step = batch_size or max(len(frame), 1)
        parts = [self._predict_chunk(frame.iloc[i : i + step]) for i in range(0, max(len(frame), 1), step)]
        return pd.concat(parts) if len(parts) > 1 else parts[0]

    def _predict_chunk(self, frame: pd.DataFrame) -> pd.DataFrame:
        inputs = self.signature_inputs()
        missing = [k for k in inputs if k not in frame.columns]
        if missing:
            raise ValueError(f"predict: input(s) {missing} missing from the data; columns are {list(frame.columns)}")
        columns_in = {k: encode_column(frame[k], dtype, dims, k) for k, (dtype, dims) in inputs.items()}
        if self._grpc is not None:
            outputs = self._grpc.predict({k: (inputs[k][0], v) for k, v in columns_in.items()})
        else:
            body = {"signature_name": self.signature_name, "inputs": columns_in}
            answer = self._request("POST", f"{self.model_url}:predict", json.dumps(body, allow_nan=True))
            outputs = answer["outputs"]
            if not isinstance(outputs, dict):  # a single output comes back bare; name it from the metadata
                declared = self._outputs.get(self.signature_name, [])
                outputs = {declared[0] if len(declared) == 1 else "output": outputs}
        columns: dict[str, Any] = {}
        for name, values in outputs.items():
            array = np.asarray(values)
            if array.ndim == 2:
                for k in range(array.shape[1]):
                    columns[f"{name}_{k}"] = array[:, k]
            else:
                columns[name] = list(values) if array.ndim > 2 else array
        return pd.DataFrame(columns, index=frame.index)


def encode_column(values: pd.Series, dtype: str, dims: list[int], name: str) -> list[Any]:
    """JSON-ready values of one input column, converted to the signature's dtype.

    Raises:
        ValueError: values that cannot become ``dtype`` (non-integers for an int input, text for a float input).
    """
    if len(dims) > 1:
        return [np.asarray(v).tolist() for v in values]
    if dtype in FLOAT_TYPES:
        try:
            return pd.to_numeric(values, errors="raise").astype("float64").tolist()
        except (TypeError, ValueError) as err:
            raise ValueError(f"input {name!r} is {dtype}: {err}") from None
    if dtype in INT_TYPES:
        numbers = pd.to_numeric(values, errors="coerce")
        bad = values[numbers.isna() | (numbers != np.round(numbers))]
        if len(bad):
            raise ValueError(f"input {name!r} is {dtype}; rows {list(bad.index[:5])} hold non-integers {list(bad[:5])}")
        return [int(v) for v in numbers]
    if dtype == "DT_BOOL":
        return [bool(v) for v in values]
    if dtype == "DT_STRING":
        return ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values]
    raise ValueError(f"input {name!r} has dtype {dtype}, which this client does not send")


_NUMPY_DTYPES = {
    "DT_FLOAT": np.float32,
    "DT_DOUBLE": np.float64,
    "DT_HALF": np.float16,
    "DT_INT8": np.int8,
    "DT_INT16": np.int16,
    "DT_INT32": np.int32,
    "DT_INT64": np.int64,
    "DT_UINT8": np.uint8,
    "DT_UINT16": np.uint16,
    "DT_UINT32": np.uint32,
    "DT_UINT64": np.uint64,
    "DT_BOOL": np.bool_,
    "DT_STRING": object,
}
_GRPC_HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "CANCELLED": 499,
}


class _GrpcTransport:
    """TF Serving's gRPC API for :class:`PredictClient` (stubs from ``tensorflow-serving-api``)."""

    def __init__(self, client: PredictClient) -> None:
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self.client = client
        self.target = client.base_url.removeprefix("grpc://")
        self.channel = grpc.insecure_channel(
            self.target, options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        )
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def _spec(self, spec: Any, signature: bool = True) -> None:
        spec.name = self.client.model_name
        if self.client.version is not None:
            spec.version.value = self.client.version
        elif self.client.label is not None:
            spec.version_label = self.client.label
        if signature:
            spec.signature_name = self.client.signature_name

    def _call(self, method: Any, request: Any, name: str) -> Any:
        import grpc

        url = f"grpc://{self.target}/{name}"
        for attempt in range(self.client.retries + 1):
            try:
                return method(request, timeout=self.client.timeout)
            except grpc.RpcError as err:
                code = err.code().name if err.code() is not None else "UNKNOWN"
                if code == "UNAVAILABLE" and attempt < self.client.retries:
                    time.sleep(0.2 * 2**attempt)
                    continue
                raise PredictError(_GRPC_HTTP_STATUS.get(code, 500), err.details() or code, url, code) from None
        raise AssertionError("unreachable")

    def status(self) -> dict[str, Any]:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec, signature=False)
        answer = self._call(self.models.GetModelStatus, request, "GetModelStatus")
        out = []
        for entry in answer.model_version_status:
            status = json_format.MessageToDict(entry.status, preserving_proto_field_name=True)
            out.append(
                {
                    "version": str(entry.version),
                    "state": get_model_status_pb2.ModelVersionStatus.State.Name(entry.state),
                    "status": {
                        "error_code": status.get("error_code", "OK"),
                        "error_message": entry.status.error_message,
                    },
                }
            )
        return {"model_version_status": out}

    def metadata(self) -> dict[str, Any]:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec, signature=False)
        answer = self._call(self.prediction.GetModelMetadata, request, "GetModelMetadata")
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        answer.metadata["signature_def"].Unpack(sig_map)
        return {
            "model_spec": {
                "name": answer.model_spec.name,
                "signature_name": "",
                "version": str(answer.model_spec.version.value),
            },
            "metadata": {"signature_def": json_format.MessageToDict(sig_map, preserving_proto_field_name=True)},
        }

    def predict(self, columns: dict[str, tuple[str, list[Any]]]) -> dict[str, np.ndarray]:
        from tensorflow_serving.apis import predict_pb2

        from serving.tensor_proto import from_ndarray, to_ndarray

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec)
        for name, (dtype, values) in columns.items():
            array = np.asarray(values, dtype=_NUMPY_DTYPES[dtype])
            request.inputs[name].CopyFrom(from_ndarray(array, content=dtype != "DT_STRING"))
        answer = self._call(self.prediction.Predict, request, "Predict")
        return {name: to_ndarray(proto, name) for name, proto in sorted(answer.outputs.items())}
