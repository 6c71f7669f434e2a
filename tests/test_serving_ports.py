"""Free ports: ``--port 0`` / ``--grpc-port 0`` bind ports the OS picks, the server prints both on one line
(``ports rest=N grpc=M``), and a taken port fails at once with a one-line error naming it."""

import socket
import subprocess
import sys

import grpc
import pytest
import requests
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

from serving.testing import MODEL_NAME, REPO_ROOT, ServerProcess


@pytest.fixture()
def taken_port():
    """A loopback port held by a listening socket for the test's duration."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _serve(export, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "serving", "serve", "--base-path", str(export.base_path), "--model-name", MODEL_NAME]
    env = {"PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120, env=env, cwd=REPO_ROOT)


def test_free_ports_are_printed_and_answer(export, taken_port):
    with ServerProcess(["--base-path", str(export.base_path), "--model-name", MODEL_NAME]) as server:
        assert "--port" in server.args and server.args[server.args.index("--port") + 1] == "0"
        line = next(line for line in server.lines if line.startswith("ports "))
        rest, grpc_port = server.bound_ports()
        assert line == f"ports rest={rest} grpc={grpc_port}"
        assert taken_port not in (rest, grpc_port) and rest != grpc_port and min(rest, grpc_port) > 0
        status = requests.get(f"{server.url}/v1/models/{MODEL_NAME}", timeout=10).json()
        assert status["model_version_status"][0]["state"] == "AVAILABLE"
        with grpc.insecure_channel(server.grpc_target) as channel:
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = MODEL_NAME
            answer = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
        assert answer.model_version_status[0].state == get_model_status_pb2.ModelVersionStatus.AVAILABLE


def test_no_grpc_prints_off(export):
    with ServerProcess(["--base-path", str(export.base_path), "--model-name", MODEL_NAME, "--no-grpc"]) as server:
        assert server.grpc_target is None
        assert any(line == f"ports rest={server.port} grpc=off" for line in server.lines)


@pytest.mark.parametrize("flag", ["--grpc-port", "--port"])
def test_taken_port_fails_with_one_line_error(export, taken_port, flag):
    other = "--port" if flag == "--grpc-port" else "--grpc-port"
    result = _serve(export, flag, str(taken_port), other, "0")
    assert result.returncode == 1, result.stdout + result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and str(taken_port) in error[0], result.stderr
    assert "Traceback" not in result.stderr


def test_port_out_of_range_is_a_usage_error(export):
    result = _serve(export, "--port", "70000")
    assert result.returncode == 2 and "must be a TCP port 0..65535" in result.stderr
