"""The sanitize filter end to end, on by default: the path is canonicalized once before routing,
risky escapes get 400 and never reach a backend, header names with '_' are dropped, a client's
forwarding headers are replaced unless it is a trusted proxy, and deny rules answer with their
status. Backends are recording origins (Python's http.server on loopback) that keep the exact
request line and headers they receive, one per cluster, so a test sees both what was forwarded
and which route chose it."""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

import pytest

from helpers import HOST, RawConn, metric_value, wait_for


class Recorder:
    """An origin that records (target, headers) of every request and answers 200 with its name
    and the target as JSON."""

    def __init__(self, name: str):
        self.name = name
        self.requests: list[tuple[str, list[tuple[str, str]]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_any(self):
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                recorder.requests.append((self.path, list(self.headers.items())))
                body = json.dumps({"backend": recorder.name, "target": self.path}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = do_PUT = do_any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"{HOST}:{self.server.server_address[1]}"

    def headers_of(self, i: int = -1) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for k, v in self.requests[i][1]:
            out.setdefault(k.lower(), []).append(v)
        return out

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def origins():
    made = {name: Recorder(name) for name in ("api", "admin", "files", "other")}
    yield made
    for r in made.values():
        r.close()


def config(origins, sanitize: Optional[dict] = None, **listener) -> dict:
    """Routes: /admin → admin, /api/ → api, /files/ → files, anything else → other."""
    c = {
        "access_log": {"path": "off"},
        "listeners": [{"name": "main", **listener}],
        "routes": [
            {"name": "admin", "match": {"path": {"prefix": "/admin"}}, "cluster": "admin"},
            {"name": "api", "match": {"path": {"prefix": "/api/"}}, "cluster": "api"},
            {"name": "files", "match": {"path": {"prefix": "/files/"}}, "cluster": "files"},
            {"name": "other", "match": {"path": {"prefix": "/"}}, "cluster": "other"},
        ],
        "clusters": [{"name": n, "endpoints": [r.address]} for n, r in origins.items()],
    }
    if sanitize is not None:
        c["sanitize"] = sanitize
    return c


def send(s, target: str, headers: str = "", method: str = "GET", listener=None):
    with RawConn(s.listener_port(listener)) as c:
        c.send(f"{method} {target} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n")
        return c.read_response()


def route_of(path: str) -> str:
    for prefix, name in (("/admin", "admin"), ("/api/", "api"), ("/files/", "files")):
        if path.startswith(prefix):
            return name
    return "other"


def remove_dot_segments(path: str) -> str:
    out: list[str] = []
    for seg in path.split("/")[1:]:
        if seg == "..":
            if out:
                out.pop()
        elif seg != ".":
            out.append(seg)
    result = "/" + "/".join(out)
    if path.endswith(("/.", "/..")) and not result.endswith("/"):
        result += "/"
    return result


def backend_view(target: str) -> str:
    """The path a backend that decodes once, turns '\\' into '/', merges slashes and removes dot
    segments would route on."""
    path = urllib.parse.unquote(target.split("?", 1)[0]).replace("\\", "/")
    while "//" in path:
        path = path.replace("//", "/")
    return remove_dot_segments(path)


# Targets an attacker would try; each either gets 400 or reaches the backend whose route the
# backend itself would pick for what it received.
ATTACKS = [
    "/api/../admin", "/api/%2e%2e/admin", "/api/.%2E/admin", "/api/..;/admin", "/api/..%3B/admin",
    "/api/..%2Fadmin", "/api/..%5Cadmin", "/api/%252e%252e/admin", "//admin", "/api//../admin",
    "/./admin", "/api/./../admin/x", "/%61dmin", "/py/a/../../../etc/passwd", "/api/x/..",
    "/files/a%2F..%2F..%2Fadmin", "/api/%2e%2e%2fadmin", "/api/..%00/admin", "/api/..\\admin",
    "/api/..%2f..%2fadmin", "/.%2e/admin", "/api/%2e%2e;x/admin", "/api/..%23/admin",
    "/api/..%3f/admin", "/files/../admin?next=/api/../x",
]


def test_dot_segments_cannot_walk_around_a_prefix_route(origins, start_sluice):
    s = start_sluice(config(origins))
    r = send(s, "/api/../admin/users")
    assert r.status == 200 and json.loads(r.body)["backend"] == "admin"
    assert origins["admin"].requests[-1][0] == "/admin/users"
    assert not origins["api"].requests
    r = send(s, "/py/a/../../../etc/passwd")
    assert json.loads(r.body) == {"backend": "other", "target": "/etc/passwd"}
    # Plain paths, UTF-8 escapes and the query pass byte for byte.
    for target in ("/api/v1/users", "/caf%C3%A9", "/api/a;x=1/b?q=%2F..%2F&r=a+b&s=/../x//y"):
        r = send(s, target)
        assert r.status == 200 and json.loads(r.body)["target"] == target


@pytest.mark.parametrize("sanitize", [None, {"escaped_slashes": "decode"},
                                      {"encoded_characters": {"allow": ["%2F", "%3B", "%5C"]}}])
def test_every_forwarded_request_routes_as_its_backend_would(origins, start_sluice, sanitize):
    s = start_sluice(config(origins, sanitize))
    forwarded = 0
    for target in ATTACKS:
        r = send(s, target)
        if r.status == 400:
            continue
        assert r.status == 200, (target, r.status, r.body)
        got = json.loads(r.body)
        forwarded += 1
        if sanitize and "encoded_characters" in sanitize:
            # Allowed escapes stay escaped: a backend that decodes them again is the operator's
            # choice; only the unescaped dot segments must be gone.
            path = got["target"].split("?")[0]
            assert "/../" not in path and "//" not in path
            continue
        assert route_of(backend_view(got["target"])) == got["backend"], (target, got)
        assert backend_view(got["target"]) == urllib.parse.unquote(got["target"].split("?")[0])
    assert forwarded >= 10


def test_risky_escapes_get_400_and_never_reach_a_backend(origins, start_sluice, tmp_path):
    log = tmp_path / "access.log"
    c = config(origins)
    c["access_log"] = {"path": str(log)}
    s = start_sluice(c)
    cases = {"/api/..%2Fadmin": "encoded_character", "/a%5Cb": "encoded_character",
             "/a%00b": "encoded_character", "/%252e%252e/admin": "encoded_character",
             "/a%3Bb": "encoded_character", "/a%3Fb": "encoded_character",
             "/a%23b": "encoded_character", "/a%zz": "bad_escape", "/a%2": "bad_escape"}
    for target in cases:
        r = send(s, target)
        assert r.status == 400, (target, r.status)
        assert b"Bad Request" in r.body
    assert all(not o.requests for o in origins.values())
    assert s.metric("sluice_sanitize_rejections_total", listener="main",
                    reason="encoded_character") == 7
    # Malformed escapes never get that far over HTTP/1.1: the parser refuses the target.

    def logged():
        return log.exists() and log.read_text().count("sanitize: ") >= 7

    wait_for(logged, timeout=5)
    assert "sanitize: encoded_character: encoded %2F in the path" in log.read_text()


def test_escaped_slashes_opt_in(origins, start_sluice):
    s = start_sluice(config(origins, {"escaped_slashes": "keep"}))
    r = send(s, "/files/dir%2fname.txt")
    assert json.loads(r.body) == {"backend": "files", "target": "/files/dir%2Fname.txt"}
    assert send(s, "/files/a%5Cb").status == 400  # still refused: only %2F was opted in


def test_off_per_listener(origins, start_sluice):
    c = config(origins, sanitize={"enabled": False})
    s = start_sluice(c)
    r = send(s, "/api/../admin")
    # Without the filter the raw path routes (the api prefix) and goes upstream as sent.
    assert json.loads(r.body) == {"backend": "api", "target": "/api/../admin"}


def test_underscore_headers_are_dropped(origins, start_sluice):
    s = start_sluice(config(origins))
    r = send(s, "/x", "X_Forwarded_For: 6.6.6.6\r\nX-Api_Key: a\r\nX-Ok: 1\r\n")
    assert r.status == 200
    h = origins["other"].headers_of()
    assert "x_forwarded_for" not in h and "x-api_key" not in h
    assert h["x-ok"] == ["1"]
    s2 = start_sluice(config(origins, {"underscores_in_headers": "reject"}), name="reject")
    assert send(s2, "/x", "X_A: 1\r\n").status == 400
    assert s2.metric("sluice_sanitize_rejections_total", listener="main",
                     reason="underscore_header") == 1


def test_forwarding_headers_from_untrusted_and_trusted_peers(origins, start_sluice):
    c = config(origins)
    c["listeners"] = [{"name": "edge"},
                      {"name": "behind_lb", "trusted_proxies": ["127.0.0.0/8"]}]
    s = start_sluice(c)
    spoof = ("X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n"
             "X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\n")
    assert send(s, "/x", spoof, listener="edge").status == 200
    h = origins["other"].headers_of()
    assert h["x-forwarded-for"] == ["127.0.0.1"]
    assert h["x-real-ip"] == ["127.0.0.1"]
    assert "forwarded" not in h
    assert h["x-forwarded-proto"] == ["http"]
    assert h["x-forwarded-host"] == ["t"]

    lb = "X-Forwarded-For: 198.51.100.7\r\nX-Forwarded-Proto: https\r\nForwarded: for=198.51.100.7\r\n"
    assert send(s, "/x", lb, listener="behind_lb").status == 200
    h = origins["other"].headers_of()
    assert h["x-forwarded-for"] == ["198.51.100.7, 127.0.0.1"]
    assert h["x-real-ip"] == ["198.51.100.7"]
    assert h["forwarded"] == ["for=198.51.100.7, for=127.0.0.1"]
    assert h["x-forwarded-proto"] == ["https"]


def test_deny_rules(origins, start_sluice):
    s = start_sluice(config(origins, {"deny": [
        {"name": "sqli", "query_regex": r"(?i)union\s+select", "status": 403},
        {"name": "admin_writes", "path_regex": "^/admin", "method": ["POST", "DELETE"],
         "body": "writes are closed\n"},
        {"name": "scanner", "header": "user-agent", "regex": "(?i)sqlmap", "status": 429},
    ]}))
    r = send(s, "/search?q=1%20UNION%20select%201")
    assert r.status == 403 and r.body == b"Forbidden\n"
    r = send(s, "/api/../admin/x", method="DELETE")
    assert r.status == 403 and r.body == b"writes are closed\n"
    assert send(s, "/x", "User-Agent: sqlmap/1.7\r\n").status == 429
    assert send(s, "/admin/x").status == 200  # GET is not denied
    assert len(origins["admin"].requests) == 1
    for reason, n in (("deny:sqli", 1), ("deny:admin_writes", 1), ("deny:scanner", 1)):
        assert s.metric("sluice_sanitize_rejections_total", listener="main", reason=reason) == n


def test_http2_paths_are_canonical_too(origins, start_sluice):
    c = config(origins)
    c["listeners"][0]["http2"] = {"cleartext": True}
    s = start_sluice(c)
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--path-as-is",
                          s.url("/api/%2e%2e/admin/x")], capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"backend": "admin", "target": "/admin/x"}
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                          "--http2-prior-knowledge", "--path-as-is", s.url("/api/..%2fadmin")],
                         capture_output=True, timeout=30)
    assert out.stdout == b"400"
    # nghttp2 does not check escapes in :path; the filter does.
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--path-as-is",
                          s.url("/a%zz")], capture_output=True, timeout=30)
    assert out.stdout.startswith(b"Bad Request: bad_escape")
    assert s.metric("sluice_sanitize_rejections_total", listener="main", reason="bad_escape") == 1
    assert all(not o.requests for name, o in origins.items() if name != "admin")
