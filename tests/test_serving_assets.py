"""The real-TF-Serving assets in serving/tf_serving/ parse as TF Serving would read them, and the docs show how."""

import re

import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.batching import read_batching_parameters
from serving.metrics import read_monitoring_config
from serving.model_store import read_model_config
from serving.tf_serving.protos import BatchingParameters, MonitoringConfig


@pytest.fixture(scope="module")
def assets(repo_root):
    return repo_root / "serving" / "tf_serving"


def test_models_config_is_a_model_server_config(assets):
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((assets / "models.config").read_text(), config)
    (entry,) = config.model_config_list.config
    assert (entry.name, entry.base_path, entry.model_platform) == ("mmoe", "/models/mmoe", "tensorflow")
    assert entry.model_version_policy.WhichOneof("policy_choice") == "specific"
    assert list(entry.model_version_policy.specific.versions) == [1]
    assert dict(entry.version_labels) == {"stable": 1}
    (source,) = read_model_config(assets / "models.config")
    assert (source.name, source.policy, source.versions, source.labels) == ("mmoe", "specific", (1,), {"stable": 1})


def test_read_model_config_errors(tmp_path):
    bad = tmp_path / "bad.config"
    bad.write_text("model_config_list { config { nme: 'x' } }")
    with pytest.raises(ValueError, match=r"bad\.config"):
        read_model_config(bad)
    empty = tmp_path / "empty.config"
    empty.write_text("model_config_list { }")
    with pytest.raises(ValueError, match="lists no models"):
        read_model_config(empty)


def test_batching_parameters_parse_and_match_local_defaults(assets):
    from serving.cli import build_parser

    params = BatchingParameters()
    text_format.Parse((assets / "batching_parameters.txt").read_text(), params)
    assert params.max_batch_size.value == 64 and params.batch_timeout_micros.value == 2000
    assert params.num_batch_threads.value >= 1 and params.max_enqueued_batches.value >= 1
    args = build_parser().parse_args(["serve", "--base-path", "x", "--enable-batching"])
    assert (args.max_batch_size, args.batch_timeout_micros) == (64, 2000)
    assert args.max_enqueued_batches == params.max_enqueued_batches.value
    with pytest.raises(text_format.ParseError):
        text_format.Parse("max_batch_size: 64", BatchingParameters())  # wrapper needs { value: }
    with pytest.raises(text_format.ParseError):
        text_format.Parse("max_batch_size { value: 64 } max_batch_sise { value: 1 }", BatchingParameters())


def test_local_server_rejects_what_tf_serving_rejects(tmp_path):
    path = tmp_path / "b.txt"
    path.write_text("max_batch_size: 64\n")  # accepted by a lenient reader; TF Serving's parser says Expected "{"
    with pytest.raises(ValueError, match="TF Serving would reject it"):
        read_batching_parameters(path)
    path.write_text("max_batch_size { value: 16 }\nallowed_batch_sizes: 8\nallowed_batch_sizes: 16\n")
    options, threads, ignored = read_batching_parameters(path)
    assert (options.max_batch_size, threads, ignored) == (16, None, ["allowed_batch_sizes"])


def test_monitoring_config_is_a_monitoring_config(assets):
    config = text_format.Parse((assets / "monitoring.config").read_text(), MonitoringConfig())
    assert config.prometheus_config.enable and config.prometheus_config.path == "/monitoring/prometheus/metrics"
    assert read_monitoring_config(assets / "monitoring.config") == "/monitoring/prometheus/metrics"


def test_docker_compose_runs_official_image_with_config(assets):
    compose = yaml.safe_load((assets / "docker-compose.yml").read_text())
    service = compose["services"]["tf-serving"]
    assert re.fullmatch(r"tensorflow/serving:\$\{TF_SERVING_VERSION:-2\.\d+\.\d+\}", service["image"])
    assert {p.split(":", 1)[1] for p in service["ports"]} == {"8500:8500", "8501:8501"}
    flags = dict(f.lstrip("-").split("=", 1) for f in service["command"])
    assert flags["model_config_file"] == "/config/models.config"
    assert flags["enable_batching"] == "true"
    assert flags["batching_parameters_file"] == "/config/batching_parameters.txt"
    assert int(flags["file_system_poll_wait_seconds"]) >= 1
    assert flags["monitoring_config_file"] == "/config/monitoring.config"
    mounts = {target: source for source, target, mode in (v.rsplit(":", 2) for v in service["volumes"])}
    assert mounts["/models/mmoe"].endswith("/mmoe")
    for target, source in mounts.items():
        if target.startswith("/config/"):
            assert (assets / source).is_file() and target.endswith(source.rsplit("/", 1)[-1])


def test_docs_show_docker_run_and_curl(repo_root):
    text = (repo_root / "docs" / "serving.md").read_text()
    assert "## Serving in production" in text
    assert re.search(r"docker run .*tensorflow/serving:2\.\d+", text.replace("\\\n", " "))
    curl = re.search(r"curl .*:predict.*-d '(\{.*\})'", text)
    assert curl, "no curl :predict example"
    assert "instances" in curl.group(1)
