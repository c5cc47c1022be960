"""HTTP/2 downstream: over TLS through ALPN and as prior-knowledge h2c on a cleartext listener
(HTTP/1.1 still served on the same port), streams through the same router, request and
response bodies, concurrency, protocol violations and attacks, GOAWAY on drain. Clients: curl,
nghttp, h2load and python3-h2 for hand-made frames."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import ssl
import subprocess
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hyperframe.frame
import pytest

from helpers import HOST, basic_config, http_request, metric_value, wait_for
from pki import Pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.default = p.leaf("default", ["localhost.example.com"])
    return p


def h2c_config(backend, **http2) -> dict:
    config = basic_config(backend)
    config["listeners"][0]["http2"] = {"cleartext": True, **http2}
    return config


def curl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=timeout)


# ----------------------------------------------------------------------------- serving


def test_h2_over_tls_through_alpn(backend, start_sluice, pki):
    config = basic_config(backend)
    config["listeners"][0]["tls"] = {"certificates": [pki.default]}
    s = start_sluice(config)
    resolve = ["--cacert", str(pki.ca_file), "--resolve",
               f"localhost.example.com:{s.port}:{HOST}"]
    url = f"https://localhost.example.com:{s.port}"
    out = curl("--http2", *resolve, "-w", "\n%{http_version}", f"{url}/echo")
    assert out.returncode == 0, out.stderr
    body, version = out.stdout.decode().rsplit("\n", 1)
    assert version == "2"
    headers = {k.lower(): v for k, v in json.loads(body)["headers"]}
    assert headers["x-forwarded-proto"] == "https"
    assert headers["host"] == f"localhost.example.com:{s.port}"
    # A large response arrives intact.
    out = curl("--http2", *resolve, f"{url}/bytes/4000000")
    assert out.returncode == 0 and len(out.stdout) == 4_000_000
    direct = curl(backend.url("/bytes/4000000"))
    assert hashlib.sha256(out.stdout).digest() == hashlib.sha256(direct.stdout).digest()


def test_h2c_prior_knowledge_and_http11_on_one_port(backend, start_sluice):
    s = start_sluice(h2c_config(backend))
    out = curl("--http2-prior-knowledge", "-w", "%{http_version} %{http_code}", "-o",
               "/dev/null", s.url("/"))
    assert out.stdout == b"2 200", out.stderr
    out = curl("--http1.1", "-w", "%{http_version} %{http_code}", "-o", "/dev/null", s.url("/"))
    assert out.stdout == b"1.1 200", out.stderr


def test_h2c_is_off_unless_configured(backend, start_sluice):
    s = start_sluice(basic_config(backend))
    out = curl("--http2-prior-knowledge", s.url("/"))
    assert out.returncode != 0  # the preface is a malformed HTTP/1.1 request there
    assert backend.stats()["requests"] == 1  # nothing but this /stats reached it


def test_request_body_and_local_replies_over_h2(backend, start_sluice, tmp_path):
    config = h2c_config(backend)
    config["routes"].insert(0, {"name": "moved", "match": {"path": {"exact": "/old"}},
                                "redirect": {"path": "/new"}})
    config["routes"][1]["match"] = {"path": {"prefix": "/"}, "methods": ["GET", "POST"]}
    s = start_sluice(config)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"x" * 3_000_000)
    out = curl("--http2-prior-knowledge", "--data-binary", f"@{upload}", s.url("/echo"))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["body_bytes"] == 3_000_000
    out = curl("--http2-prior-knowledge", "-i", s.url("/old"))
    assert out.stdout.startswith(b"HTTP/2 301")
    assert out.stdout.lower().split(b"location: ")[1].split(b"\r\n")[0].endswith(b"/new")
    out = curl("--http2-prior-knowledge", "-X", "DELETE", "-w", "%{http_code}", "-o",
               "/dev/null", s.url("/x"))
    assert out.stdout == b"404"


def test_trailers_of_a_chunked_http11_response_reach_h2_clients(backend, start_sluice):
    s = start_sluice(h2c_config(backend))
    out = subprocess.run(["nghttp", "-v", s.url("/chunked/5000?trailer=1")], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    # The trailers arrive in a HEADERS frame that ends the stream, after the DATA (nghttp
    # prints a frame's fields before the frame).
    trailer_frame = out.stdout.rsplit("recv DATA frame", 1)[1]
    assert "recv HEADERS frame" in trailer_frame
    assert "END_STREAM" in trailer_frame.split("recv HEADERS frame")[1]
    assert "x-checksum: 5000" in trailer_frame
    assert "x-served-by: sluice_test_backend" in trailer_frame


def test_many_concurrent_streams_on_one_connection(backend, start_sluice):
    s = start_sluice(h2c_config(backend))
    out = subprocess.run(["nghttp", "-n", "-s", "-m", "50", s.url("/delay/50")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("/delay/50") >= 50
    accepted = metric_value(s.metrics(), "sluice_downstream_connections_total", listener="main")
    assert accepted == 1
    # Counted when the stream is destroyed, which runs just after its last frame went out: the
    # client may have read that frame first.
    wait_for(lambda: metric_value(s.metrics(), "sluice_downstream_requests_total",
                                  listener="main", code="2xx") == 50, timeout=5)


def test_h2load_completes_every_request(backend, start_sluice):
    s = start_sluice(h2c_config(backend))
    out = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "10", s.url("/")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "2000 succeeded, 0 failed, 0 errored" in out.stdout, out.stdout


# ----------------------------------------------------------------------------- raw frames


class H2Client:
    """A python3-h2 client on a raw socket, for frames curl would never send."""

    def __init__(self, port: int, validate: bool = True):
        self.sock = socket.create_connection((HOST, port), timeout=10)
        config = h2.config.H2Configuration(client_side=True,
                                           header_encoding="utf-8",
                                           validate_outbound_headers=validate,
                                           normalize_outbound_headers=validate)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        self.flush()
        self.events: list = []
        self.closed = False

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path: str = "/", extra: list | None = None, end: bool = True) -> int:
        sid = self.conn.get_next_available_stream_id()
        headers = [(":method", "GET"), (":path", path), (":scheme", "http"),
                   (":authority", "test")] + (extra or [])
        self.conn.send_headers(sid, headers, end_stream=end)
        self.flush()
        return sid

    def pump(self, until, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
                return
            self.events += self.conn.receive_data(data)
            self.flush()

    def of(self, kind, sid: int | None = None) -> list:
        return [e for e in self.events if isinstance(e, kind)
                and (sid is None or getattr(e, "stream_id", None) == sid)]


def test_settings_advertise_max_concurrent_streams(backend, start_sluice):
    s = start_sluice(h2c_config(backend, max_concurrent_streams=7))
    c = H2Client(s.port)
    c.pump(lambda: c.of(h2.events.RemoteSettingsChanged))
    changed = c.of(h2.events.RemoteSettingsChanged)[0].changed_settings
    assert changed[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS].new_value == 7


@pytest.mark.parametrize("extra", [
    [("connection", "keep-alive")],
    [("transfer-encoding", "chunked")],
    [("te", "gzip")],
    [("x-bad", "a\r\nb")],
    [("Upper-Case", "x")],
    [(f"x-b{i}", "a" * 2000) for i in range(40)],
    [(f"x-h{i}", "v") for i in range(120)],
], ids=["connection", "transfer-encoding", "te", "crlf-in-value", "uppercase-name",
        "header-list-over-64KiB", "over-100-fields"])
def test_malformed_requests_are_reset_and_never_forwarded(backend, start_sluice, extra):
    s = start_sluice(h2c_config(backend))
    c = H2Client(s.port, validate=False)
    sid = c.request("/echo", extra=extra)
    c.pump(lambda: c.of(h2.events.StreamReset, sid) or c.of(h2.events.ResponseReceived, sid))
    assert c.of(h2.events.StreamReset, sid), c.events
    # The connection stays usable for a good request.
    good = c.request("/")
    c.pump(lambda: c.of(h2.events.StreamEnded, good))
    assert c.of(h2.events.ResponseReceived, good)
    assert backend.stats()["requests"] == 2  # the good request and this /stats


def test_rapid_reset_closes_the_connection_and_others_are_served(backend, start_sluice):
    s = start_sluice(h2c_config(backend))
    attacker = H2Client(s.port)
    sent = 0
    try:
        for _ in range(5000):
            sid = attacker.request("/delay/1000")
            attacker.conn.reset_stream(sid)
            attacker.flush()
            sent += 1
    except (BrokenPipeError, ConnectionResetError, h2.exceptions.ProtocolError):
        pass
    attacker.pump(lambda: attacker.closed, timeout=10)
    # nghttp2's stream reset rate limit: GOAWAY after about a thousand, then the close.
    assert attacker.of(h2.events.ConnectionTerminated), attacker.events[-3:]
    assert attacker.closed
    out = curl("--http2-prior-knowledge", "-w", "%{http_code}", "-o", "/dev/null", s.url("/"))
    assert out.stdout == b"200"


def raw_h2(port: int) -> socket.socket:
    """A socket past the connection preface and an empty SETTINGS frame."""
    sock = socket.create_connection((HOST, port), timeout=10)
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b""))
    return sock


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + \
        stream.to_bytes(4, "big") + payload


def closed_by_server(sock: socket.socket, timeout: float = 10) -> bool:
    """Reads until EOF (True) or the timeout (False)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_ping_flood_without_reading_is_cut_off(backend, start_sluice):
    s = start_sluice(h2c_config(backend))
    sock = raw_h2(s.port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never read: acks pile up
    ping = frame(6, 0, 0, b"12345678")
    sent = 0
    try:
        for _ in range(200):
            sock.sendall(ping * 100)
            sent += 100
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert closed_by_server(sock)
    out = curl("--http2-prior-knowledge", "-w", "%{http_code}", "-o", "/dev/null", s.url("/"))
    assert out.stdout == b"200"


def test_continuation_flood_is_cut_off(backend, start_sluice):
    s = start_sluice(h2c_config(backend))
    sock = raw_h2(s.port)
    # HEADERS without END_HEADERS, then endless CONTINUATION frames without END_HEADERS.
    block = bytes([0x82, 0x86, 0x84]) + bytes([0x41, 0x04]) + b"test"  # GET http / :authority
    sock.sendall(frame(1, 0x1, 1, block))  # END_STREAM only
    try:
        for i in range(10000):
            sock.sendall(frame(9, 0, 1, bytes([0x40, 0x02]) + b"xh" + bytes([0x01]) + b"v"))
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert closed_by_server(sock)
    assert backend.stats()["requests"] == 1  # nothing of it was forwarded


def frames(data: bytes) -> list:
    """Splits raw server bytes into hyperframe frames (python3-h2 itself stops at GOAWAY)."""
    out = []
    while len(data) >= 9:
        frame, length = hyperframe.frame.Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9:9 + length]))
        out.append(frame)
        data = data[9 + length:]
    return out


def get_block(scheme: str) -> bytes:
    """GET / on `scheme` with :authority "test", in HPACK that leaves the dynamic table alone
    (static entries, a literal without indexing), so it can be sent on any stream in any order."""
    return bytes([0x82, 0x84, 0x87 if scheme == "https" else 0x86, 0x01, 0x04]) + b"test"


def read_until_closed(sock: socket.socket, timeout: float = 5) -> tuple[bytes, bool]:
    """What the server sends until it closes (True) or goes quiet for `timeout` (False)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, ssl.SSLError):
        pass
    except socket.timeout:
        return data, False
    return data, True


def test_headers_on_a_stream_id_below_a_previous_one_is_a_connection_error(backend, start_sluice,
                                                                           pki):
    # h2spec http2/5.1.1/2, on the TLS listener as h2spec runs it. Opening stream 5 closes idle
    # streams 1 and 3 for good, so HEADERS on 3 afterwards are a connection error of type
    # PROTOCOL_ERROR (RFC 9113 §5.1.1). nghttp2 alone ignores them: stream 5 was answered and
    # no GOAWAY came.
    config = basic_config(backend)
    config["listeners"][0]["tls"] = {"certificates": [pki.default]}
    s = start_sluice(config)
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    context.set_alpn_protocols(["h2"])
    sock = context.wrap_socket(socket.create_connection((HOST, s.port), timeout=10),
                               server_hostname="localhost.example.com")
    assert sock.selected_alpn_protocol() == "h2"
    block = get_block("https")
    sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"") +
                 frame(1, 0x5, 5, block) + frame(1, 0x5, 3, block))  # END_STREAM | END_HEADERS
    raw, closed = read_until_closed(sock)
    got = frames(raw)
    goaway = [f for f in got if isinstance(f, hyperframe.frame.GoAwayFrame)]
    assert goaway, [(type(f).__name__, f.stream_id) for f in got]
    assert goaway[0].error_code == 1  # PROTOCOL_ERROR
    assert goaway[0].last_stream_id == 5
    assert closed
    # Stream 3 never reached the backend (stream 5 may have: it is within the GOAWAY).
    assert backend.stats()["requests"] <= 2


def test_a_client_may_skip_stream_ids(backend, start_sluice):
    # The other side of the rule above: gaps going upwards are fine.
    s = start_sluice(h2c_config(backend))
    c = H2Client(s.port)
    first = c.request("/")
    c.conn.send_headers(7, [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                            (":authority", "test")], end_stream=True)
    c.flush()
    c.pump(lambda: c.of(h2.events.StreamEnded, first) and c.of(h2.events.StreamEnded, 7))
    assert c.of(h2.events.ResponseReceived, first) and c.of(h2.events.ResponseReceived, 7)
    assert not c.of(h2.events.ConnectionTerminated)


def test_sigterm_sends_goaway_and_lets_streams_finish(backend, start_sluice):
    s = start_sluice(h2c_config(backend))
    c = H2Client(s.port)
    sid = c.request("/delay/700")
    time.sleep(0.3)  # the request is in flight
    s.signal(signal.SIGTERM)
    raw = b""
    c.sock.settimeout(10)
    while chunk := c.sock.recv(65536):
        raw += chunk
    got = frames(raw)
    kinds = [type(f).__name__ for f in got]
    assert "GoAwayFrame" in kinds, kinds
    goaway = kinds.index("GoAwayFrame")
    assert got[goaway].last_stream_id == sid and got[goaway].error_code == 0
    # After the GOAWAY, the stream in progress still gets its whole response.
    after = got[goaway + 1:]
    assert any(isinstance(f, hyperframe.frame.HeadersFrame) and f.stream_id == sid for f in after)
    assert any(isinstance(f, hyperframe.frame.DataFrame) and f.stream_id == sid
               and "END_STREAM" in f.flags for f in after)
    assert s.wait(timeout=10) == 0
    s.expect_clean_exit = False  # checked here: it exited by itself, with 0


def test_an_h2_connection_opened_during_an_api_drain_gets_goaway_after_its_first_stream(
        backend, start_sluice):
    # POST /drain keeps accepting (it can be cancelled); an HTTP/1.1 connection opened meanwhile
    # is closed after its request, and an HTTP/2 one must likewise be told to go: GOAWAY naming
    # the streams it has sent, which still get their whole responses.
    s = start_sluice(h2c_config(backend))
    assert http_request("POST", s.admin_url("/drain")).status == 200
    c = H2Client(s.port)
    sid = c.request("/delay/300")
    raw, closed = read_until_closed(c.sock, 10)
    assert closed  # after the response: the GOAWAY is honoured
    got = frames(raw)
    kinds = [type(f).__name__ for f in got]
    assert "GoAwayFrame" in kinds, kinds
    goaway = got[kinds.index("GoAwayFrame")]
    assert goaway.last_stream_id == sid and goaway.error_code == 0
    assert any(isinstance(f, hyperframe.frame.DataFrame) and f.stream_id == sid
               and "END_STREAM" in f.flags for f in got)
    assert b"hello" in b"".join(f.data for f in got if isinstance(f, hyperframe.frame.DataFrame))


def test_idle_h2_connection_gets_goaway_then_close(backend, start_sluice):
    config = h2c_config(backend)
    config["listeners"][0]["limits"] = {"idle_timeout": "300ms"}
    s = start_sluice(config)
    c = H2Client(s.port)
    sid = c.request("/")
    c.pump(lambda: c.of(h2.events.StreamEnded, sid))
    c.pump(lambda: c.closed, timeout=10)
    assert c.closed
    terminated = c.of(h2.events.ConnectionTerminated)
    assert terminated and terminated[0].error_code == 0 and terminated[0].last_stream_id == sid


def test_a_steady_200_stream_load_reuses_upstream_connections(backend, start_sluice):
    # 200 requests in flight (10 connections x 20 streams) to one HTTP/1.1 backend need about
    # 200 upstream connections. With the defaults they stay pooled between waves: a pool that
    # closed all but a fixed number (64 used to be the default) opened ~140 new ones every wave.
    # One worker: each worker has its own pool, and how h2load's connections split over two
    # would vary from wave to wave.
    config = h2c_config(backend)
    config["workers"] = 1
    s = start_sluice(config)

    def wave():
        out = subprocess.run(["h2load", "-n", "600", "-c", "10", "-m", "20",
                              s.url("/delay/100")], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "600 succeeded, 0 failed, 0 errored" in out.stdout, out.stdout
        return metric_value(s.metrics(), "sluice_upstream_connections_created_total",
                            cluster="default")

    first = wave()
    assert first <= 260, first  # about one per request in flight
    after = [wave() for _ in range(3)]
    # Later waves at the same concurrency reuse what the first opened.
    assert after[-1] - first <= 20, (first, after)
