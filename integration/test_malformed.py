"""Strict request parsing end to end: every malformed or ambiguous request gets 400 (501 for an
unknown transfer coding, 431/413/414 for limits), sluice closes the connection, and nothing of
the request reaches a backend as a complete request.

Two kinds of upstream watch for leaks: the real test backend (its /stats counts request heads it
read and requests it read to the end) and RecordingBackend, a raw socket server that keeps every
byte sluice sends it, so a test can say "not one byte" or "never a whole request"."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

import pytest

import helpers
from helpers import HOST, RawConn, basic_config, wait_for

H = "Host: example.test\r\n"
POST = "POST /upload HTTP/1.1\r\n" + H
CHUNKED_HEAD = (POST + "Transfer-Encoding: chunked\r\n\r\n").encode()


# --------------------------------------------------------------------------- recording upstream


def complete_request_length(buf: bytes) -> Optional[int]:
    """Length of the first whole request in buf (head plus a body framed by Content-Length or
    chunked, trailers included), or None while it is incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    length, chunked = 0, False
    for line in buf[:end].decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
        elif name.strip().lower() == "transfer-encoding":
            chunked = value.strip().lower() == "chunked"
    pos = end + 4
    if not chunked:
        return pos + length if len(buf) >= pos + length else None
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(buf[pos:eol].split(b";")[0], 16)
        pos = eol + 2
        if size == 0:
            while True:  # trailer fields up to the empty line
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                line, pos = buf[pos:eol], eol + 2
                if not line:
                    return pos
        if len(buf) < pos + size + 2:
            return None
        if buf[pos + size:pos + size + 2] != b"\r\n":
            raise ValueError("chunk data not followed by CRLF")
        pos += size + 2


@dataclass
class Recorded:
    data: bytearray = field(default_factory=bytearray)
    complete: int = 0  # whole requests seen (each was answered 200)
    closed: bool = False  # the peer (sluice) closed or reset the connection
    garbage: bool = False  # bytes that are not HTTP/1.1 framing


class RecordingBackend:
    """A loopback origin that records every byte per connection and answers each request it
    sees whole with a small 200. Threads stop at close(); every wait is bounded."""

    def __init__(self):
        self.sock = socket.create_server((HOST, 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.conns: list[Recorded] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            rec = Recorded()
            with self._lock:
                self.conns.append(rec)
            t = threading.Thread(target=self._serve, args=(conn, rec), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket, rec: Recorded) -> None:
        conn.settimeout(0.1)
        pending = b""
        with conn:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    rec.closed = True
                    return
                with self._lock:
                    rec.data += chunk
                pending += chunk
                while True:
                    try:
                        n = complete_request_length(pending)
                    except ValueError:
                        rec.garbage = True
                        n = None
                    if n is None:
                        break
                    pending = pending[n:]
                    rec.complete += 1
                    try:
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
                    except OSError:
                        pass

    def total_bytes(self) -> int:
        with self._lock:
            return sum(len(c.data) for c in self.conns)

    def total_complete(self) -> int:
        return sum(c.complete for c in self.conns)

    def saw(self, needle: bytes) -> bool:
        with self._lock:
            return any(needle in c.data for c in self.conns)

    def all_closed(self) -> bool:
        return all(c.closed for c in self.conns)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        self.sock.close()


# --------------------------------------------------------------------------- fixtures


def _config(*endpoints, **limits) -> dict:
    config = basic_config(*endpoints, workers=1, access_log={"path": "off"})
    if limits:
        config["listeners"][0]["limits"] = limits
    return config


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """One sluice in front of the real test backend, shared by the many parametrized cases."""
    log_dir = tmp_path_factory.mktemp("malformed")
    backend = helpers.Backend(log_dir, "backend")
    sluice = None
    try:
        sluice = helpers.start_sluice(log_dir, _config(backend, max_request_body_bytes="1MiB"))
        sluice.backend = backend
        yield sluice
    finally:
        code = sluice.stop(timeout=20)[0] if sluice else 0
        backend.stop()
    assert code in (0, -15), f"sluice exited with {code}\n{sluice.log_tail()}"


@pytest.fixture
def live_stack(request, stack):
    """The shared stack, checked alive before the test; its logs go with a failure report."""
    request.node.__dict__.setdefault("_sluice_processes", []).extend([stack, stack.backend])
    assert stack.alive(), stack.log_tail()
    return stack


@pytest.fixture
def recorder():
    rec = RecordingBackend()
    yield rec
    rec.close()


# --------------------------------------------------------------------------- helpers


def send_and_answer(port: int, data: bytes, timeout: float = 5.0):
    """Sends data, reads one response, then checks that sluice closes. Returns the response and
    whether the peer closed within timeout."""
    with RawConn(port, timeout=timeout) as c:
        try:
            c.send(data)
        except OSError:
            pass  # sluice may have answered and stopped reading; the answer is still there
        r = c.read_response(timeout=timeout)
        return r, c.peer_closed(timeout=timeout)


def assert_rejected(s, data: bytes, status: int):
    r, closed = send_and_answer(s.port, data)
    assert r.status == status, (r.status, r.body)
    assert r.header("connection", "").lower() == "close"
    assert closed, "sluice kept the connection open after a rejected request"
    return r


# --------------------------------------------------------------------------- malformed heads

# (id, raw request, status). Each is wrong in its head; nothing of it may reach a backend.
HEAD_CASES = [
    ("cl_with_te", POST + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te_with_cl", POST + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    ("te_gzip_with_cl", POST + "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello", 400),
    ("cl_duplicate", POST + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", 400),
    ("cl_conflicting", POST + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
    ("cl_list", POST + "Content-Length: 5, 5\r\n\r\nhello", 400),
    ("cl_not_digits", POST + "Content-Length: 5a\r\n\r\nhello", 400),
    ("cl_plus", POST + "Content-Length: +5\r\n\r\nhello", 400),
    ("cl_negative", POST + "Content-Length: -1\r\n\r\n", 400),
    ("cl_overflow", POST + "Content-Length: 18446744073709551616\r\n\r\n", 400),
    ("cl_overflow_long", POST + "Content-Length: " + "9" * 40 + "\r\n\r\n", 400),
    ("te_gzip", POST + "Transfer-Encoding: gzip\r\n\r\n", 501),
    ("te_identity", POST + "Transfer-Encoding: identity\r\n\r\n", 501),
    ("te_gzip_chunked", POST + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("te_chunked_gzip", POST + "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
    ("te_chunked_twice", POST + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
     "0\r\n\r\n", 400),
    ("te_chunked_param", POST + "Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n", 400),
    ("te_in_http10", "POST /upload HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("obs_fold", "GET / HTTP/1.1\r\n" + H + "X-A: one\r\n two\r\n\r\n", 400),
    ("obs_fold_tab", "GET / HTTP/1.1\r\n" + H + "X-A: one\r\n\ttwo\r\n\r\n", 400),
    ("obs_fold_empty_first_line", "GET / HTTP/1.1\r\n" + H + "X-A:\r\n two\r\n\r\n", 400),
    ("ctl_in_value", "GET / HTTP/1.1\r\n" + H + "X-A: a\x01b\r\n\r\n", 400),
    ("del_in_value", "GET / HTTP/1.1\r\n" + H + "X-A: a\x7fb\r\n\r\n", 400),
    ("nul_in_value", "GET / HTTP/1.1\r\n" + H + "X-A: a\x00b\r\n\r\n", 400),
    ("bare_cr_in_value", "GET / HTTP/1.1\r\n" + H + "X-A: a\rb\r\n\r\n", 400),
    ("bare_lf_in_value", "GET / HTTP/1.1\r\n" + H + "X-A: a\nb\r\n\r\n", 400),
    ("nul_in_name", "GET / HTTP/1.1\r\n" + H + "X-\x00A: b\r\n\r\n", 400),
    ("bare_cr_in_name", "GET / HTTP/1.1\r\n" + H + "X-\rA: b\r\n\r\n", 400),
    ("space_before_colon", "GET / HTTP/1.1\r\n" + H + "X-A : b\r\n\r\n", 400),
    ("tab_before_colon", "GET / HTTP/1.1\r\n" + H + "X-A\t: b\r\n\r\n", 400),
    ("host_space_before_colon", "GET / HTTP/1.1\r\nHost : example.test\r\n\r\n", 400),
    ("paren_in_name", "GET / HTTP/1.1\r\n" + H + "X(A): b\r\n\r\n", 400),
    ("non_ascii_name", "GET / HTTP/1.1\r\n" + H + "X-\xe9: b\r\n\r\n", 400),
    ("empty_name", "GET / HTTP/1.1\r\n" + H + ": b\r\n\r\n", 400),
    ("bare_lf_line_endings", "GET / HTTP/1.1\n" + "Host: example.test\n\n", 400),
    ("missing_host", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400),
    ("repeated_host", "GET / HTTP/1.1\r\n" + H + H + "\r\n", 400),
    ("repeated_host_different", "GET / HTTP/1.1\r\n" + H + "Host: other.test\r\n\r\n", 400),
    ("invalid_host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ("host_with_userinfo", "GET / HTTP/1.1\r\nHost: user@example.test\r\n\r\n", 400),
    ("invalid_method", "G(T / HTTP/1.1\r\n" + H + "\r\n", 400),
    ("empty_method", " / HTTP/1.1\r\n" + H + "\r\n", 400),
    ("version_1_2", "GET / HTTP/1.2\r\n" + H + "\r\n", 400),
    ("version_2_0", "GET / HTTP/2.0\r\n" + H + "\r\n", 400),
    ("version_lowercase", "GET / http/1.1\r\n" + H + "\r\n", 400),
    ("version_garbage", "GET / HTTP/1.1x\r\n" + H + "\r\n", 400),
    ("double_space", "GET  / HTTP/1.1\r\n" + H + "\r\n", 400),
    ("http09", "GET /\r\n", 400),
    ("http09_path", "GET /index.html\r\n\r\n", 400),
    ("target_relative", "GET index.html HTTP/1.1\r\n" + H + "\r\n", 400),
    ("target_fragment", "GET /a#b HTTP/1.1\r\n" + H + "\r\n", 400),
    ("target_ctl", "GET /a\x01b HTTP/1.1\r\n" + H + "\r\n", 400),
    ("target_bad_percent", "GET /a%zz HTTP/1.1\r\n" + H + "\r\n", 400),
    ("target_star_not_options", "GET * HTTP/1.1\r\n" + H + "\r\n", 400),
    ("target_other_scheme", "GET ftp://example.test/ HTTP/1.1\r\n" + H + "\r\n", 400),
    ("target_userinfo", "GET http://u:p@example.test/ HTTP/1.1\r\n" + H + "\r\n", 400),
    ("connect", "CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n", 501),
    # Limits at their defaults (64 KiB / 100 headers / 8 KiB URI; the body limit here: 1 MiB).
    ("too_many_headers", "GET / HTTP/1.1\r\n" + H + "".join(f"X-{i}: v\r\n" for i in range(100))
     + "\r\n", 431),
    ("header_too_large", "GET / HTTP/1.1\r\n" + H + "X-A: " + "a" * 70000 + "\r\n\r\n", 431),
    ("uri_too_long", "GET /" + "a" * 8192 + " HTTP/1.1\r\n" + H + "\r\n", 414),
    ("body_too_large", POST + "Content-Length: 1048577\r\n\r\n", 413),
]


@pytest.mark.parametrize("data,status", [pytest.param(d.encode("latin-1"), s, id=i)
                                         for i, d, s in HEAD_CASES])
def test_malformed_head_is_rejected_and_not_forwarded(live_stack, data, status):
    before = live_stack.backend.stats()
    assert_rejected(live_stack, data, status)
    after = live_stack.backend.stats()
    # The second /stats call is the only request the backend read in between.
    assert after["requests"] == before["requests"] + 1, (before, after)
    assert after["requests_complete"] == before["requests_complete"] + 1
    # The listener still serves.
    assert live_stack.get("/").status == 200


def test_no_byte_of_a_malformed_head_reaches_the_upstream(start_sluice, recorder):
    s = start_sluice(_config(recorder.address, max_request_body_bytes="1MiB"))
    for case_id, data, status in HEAD_CASES:
        r, closed = send_and_answer(s.port, data.encode("latin-1"))
        assert (r.status, closed) == (status, True), case_id
    assert recorder.total_bytes() == 0 and not recorder.conns
    # Control: a valid request does reach it.
    r, _ = send_and_answer(s.port, b"GET / HTTP/1.1\r\n" + H.encode() + b"Connection: close\r\n\r\n")
    assert r.status == 200 and recorder.total_complete() == 1


def test_malformed_request_after_a_valid_one_on_keep_alive(live_stack):
    before = live_stack.backend.stats()
    with live_stack.raw() as c:
        c.send(b"GET /one HTTP/1.1\r\n" + H.encode() + b"\r\n")
        assert c.read_response().status == 200
        c.send(b"GET /two HTTP/1.1\r\n" + H.encode() + b"X-A : b\r\n\r\n")
        r = c.read_response()
        assert r.status == 400
        assert c.peer_closed(timeout=5)
    after = live_stack.backend.stats()
    assert after["requests"] == before["requests"] + 2  # /one and /stats


def test_pipelined_malformed_request_is_not_forwarded(live_stack):
    """A valid request and, in the same packet, a smuggling attempt behind it: the first is
    answered, the second rejected, and the connection closed."""
    before = live_stack.backend.stats()
    smuggle = (POST + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
               "GET /smuggled HTTP/1.1\r\n" + H + "\r\n").encode()
    with live_stack.raw() as c:
        c.send(b"GET /one HTTP/1.1\r\n" + H.encode() + b"\r\n" + smuggle)
        assert c.read_response().status == 200
        assert c.read_response().status == 400
        assert c.peer_closed(timeout=5)
    after = live_stack.backend.stats()
    assert after["requests"] == before["requests"] + 2  # /one and /stats, never /smuggled


def test_head_sent_byte_by_byte_is_rejected_at_the_first_bad_byte(live_stack):
    """A bare LF is refused as soon as it arrives, not when the head (which never ends) would
    have ended or the header timeout fires."""
    with live_stack.raw() as c:
        for b in b"GET / HTTP/1.1\r\nHost: a\n":
            c.send(bytes([b]))
        r = c.read_response(timeout=5)
        assert r.status == 400
        assert c.peer_closed(timeout=5)


# --------------------------------------------------------------------------- body framing

# (id, bytes after a valid chunked head and a first valid chunk, status)
FRAMING_CASES = [
    ("chunk_size_not_hex", b"zz\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk_size_0x", b"0x5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk_size_negative", b"-5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk_size_overflow", b"10000000000000000\r\nx\r\n0\r\n\r\n", 400),
    ("chunk_size_trailing_space", b"5 \r\nhello\r\n0\r\n\r\n", 400),
    ("chunk_data_too_long", b"3\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk_data_no_crlf", b"5\r\nhelloXY0\r\n\r\n", 400),
    ("chunk_bare_lf", b"5\nhello\n0\n\n", 400),
    ("chunk_ext_ctl", b"5;a=b\x01\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk_ext_ctl_quoted", b"5;a=\"\x1b[31m\"\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk_ext_bare_cr", b"5;a\rb\r\nhello\r\n0\r\n\r\n", 400),
    ("trailer_content_length", b"0\r\nContent-Length: 5\r\n\r\n", 400),
    ("trailer_obs_fold", b"0\r\nX-A: a\r\n b\r\n\r\n", 400),
    ("trailer_bad_name", b"0\r\nX A: b\r\n\r\n", 400),
    ("body_over_limit", b"100000\r\n" + b"x" * 0x100000 + b"\r\n0\r\n\r\n", 413),
]


@pytest.mark.parametrize("tail,status", [pytest.param(t, s, id=i) for i, t, s in FRAMING_CASES])
def test_bad_chunked_framing_after_the_head_went_upstream(start_sluice, recorder, tail, status):
    """The head is valid, so sluice may already have sent it upstream; when the body framing
    turns out bad the client gets the error and a close, and the upstream connection is
    abandoned without ever carrying a whole request."""
    s = start_sluice(_config(recorder.address, max_request_body_bytes="1MiB"))
    with s.raw() as c:
        c.send(CHUNKED_HEAD + b"5\r\nhello\r\n")
        # Give the head time to go upstream, so the abort path is the one exercised.
        wait_for(lambda: recorder.saw(b"POST /upload"), timeout=5, what="head forwarded")
        try:
            c.send(tail)
        except OSError:
            pass
        r = c.read_response(timeout=5)
        assert r.status == status
        assert c.peer_closed(timeout=5)
    wait_for(recorder.all_closed, timeout=5, what="the upstream connection to be closed")
    assert recorder.total_complete() == 0
    for conn in recorder.conns:
        assert not conn.garbage
        assert complete_request_length(bytes(conn.data)) is None, bytes(conn.data)[:300]


@pytest.mark.parametrize("tail,status", [pytest.param(t, s, id=i) for i, t, s in FRAMING_CASES])
def test_bad_chunked_framing_in_one_packet_never_completes_at_the_backend(live_stack, tail,
                                                                          status):
    before = live_stack.backend.stats()
    r, closed = send_and_answer(live_stack.port, CHUNKED_HEAD + b"5\r\nhello\r\n" + tail)
    assert r.status == status and closed
    # The backend may have read the head, but never the whole request. (A wrongly completed
    # request would be finished as soon as its last bytes left sluice, before the answer.)
    time.sleep(0.2)
    after = live_stack.backend.stats()
    assert after["requests_complete"] == before["requests_complete"] + 1  # the /stats call


@pytest.mark.parametrize("body", [
    pytest.param(b"Content-Length: 10\r\n\r\nhello", id="content_length"),
    pytest.param(b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", id="chunked"),
    pytest.param(b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n", id="chunked_no_end"),
])
def test_body_cut_short_by_the_client_never_completes_upstream(start_sluice, recorder, body):
    s = start_sluice(_config(recorder.address))
    with s.raw() as c:
        c.send(POST.encode() + body)
        wait_for(lambda: recorder.saw(b"POST /upload"), timeout=5, what="head forwarded")
        c.shutdown_write()
        data = c.read_until_close(timeout=5)
        # Whatever sluice says (nothing, or an error), it is never a success.
        assert not data.startswith(b"HTTP/1.1 2")
    wait_for(recorder.all_closed, timeout=5, what="the upstream connection to be closed")
    assert recorder.total_complete() == 0


def test_valid_chunked_request_reaches_the_recorder_whole(start_sluice, recorder):
    """Control for the tests above: the recorder does see whole requests when they are."""
    s = start_sluice(_config(recorder.address))
    with s.raw() as c:
        c.send(CHUNKED_HEAD + b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n")
        assert c.read_response(timeout=5).status == 200
    assert recorder.total_complete() == 1
