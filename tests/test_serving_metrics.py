"""Prometheus metrics (``serving.metrics``): enabled by a TF Serving monitoring config, scraped over REST, parsed with
Prometheus' own text parser; the counts move with real REST and gRPC requests."""

import grpc
import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.metrics import ServingMetrics, read_monitoring_config
from serving.tensor_proto import from_ndarray
from serving.testing import MODEL_NAME, ServerProcess, to_instances

PATH = "/monitoring/prometheus/metrics"


@pytest.fixture(scope="module")
def server(export, repo_root, tmp_path_factory):
    """The server with serving/tf_serving/monitoring.config, started where ``mmoe_tf``/``data``/``training`` are
    poisoned packages: metrics need none of them."""
    poison = tmp_path_factory.mktemp("metrics-poison")
    for pkg in ("mmoe_tf", "data", "training"):
        (poison / pkg).mkdir()
        (poison / pkg / "__init__.py").write_text(f"raise ImportError('the server must not import {pkg}')\n")
    config = repo_root / "serving" / "tf_serving" / "monitoring.config"
    args = ["--base-path", str(export.base_path), "--model-name", MODEL_NAME, "--monitoring-config-file", str(config)]
    with ServerProcess([*args, "--enable-batching", "--max-batch-size", "16"], cwd=poison) as running:
        yield running


def scrape(server) -> dict[tuple[str, tuple], float]:
    """``{(sample name, sorted labels): value}`` of one scrape."""
    answer = requests.get(server.url + PATH, timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _grpc_predict(server, frame, signature: str = "serving_default") -> predict_pb2.PredictResponse:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    request.model_spec.signature_name = signature
    request.inputs["price"].CopyFrom(from_ndarray(frame["price"].to_numpy(np.float32)))
    request.inputs["device"].CopyFrom(from_ndarray(frame["device"].to_numpy(object)))
    request.inputs["category"].CopyFrom(from_ndarray(frame["category"].to_numpy(np.int64)))
    with grpc.insecure_channel(server.grpc_target) as channel:
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)


def test_counts_move_with_rest_and_grpc_requests(server, export):
    before = scrape(server)
    frame = export.samples.iloc[8:12]  # no NaN (JSON has none)
    url = f"{server.url}/v1/models/{MODEL_NAME}"
    for _ in range(3):
        assert requests.post(url + ":predict", json={"instances": to_instances(frame)}, timeout=30).ok
    body = {"signature_name": "ranking_score", "instances": to_instances(frame.head(1))}
    assert requests.post(url + ":predict", json=body, timeout=30).ok
    assert requests.get(url, timeout=10).ok
    assert requests.post(f"{server.url}/v1/models/nope:predict", json={"instances": []}, timeout=10).status_code == 404
    bad = {"signature_name": "made_up_signature", "instances": to_instances(frame)}
    assert requests.post(url + ":predict", json=bad, timeout=30).status_code == 400
    for _ in range(2):
        _grpc_predict(server, frame)
    with pytest.raises(grpc.RpcError) as failed:
        _grpc_predict(server, frame, signature="made_up_signature")
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    after = scrape(server)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    count = "serving_requests_total"
    rest = {"api": "rest", "model_name": MODEL_NAME, "method": "predict"}
    assert moved(count, **rest, signature_name="serving_default", status="OK") == 3
    assert moved(count, **rest, signature_name="ranking_score", status="OK") == 1
    # an unknown model or signature is counted without the client's text as a label value
    assert moved(count, **rest, signature_name="", status="INVALID_ARGUMENT") == 1
    assert moved(count, api="rest", model_name="", signature_name="", method="predict", status="NOT_FOUND") == 1
    assert moved(count, api="rest", model_name=MODEL_NAME, signature_name="", method="status", status="OK") == 1
    grpc_labels = {"api": "grpc", "model_name": MODEL_NAME, "method": "predict"}
    assert moved(count, **grpc_labels, signature_name="serving_default", status="OK") == 2
    assert moved(count, **grpc_labels, signature_name="", status="INVALID_ARGUMENT") == 1
    assert not any("made_up" in str(key) or "nope" in str(key) for key in after)
    latency = "serving_request_latency_seconds_count"
    assert moved(latency, **grpc_labels, signature_name="serving_default") == 2
    assert moved(latency, **rest, signature_name="serving_default") == 3
    assert value(after, "serving_request_latency_seconds_sum", **rest, signature_name="serving_default") > 0
    # every example ran in some batch: 3 x 4 + 1 over REST, 2 x 4 over gRPC
    sizes = ("serving_batch_size_sum", {"model_name": MODEL_NAME})
    examples = moved(sizes[0], **sizes[1], signature_name="serving_default")
    assert examples == 3 * 4 + 2 * 4
    assert moved(sizes[0], **sizes[1], signature_name="ranking_score") == 1
    assert value(after, "serving_batch_queue_depth") == 0 and value(after, "serving_batches_running") == 0
    # the scrape's own connection is open, and nothing is held for it while it is answered
    assert value(after, "serving_rest_connections") >= 1
    assert value(after, "serving_rest_pending_bytes") == value(after, "serving_rest_connection_pending_bytes_max") == 0
    state = "serving_model_version_state"
    assert value(after, state, model_name=MODEL_NAME, version="1", state="AVAILABLE") == 1
    assert value(after, state, model_name=MODEL_NAME, version="1", state="LOADING") == 0
    # the scrape itself is not a counted request
    assert not any(key[0] == count and ("method", "other") in key[1] for key in after)


def test_metrics_off_by_default(export):
    with ServerProcess(["--base-path", str(export.base_path), "--model-name", MODEL_NAME, "--no-grpc"]) as server:
        assert requests.get(server.url + PATH, timeout=10).status_code in (400, 404)
        assert not any(line.startswith("metrics at") for line in server.lines)


def test_monitoring_flag_serves_tf_servings_path(export):
    args = ["--base-path", str(export.base_path), "--model-name", MODEL_NAME, "--no-grpc", "--monitoring"]
    with ServerProcess(args) as server:
        assert f"metrics at {server.url}{PATH}" in server.lines
        assert "serving_model_version_state" in requests.get(server.url + PATH, timeout=10).text


def test_monitoring_config_decides_path_and_switch(tmp_path):
    from serving.cli import build_parser

    custom = tmp_path / "custom.config"
    custom.write_text('prometheus_config { enable: true, path: "/metrics" }\n')
    assert read_monitoring_config(custom) == "/metrics"
    custom.write_text("prometheus_config { enable: true }\n")
    assert read_monitoring_config(custom) == PATH
    custom.write_text("prometheus_config { enable: false }\n")
    assert read_monitoring_config(custom) is None
    args = build_parser().parse_args(["serve", "--base-path", "x", "--monitoring_config_file", str(custom)])
    assert args.monitoring_config_file == custom  # TF Serving's spelling of the flag works too


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("prometheus_config { enabled: true }", "not a MonitoringConfig"),
        ("prometheus_config { enable: true, path: 'metrics' }", "must be a URL path"),
    ],
)
def test_bad_monitoring_config_is_refused(tmp_path, text, fragment):
    path = tmp_path / "m.config"
    path.write_text(text)
    with pytest.raises(ValueError, match=fragment):
        read_monitoring_config(path)


class _Store:
    def model_names(self):
        return ["m"]

    def status(self, name):
        return [{"version": "3", "state": "AVAILABLE"}]


class _Inference:
    on_run = None

    def queue_depth(self):
        return 5

    def running(self):
        return 1


def test_each_server_has_its_own_registry():
    first, second = ServingMetrics(_Store(), _Inference()), ServingMetrics(_Store(), _Inference())
    first.observe_request("grpc", "m", "", "status", "OK", 0.001)
    first.observe_request("grpc", "m", "", "status", "OK", 0.001)
    second.observe_request("grpc", "m", "", "status", "OK", 0.001)

    def total(metrics):
        text = metrics.render().decode()
        (family,) = [f for f in text_string_to_metric_families(text) if f.name == "serving_requests"]
        return sum(s.value for s in family.samples if s.name == "serving_requests_total")

    assert (total(first), total(second)) == (2, 1)
    assert "serving_batch_queue_depth 5.0" in first.render().decode()
