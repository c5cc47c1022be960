"""Response compression through the real binary: each algorithm over HTTP/1.1 and HTTP/2
(prior knowledge, curl), bodies decoded with Python's zlib, brotli and zstandard and compared
byte for byte with what the origin sent; a 2 MiB body; a streamed response whose first event
decodes before the origin sends the second; and every case that must stay uncompressed
(already encoded, small, no-transform, wrong type, HEAD, the client does not accept, a route
that turns it off) with Vary on every compressible response.

The origin is a small Python server in this file: it serves exactly the content types, lengths
and headers each case needs (the C++ test backend serves only application/octet-stream)."""

from __future__ import annotations

import http.client
import subprocess
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import brotli
import pytest
import zstandard

from helpers import HOST, http_request

KIB = 1024


def page(size: int) -> bytes:
    """An HTML-like body of `size` bytes: compressible, not uniform."""
    out, i, n = [], 0, 0
    while n < size:
        line = (f"<li class=\"row-{i % 13}\"><a href=\"/item/{i * 7919 % 100003}\">"
                f"item {i}</a> sluice {i * i % 977}</li>\n").encode()
        out.append(line)
        n += len(line)
        i += 1
    return b"".join(out)[:size]


def decode(coding: str | None, body: bytes) -> bytes:
    if coding is None:
        return body
    if coding == "gzip":
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if coding == "br":
        return brotli.decompress(body)
    if coding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    raise AssertionError(f"unexpected coding {coding}")


class Origin:
    """GET/HEAD /page?size=N&type=T&chunked=1&h=Name:Value...: a page() body with Content-Length
    (or chunked); GET /events?n=N: text/plain chunks 'event I\\n', each sent only after the test
    called release()."""

    def __init__(self):
        self.released = threading.Semaphore(0)
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.do_GET(head=True)

            def do_GET(self, head=False):
                url = urlsplit(self.path)
                q = parse_qsl(url.query)
                args = dict(q)
                if url.path == "/events":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(int(args.get("n", "3"))):
                        if i > 0 and not origin.released.acquire(timeout=10):
                            break
                        data = f"event {i}\n".encode()
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    return
                body = page(int(args.get("size", "10240")))
                if "raw" in args:  # a body the origin encoded itself
                    body = zlib.compress(body)
                self.send_response(int(args.get("status", "200")))
                self.send_header("Content-Type", args.get("type", "text/html; charset=utf-8"))
                for k, v in q:
                    if k == "h":
                        name, _, value = v.partition(":")
                        self.send_header(name, value.strip())
                chunked = args.get("chunked") == "1"
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if head:
                    return
                if chunked:
                    for at in range(0, len(body), 3000):
                        piece = body[at:at + 3000]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.wfile.write(body)

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.address = f"{HOST}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def origin():
    o = Origin()
    yield o
    o.stop()


def config(origin: Origin, listener_compression=None, **route_compression) -> dict:
    listener = {"name": "main", "http2": {"cleartext": True}}
    if listener_compression is not None:
        listener["compression"] = listener_compression
    routes = [{"name": "raw", "match": {"path": {"prefix": "/page-raw"}}, "cluster": "origin",
               "rewrite": {"prefix": "/page"}, "compression": {"enabled": False}},
              {"name": "json", "match": {"path": {"prefix": "/json-only"}}, "cluster": "origin",
               "rewrite": {"prefix": "/page"},
               "compression": {"types": ["application/json"], "algorithms": ["gzip"]}},
              {"name": "all", "match": {"path": {"prefix": "/"}}, "cluster": "origin"}]
    return {"access_log": {"path": "off"}, "listeners": [listener], "routes": routes,
            "clusters": [{"name": "origin", "endpoints": [origin.address]}]}


@pytest.fixture
def sluice(origin, start_sluice):
    return start_sluice(config(origin, {}))


def get(s, path: str, accept: str | None, method: str = "GET"):
    headers = {"Accept-Encoding": accept} if accept is not None else {}
    return http_request(method, s.url(path), headers=headers, timeout=10)


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_each_algorithm_over_http1(sluice, coding):
    r = get(sluice, "/page?size=10240", coding)
    assert r.status == 200
    assert r.header("content-encoding") == coding
    assert r.header("content-length") is None
    assert r.header("transfer-encoding") == "chunked"
    assert r.header("vary") == "Accept-Encoding"
    assert len(r.body) < 10240 / 3
    assert decode(coding, r.body) == page(10240)


def test_client_preference_and_server_order(sluice):
    assert get(sluice, "/page", "gzip, deflate, br, zstd").header("content-encoding") == "br"
    assert get(sluice, "/page", "gzip;q=1, br;q=0.5").header("content-encoding") == "gzip"
    assert get(sluice, "/page", "zstd, gzip").header("content-encoding") == "zstd"
    assert get(sluice, "/page", "*").header("content-encoding") == "br"
    r = get(sluice, "/page", "br;q=0, *")
    assert r.header("content-encoding") == "zstd"
    assert decode("zstd", r.body) == page(10240)


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_each_algorithm_over_http2(sluice, coding, tmp_path):
    out, head = tmp_path / "body", tmp_path / "head"
    subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-H", f"Accept-Encoding: {coding}",
                    "-o", str(out), "-D", str(head), "--max-time", "10",
                    sluice.url("/page?size=100000")], check=True, timeout=20)
    lines = head.read_text().lower().splitlines()
    assert lines[0].startswith("http/2 200")
    assert f"content-encoding: {coding}" in lines
    assert "vary: accept-encoding" in lines
    assert not any(line.startswith("content-length") for line in lines)
    assert decode(coding, out.read_bytes()) == page(100000)


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_large_and_chunked_bodies(sluice, coding):
    big = get(sluice, f"/page?size={2 * 1024 * KIB}", coding)
    assert big.header("content-encoding") == coding
    assert decode(coding, big.body) == page(2 * 1024 * KIB)
    # Unknown length (chunked from the origin): compressed too.
    chunked = get(sluice, "/page?size=100000&chunked=1", coding)
    assert chunked.header("content-encoding") == coding
    assert decode(coding, chunked.body) == page(100000)


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_a_stream_is_not_held_back(origin, sluice, coding):
    """The origin sends each event only after the client decoded the one before: a proxy that
    buffered the compressed stream would stall here."""
    conn = http.client.HTTPConnection(HOST, sluice.port, timeout=10)
    try:
        conn.request("GET", "/events?n=4", headers={"Accept-Encoding": coding})
        resp = conn.getresponse()
        assert resp.getheader("content-encoding") == coding
        if coding == "gzip":
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == "br":
            d = brotli.Decompressor()
        else:
            d = zstandard.ZstdDecompressor().decompressobj()
        feed = d.process if coding == "br" else d.decompress
        text = b""
        for i in range(4):
            while f"event {i}\n".encode() not in text:
                data = resp.read1(65536)
                assert data, f"stream ended before event {i}"
                text += feed(data)
            origin.released.release()
        rest = resp.read()
        if rest:
            text += feed(rest)
        assert text == b"".join(f"event {i}\n".encode() for i in range(4))
    finally:
        conn.close()


def test_what_stays_uncompressed(sluice):
    plain = page(10240)
    cases = {
        # path, accept: why it stays as it is, and whether it gets Vary
        ("/page?size=10240&raw=1&h=Content-Encoding:deflate", "gzip"): False,  # encoded already
        ("/page?size=1000", "gzip"): False,  # under min_bytes (1 KiB)
        ("/page?size=10240&h=Cache-Control:public,%20no-transform", "gzip"): False,
        ("/page?size=10240&type=image/png", "gzip"): False,
        ("/page?size=10240&type=application/octet-stream", "br"): False,
        ("/page?size=10240&status=206&h=Content-Range:bytes%200-10239/20000", "gzip"): False,
        ("/page?size=10240", None): True,  # the client did not ask
        ("/page?size=10240", "identity"): True,
        ("/page?size=10240", "gzip;q=0, deflate"): True,
        ("/page?size=10240", "gzip;q=nonsense"): True,
        ("/page-raw?size=10240", "gzip"): False,  # the route turns it off
        ("/json-only?size=10240", "gzip"): False,  # the route's own types
    }
    for (path, accept), vary in cases.items():
        r = get(sluice, path, accept)
        assert r.header("content-encoding") in (None, "deflate"), path
        if "raw=1" not in path:
            assert r.body == plain[:len(r.body)] and len(r.body) == int(r.header("content-length"))
        assert (r.header("vary") == "Accept-Encoding") == vary, (path, accept, r.headers)
    # HEAD: the GET's headers but nothing to encode.
    head = get(sluice, "/page?size=10240", "gzip", method="HEAD")
    assert head.header("content-encoding") is None
    assert head.header("content-length") == "10240"
    assert head.header("vary") == "Accept-Encoding"  # as the GET's
    # The route with its own block compresses JSON with gzip only.
    r = get(sluice, "/json-only?size=10240&type=application/json", "br, gzip")
    assert r.header("content-encoding") == "gzip"
    assert decode("gzip", r.body) == plain


def test_head_rewrite_and_metrics(sluice):
    r = get(sluice, "/page?size=10240&h=ETag:%22v1%22&h=Accept-Ranges:bytes&h=Vary:Origin", "zstd")
    assert r.header("content-encoding") == "zstd"
    assert r.header("etag") == 'W/"v1"'
    assert r.header("accept-ranges") is None
    assert r.header_all("vary") == ["Origin, Accept-Encoding"]
    weak = get(sluice, "/page?h=ETag:W/%22v1%22&h=Vary:Accept-Encoding", "gzip")
    assert weak.header("etag") == 'W/"v1"'
    assert weak.header_all("vary") == ["Accept-Encoding"]
    assert sluice.metric("sluice_compressed_responses_total", algorithm="zstd") == 1
    assert sluice.metric("sluice_compressed_responses_total", algorithm="gzip") == 1
    assert sluice.metric("sluice_compression_input_bytes_total", algorithm="zstd") == 10240
    out = sluice.metric("sluice_compression_output_bytes_total", algorithm="zstd")
    assert 0 < out < 10240 / 3


def test_route_blocks_alone(origin, start_sluice):
    s = start_sluice(config(origin))  # no listener block: only the routes with one compress
    assert get(s, "/json-only?size=10240&type=application/json", "gzip").header(
        "content-encoding") == "gzip"
    assert get(s, "/page?size=10240", "gzip").header("content-encoding") is None
    assert get(s, "/page?size=10240", "gzip").header("vary") is None
