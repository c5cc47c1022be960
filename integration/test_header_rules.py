"""Header rules through the real binary: `request_headers` / `response_headers` of listeners and
routes, seen by the backend (it echoes the request's headers) and by real clients (curl over
HTTP/1.1, HTTP/2 cleartext and HTTPS with ALPN h2): variables expanded, the upstream Host set
for HTTP/1.1 and HTTP/2 (`protocol: h2`) clusters, HSTS on every response of a TLS listener
including sluice's own 404, Server / X-Powered-By removed, and forbidden headers refused by
`sluice --check` with FILE:LINE:COL."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from h2_backend import H2Backend
from helpers import HOST, check_config
from pki import Pki

HEX32 = re.compile(r"[0-9a-f]{32}")
HSTS = "max-age=63072000; includeSubDomains"


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "20", *args], capture_output=True,
                          text=True, timeout=30)


def parse(out: subprocess.CompletedProcess) -> tuple[str, int, dict[str, list[str]], str]:
    """curl -i output: (version, status, headers by lower-case name, body)."""
    assert out.returncode == 0, out.stderr
    head, _, body = out.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    version, status = lines[0].split(" ")[:2]
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return version, int(status), headers, body


def rules_config(backend_address: str, **listener) -> dict:
    return {
        "workers": 1,
        "listeners": [{
            "name": "main", "http2": {"cleartext": True},
            "request_headers": {"set": {"x-tier": "listener", "x-client": "%{client_ip}"},
                                "add": {"x-req": "id=%{request_id} host=%{host} 100%%"},
                                "remove": ["x-secret"]},
            "response_headers": {"remove": ["server", "x-powered-by"],
                                 "set": {"x-frame-options": "DENY"}},
            **listener}],
        "routes": [
            {"name": "app", "match": {"path": {"prefix": "/echo"}}, "cluster": "be",
             "request_headers": {"set": {"host": "backend.internal", "x-tier": "route"}},
             "response_headers": {"add": {"x-route": "app"}}},
            {"name": "hdrs", "match": {"path": {"prefix": "/headers"}}, "cluster": "be"},
        ],
        "clusters": [{"name": "be", "endpoints": [backend_address]}],
    }


@pytest.mark.parametrize("proto", ["--http1.1", "--http2-prior-knowledge"])
def test_request_rules_reach_the_backend(start_backend, start_sluice, proto):
    b = start_backend()
    s = start_sluice(rules_config(b.address))
    out = curl(proto, "-i", "-H", "X-Secret: s3cret", "-H", "X-Tier: client", s.url("/echo"))
    version, status, headers, body = parse(out)
    assert status == 200 and version == ("HTTP/2" if "http2" in proto else "HTTP/1.1")
    seen: dict[str, list[str]] = {}
    for k, v in json.loads(body)["headers"]:
        seen.setdefault(k.lower(), []).append(v)
    # The route's Host; X-Forwarded-Host keeps what the client asked for.
    assert seen["host"] == ["backend.internal"]
    assert seen["x-forwarded-host"] == [f"{HOST}:{s.port}"]
    assert "x-secret" not in seen
    assert seen["x-tier"] == ["route"]  # listener rules first, the route's set wins
    assert seen["x-client"] == [HOST]
    rid = seen["x-request-id"][0]
    assert HEX32.fullmatch(rid)
    assert seen["x-req"] == [f"id={rid} host={HOST}:{s.port} 100%"]
    # Response rules: the listener's, then the route's.
    assert headers["x-frame-options"] == ["DENY"]
    assert headers["x-route"] == ["app"]


@pytest.mark.parametrize("proto", ["--http1.1", "--http2-prior-knowledge"])
def test_backend_identity_removed_and_local_replies_carry_listener_headers(
        start_backend, start_sluice, proto):
    b = start_backend()
    s = start_sluice(rules_config(b.address))
    _, status, headers, _ = parse(curl(
        proto, "-i", s.url("/headers?server=Apache%2F2.4&x-powered-by=PHP%2F8&x-keep=1")))
    assert status == 200
    assert "server" not in headers and "x-powered-by" not in headers
    assert headers["x-keep"] == ["1"]
    assert headers["x-frame-options"] == ["DENY"]
    assert "x-route" not in headers  # route `hdrs` has no rules
    # sluice's own answer: no route matches.
    _, status, headers, body = parse(curl(proto, "-i", s.url("/nowhere")))
    assert status == 404 and body == "no route matched\n"
    assert headers["x-frame-options"] == ["DENY"]


def test_hsts_on_every_response_of_a_tls_listener(start_backend, start_sluice, tmp_path):
    pki = Pki(tmp_path)
    cert = pki.leaf("site", ["site.example.com"])
    b = start_backend()
    cfg = rules_config(b.address)
    cfg["listeners"][0] = {"name": "tls", "tls": {"certificates": [cert]},
                           "response_headers": {"set": {"strict-transport-security": HSTS}}}
    s = start_sluice(cfg)
    base = f"https://site.example.com:{s.port}"
    common = ["-i", "--cacert", str(pki.ca_file), "--resolve", f"site.example.com:{s.port}:{HOST}"]
    for proto, version in (("--http1.1", "HTTP/1.1"), ("--http2", "HTTP/2")):
        for path, want in (("/echo", 200), ("/headers?server=x", 200), ("/nowhere", 404)):
            v, status, headers, _ = parse(curl(proto, *common, base + path))
            assert (v, status) == (version, want), path
            assert headers["strict-transport-security"] == [HSTS], (proto, path)


def test_host_set_for_an_h2_cluster(start_sluice):
    b = H2Backend()
    try:
        cfg = rules_config(b.address)
        cfg["clusters"][0]["protocol"] = "h2"
        s = start_sluice(cfg)
        for proto in ("--http1.1", "--http2-prior-knowledge"):
            _, status, _, body = parse(curl(proto, "-i", s.url("/echo")))
            assert status == 200
            seen = json.loads(body)
            assert seen["authority"] == "backend.internal", proto
            names = [k for k, _ in seen["headers"]]
            assert "host" not in names  # Host travels as :authority
            assert dict(seen["headers"])["x-tier"] == "route"
    finally:
        b.stop()


def test_check_refuses_forbidden_headers_with_positions(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "listeners:\n"
        "  - name: main\n"
        "    address: 127.0.0.1:8080\n"
        "    request_headers: { set: { connection: x } }\n"
        "    response_headers:\n"
        "      add: { x-v: \"%{nope}\" }\n"
        "      remove: [Content-Length]\n"
        "routes:\n"
        "  - { name: r, match: { path: { prefix: / } }, cluster: c,\n"
        "      request_headers: { add: { host: x } } }\n"
        "clusters: [{ name: c, endpoints: [127.0.0.1:9000] }]\n")
    out = check_config(tmp_path, cfg)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert lines[0] == (f"{cfg}:4:31: set: 'connection' cannot be changed: it is hop-by-hop "
                        "(RFC 9110 §7.6.1), it describes one connection and sluice writes it "
                        "for each hop")
    assert lines[1] == (f"{cfg}:6:19: x-v: unknown variable '%{{nope}}' (known: client_ip, "
                        "request_id, host)")
    assert lines[2].startswith(f"{cfg}:7:16: remove: 'content-length' cannot be changed: it "
                               "frames the message")
    assert lines[3].startswith(f"{cfg}:10:33: add: 'host' cannot be changed: a request "
                               "carries exactly one Host")
