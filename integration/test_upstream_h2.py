"""Cluster `protocol: h2`: requests multiplexed over HTTP/2 connections to the backend (h2c, and
h2 over TLS with ALPN), a new connection when the backend's stream limit is reached, requests
the backend did not process (GOAWAY) sent again on a new connection, and trailers both ways.
The backend is python3-h2 (integration/h2_backend.py) in a thread of the test."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import h2.config
import h2.connection
import h2.events
import pytest

from h2_backend import H2Backend
from helpers import HOST, basic_config, http_get, http_request, metric_value, wait_for
from pki import Pki


@pytest.fixture
def start_h2_backend():
    started: list[H2Backend] = []

    def start(**kw) -> H2Backend:
        b = H2Backend(**kw)
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


def h2_cluster_config(backend: H2Backend, **cluster) -> dict:
    # One worker: connections are per worker, and the tests count them.
    config = basic_config(backend.address, workers=1)
    config["clusters"][0].update({"protocol": "h2", **cluster})
    config["listeners"][0]["http2"] = {"cleartext": True}
    return config


def get_many(s, path: str, n: int) -> list:
    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda _: http_get(s.url(path), timeout=20), range(n)))


def test_requests_are_multiplexed_on_one_connection(start_h2_backend, start_sluice):
    b = start_h2_backend()
    s = start_sluice(h2_cluster_config(b))
    responses = get_many(s, "/delay/300", 20)
    assert [r.status for r in responses] == [200] * 20
    seen = responses[0].json()
    assert seen["method"] == "GET" and seen["scheme"] == "http"
    assert seen["authority"] == f"127.0.0.1:{s.port}"  # Host became :authority
    names = [k for k, _ in seen["headers"]]
    assert "host" not in names and "connection" not in names
    assert "x-forwarded-for" in names
    # Twenty requests at once, all in flight together, over one connection.
    assert b.connections == 1
    assert b.max_open == 20
    assert metric_value(s.metrics(), "sluice_upstream_requests_total", cluster="default",
                        code="2xx") == 20


def test_a_new_connection_when_the_stream_limit_is_reached(start_h2_backend, start_sluice):
    b = start_h2_backend(max_streams=2)
    s = start_sluice(h2_cluster_config(b))
    assert http_get(s.url("/")).status == 200  # the backend's SETTINGS are known from here on
    responses = get_many(s, "/delay/400", 8)
    assert [r.status for r in responses] == [200] * 8
    assert b.max_open <= 2  # never more streams than the backend allows
    assert b.connections >= 4
    by_conn: dict[int, int] = {}
    for r in responses:
        by_conn[r.json()["connection"]] = by_conn.get(r.json()["connection"], 0) + 1
    assert max(by_conn.values()) <= 4  # spread, not queued behind one connection


def test_cluster_max_concurrent_streams_caps_each_connection(start_h2_backend, start_sluice):
    b = start_h2_backend()
    s = start_sluice(h2_cluster_config(b, max_concurrent_streams=3))
    responses = get_many(s, "/delay/400", 9)
    assert [r.status for r in responses] == [200] * 9
    assert b.max_open <= 3
    assert b.connections >= 3


def test_unprocessed_request_after_goaway_is_sent_again(start_h2_backend, start_sluice):
    b = start_h2_backend(goaway_first=True)
    s = start_sluice(h2_cluster_config(b))
    r = http_request("POST", s.url("/upload"), body=b"payload-bytes",
                     headers={"content-type": "text/plain"})
    assert r.status == 200, r.text
    seen = r.json()
    assert seen["connection"] == 2  # the first connection sent GOAWAY without answering
    assert seen["body"] == "payload-bytes"  # the body went again with it
    assert b.connections == 2


def test_client_going_away_resets_the_upstream_stream(start_h2_backend, start_sluice):
    b = start_h2_backend()
    s = start_sluice(h2_cluster_config(b))
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", "0.5",
                          s.url("/delay/3000")], capture_output=True, timeout=10)
    assert out.returncode == 28  # curl gave up
    wait_for(lambda: b.resets == 1, timeout=5)
    assert http_get(s.url("/")).status == 200  # the connection itself stays in use
    assert b.connections == 1


def test_connection_lost_mid_response_aborts_the_downstream(start_h2_backend, start_sluice):
    b = start_h2_backend()
    s = start_sluice(h2_cluster_config(b))
    with s.raw() as c:
        c.send(b"GET /die-mid HTTP/1.1\r\nHost: x\r\n\r\n")
        data = c.read_until_close(timeout=5)
    assert data.startswith(b"HTTP/1.1 200")
    assert b"partial" in data
    assert not data.endswith(b"0\r\n\r\n")  # never presented as complete
    assert http_get(s.url("/")).status == 200  # a new connection serves the next request
    assert b.connections == 2


def test_idle_connection_is_closed_with_goaway(start_h2_backend, start_sluice):
    b = start_h2_backend()
    s = start_sluice(h2_cluster_config(b, idle_timeout="300ms"))
    assert http_get(s.url("/")).status == 200
    wait_for(lambda: b.closed == 1, timeout=5)
    assert b.goaways == 1


def test_reload_moves_new_requests_and_lets_the_old_connection_finish(start_h2_backend,
                                                                      start_sluice):
    old, new = start_h2_backend(), start_h2_backend()
    s = start_sluice(h2_cluster_config(old))
    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(http_get, s.url("/delay/1500"), timeout=10)
        wait_for(lambda: old.max_open == 1, timeout=5)
        s.write_config(h2_cluster_config(new))
        s.signal(signal.SIGHUP)
        wait_for(lambda: s.metric("sluice_config_reloads_total", result="success") == 1,
                 timeout=5)
        assert http_get(s.url("/")).json()["connection"] == 1
        assert new.connections == 1
        # The request in flight on the dropped endpoint's connection completes, then that
        # connection is closed.
        assert slow.result(timeout=10).status == 200
    wait_for(lambda: old.closed == 1, timeout=5)
    assert old.connections == 1


def test_backend_down_is_503_and_never_hangs(start_sluice):
    sock = socket.socket()
    sock.bind((HOST, 0))
    port = sock.getsockname()[1]
    sock.close()
    config = basic_config(f"127.0.0.1:{port}")
    config["clusters"][0]["protocol"] = "h2"
    s = start_sluice(config)
    r = http_get(s.url("/"), timeout=10)
    assert r.status == 503


def test_h2_over_tls_with_alpn(start_h2_backend, start_sluice, tmp_path):
    (tmp_path / "pki").mkdir()
    pki = Pki(tmp_path / "pki")
    cert = pki.leaf("backend", ["backend.example.com"])
    b = start_h2_backend(cert=cert)
    s = start_sluice(h2_cluster_config(b, tls={"sni": "backend.example.com",
                                               "ca_file": str(pki.ca_file)}))
    responses = get_many(s, "/delay/100", 5)
    assert [r.status for r in responses] == [200] * 5
    assert responses[0].json()["scheme"] == "https"
    assert b.alpn == ["h2"]


class H2Client:
    """A prior-knowledge h2c client on python3-h2, for trailers curl does not show."""

    def __init__(self, port: int):
        self.sock = socket.create_connection((HOST, port), timeout=10)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())

    def exchange(self, path: str, body: bytes, trailers: list) -> dict:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", "POST"), (":path", path), (":scheme", "http"),
                                     (":authority", "example.com"), ("te", "trailers")])
        self.conn.send_data(sid, body)
        self.conn.send_headers(sid, trailers, end_stream=True)
        self.sock.sendall(self.conn.data_to_send())
        out = {"headers": None, "body": b"", "trailers": None}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            data = self.sock.recv(65536)
            assert data, "connection closed"
            for e in self.conn.receive_data(data):
                if isinstance(e, h2.events.ResponseReceived):
                    out["headers"] = dict((k.decode(), v.decode()) for k, v in e.headers)
                elif isinstance(e, h2.events.DataReceived):
                    out["body"] += e.data
                    self.conn.acknowledge_received_data(e.flow_controlled_length, sid)
                elif isinstance(e, h2.events.TrailersReceived):
                    out["trailers"] = dict((k.decode(), v.decode()) for k, v in e.headers)
                elif isinstance(e, h2.events.StreamEnded):
                    return out
                elif isinstance(e, h2.events.StreamReset):
                    raise AssertionError(f"stream reset: {e.error_code}")
            self.sock.sendall(self.conn.data_to_send())
        raise AssertionError("no response")


def test_trailers_pass_through_both_ways(start_h2_backend, start_sluice):
    b = start_h2_backend()
    s = start_sluice(h2_cluster_config(b))
    client = H2Client(s.port)
    out = client.exchange("/trailers", b"hello", [("x-request-checksum", "42")])
    assert out["headers"][":status"] == "200"
    seen = json.loads(out["body"])
    assert seen["body"] == "hello"
    assert seen["trailers"] == [["x-request-checksum", "42"]]
    assert ["te", "trailers"] in seen["headers"]  # gRPC servers insist on it
    assert out["trailers"] == {"x-checksum": "abc", "x-count": "1"}
