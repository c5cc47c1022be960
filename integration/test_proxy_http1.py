"""HTTP/1.1 proxying end to end: keep-alive, pipelining, framing, forwarding headers, the
upstream pool and every upstream failure mode, against the real binary and test backend."""

import socket
import subprocess
import time

import pytest

from helpers import (HOST, IncompleteResponse, RawConn, basic_config, http_request,
                     request_bytes)


def one_worker(*backends, **extra):
    config = basic_config(*backends, workers=1, **extra)
    return config


@pytest.fixture
def proxy(start_backend, start_sluice):
    b = start_backend("a")
    s = start_sluice(one_worker(b))
    s.backend = b
    return s


def echo(s, **kw):
    r = s.request(kw.pop("method", "GET"), "/echo", **kw)
    assert r.status == 200, r.text
    data = r.json()
    data["headers_lower"] = {k.lower(): v for k, v in data["headers"]}
    return data


# ----------------------------------------------------------------------------- keep-alive


def test_keep_alive_serves_many_requests_on_one_connection(proxy):
    conn = proxy.connection()
    try:
        for i in range(20):
            conn.request("GET", f"/echo?i={i}")
            r = conn.getresponse()
            assert r.status == 200
            assert f"i={i}" in r.read().decode()
    finally:
        conn.close()
    # The same downstream connection served all of them.
    assert proxy.metric("sluice_downstream_connections_total", listener="main") == 1


def test_pool_reuses_upstream_connections(proxy):
    for _ in range(30):
        assert proxy.get("/").status == 200  # a new downstream connection each time
    stats = proxy.backend.stats()
    assert stats["requests"] >= 31
    # Sequential requests through one worker reuse one pooled connection (plus the stats call).
    assert stats["connections_accepted"] <= 3, stats


def test_pipelined_requests_are_answered_in_order(proxy):
    with proxy.raw() as c:
        c.send(request_bytes("GET", "/delay/300?n=1") + request_bytes("GET", "/echo?n=2") +
               request_bytes("POST", "/echo?n=3", body=b"hello") +
               request_bytes("GET", "/status/204"))
        first = c.read_response()
        assert first.status == 200
        second = c.read_response()
        assert second.status == 200 and b"n=2" in second.body
        third = c.read_response()
        assert b"n=3" in third.body and b'"body_bytes":5' in third.body
        fourth = c.read_response()
        assert fourth.status == 204 and fourth.body == b""


# ----------------------------------------------------------------------------- framing


def test_head_has_no_body_and_keeps_the_connection_usable(proxy):
    with proxy.raw() as c:
        c.send(request_bytes("HEAD", "/bytes/1000"))
        r = c.read_response(head_request=True)
        assert r.status == 200 and r.header("content-length") == "1000"
        c.send(request_bytes("GET", "/echo"))
        assert c.read_response().status == 200


@pytest.mark.parametrize("code", [204, 304])
def test_bodiless_statuses(proxy, code):
    with proxy.raw() as c:
        c.send(request_bytes("GET", f"/status/{code}"))
        r = c.read_response()
        assert r.status == code and r.body == b""
        assert r.header("transfer-encoding") is None
        c.send(request_bytes("GET", "/echo"))
        assert c.read_response().status == 200


def test_interim_1xx_is_forwarded_before_the_final_response(proxy):
    with proxy.raw() as c:
        c.send(request_bytes("GET", "/status/103"))
        interim = c.read_response(skip_interim=False)
        assert interim.status == 103
        final = c.read_response()
        assert final.status == 200


def test_expect_100_continue(proxy):
    with proxy.raw() as c:
        c.send(request_bytes("POST", "/echo", headers=[("Expect", "100-continue"),
                                                       ("Content-Length", "5")],
                             content_length=False))
        interim = c.read_response(skip_interim=False)
        assert interim.status == 100
        c.send(b"hello")
        r = c.read_response()
        assert r.status == 200 and b'"body_bytes":5' in r.body
        # Expect is answered by sluice and not forwarded.
        assert b"100-continue" not in r.body


def test_expect_100_continue_refused_without_reading_the_body(start_backend, start_sluice):
    b = start_backend("a")
    config = one_worker(b)
    config["listeners"][0]["limits"] = {"max_request_body_bytes": "1KiB"}
    s = start_sluice(config)
    with s.raw() as c:
        c.send(request_bytes("POST", "/echo", headers=[("Expect", "100-continue"),
                                                       ("Content-Length", "100000")],
                             content_length=False))
        r = c.read_response(skip_interim=False)
        assert r.status == 413
        assert c.peer_closed(timeout=3)
    assert b.stats()["requests"] == 1  # only the stats call


def test_chunked_request_body_is_forwarded(proxy):
    r = proxy.request("POST", "/echo", body=iter([b"abc", b"defg", b"h" * 70000]))
    assert r.status == 200
    data = r.json()
    assert data["body_bytes"] == 70007
    assert data["body_prefix"].startswith("abcdefg")


def test_chunked_and_length_responses(proxy):
    r = proxy.get("/chunked/300000")
    assert r.status == 200 and len(r.body) == 300000
    r = proxy.get("/bytes/300000")
    assert r.status == 200 and len(r.body) == 300000 and r.header("content-length") == "300000"


def test_response_trailers_are_forwarded_in_the_last_chunk(proxy):
    with proxy.raw() as c:
        c.send(request_bytes("GET", "/chunked/1000?trailer=1", headers=[("Connection", "close")]))
        data = c.read_until_close(timeout=5)
    assert data.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding: chunked" in data.lower()
    assert data.endswith(b"\r\n0\r\nX-Checksum: 1000\r\nX-Served-By: sluice_test_backend\r\n\r\n")


# ----------------------------------------------------------------------------- Connection


def test_client_connection_close_is_honoured(proxy):
    with proxy.raw() as c:
        c.send(request_bytes("GET", "/echo", headers=[("Connection", "close")]))
        r = c.read_response()
        assert r.status == 200 and r.header("connection") == "close"
        assert c.peer_closed(timeout=3)


def test_backend_connection_close_is_honoured(proxy):
    before = proxy.backend.stats()["connections_accepted"]
    with proxy.raw() as c:
        for _ in range(3):
            c.send(request_bytes("GET", "/close"))
            r = c.read_response()
            assert r.status == 200
            # The client's connection stays open: Connection is hop-by-hop.
            assert r.header("connection") is None
    after = proxy.backend.stats()["connections_accepted"]
    # Each /close response closed its upstream connection, so each needed a new one.
    assert after - before >= 3


def test_http10_client(proxy):
    with proxy.raw() as c:
        c.send(b"GET /chunked/1000 HTTP/1.0\r\n\r\n")
        data = c.read_until_close(timeout=5)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200")
    assert b"transfer-encoding" not in head.lower()  # 1.0 clients get a close-delimited body
    assert body == b"x" * 1000


def test_http10_keep_alive(proxy):
    with proxy.raw() as c:
        c.send(b"GET /bytes/10 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        assert r.version == "HTTP/1.0" and r.header("connection").lower() == "keep-alive"
        assert r.body == b"x" * 10
        c.send(b"GET /bytes/5 HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.body == b"x" * 5
        assert c.peer_closed(timeout=3)


# ----------------------------------------------------------------------------- headers


def test_hop_by_hop_headers_are_removed_both_ways(proxy):
    data = echo(proxy, headers=[("Connection", "keep-alive, X-Secret"), ("X-Secret", "1"),
                                ("Keep-Alive", "timeout=5"), ("TE", "trailers"),
                                ("Upgrade", "websocket"), ("Proxy-Connection", "keep-alive"),
                                ("X-Kept", "yes")])
    h = data["headers_lower"]
    for name in ("connection", "x-secret", "keep-alive", "te", "upgrade", "proxy-connection"):
        assert name not in h, name
    assert h["x-kept"] == "yes"

    r = proxy.get("/headers?Connection=x-bar&x-bar=1&Keep-Alive=timeout%3D5&x-other=2")
    assert r.status == 200
    assert r.header("x-bar") is None and r.header("keep-alive") is None
    assert r.header("x-other") == "2"


def test_forwarded_headers(proxy):
    data = echo(proxy, headers=[("Host", "shop.example:8080"), ("X-Forwarded-For", "10.1.1.1")])
    h = data["headers_lower"]
    assert h["host"] == "shop.example:8080"
    # The client is not a trusted proxy: what it claims is replaced, not extended.
    assert h["x-forwarded-for"] == "127.0.0.1"
    assert h["x-real-ip"] == "127.0.0.1"
    assert h["x-forwarded-proto"] == "http"
    assert h["x-forwarded-host"] == "shop.example:8080"

    h = echo(proxy)["headers_lower"]
    assert h["x-forwarded-for"] == "127.0.0.1"


# ----------------------------------------------------------------------------- balancing


def test_round_robin_over_endpoints(start_backend, start_sluice):
    a, b = start_backend("a"), start_backend("b")
    s = start_sluice(one_worker(a, b))
    seen = [s.get("/").header("x-backend") for _ in range(10)]
    assert seen.count("a") == 5 and seen.count("b") == 5
    assert all(x != y for x, y in zip(seen, seen[1:]))  # strictly alternating


def test_stale_pooled_connection_is_not_a_failure(start_backend, start_sluice):
    a = start_backend("a")
    s = start_sluice(one_worker(a))
    assert s.get("/").status == 200  # leaves one idle pooled connection to a
    port = a.port
    a.stop()  # closes the pooled connection from the backend's side
    replacement = start_backend("a2", port=port)
    for _ in range(3):
        r = s.get("/echo")
        assert r.status == 200 and r.header("x-backend") == "a2"
    replacement.stop()


# ----------------------------------------------------------------------------- failures


def test_unreachable_backend_is_503_quickly(start_sluice):
    closed = socket.socket()
    closed.bind((HOST, 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: connection refused
    s = start_sluice(one_worker(f"{HOST}:{port}"))
    t0 = time.monotonic()
    r = s.get("/")
    assert r.status == 503
    assert r.header("content-type").startswith("text/plain")
    assert 0 < len(r.body) < 100
    assert time.monotonic() - t0 < 2


def test_connect_timeout_is_503(start_sluice):
    # A listener with a full accept queue drops further SYNs, so connects hang.
    server = socket.socket()
    server.bind((HOST, 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex((HOST, port))
        fillers.append(f)
    time.sleep(0.2)
    try:
        config = one_worker(f"{HOST}:{port}")
        config["clusters"][0]["connect_timeout"] = "300ms"
        s = start_sluice(config)
        t0 = time.monotonic()
        r = s.get("/", timeout=10)
        elapsed = time.monotonic() - t0
        assert r.status == 503
        assert 0.25 < elapsed < 3, elapsed
        assert s.metric("sluice_upstream_connect_failures_total", cluster="default") >= 1
    finally:
        for f in fillers:
            f.close()
        server.close()


def test_route_timeout_is_504(start_backend, start_sluice):
    b = start_backend("a")
    config = one_worker(b)
    config["routes"][0]["timeout"] = "500ms"
    s = start_sluice(config)
    t0 = time.monotonic()
    r = s.get("/delay/3000")
    elapsed = time.monotonic() - t0
    assert r.status == 504
    assert 0.4 < elapsed < 2.5, elapsed
    assert s.get("/delay/10").status == 200


@pytest.mark.parametrize("path", ["/garbage", "/truncated-head"])
def test_bad_upstream_response_is_502(proxy, path):
    t0 = time.monotonic()
    r = proxy.get(path)
    assert r.status == 502
    assert time.monotonic() - t0 < 2


@pytest.mark.parametrize("path,chunked", [("/reset-mid/200000", False),
                                          ("/close-mid/200000", False),
                                          ("/chunked-reset/200000", True)])
def test_upstream_failure_mid_response_aborts_downstream(proxy, path, chunked):
    with proxy.raw() as c:
        c.send(request_bytes("GET", path))
        with pytest.raises(IncompleteResponse) as e:
            c.read_response()
        assert e.value.why in ("eof", "reset")
        assert e.value.partial.startswith(b"HTTP/1.1 200")
        if chunked:
            assert not e.value.partial.endswith(b"0\r\n\r\n")
    # The proxy stays healthy.
    assert proxy.get("/").status == 200


def test_curl_sees_an_aborted_download_as_an_error(proxy):
    result = subprocess.run(["curl", "-sS", "-o", "/dev/null", "--max-time", "10",
                             proxy.url("/reset-mid/500000")], capture_output=True, text=True,
                            timeout=20)
    assert result.returncode != 0  # 18 (partial file) or 56 (recv failure)


def test_metrics_count_requests(proxy):
    for path in ("/", "/status/404", "/status/503"):
        proxy.get(path)
    assert proxy.metric("sluice_downstream_requests_total", listener="main", code="2xx") >= 1
    assert proxy.metric("sluice_downstream_requests_total", listener="main", code="4xx") >= 1
    assert proxy.metric("sluice_upstream_requests_total", cluster="default", code="5xx") >= 1
    assert proxy.metric("sluice_request_duration_seconds_count", route="default") >= 3


def test_stalled_request_body_times_out(start_backend, start_sluice):
    b = start_backend("a")
    config = one_worker(b)
    config["listeners"][0]["limits"] = {"body_timeout": "1s"}
    s = start_sluice(config)
    with s.raw() as c:
        c.send(request_bytes("POST", "/upload", headers=[("Content-Length", "1000")],
                             content_length=False) + b"x" * 10)
        t0 = time.monotonic()
        r = c.read_response(timeout=5)
        assert r.status == 408
        assert 0.8 < time.monotonic() - t0 < 4
        assert c.peer_closed(timeout=3)
    # The backend never saw the upload complete (the stats call is its only whole request).
    assert b.stats()["requests_complete"] == 1
