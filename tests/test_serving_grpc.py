"""gRPC contract tests (shared/specs/tf-serving-grpc.md) with the stock ``tensorflow-serving-api`` stubs.

``local``: ``python -m serving serve`` (REST + gRPC, batching on) started once for this module in a subprocess whose
``sys.path`` starts with poisoned ``mmoe_tf``/``data``/``training`` packages, so every call also proves the server
answers without them. ``tf_serving``: a real TF Serving whose gRPC port is ``$TF_SERVING_GRPC`` (``host:port``)
serving the test model (``serving.testing.cached_export``) as ``$TF_SERVING_MODEL`` (default ``mmoe``) with a
``stable`` label; skipped when the variable is unset. Error texts are only checked against the local server.
"""

import dataclasses
import json
import os
import textwrap
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import requests
from google.protobuf import json_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.client import PredictClient, PredictError
from serving.tensor_proto import from_ndarray, to_ndarray
from serving.testing import SCORE_WEIGHTS, ServerProcess, cached_export, to_instances

TF_SERVING_GRPC = os.environ.get("TF_SERVING_GRPC")
TF_SERVING_MODEL = os.environ.get("TF_SERVING_MODEL", "mmoe")
MAX_MESSAGE = 300_000
TOL = 1e-6


@dataclasses.dataclass
class Target:
    address: str
    model: str
    local: bool
    server: ServerProcess | None = None

    def __post_init__(self) -> None:
        self.channel = grpc.insecure_channel(self.address)
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)


@pytest.fixture(scope="module")
def local_server(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "serving-export"
    tmp = tmp_path_factory.mktemp("serving-grpc")
    poison = tmp / "poison"
    for pkg in ("mmoe_tf", "data", "training"):
        (poison / pkg).mkdir(parents=True)
        (poison / pkg / "__init__.py").write_text(f"raise ImportError('the server must not import {pkg}')\n")
    config = tmp / "models.config"
    config.write_text(
        textwrap.dedent(
            f"""\
            model_config_list {{
              config {{
                name: "mmoe"
                base_path: "{root / "base" / "mmoe"}"
                model_platform: "tensorflow"
                version_labels {{ key: "stable" value: 1 }}
              }}
            }}
            """
        )
    )
    args = ["--model-config-file", str(config), "--enable-batching", "--max-batch-size", "32"]
    args += ["--grpc-max-message-bytes", str(MAX_MESSAGE)]
    server = ServerProcess(args, cwd=poison)
    try:
        server.start(wait=False)  # starts (imports TensorFlow) while the model is exported, then picks it up
        cached_export(root)
        server.wait_for("serving mmoe version 1", 120)
        yield server
        assert server.alive(), "\n".join(server.lines[-20:])
    finally:
        server.stop()
    assert not [ln for ln in server.lines if "must not import" in ln]


@pytest.fixture(scope="module", params=["local", "tf_serving"])
def target(request):
    if request.param == "tf_serving":
        if not TF_SERVING_GRPC:
            pytest.skip("TF_SERVING_GRPC is not set: no real TF Serving gRPC port to run the contract against")
        t = Target(TF_SERVING_GRPC, TF_SERVING_MODEL, local=False)
    else:
        server = request.getfixturevalue("local_server")
        t = Target(server.grpc_target, "mmoe", local=True, server=server)
    yield t
    t.channel.close()


def _request(target: Target, samples, signature: str = "", **spec) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = spec.pop("name", target.model)
    if "version" in spec:
        request.model_spec.version.value = spec.pop("version")
    if "label" in spec:
        request.model_spec.version_label = spec.pop("label")
    request.model_spec.signature_name = signature
    request.inputs["price"].CopyFrom(from_ndarray(samples["price"].to_numpy(np.float32)))
    request.inputs["device"].CopyFrom(from_ndarray(samples["device"].to_numpy(object)))
    request.inputs["category"].CopyFrom(from_ndarray(samples["category"].to_numpy(np.int64)))
    return request


def _error(call, *args) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call(*args, timeout=30)
    return err.value


def _assert_error(err: grpc.RpcError, code: grpc.StatusCode, fragment: str | None, target: Target) -> None:
    assert err.code() == code, (err.code(), err.details())
    assert err.details()
    if target.local and fragment is not None:
        assert fragment in err.details(), err.details()


def _newest_version(target: Target) -> int:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = target.model
    return target.models.GetModelStatus(request, timeout=30).model_version_status[0].version


# --- Predict ---------------------------------------------------------------------------------------------------


def test_predict_matches_in_process_and_echoes_model_spec(target, export):
    rows = export.samples.iloc[:20]
    response = target.predictions.Predict(_request(target, rows), timeout=30)
    assert response.model_spec.name == target.model
    assert response.model_spec.version.value == _newest_version(target)
    assert response.model_spec.signature_name == "serving_default"
    assert set(response.outputs) == {"click", "satisfaction"}
    for name in ("click", "satisfaction"):
        proto = response.outputs[name]
        assert [d.size for d in proto.tensor_shape.dim] == [20]
        got = to_ndarray(proto, name)
        np.testing.assert_allclose(got, export.expected[name].to_numpy()[:20], atol=TOL, rtol=0)
        if target.local:  # written like TF Serving's default (typed field), so .float_val works
            assert len(proto.float_val) == 20


def test_predict_signatures_version_label_and_output_filter(target, export):
    rows = export.samples.iloc[:12]
    version = _newest_version(target)
    by_version = target.predictions.Predict(_request(target, rows, version=version), timeout=30)
    by_label = target.predictions.Predict(_request(target, rows, label="stable"), timeout=30)
    for name in ("click", "satisfaction"):
        assert to_ndarray(by_version.outputs[name], name).tolist() == to_ndarray(by_label.outputs[name], name).tolist()
    score = target.predictions.Predict(_request(target, rows, "ranking_score"), timeout=30)
    assert score.model_spec.signature_name == "ranking_score"
    want = sum(w * export.expected[k].to_numpy()[:12] for k, w in SCORE_WEIGHTS.items())
    np.testing.assert_allclose(to_ndarray(score.outputs["score"], "score"), want, atol=1e-5, rtol=0)
    gates = target.predictions.Predict(_request(target, rows, "gates"), timeout=30)
    click_gates = to_ndarray(gates.outputs["gate_click"], "gate_click")
    want_gates = export.gates[[f"gate_click_{i}" for i in range(3)]].to_numpy()[:12]
    np.testing.assert_allclose(click_gates, want_gates, atol=TOL, rtol=0)
    request = _request(target, rows)
    request.output_filter.append("satisfaction")
    filtered = target.predictions.Predict(request, timeout=30)
    assert set(filtered.outputs) == {"satisfaction"}


def test_rest_and_grpc_requests_batched_together_are_all_correct(target, export):
    if not target.local:
        pytest.skip("needs the REST port of the same local server")
    url = f"{target.server.url}/v1/models/mmoe:predict"

    def one(i: int):
        rows = export.samples.iloc[i : i + 1 + i % 4]
        if i % 2:
            answer = requests.post(url, data=json.dumps({"instances": to_instances(rows)}), timeout=30).json()
            clicks = [p["click"] for p in answer["predictions"]]
        else:
            response = target.predictions.Predict(_request(target, rows), timeout=30)
            clicks = to_ndarray(response.outputs["click"], "click").tolist()
        return i, clicks

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(48)))
    for i, clicks in results:
        want = export.expected["click"].to_numpy()[i : i + 1 + i % 4]
        np.testing.assert_allclose(clicks, want, atol=TOL, rtol=0)


# --- GetModelMetadata and GetModelStatus -------------------------------------------------------------------------


def test_metadata_packs_signature_def_map_like_rest(target):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = target.model
    response = target.predictions.GetModelMetadata(request, timeout=30)
    assert response.model_spec.name == target.model and response.model_spec.version.value >= 1
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(sig_map)
    sigs = sig_map.signature_def
    assert {"serving_default", "gates", "ranking_score"} <= set(sigs)
    default = sigs["serving_default"]
    assert default.method_name == "tensorflow/serving/predict"
    assert {k: v.dtype for k, v in default.inputs.items()} == {"price": 1, "device": 7, "category": 9}
    assert set(default.outputs) == {"click", "satisfaction"}
    if target.local:  # the same SignatureDefs the REST metadata shows as JSON
        rest = requests.get(f"{target.server.url}/v1/models/mmoe/metadata", timeout=30).json()
        as_json = json_format.MessageToDict(sig_map, preserving_proto_field_name=True)
        assert as_json == rest["metadata"]["signature_def"]


def test_metadata_field_errors(target):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = target.model
    err = _error(target.predictions.GetModelMetadata, request)
    _assert_error(err, grpc.StatusCode.INVALID_ARGUMENT, "must specify at least one metadata_field", target)
    request.metadata_field.append("nope")
    err = _error(target.predictions.GetModelMetadata, request)
    _assert_error(err, grpc.StatusCode.INVALID_ARGUMENT, "Metadata field nope is not supported", target)


def test_model_status_all_version_and_label(target):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = target.model
    statuses = target.models.GetModelStatus(request, timeout=30).model_version_status
    newest = statuses[0]
    assert newest.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE and newest.status.error_code == 0
    request.model_spec.version.value = newest.version
    assert [s.version for s in target.models.GetModelStatus(request, timeout=30).model_version_status] == [
        newest.version
    ]
    request.model_spec.version_label = "stable"
    labelled = target.models.GetModelStatus(request, timeout=30).model_version_status
    assert len(labelled) == 1 and labelled[0].state == 30
    if target.local:
        assert [(s.version, s.state, s.status.error_code) for s in statuses] == [(1, 30, 0)]


# --- errors ----------------------------------------------------------------------------------------------------


def test_unknown_model_version_label_are_not_found_with_rest_text(target, export):
    rows = export.samples.iloc[:2]
    cases = [
        (_request(target, rows, name="nope"), "/v1/models/nope:predict"),
        (_request(target, rows, version=999), "/v1/models/mmoe/versions/999:predict"),
        (_request(target, rows, label="canary"), "/v1/models/mmoe/labels/canary:predict"),
    ]
    for request, path in cases:
        err = _error(target.predictions.Predict, request)
        if not target.local and request.model_spec.version_label:  # TF Serving: 400 or 404 depending on version
            assert err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
            continue
        _assert_error(err, grpc.StatusCode.NOT_FOUND, None, target)
        if target.local:  # the same message as the REST 404 body
            rest = requests.post(target.server.url + path, data=json.dumps({"instances": to_instances(rows)}))
            assert rest.status_code == 404 and rest.json()["error"] == err.details()
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "nope"
    _assert_error(_error(target.models.GetModelStatus, status), grpc.StatusCode.NOT_FOUND, "nope", target)


def test_bad_inputs_are_invalid_argument_naming_the_problem(target, export):
    rows = export.samples.iloc[:3]
    missing = _request(target, rows)
    del missing.inputs["category"]
    err = _error(target.predictions.Predict, missing)
    fragment = "input size does not match signature: 2!=3 len({device,price}) != len({category,device,price})."
    _assert_error(err, grpc.StatusCode.INVALID_ARGUMENT, fragment, target)
    assert not target.local or "Missing but required: {category}." in err.details()

    renamed = _request(target, rows)
    renamed.inputs["categoryy"].CopyFrom(renamed.inputs.pop("category"))
    err = _error(target.predictions.Predict, renamed)
    _assert_error(err, grpc.StatusCode.INVALID_ARGUMENT, "input tensor alias not found in signature: categoryy", target)

    wrong_dtype = _request(target, rows)
    wrong_dtype.inputs["category"].CopyFrom(from_ndarray(np.array([1.0, 2.0, 3.0], np.float32)))
    err = _error(target.predictions.Predict, wrong_dtype)
    _assert_error(err, grpc.StatusCode.INVALID_ARGUMENT, "'category' has dtype DT_FLOAT", target)
    assert not target.local or "DT_INT64" in err.details()

    broken = _request(target, rows)
    broken.inputs["price"].tensor_content = b"\x00" * 5  # 5 bytes for three float32 values
    del broken.inputs["price"].float_val[:]
    _assert_error(_error(target.predictions.Predict, broken), grpc.StatusCode.INVALID_ARGUMENT, "price", target)

    unknown_sig = _request(target, rows, "nope")
    _assert_error(_error(target.predictions.Predict, unknown_sig), grpc.StatusCode.INVALID_ARGUMENT, "nope", target)

    bad_filter = _request(target, rows)
    bad_filter.output_filter.append("clicks")
    err = _error(target.predictions.Predict, bad_filter)
    _assert_error(err, grpc.StatusCode.INVALID_ARGUMENT, "output tensor alias not found in signature: clicks", target)

    wrong_rank = _request(target, rows)
    wrong_rank.inputs["price"].CopyFrom(from_ndarray(np.ones((3, 2), np.float32)))
    _assert_error(_error(target.predictions.Predict, wrong_rank), grpc.StatusCode.INVALID_ARGUMENT, "price", target)


def test_unknown_signature_has_the_rest_text(target, export):
    if not target.local:
        pytest.skip("compares with the local server's REST answer")
    rows = export.samples.iloc[:2]
    err = _error(target.predictions.Predict, _request(target, rows, "nope"))
    body = {"signature_name": "nope", "instances": to_instances(rows)}
    rest = requests.post(f"{target.server.url}/v1/models/mmoe:predict", data=json.dumps(body), timeout=30)
    assert rest.status_code == 400 and rest.json()["error"] == err.details()


def test_classify_regress_on_predict_signature_and_unimplemented(target):
    for call, message, kind in (
        (target.predictions.Classify, classification_pb2.ClassificationRequest(), "classification"),
        (target.predictions.Regress, regression_pb2.RegressionRequest(), "regression"),
    ):
        message.model_spec.name = target.model
        message.input.example_list.examples.add()
        _assert_error(_error(call, message), grpc.StatusCode.INVALID_ARGUMENT, kind, target)
    if target.local:
        reload = model_management_pb2.ReloadConfigRequest()
        err = _error(target.models.HandleReloadConfigRequest, reload)
        _assert_error(err, grpc.StatusCode.UNIMPLEMENTED, "not supported", target)


def test_message_over_the_limit_is_resource_exhausted(target):
    if not target.local:
        pytest.skip("the message cap is a setting of our local server")
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "mmoe"
    request.inputs["device"].CopyFrom(from_ndarray(np.array([b"x" * 1000] * 400, dtype=object)))
    assert request.ByteSize() > MAX_MESSAGE
    _assert_error(_error(target.predictions.Predict, request), grpc.StatusCode.RESOURCE_EXHAUSTED, None, target)
    assert target.server.alive()


# --- client ----------------------------------------------------------------------------------------------------


def test_client_grpc_transport_matches_rest_api(target, export):
    with PredictClient(f"grpc://{target.address}", target.model) as client:
        frame = export.samples.iloc[:30]
        scores = client.predict(frame, batch_size=16)
        assert list(scores.columns) == ["click", "satisfaction"] and list(scores.index) == list(frame.index)
        np.testing.assert_allclose(scores["click"], export.expected["click"].to_numpy()[:30], atol=TOL, rtol=0)
        status = client.status()["model_version_status"][0]
        assert status["state"] == "AVAILABLE" and status["status"]["error_code"] == "OK"
        sigs = client.metadata()["metadata"]["signature_def"]["signature_def"]
        assert sigs["serving_default"]["inputs"]["category"]["dtype"] == "DT_INT64"
        if target.local:
            with PredictClient(target.server.url, "mmoe") as rest:
                assert rest.status() == client.status()
                assert rest.metadata() == client.metadata()
    with PredictClient(f"grpc://{target.address}", target.model, signature_name="gates", label="stable") as gates:
        columns = gates.predict(export.samples.iloc[:2]).columns
        assert list(columns) == [f"gate_{t}_{i}" for t in ("click", "satisfaction") for i in range(3)]
    with pytest.raises(PredictError) as err:
        PredictClient(f"grpc://{target.address}", "nope", retries=0).status()
    assert err.value.code == "NOT_FOUND" and err.value.status_code == 404 and err.value.error
    with pytest.raises(ValueError, match="non-integers"):
        PredictClient(f"grpc://{target.address}", target.model).predict(
            export.samples.iloc[:2].assign(category=[1.5, 2.0])
        )


def test_client_grpc_unreachable_is_clear():
    with pytest.raises(PredictError) as err:
        PredictClient("grpc://127.0.0.1:9", "mmoe", retries=1, timeout=2).status()
    assert err.value.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED") and "127.0.0.1:9" in str(err.value)
