"""Bounded load and robustness tests of the local server (loopback only, no server-side batching here).

One server per module (``--base-path`` mode, polling every 0.3 s) on a private copy of the session's export.
Covers: concurrent clients get correct answers, a burst of malformed requests leaves it serving, a version
exported with ``python -m serving export`` (run in-process) is picked up without a restart while requests keep
flowing, and a broken version keeps the old one serving.
"""

import contextlib
import json
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests

from serving import cli
from serving.testing import ServerProcess, to_instances

CLIENTS = 8
REQUESTS_PER_CLIENT = 25
TOL = 1e-6


@pytest.fixture(scope="module")
def served(export, tmp_path_factory):
    base = tmp_path_factory.mktemp("serving-load") / "base"
    shutil.copytree(export.version_dir, base / "mmoe" / "1")
    # the standard asyncio loop here; the contract tests' server runs on the default (uvloop)
    args = ["--base-path", str(base), "--model-name", "mmoe", "--poll-seconds", "0.3", "--event-loop", "asyncio"]
    with ServerProcess(args) as server:
        assert any("(asyncio event loop)" in line for line in server.lines), server.lines[-5:]
        yield server, base
        assert server.alive(), "\n".join(server.lines[-20:])


def _check(session: requests.Session, url: str, export, start: int, size: int) -> str | None:
    """One well-formed predict; returns a failure description or None."""
    resp = session.post(
        url, data=json.dumps({"instances": to_instances(export.samples.iloc[start : start + size])}), timeout=30
    )
    if resp.status_code != 200:
        return f"{resp.status_code}: {resp.text[:200]}"
    got = np.array([p["click"] for p in resp.json()["predictions"]], dtype=np.float32)
    want = export.expected["click"].to_numpy()[start : start + size]
    if got.shape != want.shape or np.max(np.abs(got - want)) > TOL:
        return f"wrong answer for rows {start}:{start + size}"
    return None


def test_concurrent_clients_all_correct(served, export):
    server, _ = served
    url = f"{server.url}/v1/models/mmoe:predict"

    def client(seed: int) -> list[str]:
        rng = np.random.default_rng(seed)
        failures = []
        with requests.Session() as session:
            for _ in range(REQUESTS_PER_CLIENT):
                size = int(rng.integers(1, 17))
                start = int(rng.integers(0, len(export.samples) - size))
                failure = _check(session, url, export, start, size)
                if failure:
                    failures.append(failure)
        return failures

    with ThreadPoolExecutor(CLIENTS) as pool:
        failures = [f for fs in pool.map(client, range(CLIENTS)) for f in fs]
    assert failures == []


MALFORMED = [
    b'{"instances": [',
    b"\xff\xfe not utf-8",
    b'{"instances": [{"price": "x", "device": "a", "category": 1}]}',
    b'{"instances": [{"price": 1.0, "device": "a", "category": 1.5}]}',
    b'{"instances": [{"price": 1.0}], "inputs": {}}',
    b'{"inputs": {"price": [[1.0], [2.0, 3.0]], "device": ["a"], "category": [1]}}',
    b'{"instances": [{"price": 1.0, "device": "a", "category": 1, "x": 2}]}',
    b"[" * 5000 + b"]" * 5000,
    b'{"instances": [{"price": 1.0, "device": {"b64": 5}, "category": 1}]}',
    b'{"signature_name": "__saved_model_init_op", "instances": [1]}',
]


def test_burst_of_malformed_requests_keeps_serving(served, export):
    server, _ = served
    url = f"{server.url}/v1/models/mmoe:predict"

    def send(i: int) -> int:
        return requests.post(url, data=MALFORMED[i % len(MALFORMED)], timeout=30).status_code

    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(send, range(60)))
    assert set(codes) == {400}, codes
    for garbage in (b"GARBAGE\r\n\r\n", b"POST /v1/models/mmoe:predict HTTP/1.1\r\nContent-Length: 99999\r\n\r\n{"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(garbage)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(10)
            with contextlib.suppress(TimeoutError, ConnectionResetError):
                sock.recv(1024)
    assert server.alive()
    with requests.Session() as session:
        assert _check(session, url, export, 0, 8) is None


def _wait_status(url: str, predicate, timeout: float = 90.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = requests.get(url, timeout=10).json().get("model_version_status")
        if status and predicate(status):
            return status
        time.sleep(0.2)
    raise AssertionError(f"status never reached the expected state: {status}")


def test_new_version_picked_up_while_serving_and_broken_version_ignored(served, export, tmp_path, capsys):
    server, base = served
    model_url = f"{server.url}/v1/models/mmoe"
    stop, failures, count = threading.Event(), [], [0]

    def traffic() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                failure = _check(session, f"{model_url}:predict", export, count[0] % 40, 4)
                if failure:
                    failures.append(failure)
                count[0] += 1

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        csv = tmp_path / "rows.csv"
        export.samples.iloc[:16].to_csv(csv, index=False)
        # `python -m serving export ...`, run in-process (this process already has TensorFlow loaded)
        args = ["export", "--model", str(export.keras_path), "--base-path", str(base), "--model-name", "mmoe"]
        args += ["--score-weights", "click=1,satisfaction=2", "--warmup-data", str(csv)]
        assert cli.main(args) == 0
        assert f"exported mmoe version 2 to {base / 'mmoe' / '2'}" in capsys.readouterr().out
        info = json.loads((base / "mmoe" / "2" / "assets.extra" / "export_info.json").read_text())
        assert info["version"] == 2 and info["score_weights"] == {"click": 1.0, "satisfaction": 2.0}
        assert not [p for p in (base / "mmoe").iterdir() if p.name.startswith(".tmp-")]
        # Version 2 becomes AVAILABLE before version 1 is unloaded (as in TF Serving): wait for both transitions.
        swapped = [("2", "AVAILABLE"), ("1", "END")]
        status = _wait_status(model_url, lambda s: [(v["version"], v["state"]) for v in s] == swapped)
        assert [(s["version"], s["state"]) for s in status] == swapped
        assert requests.get(f"{model_url}/metadata", timeout=10).json()["model_spec"]["version"] == "2"
        server.wait_for("serving mmoe version 2", 10)

        broken = base / "mmoe" / ".tmp-broken"
        broken.mkdir()
        (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
        broken.rename(base / "mmoe" / "3")
        server.wait_for("model mmoe version 3 END", 60)
        three = requests.get(f"{model_url}/versions/3", timeout=10).json()["model_version_status"][0]
        assert three["state"] == "END" and three["status"]["error_code"] != "OK"
        assert requests.get(f"{model_url}/metadata", timeout=10).json()["model_spec"]["version"] == "2"
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(30)
    assert failures == [] and count[0] > 0
    with requests.Session() as session:
        assert _check(session, f"{model_url}:predict", export, 10, 16) is None
