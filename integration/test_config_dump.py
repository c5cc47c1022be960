"""GET /config loads back: the active configuration as JSON, `source` removed, is a valid config
file for `sluice --check`, and reloading sluice from it (SIGHUP) succeeds and changes nothing:
/config then answers the same JSON. The config uses every section whose dump once broke the
round trip or could: TLS listeners (several certificates, client_auth in each mode), a cluster
with TLS, rate limits (local and global, listener and route), sanitize at both levels, retries,
health checks, outlier detection, circuit breakers, redirects, canned responses and compression
(listener and route blocks)."""

from __future__ import annotations

import json
import signal
import ssl
import socket
import subprocess

import pytest

from helpers import HOST, free_port, wait_for
from pki import Pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.site = p.leaf("site", ["site.example.com"])
    p.wild = p.leaf("wild", ["*.example.org"])
    return p


def full_config(backend, pki: Pki, tmp_path) -> dict:
    cert = lambda leaf: {"cert_file": str(leaf["cert_file"]), "key_file": str(leaf["key_file"])}
    return {
        "workers": 2,
        "drain_timeout": "3s",
        "access_log": {"path": str(tmp_path / "access.log")},
        "listeners": [
            {"name": "public",
             "limits": {"max_connections": 1000, "max_request_header_bytes": 32768,
                        "idle_timeout": "30s"},
             "trusted_proxies": ["10.0.0.0/8", "192.0.2.1"],
             "rate_limits": ["per_client"],
             "sanitize": {"escaped_slashes": "keep", "deny": []},
             "http2": {"max_concurrent_streams": 50},
             "tls": {"certificates": [cert(pki.site), cert(pki.wild)],
                     "min_version": "1.2", "alpn": ["http/1.1"], "handshake_timeout": "5s",
                     "client_auth": {"mode": "optional", "ca_file": str(pki.ca_file)}}},
            # client_auth given with mode none (and so no ca_file).
            {"name": "tls13", "limits": {"max_connections": 100},
             "tls": {"certificates": [cert(pki.site)], "min_version": "1.3",
                     "client_auth": {"mode": "none"}},
             "response_headers": {"remove": ["Server"],
                                  "set": {"Strict-Transport-Security": "max-age=63072000"}}},
            {"name": "mtls", "limits": {"max_connections": 100},
             "tls": {"certificates": [cert(pki.site)],
                     "client_auth": {"ca_file": str(pki.ca_file)}}},
            {"name": "plain", "filters": ["rate_limit"], "http2": {"cleartext": True},
             "limits": {"max_connections": 100, "max_connections_per_ip": 10},
             "compression": {"types": ["text/*", "application/json"], "min_bytes": "4KiB",
                             "algorithms": ["zstd", "gzip"]}},
        ],
        "routes": [
            {"name": "canned", "match": {"listeners": ["plain", "mtls"],
                                         "path": {"exact": "/canned"}, "methods": ["GET"],
                                         "headers": [{"name": "x-a", "present": True}]},
             "respond": {"status": 200, "body": "canned\n", "headers": {"x-canned": "1"}}},
            {"name": "moved", "match": {"hosts": ["old.example.com"]},
             "redirect": {"host": "new.example.com", "status": 308, "strip_query": True}},
            {"name": "search", "match": {"path": {"regex": "^/search/[a-z]+$"}},
             "cluster": "be", "rate_limits": ["per_key", "global_key"],
             "retry": {"attempts": 2, "on": ["connect-failure", "503"],
                       "per_try_timeout": "2s"}, "timeout": "10s",
             "request_headers": {"set": {"host": "search.internal"},
                                 "add": {"x-client": "%{client_ip} 100%%"}}},
            {"name": "api", "match": {"path": {"prefix": "/api/"}}, "cluster": "be",
             "rewrite": {"prefix": "/"}, "compression": {}},
            {"name": "all", "match": {"path": {"prefix": "/"}}, "cluster": "be",
             "compression": {"enabled": False}},
        ],
        "clusters": [
            {"name": "be", "endpoints": [backend.address], "lb": "least_request",
             "health_check": {"path": "/", "interval": "5s", "expected_statuses": [200, "300-399"]},
             "outlier_detection": {"consecutive_failures": 7},
             "circuit_breakers": {"max_pending_requests": 100}, "panic_threshold": "30%"},
            {"name": "secure", "endpoints": [f"{HOST}:{free_port()}"], "protocol": "h2",
             "tls": {"sni": "site.example.com", "ca_file": str(pki.ca_file)}},
            {"name": "hashed", "endpoints": [{"address": backend.address, "weight": 3}],
             "lb": "ring_hash", "hash_on": "header:x-user"},
        ],
        "rate_limits": [
            {"name": "per_client", "key": ["client_ip"], "rate": "1000/s", "burst": 2000},
            {"name": "per_key", "key": ["header:x-api-key", "client_ip"], "rate": "10/min",
             "mode": "shadow", "headers": True, "status": 503, "max_keys": 1000},
            {"name": "global_key", "key": ["header:x-api-key"], "rate": "5/s",
             "scope": "global"},
        ],
        # Nobody listens there; no request of this test reaches a global rule.
        "redis": {"address": f"{HOST}:{free_port()}", "timeout": "20ms", "on_error": "deny"},
        "sanitize": {"merge_slashes": False, "underscores_in_headers": "reject",
                     "encoded_characters": {"allow": ["%3B"]},
                     "deny": [{"name": "sqli", "query_regex": "(?i)union\\s+select",
                               "status": 403},
                              {"name": "admin", "path_regex": "^/admin",
                               "method": ["POST", "DELETE"], "body": "no\n"}]},
    }


def https_get(port: int, pki: Pki, path: str) -> int:
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    with socket.create_connection((HOST, port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="site.example.com") as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: site.example.com\r\n"
                        "Connection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    return int(data.split(b" ", 2)[1])


def sluice_check(sluice_bin, path) -> subprocess.CompletedProcess:
    return subprocess.run([str(sluice_bin), "--check", "-c", str(path)], capture_output=True,
                          text=True, timeout=30)


def test_config_dump_loads_back_with_tls(start_backend, start_sluice, sluice_bin, pki, tmp_path):
    backend = start_backend("be")
    s = start_sluice(full_config(backend, pki, tmp_path))
    assert https_get(s.listener_port("public"), pki, "/api/") == 200

    first = s.admin_get("/config").json()
    assert first.pop("source") == str(s.config_path)
    # What used to break the round trip: derived certificate names, an empty ca_file.
    certs = first["listeners"][0]["tls"]["certificates"]
    assert certs == [{"cert_file": str(pki.site["cert_file"]),
                      "key_file": str(pki.site["key_file"])},
                     {"cert_file": str(pki.wild["cert_file"]),
                      "key_file": str(pki.wild["key_file"])}]
    assert first["listeners"][1]["tls"]["client_auth"] == {"mode": "none"}
    assert first["listeners"][1]["response_headers"] == {
        "remove": ["server"], "set": {"strict-transport-security": "max-age=63072000"}}
    assert first["routes"][2]["request_headers"] == {
        "set": {"host": "search.internal"}, "add": {"x-client": "%{client_ip} 100%%"}}
    assert first["listeners"][3]["compression"] == {
        "enabled": True, "types": ["text/*", "application/json"], "min_bytes": 4096,
        "algorithms": ["zstd", "gzip"]}
    assert first["routes"][3]["compression"]["algorithms"] == ["br", "zstd", "gzip"]
    assert first["routes"][4]["compression"]["enabled"] is False

    dump = tmp_path / "dump" / "sluice.json"
    dump.parent.mkdir()
    dump.write_text(json.dumps(first, indent=2))
    check = sluice_check(sluice_bin, dump)
    assert check.returncode == 0, check.stderr
    assert check.stdout == f"{dump}: ok (4 listener(s), 5 route(s), 3 cluster(s))\n"
    assert check.stderr == ""  # no warning either

    # Reload from the dump: it succeeds, and the active config is the same as before.
    s.config_path.write_text(dump.read_text())
    s.signal(signal.SIGHUP)
    wait_for(lambda: s.metric("sluice_config_reloads_total", result="success") == 1, 10,
             what="the reload")
    assert s.metric("sluice_config_reloads_total", result="failure") == 0
    assert "restart" not in s.stderr_text()  # nothing changed that needs one
    assert "warning" not in s.stderr_text()
    second = s.admin_get("/config").json()
    assert second.pop("source") == str(s.config_path)
    assert second == first
    assert https_get(s.listener_port("public"), pki, "/api/") == 200
    assert s.get("/canned", headers={"x-a": "1"}, listener="plain").text == "canned\n"


def test_config_dump_of_a_minimal_config_loads_back(start_backend, start_sluice, sluice_bin,
                                                    tmp_path):
    """Defaults only: every default the dump spells out is accepted as written."""
    backend = start_backend("be")
    s = start_sluice({"listeners": [{"name": "main"}],
                      "routes": [{"name": "r", "match": {"path": {"prefix": "/"}},
                                  "cluster": "c"}],
                      "clusters": [{"name": "c", "endpoints": [backend.address]}]})
    first = s.admin_get("/config").json()
    del first["source"]
    dump = tmp_path / "minimal.json"
    dump.write_text(json.dumps(first))
    check = sluice_check(sluice_bin, dump)
    assert check.returncode == 0, check.stderr
    assert check.stderr == ""
