"""The test backend, tested directly: every mode other tests rely on behaves as documented."""

import http.client
import socket
import time

import pytest

from helpers import (IncompleteResponse, RawConn, http_request, parse_response, raw_request,
                     request_bytes)


def vm_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} missing")


def test_hello_and_name(start_backend):
    b = start_backend("alpha")
    r = http_request("GET", b.url("/anything/else?x=1"))
    assert r.status == 200
    assert r.header("x-backend") == "alpha"
    assert r.header("content-type") == "text/plain"
    assert r.body == b"hello from alpha\n"


@pytest.mark.parametrize("code", [200, 201, 301, 404, 418, 500, 502, 503, 504, 599])
def test_status_with_body(backend, code):
    r = http_request("GET", backend.url(f"/status/{code}"))
    assert r.status == code
    assert r.header("x-backend") == "backend"
    assert r.body == f"status {code}\n".encode()


@pytest.mark.parametrize("code", [204, 304])
def test_status_without_body(backend, code):
    with RawConn(backend.port) as c:
        c.send(request_bytes("GET", f"/status/{code}"))
        r = c.read_response()
        assert r.status == code
        assert r.header("content-length") is None and r.header("transfer-encoding") is None
        # Nothing else may follow: the next response on the connection starts cleanly.
        c.send(request_bytes("GET", "/"))
        assert c.read_response().body == b"hello from backend\n"


def test_status_interim_then_final(backend):
    with RawConn(backend.port) as c:
        c.send(request_bytes("GET", "/status/103"))
        interim = c.read_response(skip_interim=False)
        assert interim.status == 103 and interim.header("x-backend") == "backend"
        final = c.read_response()
        assert final.status == 200 and final.body == b"hello from backend\n"


def test_status_rejects_bad_numbers(backend):
    for path in ("/status/abc", "/status/99", "/status/1000", "/delay/x", "/bytes/-1"):
        assert http_request("GET", backend.url(path)).status == 400, path


def test_head_never_has_a_body(backend):
    with RawConn(backend.port) as c:
        for path, length in (("/", "19"), ("/status/503", "11"), ("/bytes/5000000000", "5000000000")):
            c.send(request_bytes("HEAD", path))
            r = c.read_response(head_request=True)
            assert r.header("content-length") == length, path
        c.send(request_bytes("HEAD", "/chunked/100"))
        r = c.read_response(head_request=True)
        assert r.header("transfer-encoding") == "chunked"
        c.send(request_bytes("GET", "/"))
        assert c.read_response().body == b"hello from backend\n"


def test_delay_waits_without_blocking_others(backend):
    slow = http.client.HTTPConnection("127.0.0.1", backend.port, timeout=5)
    start = time.monotonic()
    slow.request("GET", "/delay/800")
    fast = http_request("GET", backend.url("/"))  # served while the delay runs
    fast_done = time.monotonic() - start
    r = slow.getresponse()
    assert r.status == 200 and r.read() == b"hello from backend\n"
    assert time.monotonic() - start >= 0.8
    assert fast.status == 200 and fast_done < 0.8
    slow.close()


@pytest.mark.parametrize("n", [0, 1, 65535, 65536, 1_000_003])
def test_bytes(backend, n):
    r = http_request("GET", backend.url(f"/bytes/{n}"))
    assert r.status == 200
    assert r.header("content-length") == str(n)
    assert r.body == b"x" * n


@pytest.mark.parametrize("n,chunk", [(0, None), (1, None), (40000, None), (100, 7),
                                     (300_000, 65536), (10, 1)])
def test_chunked(backend, n, chunk):
    path = f"/chunked/{n}" + (f"?chunk={chunk}" if chunk else "")
    with RawConn(backend.port) as c:
        c.send(request_bytes("GET", path))
        r = c.read_response()
        assert r.chunked and r.header("content-length") is None
        assert r.body == b"x" * n
        if chunk:
            # Every chunk but the last has the requested size.
            sizes, rest = [], r.raw.split(b"\r\n\r\n", 1)[1]
            while True:
                line, rest = rest.split(b"\r\n", 1)
                size = int(line, 16)
                if size == 0:
                    break
                sizes.append(size)
                rest = rest[size + 2:]
            assert all(s == chunk for s in sizes[:-1]) and sizes[-1] <= chunk
        c.send(request_bytes("GET", "/"))
        assert c.read_response().status == 200


def test_streaming_delay_between_writes(backend):
    with RawConn(backend.port) as c:
        start = time.monotonic()
        c.send(request_bytes("GET", "/chunked/30?chunk=10&delay=400"))
        first = c.sock.recv(65536)
        assert b"Transfer-Encoding: chunked" in first
        assert time.monotonic() - start < 0.4  # the head and first chunk come before any pause
        c._buf = first
        r = c.read_response()
        assert r.body == b"x" * 30
        assert time.monotonic() - start >= 0.8


def test_echo_content_length(backend):
    body = bytes(range(256)) * 3
    r = http_request("POST", backend.url("/echo?a=1&b=2"),
                     headers=[("X-One", "1"), ("x-two", "a, b"), ("X-One", "again")], body=body)
    assert r.status == 200 and r.header("content-type") == "application/json"
    j = r.json()
    assert j["method"] == "POST"
    assert j["target"] == "/echo?a=1&b=2"
    assert j["version"] == "HTTP/1.1"
    names = [h[0] for h in j["headers"]]
    assert names == ["Host", "X-One", "x-two", "X-One", "Content-Length"]
    assert ["x-two", "a, b"] in j["headers"]
    assert j["body_bytes"] == len(body)
    assert j["body_prefix"] == body[:64].decode("latin-1")


def test_echo_chunked_request(backend):
    parts = [b"a" * 10, b"b" * 70000, b"c"]
    r = http_request("PUT", backend.url("/echo"), body=iter(parts))
    j = r.json()
    assert ["Transfer-Encoding", "chunked"] in j["headers"]
    assert j["body_bytes"] == 70011
    assert j["body_prefix"] == "a" * 10 + "b" * 54


def test_echo_http10(backend):
    data = raw_request(backend.port, b"GET /echo HTTP/1.0\r\nX-A: b\r\n\r\n")
    r = parse_response(data)
    assert r.header("connection") == "close"
    assert r.status == 200 and parse_response(data).body.endswith(b"}\n")
    assert b'"version":"HTTP/1.0"' in r.body


def test_upload_is_streamed(backend):
    total = 128 * 1024 * 1024
    block = b"z" * (1 << 20)
    r = http_request("POST", backend.url("/upload"), body=(block for _ in range(128)), timeout=60)
    assert r.status == 200 and r.body == f"{total}\n".encode()
    # Peak memory stays far below the body size: it was counted, not kept.
    assert vm_kib(backend.pid, "VmHWM") < 32 * 1024


def test_upload_content_length(backend):
    with RawConn(backend.port) as c:
        c.send(request_bytes("POST", "/upload", body=b"q" * 300_000))
        assert c.read_response().body == b"300000\n"


def test_close_mid_sends_half_then_fin(backend):
    with RawConn(backend.port) as c:
        c.send(request_bytes("GET", "/close-mid/100000"))
        with pytest.raises(IncompleteResponse) as e:
            c.read_response()
        assert e.value.why == "eof"
        head, body = e.value.partial.split(b"\r\n\r\n", 1)
        assert b"Content-Length: 100000" in head
        assert len(body) == 50000


def test_reset_mid_sends_rst(backend):
    with RawConn(backend.port) as c:
        c.send(request_bytes("GET", "/reset-mid/100000"))
        with pytest.raises(IncompleteResponse) as e:
            c.read_response()
        assert e.value.why == "reset"
        assert b"Content-Length: 100000" in e.value.partial
        assert len(e.value.partial.split(b"\r\n\r\n", 1)[1]) <= 50000


def test_chunked_reset_has_no_last_chunk(backend):
    with RawConn(backend.port) as c:
        c.send(request_bytes("GET", "/chunked-reset/100000"))
        with pytest.raises(IncompleteResponse) as e:
            c.read_response()
        assert e.value.why == "reset"
        assert b"Transfer-Encoding: chunked" in e.value.partial
        assert not e.value.partial.endswith(b"0\r\n\r\n")


def test_garbage_and_truncated_head(backend):
    assert raw_request(backend.port, request_bytes("GET", "/garbage")) == \
        b"this is not http\r\n\r\n"
    assert raw_request(backend.port, request_bytes("GET", "/truncated-head")) == \
        b"HTTP/1.1 200 OK\r\nContent-Le"


def test_close(backend):
    with RawConn(backend.port) as c:
        c.send(request_bytes("GET", "/close"))
        r = c.read_response()
        assert r.status == 200 and r.header("connection") == "close"
        assert c.peer_closed(timeout=2.0)


def test_headers_from_query(backend):
    r = http_request("GET", backend.url("/headers?Connection=x-foo&x-foo=1&X-Enc=a%20b%2Cc"))
    assert r.status == 200
    assert r.header("connection") == "x-foo"
    assert r.header("x-foo") == "1"
    assert r.header("x-enc") == "a b,c"
    assert r.header("x-backend") == "backend"


def test_headers_connection_close_is_honoured(backend):
    with RawConn(backend.port) as c:
        c.send(request_bytes("GET", "/headers?connection=close&x-a=1"))
        r = c.read_response()
        assert r.header("connection") == "close" and r.header("x-a") == "1"
        assert c.peer_closed(timeout=2.0)


def test_continue(backend):
    with RawConn(backend.port) as c:
        c.send(request_bytes("POST", "/continue", headers=[("Expect", "100-continue"),
                                                            ("Content-Length", "5")]))
        interim = c.read_response(skip_interim=False)
        assert interim.status == 100
        c.send(b"hello")
        r = c.read_response()
        assert r.status == 200 and r.body == b"5\n"


def test_no_100_continue_elsewhere(backend):
    # Only /continue answers Expect itself, so tests can tell who sent a 100.
    with RawConn(backend.port) as c:
        c.send(request_bytes("POST", "/upload", headers=[("Expect", "100-continue"),
                                                         ("Content-Length", "5")]))
        with pytest.raises(IncompleteResponse) as e:
            c.read_response(timeout=0.3)
        assert e.value.why == "timeout" and e.value.partial == b""
        c.send(b"hello")
        assert c.read_response().body == b"5\n"


def test_stats_counts_connections_and_requests(backend):
    before = backend.stats()
    with RawConn(backend.port) as c:
        for _ in range(3):
            c.send(request_bytes("GET", "/"))
            assert c.read_response().status == 200
    after = backend.stats()
    # +1 connection and +1 request are the second stats call itself.
    assert after["connections_accepted"] == before["connections_accepted"] + 2
    assert after["requests"] == before["requests"] + 4
    assert after["connections_active"] >= 1


def test_pipelining(backend):
    with RawConn(backend.port) as c:
        c.send(request_bytes("GET", "/bytes/3") + request_bytes("POST", "/upload", body=b"abcd")
               + request_bytes("GET", "/chunked/5"))
        assert c.read_response().body == b"xxx"
        assert c.read_response().body == b"4\n"
        assert c.read_response().body == b"xxxxx"


def test_http10_chunked_falls_back_to_close(backend):
    data = raw_request(backend.port, b"GET /chunked/1000 HTTP/1.0\r\n\r\n")
    r = parse_response(data)
    assert r.header("transfer-encoding") is None and r.header("content-length") is None
    assert r.body == b"x" * 1000


def test_http10_keep_alive(backend):
    with RawConn(backend.port) as c:
        for _ in range(2):
            c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            r = c.read_response()
            assert r.header("connection") == "keep-alive" and r.body == b"hello from backend\n"


def test_malformed_request_gets_400(backend):
    data = raw_request(backend.port, b"NOT A REQUEST\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 ")


def test_peer_abort_does_not_hurt_server(backend):
    # A client that vanishes mid-download must not take the backend down.
    s = socket.create_connection(("127.0.0.1", backend.port), timeout=5)
    s.sendall(request_bytes("GET", "/bytes/100000000"))
    s.recv(1000)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()
    assert http_request("GET", backend.url("/")).status == 200
    assert backend.alive()
