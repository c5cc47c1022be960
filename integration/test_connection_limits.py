"""Connection caps and slow clients end to end: listeners[].limits.max_connections is exact over
all workers and survives a reload, max_connections_per_ip caps one source address and no other
(several source addresses from 127.0.0.0/8), a refused connection is closed at once and counted
in sluice_downstream_connections_rejected_total{listener,reason}; body_timeout and
request_timeout answer 408 over HTTP/1.1 and HTTP/2; and a slowloris run (hundreds of trickling
connections from one address) does not keep a client on another address from being served
promptly, with memory bounded."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path
from typing import Optional

import h2.config
import h2.connection
import h2.events
import pytest

import helpers
from helpers import HOST, basic_config, parse_response, wait_for

ATTACKER = "127.0.0.2"
CLIENT = "127.0.0.3"
OTHER = "127.0.0.4"

GET = b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n"


def connect(port: int, source: str, timeout: float = 5.0) -> socket.socket:
    """A TCP connection to the listener from `source` (any 127.x.y.z address works on Linux)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect((HOST, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def closed_by_peer(s: socket.socket, timeout: float = 3.0) -> bool:
    """True if sluice closes (EOF or reset) within timeout without sending anything."""
    s.settimeout(timeout)
    try:
        data = s.recv(1024)
    except (socket.timeout, TimeoutError):
        return False
    except ConnectionResetError:
        return True
    assert not data, f"expected a close, got {data[:100]!r}"
    return True


def refused(port: int, source: str, timeout: float = 3.0) -> bool:
    """True if a new connection from `source` is closed by sluice at once, unanswered (the
    reset may already end the connect)."""
    try:
        c = connect(port, source, timeout)
    except ConnectionResetError:
        return True
    with c:
        return closed_by_peer(c, timeout)


def served(s: socket.socket, timeout: float = 5.0) -> int:
    """Sends a keep-alive GET on `s` and returns the status of its response."""
    s.settimeout(timeout)
    s.sendall(GET)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0]
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(data) - len(head) - 4 < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return parse_response(data).status


def get_from(port: int, source: str, timeout: float = 5.0) -> tuple[int, float]:
    """(status, seconds) of a GET on a new connection from `source`."""
    t0 = time.monotonic()
    with connect(port, source, timeout) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return parse_response(data).status, time.monotonic() - t0


def active(s) -> float:
    return s.metric("sluice_downstream_connections_active", listener="main") or 0


def rejected(s, reason: str) -> float:
    return s.metric("sluice_downstream_connections_rejected_total", listener="main",
                    reason=reason) or 0


def limited_config(backend, workers: int = 2, **limits) -> dict:
    config = basic_config(backend, workers=workers, access_log={"path": "off"})
    config["listeners"][0]["limits"] = limits
    return config


def open_held(port: int, source: str, n: int) -> list[socket.socket]:
    return [connect(port, source) for _ in range(n)]


def close_all(socks: list[socket.socket]) -> None:
    for c in socks:
        c.close()


# ----------------------------------------------------------------------------- connection caps


def test_max_connections_is_exact_across_workers(backend, start_sluice):
    """10 connections over 2 workers: the listener holds exactly 10 (a per-worker count would
    have let each worker take 10), every further one is closed at once and counted, and one
    closing makes room for exactly one."""
    s = start_sluice(limited_config(backend, max_connections=10))
    held = open_held(s.port, CLIENT, 10)
    try:
        wait_for(lambda: active(s) == 10, 5, what="10 connections accepted")
        for _ in range(10):
            assert refused(s.port, OTHER), "a connection over max_connections stayed open"
        assert rejected(s, "max_connections") == 10
        assert rejected(s, "max_connections_per_ip") == 0
        assert active(s) == 10
        for c in held:  # the ones accepted first are untouched and served
            assert served(c) == 200

        held.pop().close()
        wait_for(lambda: active(s) == 9, 5, what="the closed connection to be counted out")
        newcomer = connect(s.port, OTHER)
        held.append(newcomer)
        assert served(newcomer) == 200
        assert refused(s.port, OTHER)
        assert rejected(s, "max_connections") == 11
    finally:
        close_all(held)
    wait_for(lambda: active(s) == 0, 5, what="every connection to close")


def test_max_connections_count_survives_a_reload(backend, start_sluice):
    config = limited_config(backend, max_connections=4)
    s = start_sluice(config)
    held = open_held(s.port, CLIENT, 4)
    try:
        wait_for(lambda: active(s) == 4, 5, what="4 connections accepted")
        # A reload that keeps the listener: the 4 open connections still count.
        config["listeners"][0]["limits"]["header_timeout"] = "9s"
        s.write_config(config)
        s.signal(signal.SIGHUP)
        wait_for(lambda: s.metric("sluice_config_reloads_total", result="success") == 1, 10,
                 what="the reload")
        assert refused(s.port, OTHER)
        # A reload that raises the limit: room for exactly one more.
        config["listeners"][0]["limits"]["max_connections"] = 5
        s.write_config(config)
        s.signal(signal.SIGHUP)
        wait_for(lambda: s.metric("sluice_config_reloads_total", result="success") == 2, 10,
                 what="the second reload")
        fifth = connect(s.port, OTHER)
        held.append(fifth)
        assert served(fifth) == 200
        assert refused(s.port, OTHER)
        assert rejected(s, "max_connections") == 2
        for c in held:
            assert served(c) == 200
    finally:
        close_all(held)


def test_max_connections_per_ip_caps_one_address_only(backend, start_sluice):
    s = start_sluice(limited_config(backend, max_connections=100, max_connections_per_ip=3))
    attacker = open_held(s.port, ATTACKER, 3)
    client: list[socket.socket] = []
    try:
        wait_for(lambda: active(s) == 3, 5, what="3 connections accepted")
        for _ in range(3):
            assert refused(s.port, ATTACKER), "a 4th connection from one address stayed open"
        assert rejected(s, "max_connections_per_ip") == 3
        client = open_held(s.port, CLIENT, 3)  # another address has its own 3
        for c in client:
            assert served(c) == 200
        for c in attacker:
            assert served(c) == 200
        assert rejected(s, "max_connections") == 0

        attacker.pop().close()
        wait_for(lambda: active(s) == 5, 5, what="the closed connection to be counted out")
        again = connect(s.port, ATTACKER)
        attacker.append(again)
        assert served(again) == 200
    finally:
        close_all(attacker + client)


def test_rejection_counters_are_exposed_for_every_listener_from_the_start(backend, start_sluice):
    s = start_sluice(limited_config(backend, workers=1))
    text = s.metrics()
    assert "# TYPE sluice_downstream_connections_rejected_total counter" in text
    for reason in ("max_connections", "max_connections_per_ip"):
        assert helpers.metric_value(text, "sluice_downstream_connections_rejected_total",
                                    listener="main", reason=reason) == 0


# ----------------------------------------------------------------------------- request timeouts

POST_HEAD = (b"POST /upload HTTP/1.1\r\nHost: example.test\r\nContent-Length: 100\r\n"
             b"Connection: close\r\n\r\n")


def read_all(c: socket.socket, timeout: float) -> bytes:
    c.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = c.recv(65536)
        except (socket.timeout, TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture(scope="module")
def timeouts(tmp_path_factory):
    """One sluice, two listeners: "body" (body_timeout 500ms, no request_timeout) and "whole"
    (request_timeout 1s, long body and header timeouts); cleartext HTTP/2 on both."""
    log_dir = tmp_path_factory.mktemp("timeouts")
    backend = helpers.Backend(log_dir, "backend")
    config = basic_config(backend, workers=1, access_log={"path": "off"})
    config["listeners"] = [
        {"name": "body", "http2": {"cleartext": True},
         "limits": {"body_timeout": "500ms", "header_timeout": "500ms"}},
        {"name": "whole", "http2": {"cleartext": True},
         "limits": {"request_timeout": "1s", "body_timeout": "10s", "header_timeout": "10s"}},
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
def t(request, timeouts):
    request.node.__dict__.setdefault("_sluice_processes", []).extend(
        [timeouts, timeouts.backend])
    assert timeouts.alive(), timeouts.log_tail()
    return timeouts


def test_body_timeout_answers_408_to_a_stalled_body(t):
    with connect(t.listener_port("body"), CLIENT) as c:
        c.sendall(POST_HEAD + b"x" * 10)  # then nothing
        t0 = time.monotonic()
        data = read_all(c, 5)
        elapsed = time.monotonic() - t0
    r = parse_response(data)
    assert r.status == 408, data[:200]
    assert r.header("connection", "").lower() == "close"
    assert 0.4 <= elapsed < 3, elapsed


def test_body_timeout_is_a_pause_not_a_total(t):
    """A body that keeps coming, a piece every 200 ms (well within 500 ms) for 2 s, is fine."""
    body = b"y" * 10
    with connect(t.listener_port("body"), CLIENT) as c:
        c.sendall(POST_HEAD.replace(b"Content-Length: 100", b"Content-Length: 10"))
        for b in body:
            time.sleep(0.2)
            c.sendall(bytes([b]))
        r = parse_response(read_all(c, 5))
    assert r.status == 200, r.status


def test_request_timeout_answers_408_to_a_body_that_trickles(t):
    """A byte every 100 ms never pauses for body_timeout (10 s), but the whole request must be in
    within request_timeout (1 s): 408 while bytes are still flowing."""
    with connect(t.listener_port("whole"), CLIENT) as c:
        c.sendall(POST_HEAD)
        t0 = time.monotonic()
        got = b""
        for _ in range(100):  # up to 10 s of trickling
            try:
                c.sendall(b"z")
            except OSError:
                break
            c.settimeout(0.1)
            try:
                chunk = c.recv(65536)
            except (socket.timeout, TimeoutError):
                continue
            except ConnectionResetError:
                break
            got += chunk
            if b"\r\n\r\n" in got or not chunk:
                break
        elapsed = time.monotonic() - t0
        got += read_all(c, 3)
    r = parse_response(got)
    assert r.status == 408, got[:200]
    assert 0.9 <= elapsed < 3, elapsed


def test_request_timeout_bounds_the_head_too(t):
    with connect(t.listener_port("whole"), CLIENT) as c:
        c.sendall(b"GET / HTTP/1.1\r\nHost: example.test\r\n")  # header_timeout is 10 s
        t0 = time.monotonic()
        data = read_all(c, 5)
        elapsed = time.monotonic() - t0
    assert parse_response(data).status == 408
    assert 0.9 <= elapsed < 3, elapsed


class H2:
    """A prior-knowledge h2c client on a raw socket (python3-h2)."""

    def __init__(self, port: int):
        self.sock = connect(port, CLIENT)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()

    def flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def post(self, stream: int, body: bytes, end: bool) -> None:
        self.conn.send_headers(stream, [(":method", "POST"), (":path", "/upload"),
                                        (":scheme", "http"), (":authority", "example.test"),
                                        ("content-length", "100")])
        if body:
            self.conn.send_data(stream, body, end_stream=end)
        self.flush()

    def events(self, timeout: float, until) -> tuple[list, bool]:
        """Events until `until(events)` is true, the peer closes, or timeout; (events, closed)."""
        got: list = []
        deadline = time.monotonic() + timeout
        while not until(got):
            left = deadline - time.monotonic()
            if left <= 0:
                return got, False
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                return got, False
            except ConnectionResetError:
                return got, True
            if not data:
                return got, True
            got += self.conn.receive_data(data)
            self.flush()
        return got, False

    def close(self) -> None:
        self.sock.close()


def response_of(events: list, stream: int) -> Optional[int]:
    for e in events:
        if isinstance(e, h2.events.ResponseReceived) and e.stream_id == stream:
            return int(dict(e.headers)[b":status"])
    return None


def reset_of(events: list, stream: int) -> Optional[int]:
    for e in events:
        if isinstance(e, h2.events.StreamReset) and e.stream_id == stream:
            return e.error_code
    return None


def test_h2_stalled_body_gets_408_and_the_stream_is_ended_others_carry_on(t):
    c = H2(t.listener_port("body"))
    try:
        c.post(1, b"x" * 10, end=False)  # then nothing on stream 1
        t0 = time.monotonic()
        events, closed = c.events(5, lambda ev: reset_of(ev, 1) is not None)
        elapsed = time.monotonic() - t0
        assert not closed
        assert response_of(events, 1) == 408
        # The response is complete and the request is not: the client is told to stop sending
        # (RST_STREAM NO_ERROR) instead of the stream staying open.
        assert reset_of(events, 1) == 0
        assert 0.4 <= elapsed < 3, elapsed
        # The connection and its other streams are unaffected.
        c.conn.send_headers(3, [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                                (":authority", "example.test")], end_stream=True)
        c.flush()
        events, _ = c.events(5, lambda ev: any(isinstance(e, h2.events.StreamEnded)
                                               and e.stream_id == 3 for e in ev))
        assert response_of(events, 3) == 200
    finally:
        c.close()


def test_h2_request_timeout_answers_408_to_a_trickling_stream(t):
    c = H2(t.listener_port("whole"))
    try:
        c.post(1, b"", end=False)
        t0 = time.monotonic()
        events: list = []
        for _ in range(50):  # a byte every 100 ms, for up to 5 s
            c.conn.send_data(1, b"z")
            c.flush()
            more, closed = c.events(0.1, lambda ev: response_of(ev, 1) is not None)
            events += more
            if response_of(events, 1) is not None or closed:
                break
        elapsed = time.monotonic() - t0
        assert response_of(events, 1) == 408
        assert 0.9 <= elapsed < 3, elapsed
    finally:
        c.close()


def frame_types(data: bytes) -> list[int]:
    types, i = [], 0
    while i + 9 <= len(data):
        types.append(data[i + 3])
        i += 9 + int.from_bytes(data[i:i + 3], "big")
    return types


def test_h2_stalled_header_block_closes_the_connection(t):
    """HEADERS without END_HEADERS and no CONTINUATION: nothing else may happen on the
    connection until the block ends, so after header_timeout it gets GOAWAY and is closed."""
    c = H2(t.listener_port("body"))
    try:
        c.events(0.3, lambda ev: False)  # the server's SETTINGS, acknowledged
        block = b"\x82\x86\x84"  # :method GET, :scheme http, :path /
        c.sock.sendall(len(block).to_bytes(3, "big") + b"\x01\x00" + (1).to_bytes(4, "big") +
                       block)
        t0 = time.monotonic()
        data = b""
        c.sock.settimeout(5)
        try:
            while True:
                chunk = c.sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (socket.timeout, TimeoutError):
            pytest.fail("the connection was not closed")
        except ConnectionResetError:
            pass
        elapsed = time.monotonic() - t0
        assert 7 in frame_types(data), data[:100]  # GOAWAY
        assert 0.4 <= elapsed < 3, elapsed
    finally:
        c.close()


# ----------------------------------------------------------------------------- slowloris


def fd_limited_sluice(tmp_path: Path, soft_limit: int) -> Path:
    """A wrapper that starts sluice with a low soft open-file limit (the hard one unchanged), as
    shells and service managers commonly do (1024)."""
    wrapper = tmp_path / "sluice-low-nofile"
    wrapper.write_text(f"#!/bin/sh\nulimit -S -n {soft_limit}\n"
                       f"exec {helpers.sluice_binary()} \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper


class Slowloris:
    """`count` connections from `source`, each sending one byte of an endless request head every
    `interval` seconds and reconnecting when sluice closes it. Driven by step(), on the test's
    thread, so nothing outlives the test."""

    HEAD = b"GET / HTTP/1.1\r\nHost: example.test\r\nX-Slow: " + b"a" * 100000

    def __init__(self, port: int, source: str, count: int, interval: float):
        self.port, self.source, self.interval = port, source, interval
        self.socks: dict[socket.socket, int] = {}
        self.opened = self.refused = self.failed = self.closed_by_sluice = 0
        self.next_send = time.monotonic()
        for _ in range(count):
            self._open()

    def _open(self) -> None:
        try:
            s = connect(self.port, self.source, timeout=2)
        except ConnectionResetError:
            self.refused += 1  # by a connection limit, at once
            return
        except OSError:
            self.failed += 1
            return
        s.setblocking(False)
        self.socks[s] = 0
        self.opened += 1

    def step(self) -> None:
        if time.monotonic() < self.next_send:
            return
        self.next_send = time.monotonic() + self.interval
        for s in list(self.socks):
            pos = self.socks[s]
            try:
                s.send(self.HEAD[pos:pos + 1])
                self.socks[s] = pos + 1
                if s.recv(1024) == b"":
                    raise ConnectionResetError
            except BlockingIOError:
                pass
            except OSError:
                self.closed_by_sluice += 1
                del self.socks[s]
                s.close()
                self._open()

    def close(self) -> None:
        for s in self.socks:
            s.close()
        self.socks.clear()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run_slowloris(s, count: int, seconds: float) -> tuple[Slowloris, list[float], list, int]:
    """`count` trickling connections from ATTACKER for `seconds` while CLIENT makes a request
    every 250 ms; returns the attack, the client's latencies, its failures and the growth of
    sluice's resident memory (KiB, the peak seen)."""
    before = peak = rss_kib(s.pid)
    attack = Slowloris(s.port, ATTACKER, count, interval=1.0)
    latencies: list[float] = []
    failures: list = []
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            attack.step()
            peak = max(peak, rss_kib(s.pid))
            try:
                status, took = get_from(s.port, CLIENT, timeout=2)
                if status == 200:
                    latencies.append(took)
                else:
                    failures.append(status)
            except OSError as e:
                failures.append(repr(e))
            time.sleep(0.25)
    finally:
        attack.close()
    return attack, latencies, failures, peak - before


def test_slowloris_from_one_address_does_not_starve_another(backend, start_sluice, tmp_path):
    """400 trickling connections from 127.0.0.2 against a sluice started with the common soft
    open-file limit far below them (256 here, 1024 in many shells): a client on 127.0.0.3 is
    served promptly all along. (sluice raises its soft limit to the hard one at start; before,
    accept() failed with EMFILE and the client waited in the backlog behind the attack.)"""
    config = limited_config(backend, header_timeout="3s")  # the attack reconnects meanwhile
    s = start_sluice(config, binary=fd_limited_sluice(tmp_path, 256))
    attack, latencies, failures, growth = run_slowloris(s, count=400, seconds=8)
    assert not failures, f"{len(failures)} failed requests, e.g. {failures[:3]}"
    assert len(latencies) >= 15
    assert max(latencies) < 1.0, f"slowest request took {max(latencies):.2f}s"
    assert attack.opened >= 400 and attack.refused == 0 and attack.failed == 0
    assert attack.closed_by_sluice >= 300  # header_timeout ended them (408), they came back
    # A trickling connection holds the bytes it sent, not a 64 KiB read buffer: 400 of them
    # (and their 408s and reconnections) take a few MiB, sanitizers included (it was 64 MiB).
    assert growth < 20 * 1024, f"resident memory grew by {growth} KiB"
    assert s.alive()


def test_slowloris_over_max_connections_is_refused_per_address(backend, start_sluice):
    """When the trickling connections would fill max_connections, max_connections_per_ip keeps
    the rest of the listener for everyone else; the refused ones are counted."""
    config = limited_config(backend, max_connections=150, max_connections_per_ip=50,
                            header_timeout="30s")
    s = start_sluice(config)
    attack = Slowloris(s.port, ATTACKER, 300, interval=1.0)
    try:
        wait_for(lambda: active(s) == 50, 5, what="the attacker's 50 connections")
        for _ in range(3):
            attack.step()  # the refused ones reconnect and are refused again
            time.sleep(0.2)
        for _ in range(10):
            status, took = get_from(s.port, CLIENT, timeout=2)
            assert status == 200 and took < 1.0, (status, took)
        assert rejected(s, "max_connections_per_ip") >= 250
        assert rejected(s, "max_connections") == 0
        assert active(s) <= 51
    finally:
        attack.close()
