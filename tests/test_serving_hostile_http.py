"""Hostile clients against the REST API's HTTP layer (``serving.http_server``), over raw loopback sockets.

Each test is one attack from the hardening issue, run against a small in-process server whose bounds are scaled
down (``HttpLimits``) so that every case finishes in about a second.
"""

from __future__ import annotations

import asyncio
import json

from serving.http_server import HttpRequest, start_http_server


class _Echo:
    """Answers ``{"method", "path", "body"}``, padded with ``answer_bytes`` spaces; records what it handled."""

    def __init__(self, answer_bytes: int = 0) -> None:
        self.seen: list[HttpRequest] = []
        self.answer_bytes = answer_bytes

    def __call__(self, request: HttpRequest) -> tuple[int, bytes]:
        self.seen.append(request)
        body = {"method": request.method, "path": request.path, "body": request.body.decode("latin-1")}
        return 200, json.dumps(body).encode() + b" " * self.answer_bytes


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed before an answer")
    status = int(status_line.split()[1])
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, value = line.decode().split(":", 1)
        headers[name.strip().lower()] = value.strip()
    return status, headers, await reader.readexactly(int(headers.get("content-length", 0)))


async def _closed(reader: asyncio.StreamReader, timeout: float = 2.0) -> bool:
    """Whether the server closes the connection (reads to the end) within ``timeout`` seconds."""
    try:
        while await asyncio.wait_for(reader.read(1 << 16), timeout):
            pass
    except ConnectionResetError:
        pass
    return True


def _run(scenario, handler=None, seconds: float = 10.0, **limits):
    """Run ``scenario(server, handler)`` against a fresh server with ``limits``; returns its result."""

    async def main():
        echo = handler or _Echo()
        server = await start_http_server(echo, "127.0.0.1", 0, **{"max_body_bytes": 1 << 20, **limits})
        try:
            return await asyncio.wait_for(scenario(server, echo), seconds)
        finally:
            await server.close(timeout=1.0)

    return asyncio.run(main())


async def _send(port: int, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    return reader, writer


GET = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"


def test_chunked_trailers_are_bounded_and_refused_431_without_reaching_the_handler():
    async def scenario(server, echo):
        head = b"POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
        reader, writer = await _send(server.port, head + b"X-Small: 1\r\n\r\n")  # a small trailer is fine
        small = await _read_answer(reader)
        writer.close()
        reader, writer = await _send(server.port, head + b"X-Big: ")
        sent = 0
        try:
            for _ in range(64):  # 4 MiB of one trailer line, in reads; refused long before its end
                writer.write(b"a" * 65536)
                await writer.drain()
                sent += 65536
        except ConnectionError:
            pass
        big = await _read_answer(reader)
        many = b"".join(b"X-T%d: %s\r\n" % (i, b"v" * 40) for i in range(2000))  # 96 KB of trailers in one read
        reader2, writer2 = await _send(server.port, head + many + b"\r\n")
        many_answer = await _read_answer(reader2)
        writer.close()
        writer2.close()
        return small, big, many_answer, sent, [r.path for r in echo.seen]

    small, big, many, _, handled = _run(scenario)  # the default limit, 64 KiB
    assert small[0] == 200 and json.loads(small[2])["body"] == "abc"
    assert big[0] == 431 and big[1]["connection"] == "close", big
    assert many[0] == 431 and "trailers longer than 65536 bytes" in json.loads(many[2])["error"]
    assert handled == ["/t"]


def test_a_client_that_never_reads_its_answers_is_paused_then_closed():
    body = b"b" * (256 << 10)
    request = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    async def scenario(server, echo):
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)

        async def flood():  # 40 pipelined requests (10 MiB), answers never read
            try:
                for _ in range(40):
                    writer.write(request)
                    await writer.drain()
            except ConnectionError:
                pass

        flooding = asyncio.ensure_future(flood())
        await asyncio.sleep(0.6)
        held = server.pending_bytes()
        handled = len(echo.seen)
        for _ in range(40):  # the connection is closed once idle_timeout passes without the client reading
            if not server.connections:
                break
            await asyncio.sleep(0.1)
        closed = not server.connections
        flooding.cancel()
        writer.close()
        return held, handled, closed

    held, handled, closed = _run(
        scenario, _Echo(answer_bytes=1 << 20), max_pending_bytes=512 << 10, idle_timeout=1.0, max_queued_requests=64
    )
    # the queued requests stay under the cap (plus one read); answers the client never takes stop the reading
    assert held < (512 << 10) + (1 << 20) + (256 << 10), held
    assert handled < 40 and closed


def test_slow_heads_and_bodies_get_408_and_are_closed():
    async def scenario(server, echo):
        async def slowloris():
            reader, writer = await _send(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            answer = asyncio.ensure_future(_read_answer(reader))
            for _ in range(100):  # a byte every 50 ms: never finishes the head
                await asyncio.sleep(0.05)
                if answer.done():
                    break
                writer.write(b"a")
            writer.close()
            return await answer

        answers = await asyncio.gather(*(slowloris() for _ in range(20)))
        reader, writer = await _send(server.port, b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        slow_body = await _read_answer(reader)
        writer.close()
        # a request that is simply slow to start is idle time, not a head: an idle connection is closed quietly
        reader, writer = await _send(server.port, b"")
        quiet = await asyncio.wait_for(reader.read(), 3.0)
        return answers, slow_body, quiet, len(server.connections)

    answers, slow_body, quiet, left = _run(scenario, head_timeout=0.3, body_timeout=0.3, idle_timeout=0.5)
    assert {a[0] for a in answers} == {408} and "head not received within 0.3 s" in json.loads(answers[0][2])["error"]
    assert slow_body[0] == 408 and "body not received within 0.3 s" in json.loads(slow_body[2])["error"]
    assert quiet == b"" and left == 0


def test_upgrade_requests_get_one_answer_each_and_keep_their_bodies():
    async def scenario(server, echo):
        websocket = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        h2c = b"POST /h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        h2c += b"HTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 4\r\n\r\nbody"
        chunked = b"POST /c HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\n"
        chunked += b"Transfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n"
        reader, writer = await _send(server.port, websocket + GET + h2c + GET + chunked + GET)
        answers = [await _read_answer(reader) for _ in range(6)]
        writer.write(GET)  # still open, still in step
        answers.append(await _read_answer(reader))
        writer.close()
        reader, writer = await _send(server.port, b"CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n")
        connect = await _read_answer(reader)
        writer.close()
        return answers, connect

    answers, connect = _run(scenario)
    assert [a[0] for a in answers] == [200] * 7
    bodies = [(json.loads(a[2])["path"], json.loads(a[2])["body"]) for a in answers]
    expected = [("/ws", ""), ("/next", ""), ("/h2c", "body"), ("/next", ""), ("/c", "hello"), ("/next", "")]
    assert bodies == [*expected, ("/next", "")]
    assert connect[0] == 405


def test_the_head_limit_counts_every_byte_even_in_one_read():
    async def scenario(server, echo):
        out = []
        for count in (1000, 10_000):  # 12 bytes a header: ≈ 12 KB (accepted) and ≈ 119 KB (refused), in one send
            headers = b"".join(b"X-%05d: v\r\n" % i for i in range(count))
            reader, writer = await _send(server.port, b"GET /h HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
            out.append((await _read_answer(reader))[0])
            writer.close()
        return out

    assert _run(scenario) == [200, 431]  # the default limit, 64 KiB


def test_host_is_required_once_on_http_11_and_unknown_transfer_codings_are_501():
    cases = {
        "no host": b"GET / HTTP/1.1\r\n\r\n",
        "two hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "http/1.0 without host": b"GET / HTTP/1.0\r\n\r\n",
        "gzip, chunked": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "gzip": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc",
    }

    async def scenario(server, echo):
        out = {}
        for name, data in cases.items():
            reader, writer = await _send(server.port, data)
            status, _, _ = await _read_answer(reader)
            out[name] = (status, status == 200 or await _closed(reader))
            writer.close()
        return out, len(echo.seen)

    out, handled = _run(scenario)
    assert out == {
        "no host": (400, True),
        "two hosts": (400, True),
        "http/1.0 without host": (200, True),
        "gzip, chunked": (501, True),
        "gzip": (501, True),
    }
    assert handled == 1


def test_connections_past_the_cap_get_503_and_the_cap_frees_up():
    async def scenario(server, echo):
        held = []
        for _ in range(3):
            reader, writer = await _send(server.port, GET)
            await _read_answer(reader)
            held.append(writer)
        reader, writer = await _send(server.port, GET)  # its request sent at once: answered, not reset
        refused = await _read_answer(reader)
        closed = await _closed(reader)
        writer.close()
        held.pop().close()
        await asyncio.sleep(0.1)
        reader, writer = await _send(server.port, GET)
        again = await _read_answer(reader)
        for w in [*held, writer]:
            w.close()
        return refused, closed, again

    refused, closed, again = _run(scenario, max_connections=3)
    assert refused[0] == 503 and "limit of 3 connections" in json.loads(refused[2])["error"] and closed
    assert again[0] == 200


def test_a_refused_client_that_never_reads_is_closed_too():
    async def scenario(server, echo):
        # answers pile up unread, then a malformed request is refused: its 400 cannot be written either
        _, writer = await _send(server.port, GET * 8 + b"NOT HTTP\r\n\r\n")
        for _ in range(40):
            if not server.connections:
                break
            await asyncio.sleep(0.1)
        writer.close()
        return len(echo.seen), not server.connections

    handled, closed = _run(scenario, _Echo(answer_bytes=4 << 20), idle_timeout=1.0)
    assert handled < 8 and closed
