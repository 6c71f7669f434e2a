"""The REST API's HTTP/1.1 layer (``serving.http_server``), driven over raw sockets."""

from __future__ import annotations

import asyncio
import json

import pytest

from serving.http_server import HttpLimits, HttpRequest, Reply, start_http_server

MAX_URL_BYTES = HttpLimits().max_url_bytes

LIMIT = 1000


class _Recorder:
    """A handler that answers with what it saw; a body ``{"sleep": s}`` delays the answer by ``s`` seconds."""

    def __init__(self) -> None:
        self.seen: list[HttpRequest] = []

    async def __call__(self, request: HttpRequest) -> tuple[int, bytes]:
        self.seen.append(request)
        if request.body.startswith(b"{"):
            await asyncio.sleep(json.loads(request.body).get("sleep", 0))
        answer = {"method": request.method, "path": request.path, "body": request.body.decode()}
        return 200, json.dumps(answer).encode()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP answer: status, headers (lower-case names), body (by Content-Length)."""
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, value = line.decode().split(":", 1)
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", 0))) if status != 100 else b""
    return status, headers, body


def _post(path: str, body: bytes, extra: str = "", method: str = "POST") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


async def _exchange(port: int, *steps: tuple[bytes, int]) -> list[tuple[int, dict[str, str], bytes]]:
    """On one connection, for each ``(data, count)``: write ``data``, then read ``count`` answers; all answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answers = []
    for data, count in steps:
        writer.write(data)
        answers += [await _read_answer(reader) for _ in range(count)]
    writer.close()
    return answers


def _run(scenario, handler=None, idle_timeout=75.0):
    """Run ``scenario(port, handler)`` against a fresh server; returns its result."""

    async def main():
        recorder = handler or _Recorder()
        server = await start_http_server(recorder, "127.0.0.1", 0, max_body_bytes=LIMIT, idle_timeout=idle_timeout)
        try:
            return await asyncio.wait_for(scenario(server, recorder), 10)
        finally:
            await server.close(timeout=1.0)

    return asyncio.run(main())


def test_keep_alive_pipelining_and_paths():
    async def scenario(server, recorder):
        # three pipelined requests in one write (the first answers last if not kept in order), then one more on the
        # connection, which stays open
        pipelined = _post("/v1/models/a%20b:predict?x=1", b'{"sleep": 0.2}') + _get("/second")
        pipelined += _post("/third", b'{"sleep": 0}')
        return await _exchange(server.port, (pipelined, 3), (_get("/again"), 1))

    answers = _run(scenario)
    # the path is handed over as sent (percent-encoded), without the query
    assert [json.loads(a[2])["path"] for a in answers] == ["/v1/models/a%20b:predict", "/second", "/third", "/again"]
    assert all(a[0] == 200 and a[1]["content-type"] == "application/json" for a in answers)
    assert all("connection" not in a[1] for a in answers)
    assert json.loads(answers[0][2]) == {"method": "POST", "path": "/v1/models/a%20b:predict", "body": '{"sleep": 0.2}'}


class _NoCoroutineHandler:
    """Answers ``GET`` at once (a tuple), ``POST`` through a future set ``{"sleep": s}`` seconds later (a body
    ``{"fail": true}`` fails it), and ``PUT`` through a :class:`Reply` sent ``{"sleep": s}`` seconds later, as
    :class:`serving.rest_api.RestApi` does."""

    def __call__(self, request: HttpRequest):
        answer = {"method": request.method, "path": request.path}
        if request.method == "GET":
            return 200, json.dumps(answer).encode()
        body = json.loads(request.body)
        if request.method == "PUT":
            reply = Reply()
            asyncio.get_running_loop().call_later(body["sleep"], reply.send, 202, json.dumps(answer).encode())
            return reply
        future = asyncio.get_running_loop().create_future()
        if body.get("fail"):
            future.set_exception(RuntimeError("boom"))
        else:
            asyncio.get_running_loop().call_later(body["sleep"], future.set_result, (201, json.dumps(answer).encode()))
        return future


def test_handlers_answering_at_once_or_through_a_future_keep_pipelined_order():
    async def scenario(server, recorder):
        pipelined = (
            _post("/slow", b'{"sleep": 0.2}')
            + _get("/now")
            + _post("/fast", b'{"sleep": 0}')
            + _post("/fail", b'{"fail": true}')
            + _post("/reply", b'{"sleep": 0.1}', method="PUT")
            + _post("/reply-now", b'{"sleep": 0}', method="PUT")
            + _get("/after") * 40  # answered at once, one after the other
        )
        return await _exchange(server.port, (pipelined, 46))

    answers = _run(scenario, handler=_NoCoroutineHandler())
    assert [a[0] for a in answers[:6]] == [201, 200, 201, 500, 202, 202]
    assert [json.loads(a[2])["path"] for a in answers[:3]] == ["/slow", "/now", "/fast"]
    assert json.loads(answers[3][2]) == {"error": "Internal error: RuntimeError"}
    assert [json.loads(a[2])["path"] for a in answers[4:6]] == ["/reply", "/reply-now"]
    assert [json.loads(a[2])["path"] for a in answers[6:]] == ["/after"] * 40


def test_http_10_closes_unless_asked_to_keep_alive_and_connection_close_is_honoured():
    async def scenario(server, recorder):
        out = []
        for request in (
            b"GET /a HTTP/1.0\r\n\r\n",
            b"GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(request)
            status, headers, _ = await _read_answer(reader)
            closed = (
                await asyncio.wait_for(reader.read(), 0.5) == b"" if "close" in headers.get("connection", "") else None
            )
            out.append((status, headers.get("connection"), closed))
            writer.close()
        return out

    assert _run(scenario) == [(200, "close", True), (200, "keep-alive", None), (200, "close", True)]


def test_chunked_bodies_and_expect_100_continue():
    async def scenario(server, recorder):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        head = b"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        writer.write(head + b"5\r\nhello\r\n")
        await asyncio.sleep(0.05)  # the body arrives in pieces
        writer.write(b"6\r\n world\r\n0\r\n\r\n")
        chunked = await _read_answer(reader)
        writer.write(b"POST /expect HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        interim = await _read_answer(reader)  # sent before the body, which the client holds back until then
        writer.write(b"body")
        final = await _read_answer(reader)
        writer.close()
        return chunked, interim, final

    chunked, interim, final = _run(scenario)
    assert json.loads(chunked[2])["body"] == "hello world"
    assert interim[0] == 100
    assert final[0] == 200 and json.loads(final[2])["body"] == "body"


@pytest.mark.parametrize("how", ["content-length", "chunked", "expect"])
def test_a_body_over_the_limit_is_refused_with_413_before_the_handler_runs(how):
    big = b"x" * (LIMIT + 1)

    async def scenario(server, recorder):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        if how == "content-length":
            writer.write(_post("/big", big))
        elif how == "expect":  # refused at once: no 100 Continue, the body is never sent
            writer.write(
                f"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: {len(big)}\r\nExpect: 100-continue\r\n\r\n".encode()
            )
        else:
            writer.write(b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(3):
                writer.write(b"190\r\n" + b"y" * 400 + b"\r\n")
                await asyncio.sleep(0.01)
        answer = await _read_answer(reader)
        rest = await asyncio.wait_for(reader.read(), 1.0)
        writer.close()
        return answer, rest, len(recorder.seen)

    (status, headers, body), rest, handled = _run(scenario)
    assert status == 413 and headers["connection"] == "close"
    assert json.loads(body) == {"error": f"Request body is larger than the limit of {LIMIT} bytes"}
    assert rest == b"" and handled == 0


def test_malformed_requests_get_400_after_earlier_pipelined_answers_and_the_connection_closes():
    async def scenario(server, recorder):
        out = []
        for garbage in (b"NOT-HTTP\r\n\r\n", b"GET /" + b"u" * (MAX_URL_BYTES + 10) + b" HTTP/1.1\r\n\r\n"):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(_post("/first", b'{"sleep": 0.05}') + garbage + _get("/never"))
            first = await _read_answer(reader)
            second = await _read_answer(reader)
            out.append(
                (first[0], second[0], json.loads(second[2])["error"], await asyncio.wait_for(reader.read(), 1.0))
            )
            writer.close()
        return out, [r.path for r in recorder.seen]

    out, paths = _run(scenario)
    assert [o[:2] for o in out] == [(200, 400), (200, 414)]
    assert out[0][2].startswith("Malformed request: ") and "URL longer than 8190 bytes" in out[1][2]
    assert [o[3] for o in out] == [b"", b""] and paths == ["/first", "/first"]


def test_head_is_answered_without_a_body_and_the_connection_stays_usable():
    async def scenario(server, recorder):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n\r\n")
        status_line = await reader.readline()
        head = []
        while (line := await reader.readline()) != b"\r\n":
            head.append(line)
        get = await _read_answer(reader)  # would fail to parse if HEAD's answer carried a body
        writer.close()
        return status_line, head, get

    status_line, head, get = _run(scenario)
    assert status_line.startswith(b"HTTP/1.1 200") and any(h.lower().startswith(b"content-length: ") for h in head)
    assert get[0] == 200 and json.loads(get[2])["path"] == "/g"


def test_a_client_leaving_mid_request_does_not_disturb_the_others_and_close_waits_for_answers():
    async def scenario(server, recorder):
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(_post("/gone", b'{"sleep": 0.2}'))
        await asyncio.sleep(0.05)
        writer.close()  # gone before its answer
        reader2, writer2 = await asyncio.open_connection("127.0.0.1", server.port)
        writer2.write(_post("/slow", b'{"sleep": 0.3}'))
        await asyncio.sleep(0.05)
        closing = asyncio.ensure_future(server.close(timeout=2.0))  # in flight: answered, then closed
        answer = await _read_answer(reader2)
        await closing
        refused = None
        try:
            await asyncio.open_connection("127.0.0.1", server.port)
        except OSError as err:
            refused = type(err).__name__
        return answer, await asyncio.wait_for(reader2.read(), 1.0), refused

    answer, rest, refused = _run(scenario)
    assert answer[0] == 200 and json.loads(answer[2])["path"] == "/slow" and answer[1]["connection"] == "close"
    assert rest == b"" and refused == "ConnectionRefusedError"


def test_handler_errors_answer_500_and_bad_arguments_are_refused():
    async def failing(request: HttpRequest) -> tuple[int, bytes]:
        raise RuntimeError("boom")

    async def scenario(server, recorder):
        return (await _exchange(server.port, (_get("/x"), 1)))[0]

    status, _, body = _run(scenario, handler=failing)
    assert status == 500 and json.loads(body) == {"error": "Internal error: RuntimeError"}
    with pytest.raises(ValueError, match="field 'max_body_bytes' must be >= 1, got 0"):
        asyncio.run(start_http_server(failing, "127.0.0.1", 0, max_body_bytes=0))
    with pytest.raises(ValueError, match="field 'idle_timeout' must be > 0, got 0"):
        asyncio.run(start_http_server(failing, "127.0.0.1", 0, max_body_bytes=1, idle_timeout=0))


def test_idle_keep_alive_connections_are_closed_and_busy_ones_are_not():
    async def scenario(server, recorder):
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", server.port)
        idle_writer.write(_get("/a"))
        await _read_answer(idle_reader)
        busy_reader, busy_writer = await asyncio.open_connection("127.0.0.1", server.port)
        busy_writer.write(_post("/slow", b'{"sleep": 0.6}'))  # longer than the idle timeout, but in flight
        closed = await asyncio.wait_for(idle_reader.read(), 1.0)
        slow = await _read_answer(busy_reader)
        idle_writer.close()
        busy_writer.close()
        return closed, slow

    closed, slow = _run(scenario, idle_timeout=0.2)
    assert closed == b""
    assert slow[0] == 200 and json.loads(slow[2])["path"] == "/slow"
