"""TF Serving's REST API over a :class:`serving.model_store.ModelStore`: URL routing, request decoding, answers.

Endpoints (paths matched case-insensitively, as TF Serving does):
``GET /v1/models/{name}[/versions/{v}|/labels/{l}]`` (status), ``.../metadata`` (SignatureDefs as proto-JSON),
``POST .../{name}[...]:predict`` (row ``instances`` or columnar ``inputs``), ``:classify``/``:regress`` (answered
with TF Serving's error for predict signatures). Failures answer ``{"error": ...}`` with the contract's HTTP code.

Imports neither ``mmoe_tf`` nor ``data``.

Example:
    >>> api = RestApi(store, ServerConfig(), Inference(num_threads=2))  # doctest: +SKIP
    >>> api.handle(HttpRequest("GET", "/v1/models/mmoe", b""))  # doctest: +SKIP
    (200, b'{"model_version_status":[...]}')
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from serving.batching import BatchSlice
from serving.errors import RequestError, ServingError, log_safe
from serving.http_server import Answer, HttpRequest, Reply
from serving.inference import Inference
from serving.json_codec import decode_request, encode_json, loads_request, one_row_answers, predictions_json
from serving.model_store import DEFAULT_SIGNATURE, ModelStore
from serving.server_config import ServerConfig

log = logging.getLogger("serving")

# Matched against the raw (still percent-encoded) path, whole: an encoded "/" or ":" stays inside the name, a
# version is 1-19 ASCII digits (int64), and nothing may follow (no trailing newline, encoded or not).
URL_PATTERN = re.compile(
    r"/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[0-9]{1,19})|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:predict|:classify|:regress)?",
    re.IGNORECASE | re.ASCII,
)
MAX_VERSION = 2**63 - 1
OFFLOAD_BODY_BYTES = 256 * 1024  # predict bodies larger than this are parsed in a thread, off the event loop
METHOD_NAMES = {":classify": "tensorflow/serving/classify", ":regress": "tensorflow/serving/regress"}


def _json_response(body: Any, status: int = 200) -> tuple[int, bytes]:
    return status, encode_json(body).encode()


class RestApi:
    """The request handlers, bound to a :class:`ModelStore`.

    A request is handled without a coroutine or task of its own: status and metadata are answered at once, a predict
    returns a :class:`serving.http_server.Reply` that the inference future's callback sends (one timer per request
    enforces ``rest_timeout_seconds``). Per request this saves the task, its coroutine and ``asyncio.timeout``
    (``docs/serving.md``).

    Args:
        store: The served models.
        config: Server options.
        inference: Runs predictions (shared with the gRPC API).
    """

    def __init__(self, store: ModelStore, config: ServerConfig, inference: Inference) -> None:
        self.store = store
        self.config = config
        self.inference = inference
        self._decoder: ThreadPoolExecutor | None = None  # parses large bodies off the event loop

    def close(self) -> None:
        """Stop the thread parsing large bodies."""
        if self._decoder is not None:
            self._decoder.shutdown(wait=False, cancel_futures=True)

    def handle(self, request: HttpRequest) -> Answer | Reply:
        """Dispatch by URL and method; every failure becomes ``{"error": ...}`` with its HTTP status.

        Must be called from the running event loop.

        Returns:
            The HTTP status and the JSON body, or (predict) a :class:`serving.http_server.Reply` sending them.
        """
        try:
            return self._dispatch(request)
        except Exception as err:
            return self._error_answer(request, err)

    def _error_answer(self, request: HttpRequest, err: BaseException) -> Answer:
        if isinstance(err, ServingError):
            return _json_response({"error": err.message}, err.http_status)
        # never let a request take the server down; what the client sent is escaped before it reaches the log
        log.error("internal error on %s %s", log_safe(request.method), log_safe(request.path), exc_info=err)
        return _json_response({"error": f"Internal error: {type(err).__name__}: {err}"}, 500)

    def _dispatch(self, request: HttpRequest) -> Answer | Reply:
        match = URL_PATTERN.fullmatch(request.path)
        suffix = (match["suffix"] or "").lower() if match else ""
        reads = suffix in ("", "/metadata")  # status and metadata (GET, or HEAD) vs predict & co. (POST)
        if match is None or request.method not in (("GET", "HEAD") if reads else ("POST",)):
            raise RequestError(f"Malformed request: {request.method} {request.path}")
        name, label = _unquoted(match["name"], "model name"), match["label"] and _unquoted(match["label"], "label")
        version = int(match["version"]) if match["version"] else None
        if version is not None and version > MAX_VERSION:
            raise RequestError(f"Malformed request: version {match['version']} is larger than {MAX_VERSION}")
        if suffix == "":
            return _json_response({"model_version_status": self.store.status(name, version, label)})
        servable = self.store.resolve(name, version, label)
        if suffix == "/metadata":
            return _json_response(
                {
                    "model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
                    "metadata": {"signature_def": servable.metadata},
                }
            )
        if len(request.body) <= OFFLOAD_BODY_BYTES:
            return self._submit(request, *self._decode(servable, suffix, request.body))
        if self._decoder is None:
            self._decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
        reply = Reply()
        decoded = asyncio.get_running_loop().run_in_executor(
            self._decoder, self._decode, servable, suffix, request.body
        )
        decoded.add_done_callback(functools.partial(self._decoded, request, reply))
        return reply

    def _decode(self, servable: Any, suffix: str, body: bytes) -> tuple[Any, str, str, Any]:
        """Parse and check a predict body: ``(servable, signature, format, inputs)``, where format ``example`` means
        one instance of bare scalars made into arrays with its batch."""
        data = loads_request(body)
        signature = data.pop("signature_name", DEFAULT_SIGNATURE)
        if not isinstance(signature, str):
            raise RequestError(f"'signature_name' must be a string; got {signature!r}")
        input_dtypes = servable.signature_inputs(signature)
        if suffix in METHOD_NAMES:
            method = servable.metadata["signature_def"][signature].get("method_name", "")
            if method != METHOD_NAMES[suffix]:
                kind = "classification" if suffix == ":classify" else "regression"
                raise RequestError(f"Expected {kind} signature method_name to be {METHOD_NAMES[suffix]}. Was: {method}")
            raise ServingError("UNIMPLEMENTED", f"{suffix[1:]} with tf.Example inputs is not supported by this server")
        reader = servable.instance_readers.get(signature)
        example = reader.read(data) if reader is not None else None
        if example is not None:  # one instance of bare scalars: checked here, made into arrays with its batch
            return servable, signature, "example", example
        fmt, inputs, _ = decode_request(data, input_dtypes)
        servable.check_shapes(signature, inputs)
        return servable, signature, fmt, inputs

    def _decoded(self, request: HttpRequest, reply: Reply, decoded: asyncio.Future) -> None:
        """Submit a body parsed off the event loop; its answer goes out through ``reply``."""
        if decoded.cancelled():  # the decode thread was stopped: the server is shutting down
            reply.send(*_json_response({"error": "The server is shutting down"}, 503))
            return
        try:
            answer = self._submit(request, *decoded.result())
        except Exception as err:
            answer = self._error_answer(request, err)
        if isinstance(answer, Reply):
            answer.when_sent(lambda sent: reply.send(*sent))
        else:
            reply.send(*answer)

    def _submit(self, request: HttpRequest, servable: Any, signature: str, fmt: str, inputs: Any) -> Reply:
        if fmt == "example":
            fmt, outputs = "row", self.inference.submit_example(servable, signature, inputs)
        else:
            outputs = self.inference.submit(servable, signature, inputs)
        reply = Reply()
        timer = outputs.get_loop().call_later(self.config.rest_timeout_seconds, self._time_out, reply, outputs)
        outputs.add_done_callback(functools.partial(self._predicted, request, fmt, reply, timer))
        return reply

    @staticmethod
    def _time_out(reply: Reply, outputs: asyncio.Future) -> None:
        reply.send(*_json_response({"error": "Request timed out"}, 504))
        outputs.cancel()  # a batch drops this request's slice; a request not yet running is not run

    def _predicted(
        self, request: HttpRequest, fmt: str, reply: Reply, timer: asyncio.TimerHandle, outputs: asyncio.Future
    ) -> None:
        timer.cancel()
        if reply.sent:  # timed out
            return
        if outputs.cancelled():
            reply.send(*_json_response({"error": "The server is shutting down"}, 503))
            return
        err = outputs.exception()
        try:
            answer = self._error_answer(request, err) if err else (200, _answer_body(outputs.result(), fmt))
        except Exception as encode_err:
            answer = self._error_answer(request, encode_err)
        reply.send(*answer)


def _unquoted(part: str, what: str) -> str:
    """A percent-encoded path part, decoded (UTF-8); ``RequestError`` when it is not valid UTF-8."""
    try:
        return urllib.parse.unquote(part, errors="strict")
    except UnicodeDecodeError:
        raise RequestError(f"Malformed request: the {what} is not valid percent-encoded UTF-8") from None


def _answer_body(outputs: dict[str, np.ndarray], fmt: str) -> bytes:
    """The predict answer; a one-instance request of a merged batch takes its row of answers written for the whole
    batch at once (``json_codec.one_row_answers``)."""
    if fmt == "row" and isinstance(outputs, BatchSlice) and outputs.size == 1:
        answers = outputs.per_batch("one_row_answers", one_row_answers)
        if answers is not None:
            return answers[outputs.start]
    return predictions_json(outputs, fmt)
