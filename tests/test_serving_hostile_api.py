"""Hostile requests against the REST API's routing and decoding (``serving.rest_api.RestApi``), over raw sockets.

The real :class:`RestApi` and HTTP layer run in-process over a stand-in model store (no TensorFlow): every client
mistake must be a 4xx naming it, never a 500 with a traceback, and nothing a client sends may forge a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import numpy as np
import pytest

from serving.errors import ServingError, not_found
from serving.inference import Inference
from serving.json_codec import ScalarInstanceReader
from serving.rest_api import RestApi
from serving.server_config import ServerConfig

SIGNATURES = {"serving_default": {"x": "float32"}, "strings": {"s": "string"}}


class _Servable:
    """Stands in for a loaded SavedModel: ``y = 2x``, or the length of each string; records the decoding thread."""

    version = 1
    name = "m"

    def __init__(self) -> None:
        self.metadata = {"signature_def": {s: {"method_name": "tensorflow/serving/predict"} for s in SIGNATURES}}
        self.instance_readers = {s: ScalarInstanceReader(d) for s, d in SIGNATURES.items()}
        self.decoded_in: list[str] = []

    def signature_inputs(self, signature_name):
        self.decoded_in.append(threading.current_thread().name)
        if signature_name not in SIGNATURES:
            raise ServingError("INVALID_ARGUMENT", f'Serving signature name: "{signature_name}" not found')
        return SIGNATURES[signature_name]

    def check_shapes(self, signature_name, inputs):
        pass

    def run(self, signature_name, inputs, validate=True):
        if "s" in inputs:
            return {"y": np.array([len(v) for v in inputs["s"]], np.int64)}
        if (inputs["x"] < 0).any():
            raise RuntimeError("boom\nFORGED log line")
        return {"y": inputs["x"] * 2}


class _Store:
    def __init__(self) -> None:
        self.servable = _Servable()

    def resolve(self, name, version=None, label=None):
        if name != "m" or version not in (None, 1) or label not in (None, "stable"):
            raise not_found(f"Servable not found for request: Latest({name})")
        return self.servable

    def status(self, name, version=None, label=None):
        self.resolve(name, version, label)
        return [{"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]


async def _ask(port: int, request: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    if request.startswith(b"HEAD"):  # no body may follow the head
        try:
            body = await asyncio.wait_for(reader.read(1), 0.2)
        except TimeoutError:
            body = b""
    else:
        body = await reader.readexactly(length)
    writer.close()
    return status, body


def _post(path: str, body: bytes) -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body)


def _get(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def _serve(requests: dict[str, bytes]) -> tuple[dict[str, tuple[int, bytes]], _Store]:
    """Each request on its own connection to a fresh server; the answers by key."""
    from serving.http_server import start_http_server

    async def main():
        store = _Store()
        inference = Inference(num_threads=1)
        api = RestApi(store, ServerConfig(), inference)
        server = await start_http_server(api.handle, "127.0.0.1", 0, max_body_bytes=1 << 24)
        try:
            out = {}
            for key, request in requests.items():
                out[key] = await asyncio.wait_for(_ask(server.port, request), 10)
            return out, store
        finally:
            await server.close(timeout=1.0)
            getattr(api, "close", lambda: None)()
            inference.close()

    return asyncio.run(main())


NINES = "9" * 4301


def test_malformed_inputs_are_4xx_naming_the_problem_never_500():
    requests = {
        "huge int in body": _post("/v1/models/m:predict", b'{"instances": [%s]}' % NINES.encode()),
        "huge int in version": _get(f"/v1/models/m/versions/{NINES}"),
        "version past int64": _get("/v1/models/m/versions/9223372036854775808"),
        "int past any float": _post("/v1/models/m:predict", b'{"instances": [%s]}' % (b"9" * 400)),
        "lone surrogate": _post("/v1/models/m:predict", b'{"signature_name": "strings", "instances": ["\\ud800"]}'),
        "lone surrogate, named": _post(
            "/v1/models/m:predict", b'{"signature_name": "strings", "instances": [{"s": "\\udfff"}]}'
        ),
        "surrogate signature": _post("/v1/models/m:predict", b'{"signature_name": "\\ud800", "instances": [1]}'),
        "bad percent-encoding": _get("/v1/models/%FF%FE"),
        "deep nesting": _post("/v1/models/m:predict", b'{"instances": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    }
    out, _ = _serve(requests)
    for key, (status, body) in out.items():
        assert 400 <= status < 500, (key, status, body)
        assert "Internal" not in json.loads(body)["error"], (key, body)
    assert "4300 digits" in json.loads(out["huge int in body"][1])["error"]
    assert "lone UTF-16 surrogate" in json.loads(out["lone surrogate"][1])["error"]
    assert "out of range for float32" in json.loads(out["int past any float"][1])["error"]


def test_routing_uses_the_raw_path_ascii_digits_and_nothing_after():
    requests = {
        "encoded slash and colon": _post("/v1/models/m%2Fversions%2F1%3Apredict", b'{"instances": [1.0]}'),
        "encoded slash": _get("/v1/models/m%2Fversions%2F1"),
        "arabic-indic one": _get("/v1/models/m/versions/%D9%A1"),
        "trailing newline": _get("/v1/models/m/versions/1%0A"),
        "trailing newline on the name": _get("/v1/models/m%0A"),
        "plain": _get("/v1/models/m/versions/1"),
        "encoded name": _get("/v1/models/%6D"),  # "m", percent-encoded: decoded after routing
        "predict": _post("/v1/models/m/labels/stable:predict", b'{"instances": [1.5]}'),
    }
    out, _ = _serve(requests)
    # the name is "m/versions/1:predict" (a status URL, which a POST cannot take) and "m/versions/1": not routes into m
    assert out["encoded slash and colon"][0] == 400 and out["encoded slash"][0] == 404
    assert out["arabic-indic one"][0] == 400 and out["trailing newline"][0] == 400
    assert out["trailing newline on the name"][0] == 404
    assert out["plain"][0] == 200 and out["encoded name"][0] == 200
    assert out["predict"] == (200, b'{"predictions":[3.0]}')


def test_head_is_allowed_wherever_get_is_and_answers_without_a_body():
    out, _ = _serve(
        {
            "status": _get("/v1/models/m", "HEAD"),
            "metadata": _get("/v1/models/m/metadata", "HEAD"),
            "predict": _get("/v1/models/m:predict", "HEAD"),
        }
    )
    assert out["status"] == (200, b"") and out["metadata"] == (200, b"")
    assert out["predict"][0] == 400


def test_nothing_a_client_sends_reaches_the_log_unescaped(caplog):
    requests = {
        "forged path": _get(f"/v1/models/mmoe%0AFORGED%0A/versions/{NINES}"),
        "forged name": _get("/v1/models/mmoe%0D%0AFORGED"),
        "internal error": _post("/v1/models/m:predict", b'{"instances": [-1.0]}'),
    }
    with caplog.at_level(logging.INFO, logger="serving"):
        out, _ = _serve(requests)
    assert out["forged path"][0] == 400 and out["forged name"][0] == 404 and out["internal error"][0] == 500
    messages = [record.getMessage() for record in caplog.records]
    assert messages and not [m for m in messages if "\n" in m or "\r" in m], messages
    from serving.errors import log_safe

    assert log_safe("a\nb\x1b[31m\u2028") == "a\\x0ab\\x1b[31m\\u2028"


def test_large_bodies_are_parsed_off_the_event_loop():
    large = b'{"instances": [%s]}' % b", ".join([b"1.5"] * 100_000)  # ≈ 500 KB
    out, store = _serve(
        {"small": _post("/v1/models/m:predict", b'{"instances": [1.5]}'), "large": _post("/v1/models/m:predict", large)}
    )
    assert out["small"] == (200, b'{"predictions":[3.0]}')
    assert json.loads(out["large"][1])["predictions"] == [3.0] * 100_000
    assert store.servable.decoded_in[0] == "MainThread" and store.servable.decoded_in[1].startswith("decode")


@pytest.mark.parametrize("field", ["max_head_bytes", "head_timeout_seconds", "max_connections"])
def test_server_config_refuses_bounds_that_cannot_work(field):
    with pytest.raises(ValueError, match=f"field '{field}' must be"):
        ServerConfig(**{field: 0})


def test_serve_flags_set_the_bounds(monkeypatch, tmp_path, capsys):
    import serving.server
    from serving import cli

    seen = []
    monkeypatch.setattr(serving.server, "main", lambda sources, config: seen.append(config) or 0)
    flags = ["--max-head-bytes", "2048", "--head-timeout-seconds", "2.5", "--body-timeout-seconds", "9"]
    flags += ["--idle-timeout-seconds", "30", "--max-pending-bytes-per-connection", "4096", "--max-connections", "7"]
    assert cli.main(["serve", "--base-path", str(tmp_path), *flags]) == 0
    limits = seen[0].http_limits()
    assert (limits.max_head_bytes, limits.head_timeout, limits.body_timeout, limits.idle_timeout) == (2048, 2.5, 9, 30)
    assert (limits.max_pending_bytes, limits.max_connections) == (4096, 7)
    from serving.http_limits import HttpLimits

    assert cli.main(["serve", "--base-path", str(tmp_path)]) == 0
    assert seen[1].http_limits() == HttpLimits() == ServerConfig().http_limits()  # one set of defaults everywhere
    assert cli.main(["serve", "--base-path", str(tmp_path), "--head-timeout-seconds", "0"]) == 1
    assert "field 'head_timeout_seconds' must be > 0, got 0.0" in capsys.readouterr().err
