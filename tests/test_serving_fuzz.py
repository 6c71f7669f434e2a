"""Property-based fuzzing of the REST API's request framing (``serving.http_server``) with ``hypothesis``.

Random pipelined requests (methods, paths, headers, Content-Length or chunked bodies with random chunk sizes and
trailers), optionally ending in a malformed one, are cut at random points into separate writes on one connection.
The server must answer each well-formed request exactly once, in order, with what it sent; answer the malformed one
4xx (501 for an unknown transfer coding) and close; and go on serving other connections. Small by design (a few
seconds in the suite); raise ``FUZZ_EXAMPLES`` to search longer.
"""

from __future__ import annotations

import asyncio
import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.http_server import HttpRequest, start_http_server

MAX_BODY = 4096
MAX_HEAD = 2048
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))

TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=1, max_size=12)
VALUE = st.text("abcdefghijklmnopqrstuvwxyz0123456789 ,;=/-_.~", max_size=30).map(str.strip)
PATH = st.lists(st.text("abcdefghijklmnopqrstuvwxyz0123456789:%-._", min_size=1, max_size=10), max_size=4).map(
    lambda parts: "/" + "/".join(parts)
)
RESERVED = {"host", "content-length", "transfer-encoding", "connection", "expect", "upgrade", "te", "trailer"}


@st.composite
def requests(draw, last: bool) -> tuple[bytes, dict]:
    """One well-formed request and the answer the echo handler must give it."""
    method = draw(st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE"]))
    path = draw(PATH)
    query = draw(st.sampled_from(["", "?a=1", "?x=%20&y"]))
    headers = [(n, v) for n, v in draw(st.lists(st.tuples(TOKEN, VALUE), max_size=6)) if n.lower() not in RESERVED]
    body = draw(st.binary(max_size=300)) if method in ("POST", "PUT") else b""
    head = f"{method} {path}{query} HTTP/1.1\r\nHost: fuzz\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers)
    if last:
        head += "Connection: close\r\n"
    if body and draw(st.booleans()):  # chunked, random chunk sizes, maybe trailers
        cuts = sorted(draw(st.lists(st.integers(1, len(body)), max_size=5, unique=True)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True) if b > a]
        data = head.encode() + b"Transfer-Encoding: chunked\r\n\r\n"
        data += b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n"
        data += b"".join(f"{n}: {v}\r\n".encode() for n, v in draw(st.lists(st.tuples(TOKEN, VALUE), max_size=2)))
        data += b"\r\n"
    else:
        data = head.encode() + (f"Content-Length: {len(body)}\r\n" if body or method == "POST" else "").encode()
        data += b"\r\n" + body
    return data, {"method": method, "path": path, "body": body.hex()}


MALFORMED = st.sampled_from(
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1\r\na\r\n0\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1), 413),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * MAX_HEAD + b"\r\n\r\n", 431),
        # past both the URL limit and (MAX_HEAD < 8,190) the head limit: whichever a read crosses first
        (b"GET /" + b"u" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", (414, 431)),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),  # a TLS ClientHello
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
    ]
)


def _echo(request: HttpRequest) -> tuple[int, bytes]:
    return 200, json.dumps({"method": request.method, "path": request.path, "body": request.body.hex()}).encode()


def _parse_answers(stream: bytes, methods: list[str]) -> list[tuple[int, bytes]]:
    """Split a response stream into (status, body) pairs; HEAD answers carry no body. Fails on stray bytes."""
    answers = []
    while stream:
        head, sep, stream = stream.partition(b"\r\n\r\n")
        assert sep, f"a truncated answer: {head[:200]!r}"
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = next(int(v) for n, _, v in (ln.partition(b":") for ln in lines[1:]) if n.lower() == b"content-length")
        is_head = len(answers) < len(methods) and methods[len(answers)] == "HEAD" and status == 200
        body, stream = (b"", stream) if is_head else (stream[:length], stream[length:])
        answers.append((status, body))
    return answers


async def _exchange(port: int, data: bytes, cuts: list[int]) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):
            writer.write(data[a:b])
            await writer.drain()
            await asyncio.sleep(0)
    except ConnectionError:  # refused and closed while the rest was still being sent
        pass
    received = b""
    try:
        while chunk := await reader.read(1 << 16):
            received += chunk
    except ConnectionResetError:
        pass
    writer.close()
    return received


@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(data=st.data())
def test_pipelined_requests_split_across_reads_are_answered_exactly_once(data):
    count = data.draw(st.integers(1, 4))
    malformed = data.draw(st.none() | MALFORMED)
    wanted = [data.draw(requests(last=(i == count - 1 and malformed is None))) for i in range(count)]
    stream = b"".join(w[0] for w in wanted) + (malformed[0] if malformed else b"")
    cuts = sorted(data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=6, unique=True)))

    async def main():
        server = await start_http_server(
            _echo, "127.0.0.1", 0, max_body_bytes=MAX_BODY, max_head_bytes=MAX_HEAD, idle_timeout=5.0
        )
        try:
            received = await asyncio.wait_for(_exchange(server.port, stream, cuts), 10)
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)  # the server still serves
            writer.write(b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            after = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            return received, after
        finally:
            await server.close(timeout=1.0)

    received, after = asyncio.run(main())
    answers = _parse_answers(received, [w[1]["method"] for w in wanted])
    assert len(answers) == count + (malformed is not None), (answers, stream[:300])
    for (status, body), (_, expected) in zip(answers, wanted, strict=False):
        assert status == 200
        if expected["method"] != "HEAD":
            assert json.loads(body) == expected
    if malformed is not None:
        expected = malformed[1] if isinstance(malformed[1], tuple) else (malformed[1],)
        assert answers[-1][0] in expected, (answers[-1], malformed[0][:100])
    assert after.startswith(b"HTTP/1.1 200 OK")
