"""Per-listener request limits end to end: listeners[].limits (max_request_header_bytes,
max_request_headers, max_request_body_bytes, max_uri_bytes, header_timeout, idle_timeout) apply
to their own listener only, with the documented defaults elsewhere; over a limit a request gets
431 / 413 / 414 (408 for a head that does not arrive in time), the connection closes, and the
request never reaches the backend.

Header bytes are counted per field line as sent ("Name: value" plus CRLF), without the request
line (max_uri_bytes bounds the request-target on its own) or the final empty line."""

from __future__ import annotations

import socket
import time

import pytest

import helpers
from helpers import RawConn, basic_config, parse_response

from test_malformed import send_and_answer

H = "Host: example.test\r\n"

SMALL = {
    "max_request_header_bytes": "1KiB",
    "max_request_headers": 5,
    "max_request_body_bytes": 100,
    "max_uri_bytes": 64,
    "header_timeout": "500ms",
    "idle_timeout": "800ms",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """sluice with three listeners in front of one backend: "small" (SMALL), "default" (no
    limits key) and "unlimited" (max_request_body_bytes: 0)."""
    log_dir = tmp_path_factory.mktemp("limits")
    backend = helpers.Backend(log_dir, "backend")
    config = basic_config(backend, workers=1, access_log={"path": "off"})
    config["listeners"] = [
        {"name": "small", "limits": SMALL},
        {"name": "default"},
        {"name": "unlimited", "limits": {"max_request_body_bytes": 0}},
    ]
    sluice = None
    try:
        sluice = helpers.start_sluice(log_dir, config)
        sluice.backend = backend
        yield sluice
    finally:
        code = sluice.stop(timeout=20)[0] if sluice else 0
        backend.stop()
    assert code in (0, -15), f"sluice exited with {code}\n{sluice.log_tail()}"


@pytest.fixture
def s(request, stack):
    request.node.__dict__.setdefault("_sluice_processes", []).extend([stack, stack.backend])
    assert stack.alive(), stack.log_tail()
    return stack


def get(path: str = "/", headers: str = "", close: bool = True) -> bytes:
    return (f"GET {path} HTTP/1.1\r\n{H}{headers}"
            f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n").encode("latin-1")


def upload(body: bytes) -> bytes:
    return (f"POST /upload HTTP/1.1\r\n{H}Content-Length: {len(body)}\r\nConnection: close\r\n"
            "\r\n").encode() + body


def answer(s, listener: str, data: bytes):
    """(status, whether sluice closed the connection afterwards)."""
    r, closed = send_and_answer(s.listener_port(listener), data)
    return r.status, closed


def status_of(s, listener: str, data: bytes) -> int:
    """The status of one response on a fresh connection, which is then dropped."""
    with RawConn(s.listener_port(listener)) as c:
        c.send(data)
        return c.read_response(timeout=5).status


def check_rejected(s, listener: str, data: bytes, status: int) -> None:
    """status, a close, and the backend read no request head (only the /stats calls)."""
    before = s.backend.stats()["requests"]
    assert answer(s, listener, data) == (status, True)
    assert s.backend.stats()["requests"] == before + 1


# --------------------------------------------------------------------------- sizes and counts


def test_uri_limit_is_per_listener(s):
    at_limit = "/" + "a" * 63  # 64 bytes of request-target
    over = at_limit + "b"
    assert answer(s, "small", get(at_limit)) == (200, True)
    check_rejected(s, "small", get(over), 414)
    check_rejected(s, "small", get("/?" + "q" * 200), 414)  # the query counts too
    assert answer(s, "default", get(over))[0] == 200


def test_uri_limit_default_is_8_kib(s):
    assert answer(s, "default", get("/" + "a" * 8191))[0] == 200
    check_rejected(s, "default", get("/" + "a" * 8192), 414)


def test_header_count_limit_is_per_listener(s):
    four = "".join(f"X-{i}: v\r\n" for i in range(4))  # with Host: 5 fields
    five = four + "X-4: v\r\n"
    assert status_of(s, "small", get("/", four, close=False)) == 200
    check_rejected(s, "small", get("/", five, close=False), 431)
    assert answer(s, "default", get("/", five))[0] == 200


def test_header_count_limit_default_is_100(s):
    fields = "".join(f"X-{i}: v\r\n" for i in range(98))  # with Host and Connection: 100
    assert answer(s, "default", get("/", fields))[0] == 200
    check_rejected(s, "default", get("/", fields + "X-98: v\r\n"), 431)


def test_header_bytes_limit_is_per_listener(s):
    host_line = len(H)  # 20
    fits = "X-A: " + "a" * (1024 - host_line - 7) + "\r\n"  # exactly 1 KiB of field lines
    assert status_of(s, "small", get("/", fits, close=False)) == 200
    check_rejected(s, "small", get("/", "X-A: " + "a" * (1024 - host_line - 6) + "\r\n",
                                   close=False), 431)
    # Spread over several fields too.
    check_rejected(s, "small", get("/", "".join(f"X-{i}: {'v' * 300}\r\n" for i in range(4)),
                                   close=False), 431)
    assert answer(s, "default", get("/", "X-A: " + "a" * 5000 + "\r\n"))[0] == 200


def test_header_bytes_limit_does_not_count_the_request_line(s):
    # A 64-byte target and 1 KiB of field lines: both at their own limits, together fine.
    fits = "X-A: " + "a" * (1024 - len(H) - 7) + "\r\n"
    assert status_of(s, "small", get("/" + "a" * 63, fits, close=False)) == 200


def test_header_bytes_limit_default_is_64_kib(s):
    room = 64 * 1024 - len(H) - len("Connection: close\r\n")
    assert answer(s, "default", get("/", "X-A: " + "a" * (room - 7) + "\r\n"))[0] == 200
    check_rejected(s, "default", get("/", "X-A: " + "a" * (room - 6) + "\r\n"), 431)


def test_body_limit_is_per_listener(s):
    r, _ = send_and_answer(s.listener_port("small"), upload(b"x" * 100))
    assert (r.status, r.body) == (200, b"100\n")
    # Over the limit by Content-Length: refused before anything is forwarded.
    check_rejected(s, "small", upload(b"x" * 101), 413)
    r, _ = send_and_answer(s.listener_port("default"), upload(b"x" * 101))
    assert (r.status, r.body) == (200, b"101\n")


def test_chunked_body_over_the_limit(s):
    before = s.backend.stats()["requests_complete"]
    head = (f"POST /upload HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n").encode()
    # 60 + 41 = 101 bytes: the second chunk crosses the limit.
    body = b"3c\r\n" + b"x" * 60 + b"\r\n29\r\n" + b"y" * 41 + b"\r\n0\r\n\r\n"
    assert answer(s, "small", head + body) == (413, True)
    time.sleep(0.2)
    assert s.backend.stats()["requests_complete"] == before + 1  # only the /stats call
    # Exactly at the limit is fine.
    body = b"3c\r\n" + b"x" * 60 + b"\r\n28\r\n" + b"y" * 40 + b"\r\n0\r\n\r\n"
    r, _ = send_and_answer(s.listener_port("small"), head + body)
    assert (r.status, r.body) == (200, b"100\n")


def test_body_limit_default_is_10_mib_and_0_means_unlimited(s):
    check_rejected(s, "default", (f"POST /upload HTTP/1.1\r\n{H}Content-Length: 10485761\r\n"
                                  "\r\n").encode(), 413)
    ten_mib = b"z" * (10 * 1024 * 1024)
    r, _ = send_and_answer(s.listener_port("default"), upload(ten_mib), timeout=30)
    assert (r.status, r.body) == (200, b"10485760\n")
    r, _ = send_and_answer(s.listener_port("unlimited"), upload(ten_mib + b"z"), timeout=30)
    assert (r.status, r.body) == (200, b"10485761\n")


# --------------------------------------------------------------------------- timeouts


def test_header_timeout_answers_408_and_closes(s):
    before = s.backend.stats()["requests"]
    with s.raw("small") as c:
        c.send(b"GET / HTTP/1.1\r\n" + H.encode())  # no end of head
        t0 = time.monotonic()
        r = c.read_response(timeout=5)
        elapsed = time.monotonic() - t0
        assert r.status == 408
        assert r.header("connection", "").lower() == "close"
        assert c.peer_closed(timeout=5)
    assert elapsed >= 0.4  # timers never fire early; 500 ms configured
    assert s.backend.stats()["requests"] == before + 1


def test_header_timeout_is_not_extended_by_a_trickle(s):
    """Slowloris: a byte every 100 ms keeps the connection busy but the head never completes;
    the header timeout counts from the first byte, so the 408 comes while bytes still flow."""
    with s.raw("small") as c:
        c.send(b"GET / HTTP/1.1\r\n" + H.encode() + b"X-Slow: ")
        t0 = time.monotonic()
        got = b""
        for _ in range(50):  # up to 5 s of trickling
            try:
                c.send(b"a")
            except OSError:
                break
            c.sock.settimeout(0.1)
            try:
                chunk = c.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                continue
            except ConnectionResetError:
                break
            got += chunk
            if b"\r\n\r\n" in got or not chunk:
                break
        elapsed = time.monotonic() - t0
        got += c.read_until_close(timeout=5)
    assert parse_response(got).status == 408, got[:200]
    assert elapsed < 3.0, f"408 only after {elapsed:.1f}s of trickling"


def test_header_timeout_is_per_listener(s):
    with s.raw("default") as c:
        c.send(b"GET / HTTP/1.1\r\n" + H.encode())
        assert not c.peer_closed(timeout=1.5)  # the default is 10 s
        c.send(b"\r\n")
        assert c.read_response(timeout=5).status == 200


def test_header_timeout_for_the_next_request_on_keep_alive(s):
    with s.raw("small") as c:
        c.send(get("/", close=False))
        assert c.read_response(timeout=5).status == 200
        c.send(b"GET /second HTTP/1.1\r\n")  # started, never finished
        r = c.read_response(timeout=5)
        assert r.status == 408
        assert c.peer_closed(timeout=5)


def test_idle_timeout_closes_an_idle_keep_alive_connection(s):
    with s.raw("small") as c:
        c.send(get("/", close=False))
        r = c.read_response(timeout=5)
        assert r.status == 200 and r.header("connection") != "close"
        t0 = time.monotonic()
        assert c.peer_closed(timeout=5)  # silently: no response bytes
        assert time.monotonic() - t0 >= 0.6  # 800 ms configured


def test_idle_timeout_closes_a_connection_that_never_sends(s):
    with s.raw("small") as c:
        t0 = time.monotonic()
        assert c.peer_closed(timeout=5)
        assert time.monotonic() - t0 >= 0.6


def test_idle_timeout_is_per_listener(s):
    with s.raw("default") as c:
        c.send(get("/", close=False))
        assert c.read_response(timeout=5).status == 200
        assert not c.peer_closed(timeout=1.5)  # the default is 60 s
        c.send(get("/again", close=False))
        assert c.read_response(timeout=5).status == 200


def test_idle_timeout_restarts_after_each_request(s):
    """Requests 500 ms apart on the small listener (idle 800 ms) keep the connection."""
    with s.raw("small") as c:
        for i in range(4):
            c.send(get(f"/{i}", close=False))
            assert c.read_response(timeout=5).status == 200
            time.sleep(0.5)
        c.send(get("/last", close=False))
        assert c.read_response(timeout=5).status == 200
