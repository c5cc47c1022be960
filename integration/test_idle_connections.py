"""Keep-alive connections that go idle between requests: sluice drops a connection's request
state (parser, read and write buffers, and for TLS OpenSSL's record buffers and its own
ciphertext buffers) while it waits for the next request and makes it again on the next bytes.
These check that nothing is lost across that: pipelined requests, heads and TLS records that
arrive in pieces over several idle waits, requests after a pause, and limits changed by a
reload applying to the next request of an open connection."""

from __future__ import annotations

import signal
import socket
import ssl
import time

import pytest

from helpers import RawConn, basic_config, metric_value, wait_for
from pki import Pki

HOST_HEADER = "Host: localhost\r\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.default = p.leaf("default", ["localhost"])
    return p


def get(path: str, close: bool = False) -> bytes:
    return (f"GET {path} HTTP/1.1\r\n{HOST_HEADER}"
            f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n").encode()


def config(backend, pki: Pki | None = None, **limits) -> dict:
    c = basic_config(backend, workers=1)
    listener = c["listeners"][0]
    if pki is not None:
        listener["tls"] = {"certificates": [pki.default]}
    if limits:
        listener["limits"] = limits
    return c


def connect(s, pki: Pki | None) -> RawConn:
    c = RawConn(s.port)
    if pki is not None:
        ctx = ssl.create_default_context(cafile=str(pki.ca_file))
        ctx.set_alpn_protocols(["http/1.1"])
        c.sock = ctx.wrap_socket(c.sock, server_hostname="localhost")
    return c


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_requests_after_idle_pauses_pipelined_and_trickled(backend, start_sluice, pki, tls):
    s = start_sluice(config(backend, pki if tls else None))
    with connect(s, pki if tls else None) as c:
        for i in range(3):
            c.send(get(f"/echo?i={i}"))
            r = c.read_response(timeout=5)
            assert r.status == 200 and f"i={i}".encode() in r.body
            time.sleep(0.2)  # idle: the connection holds no request state now
        # Three pipelined requests in one write, answered in order.
        c.send(get("/echo?p=1") + get("/echo?p=2") + get("/echo?p=3"))
        for i in (1, 2, 3):
            r = c.read_response(timeout=5)
            assert r.status == 200 and f"p={i}".encode() in r.body
        # A head in small pieces with pauses between: each piece arrives while the
        # connection waits without buffers (over TLS each piece is its own record).
        data = get("/echo?trickled=yes")
        for at in range(0, len(data), 5):
            c.send(data[at:at + 5])
            time.sleep(0.02)
        r = c.read_response(timeout=5)
        assert r.status == 200 and b"trickled=yes" in r.body
        # And a request with a body after that.
        body = b"x" * 100_000
        c.send(f"POST /echo HTTP/1.1\r\n{HOST_HEADER}Content-Length: {len(body)}\r\n\r\n"
               .encode() + body)
        r = c.read_response(timeout=5)
        assert r.status == 200
    assert s.metric("sluice_downstream_connections_total", listener="main") == 1


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_next_request_or_close_arriving_while_a_response_is_pending(backend, start_sluice, pki,
                                                                   tls):
    # Bytes that arrive while sluice waits for the backend are noticed once the response is out,
    # though nothing reads the socket in between: the next request, then the client's FIN.
    s = start_sluice(config(backend, pki if tls else None))
    with connect(s, pki if tls else None) as c:
        for i in range(3):
            c.send(get(f"/delay/300?i={i}"))
            time.sleep(0.1)  # the first request is at the backend now
            c.send(get(f"/echo?after={i}"))
            r = c.read_response(timeout=5)
            assert r.status == 200
            r = c.read_response(timeout=5)
            assert r.status == 200 and f"after={i}".encode() in r.body
        if tls:
            return  # Python's SSLSocket cannot half-close and keep reading TLS
        # Half-closed right after the request (the FIN likely arrives with it): the response
        # still comes, then the close, not after the idle timeout.
        c.send(get("/delay/300"))
        c.sock.shutdown(socket.SHUT_WR)
        r = c.read_response(timeout=5)
        assert r.status == 200
        c.sock.settimeout(5)
        assert c.sock.recv(1) == b""
    wait_for(lambda: s.metric("sluice_downstream_connections_active", listener="main") == 0,
             timeout=5)


def test_tls_records_split_across_idle_waits(backend, start_sluice, pki):
    # The TLS record itself arrives in pieces: the ciphertext kept between waits.
    s = start_sluice(config(backend, pki))
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    ctx.set_alpn_protocols(["http/1.1"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)

    def pump_until(done) -> None:
        deadline = time.monotonic() + 5
        while not done():
            assert time.monotonic() < deadline
            if outgoing.pending:
                sock.sendall(outgoing.read())
            sock.settimeout(0.2)
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            assert chunk, "closed"
            incoming.write(chunk)

    def handshake_done() -> bool:
        try:
            tls.do_handshake()
            return True
        except ssl.SSLWantReadError:
            return False

    pump_until(handshake_done)
    tls.write(get("/echo?split=record"))
    record = outgoing.read()
    for at in range(0, len(record), 7):
        sock.sendall(record[at:at + 7])
        time.sleep(0.01)
    response = b""

    def have_response() -> bool:
        nonlocal response
        try:
            response += tls.read(65536)
        except ssl.SSLWantReadError:
            pass
        return b"split=record" in response

    pump_until(have_response)
    assert response.startswith(b"HTTP/1.1 200")
    sock.close()


def test_reloaded_limits_apply_to_the_next_request_of_an_open_connection(backend, start_sluice):
    s = start_sluice(config(backend))
    with connect(s, None) as c:
        long_header = "X-Long: " + "a" * 3000 + "\r\n"
        c.send(f"GET / HTTP/1.1\r\n{HOST_HEADER}{long_header}\r\n".encode())
        assert c.read_response(timeout=5).status == 200
        s.write_config(config(backend, max_request_header_bytes="2KiB"))
        s.signal(signal.SIGHUP)
        wait_for(lambda: (metric_value(s.metrics(), "sluice_config_reloads_total",
                                       result="success") or 0) == 1, 5, what="the reload")
        c.send(f"GET / HTTP/1.1\r\n{HOST_HEADER}{long_header}\r\n".encode())
        assert c.read_response(timeout=5).status == 431
