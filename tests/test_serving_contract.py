"""REST contract tests (shared/specs/tf-serving-rest.md), parameterised by the server under test.

``local``: ``python -m serving serve`` started once for this module in a subprocess whose ``sys.path`` starts with
poisoned ``mmoe_tf``/``data``/``training`` packages (importing any of them raises), so every request below also
proves the server answers without them. ``tf_serving``: a real TF Serving at ``$TF_SERVING_URL`` serving the test
model (export it with ``serving.testing.cached_export``) as ``$TF_SERVING_MODEL`` (default ``mmoe``) with a
``stable`` label; skipped when the variable is unset. Error texts are only checked against the local server.
"""

import base64
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import requests

from serving.client import PredictClient, PredictError
from serving.testing import SCORE_WEIGHTS, ServerProcess, cached_export, to_instances

TF_SERVING_URL = os.environ.get("TF_SERVING_URL")
TF_SERVING_MODEL = os.environ.get("TF_SERVING_MODEL", "mmoe")
MAX_BATCH = 32
MAX_BODY = 200_000
TOL = 1e-6


@dataclasses.dataclass
class Target:
    url: str
    model: str
    local: bool
    server: ServerProcess | None = None

    @property
    def model_url(self) -> str:
        return f"{self.url}/v1/models/{self.model}"


@pytest.fixture(scope="module")
def local_server(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "serving-export"
    tmp = tmp_path_factory.mktemp("serving-contract")
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
                model_version_policy {{ latest {{ num_versions: 1 }} }}
                version_labels {{ key: "stable" value: 1 }}
              }}
            }}
            """
        )
    )
    args = ["--model-config-file", str(config), "--enable-batching", "--max-batch-size", str(MAX_BATCH)]
    args += ["--batch-timeout-micros", "1000", "--max-body-bytes", str(MAX_BODY)]
    server = ServerProcess(args, cwd=poison)
    try:
        server.start(wait=False)  # starts (imports TensorFlow) while the model is exported, then picks it up
        cached_export(root)
        server.wait_for("serving mmoe version 1", 120)
        uvloop = importlib.util.find_spec("uvloop") is not None  # the default event loop: uvloop when installed
        assert any(f"({'uvloop' if uvloop else 'asyncio'} event loop)" in ln for ln in server.lines), server.lines[-5:]
        yield server
        assert server.alive(), "\n".join(server.lines[-20:])
    finally:
        server.stop()
    assert not [ln for ln in server.lines if "must not import" in ln]


@pytest.fixture(scope="module", params=["local", "tf_serving"])
def target(request):
    if request.param == "tf_serving":
        if not TF_SERVING_URL:
            pytest.skip("TF_SERVING_URL is not set: no real TF Serving to run the contract against")
        return Target(TF_SERVING_URL.rstrip("/"), TF_SERVING_MODEL, local=False)
    server = request.getfixturevalue("local_server")
    return Target(server.url, "mmoe", local=True, server=server)


def _columns(samples: pd.DataFrame) -> dict:
    return {
        "price": samples["price"].astype(float).tolist(),
        "device": samples["device"].astype(str).tolist(),
        "category": samples["category"].astype(int).tolist(),
    }


def _post(url: str, body, raw: bool = False) -> requests.Response:
    data = body if raw else json.dumps(body, allow_nan=True)
    return requests.post(url, data=data, headers={"Content-Type": "application/json"}, timeout=30)


def _assert_error(resp: requests.Response, status: int, fragment: str | None, target: Target) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    error = resp.json()["error"]
    assert isinstance(error, str) and error
    if target.local and fragment is not None:
        assert fragment in error, error


# --- status and metadata ---------------------------------------------------------------------------------------


def test_status_lists_available_version(target):
    resp = requests.get(target.model_url, timeout=10)
    assert resp.status_code == 200
    status = resp.json()["model_version_status"]
    assert status[0]["state"] == "AVAILABLE" and status[0]["version"].isdigit()
    assert status[0]["status"]["error_code"] == "OK"
    if target.local:
        assert status == [{"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]


def test_status_version_label_and_case_insensitive_paths(target):
    version = requests.get(target.model_url, timeout=10).json()["model_version_status"][0]["version"]
    one = requests.get(f"{target.model_url}/versions/{version}", timeout=10).json()["model_version_status"]
    assert [s["version"] for s in one] == [version]
    label = requests.get(f"{target.model_url}/labels/stable", timeout=10)
    assert label.status_code == 200 and label.json()["model_version_status"][0]["state"] == "AVAILABLE"
    upper = requests.get(f"{target.url}/V1/Models/{target.model}/METADATA", timeout=10)
    assert upper.status_code == 200 and upper.json()["model_spec"]["name"] == target.model


def test_metadata_is_signature_def_proto_json(target):
    body = requests.get(f"{target.model_url}/metadata", timeout=10).json()
    assert body["model_spec"]["name"] == target.model and body["model_spec"]["version"].isdigit()
    sigs = body["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "gates", "ranking_score"} <= set(sigs)
    default = sigs["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    dtypes = {k: v["dtype"] for k, v in default["inputs"].items()}
    assert dtypes == {"price": "DT_FLOAT", "device": "DT_STRING", "category": "DT_INT64"}
    for spec in [*default["inputs"].values(), *default["outputs"].values()]:
        assert spec["tensor_shape"]["dim"] == [{"size": "-1"}]
    assert set(default["outputs"]) == {"click", "satisfaction"}
    gate_dims = sigs["gates"]["outputs"]["gate_click"]["tensor_shape"]["dim"]
    assert gate_dims == [{"size": "-1"}, {"size": "3"}]
    assert set(sigs["ranking_score"]["outputs"]) == {"score"}


# --- predict ---------------------------------------------------------------------------------------------------


def test_predict_row_format_matches_in_process(target, export):
    rows = export.samples.iloc[:20]
    resp = _post(f"{target.model_url}:predict", {"instances": to_instances(rows)})
    assert resp.status_code == 200, resp.text
    preds = resp.json()["predictions"]
    assert len(preds) == 20 and set(preds[0]) == {"click", "satisfaction"}
    for name in ("click", "satisfaction"):
        got = np.array([p[name] for p in preds], dtype=np.float32)
        np.testing.assert_allclose(got, export.expected[name].to_numpy()[:20], atol=TOL, rtol=0)


def test_predict_columnar_format_and_signatures(target, export):
    rows = export.samples.iloc[:24]
    url = f"{target.model_url}:predict"
    outputs = _post(url, {"inputs": _columns(rows)}).json()["outputs"]
    for name in ("click", "satisfaction"):
        np.testing.assert_allclose(outputs[name], export.expected[name].to_numpy()[:24], atol=TOL, rtol=0)
    score = _post(url, {"signature_name": "ranking_score", "inputs": _columns(rows)}).json()["outputs"]
    want = sum(w * export.expected[k].to_numpy()[:24] for k, w in SCORE_WEIGHTS.items())
    np.testing.assert_allclose(score, want, atol=1e-5, rtol=0)
    gates = _post(url, {"signature_name": "gates", "instances": to_instances(rows)}).json()["predictions"]
    click_gates = np.array([g["gate_click"] for g in gates])
    assert click_gates.shape == (24, 3)
    np.testing.assert_allclose(click_gates.sum(axis=1), 1.0, atol=1e-5)
    want_gates = export.gates[[f"gate_click_{i}" for i in range(3)]].to_numpy()[:24]
    np.testing.assert_allclose(click_gates, want_gates, atol=TOL, rtol=0)


def test_predict_version_and_label_urls(target, export):
    version = requests.get(target.model_url, timeout=10).json()["model_version_status"][0]["version"]
    body = {"instances": to_instances(export.samples.iloc[:3])}
    a = _post(f"{target.model_url}/versions/{version}:predict", body).json()["predictions"]
    b = _post(f"{target.model_url}/labels/stable:predict", body).json()["predictions"]
    assert a == b
    np.testing.assert_allclose([p["click"] for p in a], export.expected["click"].to_numpy()[:3], atol=TOL, rtol=0)


def test_predict_nan_token_and_b64_string(target, export):
    b64 = base64.b64encode(b"ios").decode()
    body = (  # written by hand: the bare NaN token is TF Serving's non-standard JSON, as a client sends it
        '{"instances": [{"price": NaN, "device": "ios", "category": 1},'
        f' {{"price": NaN, "device": {{"b64": "{b64}"}}, "category": 1}}]}}'
    )
    resp = _post(f"{target.model_url}:predict", body, raw=True)
    assert resp.status_code == 200, resp.text
    first, second = resp.json()["predictions"]
    assert first == second and all(np.isfinite(v) for v in first.values())


def test_concurrent_requests_are_batched_correctly(target, export):
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int):
        rows = export.samples.iloc[i : i + 1 + i % 5]
        preds = _post(f"{target.model_url}:predict", {"instances": to_instances(rows)}).json()["predictions"]
        return i, [p["click"] for p in preds]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(40)))
    for i, clicks in results:
        want = export.expected["click"].to_numpy()[i : i + 1 + i % 5]
        np.testing.assert_allclose(clicks, want, atol=TOL, rtol=0)


# --- errors ----------------------------------------------------------------------------------------------------

ROW = {"price": 1.5, "device": "ios", "category": 2}
BAD_BODIES = [
    ("wrong_feature_name", {"instances": [{"price": 1.0, "device": "ios", "categoryy": 2}]}, "'categoryy'"),
    ("missing_feature", {"instances": [{"price": 1.0, "device": "ios"}]}, "['category']"),
    ("extra_feature_row", {"instances": [{**ROW, "extra": 1}]}, "['extra']"),
    ("wrong_type_string", {"instances": [{**ROW, "device": 3}]}, "'device'"),
    ("wrong_type_float", {"instances": [{**ROW, "price": "cheap"}]}, "'price'"),
    ("float_for_int", {"instances": [{**ROW, "category": 2.0}]}, "'category'"),
    ("bool_for_int", {"instances": [{**ROW, "category": True}]}, "'category'"),
    ("ragged_instances", {"instances": [ROW, {**ROW, "price": [1.0, 2.0]}]}, "'price'"),
    ("ragged_columnar", {"inputs": {"price": [[1.0], [1.0, 2.0]], "device": ["a"], "category": [1]}}, "'price'"),
    ("wrong_rank", {"instances": [{**ROW, "price": [1.5]}]}, "'price'"),
    ("both_keys", {"instances": [ROW], "inputs": {"price": [1.0]}}, "both"),
    ("neither_key", {"signature_name": "serving_default"}, "neither"),
    ("missing_columnar_input", {"inputs": {"price": [1.0], "device": ["a"]}}, "['category']"),
    ("instances_not_list", {"instances": {"price": 1.0}}, "non-empty list"),
    ("int_out_of_range", {"instances": [{**ROW, "category": 2**70}]}, "out of range"),
    ("bad_b64", {"instances": [{**ROW, "device": {"b64": "***"}}]}, "base64"),
    ("unknown_signature", {"signature_name": "nope", "instances": [ROW]}, "nope"),
    ("signature_not_string", {"signature_name": 3, "instances": [ROW]}, "signature_name"),
]


@pytest.mark.parametrize(("case", "body", "fragment"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_request_is_400_naming_problem(target, case, body, fragment):
    _assert_error(_post(f"{target.model_url}:predict", body), 400, fragment, target)


def test_malformed_json_and_non_object(target):
    _assert_error(_post(f"{target.model_url}:predict", '{"instances": [', raw=True), 400, "JSON", target)
    _assert_error(_post(f"{target.model_url}:predict", "[1, 2]", raw=True), 400, "object", target)


def test_unknown_model_version_label_are_404(target):
    _assert_error(requests.get(f"{target.url}/v1/models/nope", timeout=10), 404, "nope", target)
    _assert_error(requests.get(f"{target.url}/v1/models/nope/metadata", timeout=10), 404, "nope", target)
    resp = _post(f"{target.url}/v1/models/nope:predict", {"instances": [ROW]})
    _assert_error(resp, 404, "Servable not found for request: Latest(nope)", target)
    resp = _post(f"{target.model_url}/versions/999:predict", {"instances": [ROW]})
    _assert_error(resp, 404, "Specific(mmoe, 999)", target)
    _assert_error(requests.get(f"{target.model_url}/versions/999", timeout=10), 404, "999", target)
    resp = _post(f"{target.model_url}/labels/canary:predict", {"instances": [ROW]})
    if target.local:
        _assert_error(resp, 404, "canary", target)
    else:  # TF Serving answers an unknown label as INVALID_ARGUMENT or NOT_FOUND depending on version
        assert resp.status_code in (400, 404) and resp.json()["error"]


def test_classify_and_regress_on_predict_signature(target):
    for verb, kind in ((":classify", "classification"), (":regress", "regression")):
        resp = _post(f"{target.model_url}{verb}", {"examples": [ROW]})
        _assert_error(resp, 400, kind, target)


def test_unknown_paths_and_methods(target):
    for method, path in (("GET", "/v1/foo"), ("GET", f"/v1/models/{target.model}:predict"), ("PUT", "/v1/models/x")):
        resp = requests.request(method, target.url + path, timeout=10)
        assert resp.status_code in (400, 404, 405)
        if target.local:
            _assert_error(resp, 400, f"Malformed request: {method}", target)


def test_body_over_limit_is_413_and_batch_over_max_is_400(target, export):
    if not target.local:
        pytest.skip("the body cap and batch limit are settings of our local server")
    big = {"instances": [ROW] * 8000}
    _assert_error(_post(f"{target.model_url}:predict", big), 413, "larger than the limit", target)
    over = {"instances": to_instances(export.samples.iloc[: MAX_BATCH + 1])}
    _assert_error(_post(f"{target.model_url}:predict", over), 400, "larger than maximum input batch size", target)
    ok = _post(f"{target.model_url}:predict", {"instances": to_instances(export.samples.iloc[:MAX_BATCH])})
    assert ok.status_code == 200
    assert target.server.alive()


# --- client ----------------------------------------------------------------------------------------------------


def test_client_predict_matches_in_process(target, export):
    client = PredictClient(target.url, target.model)
    frame = export.samples.iloc[:30].set_index(pd.RangeIndex(100, 130))
    scores = client.predict(frame)
    assert list(scores.index) == list(range(100, 130))
    assert list(scores.columns) == ["click", "satisfaction"]
    np.testing.assert_allclose(scores["click"], export.expected["click"].to_numpy()[:30], atol=TOL, rtol=0)
    records = client.predict(export.samples.iloc[:4].to_dict("records"), batch_size=3)
    np.testing.assert_allclose(records["satisfaction"], export.expected["satisfaction"].to_numpy()[:4], atol=TOL)
    assert client.status()["model_version_status"][0]["state"] == "AVAILABLE"
    score = PredictClient(target.url, target.model, signature_name="ranking_score").predict(export.samples.iloc[:3])
    assert list(score.columns) == ["score"]
    want = sum(w * export.expected[k].to_numpy()[:3] for k, w in SCORE_WEIGHTS.items())
    np.testing.assert_allclose(score["score"], want, atol=1e-5, rtol=0)
    gates = PredictClient(target.url, target.model, signature_name="gates").predict(export.samples.iloc[:2])
    assert list(gates.columns) == [f"gate_{t}_{i}" for t in ("click", "satisfaction") for i in range(3)]


def test_client_errors_carry_server_text(target, export):
    with pytest.raises(PredictError) as err:
        PredictClient(target.url, "nope", retries=0).status()
    assert err.value.status_code == 404 and err.value.error
    with pytest.raises(ValueError, match=r"input\(s\) \['category'\] missing"):
        PredictClient(target.url, target.model).predict(export.samples[["price", "device"]])
    with pytest.raises(ValueError, match="non-integers"):
        PredictClient(target.url, target.model).predict(export.samples.iloc[:2].assign(category=[1.5, 2.0]))


def test_predict_cli_prints_table(target, export, tmp_path, repo_root):
    csv = tmp_path / "rows.csv"
    export.samples.iloc[:10].to_csv(csv, index=False)
    cmd = [sys.executable, "-m", "serving", "predict", "--url", target.url, "--model-name", target.model]
    proc = subprocess.run(
        [*cmd, "--data", str(csv), "--rows", "5"], capture_output=True, text=True, cwd=repo_root, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].split() == ["click", "satisfaction"] and len(lines) == 6
    assert abs(float(lines[1].split()[1]) - export.expected["click"].iloc[0]) < 1e-5
