"""Access log: one JSON object per request per line, on stdout by default, to a file, or off;
whole lines under concurrency with several workers; reopened on reload (log rotation)."""

import json
import os
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import check_config, dump_yaml, fill_ports, http_request, wait_for

KEYS = {"time", "client", "peer", "method", "path", "status", "bytes_in", "bytes_out", "duration_ms",
        "route", "upstream"}


def config(backend, **top):
    c = {
        "workers": 1,
        "listeners": [{"name": "main"}],
        "routes": [
            {"name": "hello", "match": {"path": {"exact": "/hello"}},
             "respond": {"status": 200, "body": "hello\n"}},
            {"name": "api", "match": {"path": {"prefix": "/api/"}}, "cluster": "be",
             "rewrite": {"prefix": "/"}},
        ],
        "clusters": [{"name": "be", "endpoints": [backend.address]}],
    }
    c.update(top)
    return c


def parse_lines(text):
    lines = text.splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def wait_lines(read, n, timeout=5.0):
    """Parsed log entries once there are at least n; every line must be valid JSON."""
    entries = wait_for(lambda: (e := parse_lines(read())) and len(e) >= n and e, timeout,
                       what=f"{n} access log lines")
    return entries


def test_json_line_per_request_on_stdout(start_backend, start_sluice):
    b = start_backend("a")
    s = start_sluice(config(b))
    assert s.get("/hello").status == 200
    r = s.request("POST", "/api/upload?x=1", body=b"0123456789")
    assert r.status == 200 and r.text == "10\n"
    assert s.get("/api/delay/200").status == 200
    assert s.get("/missing").status == 404

    entries = wait_lines(s.stdout_text, 4)
    assert len(entries) == 4
    for e in entries:
        assert KEYS <= set(e), e
        assert e["client"] == "127.0.0.1"  # the client's address; its port is in "peer"
        assert e["peer"].startswith("127.0.0.1:")
        assert e["time"].endswith("Z") and "T" in e["time"]
    hello, upload, delay, missing = entries

    assert (hello["method"], hello["path"], hello["status"]) == ("GET", "/hello", 200)
    assert hello["protocol"] == "HTTP/1.1"
    assert (hello["route"], hello["upstream"]) == ("hello", "")
    assert hello["bytes_in"] == 0 and hello["bytes_out"] == len("hello\n")

    # The path is what the client sent (before rewrite), query included.
    assert (upload["method"], upload["path"], upload["status"]) == ("POST", "/api/upload?x=1", 200)
    assert upload["bytes_in"] == 10 and upload["bytes_out"] == 3
    assert (upload["route"], upload["upstream"]) == ("api", b.address)

    assert delay["duration_ms"] >= 200
    assert hello["duration_ms"] < 1000

    assert (missing["status"], missing["route"], missing["upstream"]) == (404, "", "")

    # Nothing else is on stdout: the process's own messages go to stderr.
    assert len(s.stdout_text().splitlines()) == 4


def test_off_disables(start_backend, start_sluice):
    b = start_backend("a")
    s = start_sluice(config(b, access_log={"path": "off"}))
    for _ in range(5):
        assert s.get("/hello").status == 200
    assert s.get("/api/").status == 200
    # The requests were counted, so they were finished (and would have been logged).
    wait_for(lambda: s.metric("sluice_downstream_requests_total", code="2xx") == 6, 5)
    assert s.stdout_text() == ""


def test_file_path(start_backend, start_sluice, tmp_path):
    b = start_backend("a")
    path = tmp_path / "access.log"
    s = start_sluice(config(b, access_log={"path": str(path)}))
    for i in range(3):
        assert s.get(f"/hello?i={i}").status == 200
    entries = wait_lines(lambda: path.read_text() if path.exists() else "", 3)
    assert [e["path"] for e in entries] == ["/hello?i=0", "/hello?i=1", "/hello?i=2"]
    assert s.stdout_text() == ""


def test_lines_stay_whole_with_two_workers(start_backend, start_sluice, tmp_path):
    b = start_backend("a")
    path = tmp_path / "access.log"
    s = start_sluice(config(b, workers=2, access_log={"path": str(path)}))
    n = 300

    def one(i):
        # A long, escaped path makes torn or interleaved lines easy to spot.
        return http_request("GET", s.url(f"/api/echo?i={i}&pad={'x' * 300}%22"), timeout=10).status

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert list(pool.map(one, range(n))) == [200] * n
    entries = wait_lines(lambda: path.read_text(), n)
    assert len(entries) == n
    assert sorted(int(e["path"].split("i=")[1].split("&")[0]) for e in entries) == list(range(n))


def test_reload_reopens_the_file_for_rotation(start_backend, start_sluice, tmp_path):
    b = start_backend("a")
    path = tmp_path / "access.log"
    s = start_sluice(config(b, access_log={"path": str(path)}))
    assert s.get("/hello?before").status == 200
    wait_lines(lambda: path.read_text(), 1)
    rotated = tmp_path / "access.log.1"
    os.rename(path, rotated)
    s.signal(signal.SIGHUP)
    wait_for(lambda: s.metric("sluice_config_reloads_total", result="success") == 1, 5)
    assert s.get("/hello?after").status == 200
    entries = wait_lines(lambda: path.read_text() if path.exists() else "", 1)
    assert [e["path"] for e in entries] == ["/hello?after"]
    assert [e["path"] for e in parse_lines(rotated.read_text())] == ["/hello?before"]


def test_unwritable_path_fails_start_and_reload(start_backend, start_sluice, tmp_path, sluice_bin):
    b = start_backend("a")
    bad = str(tmp_path / "no-such-dir" / "access.log")
    cfg, _, _ = fill_ports(config(b, access_log={"path": bad}))
    # --check validates the file itself (it may run on another machine); starting must fail.
    assert check_config(tmp_path, cfg).returncode == 0
    p = tmp_path / "bad-log.yaml"
    p.write_text(dump_yaml(cfg))
    r = subprocess.run([str(sluice_bin), "-c", str(p)], capture_output=True, text=True, timeout=20)
    assert r.returncode == 1
    assert f"cannot open access log {bad}" in r.stderr

    s = start_sluice(config(b, access_log={"path": "off"}))
    s.write_config(config(b, access_log={"path": bad}))
    s.signal(signal.SIGHUP)
    wait_for(lambda: s.metric("sluice_config_reloads_total", result="failure") == 1, 5)
    assert f"cannot open access log {bad}" in s.stderr_text()
    assert s.get("/hello").status == 200


@pytest.mark.parametrize("target", ["stdout", "stderr"])
def test_stdout_and_stderr_targets(start_backend, start_sluice, target):
    b = start_backend("a")
    s = start_sluice(config(b, access_log={"path": target}))
    assert s.get("/hello").status == 200
    read = s.stdout_text if target == "stdout" else (
        lambda: "\n".join(l for l in s.stderr_text().splitlines() if l.startswith("{")))
    entries = wait_lines(read, 1)
    assert entries[0]["route"] == "hello"


def test_long_lines_are_capped_for_atomic_pipe_writes(start_backend, start_sluice):
    b = start_backend("a")
    s = start_sluice(config(b))
    long_path = "/hello?q=" + "a" * 7000  # within the default 8 KiB target limit
    assert s.get(long_path).status == 200
    assert s.get("/hello?short").status == 200
    entries = wait_lines(s.stdout_text, 2)
    lines = s.stdout_text().splitlines()
    assert all(len(line.encode()) + 1 <= 4096 for line in lines)
    long_entry, short_entry = entries
    assert long_entry["truncated"] is True
    assert long_path.startswith(long_entry["path"]) and len(long_entry["path"]) > 1000
    assert long_entry["route"] == "hello" and long_entry["status"] == 200
    assert "truncated" not in short_entry


def test_http2_requests_are_logged_as_http2(start_backend, start_sluice):
    b = start_backend("a")
    cfg = config(b)
    cfg["listeners"][0]["http2"] = {"cleartext": True}
    s = start_sluice(cfg)
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", s.url("/hello")],
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    (entry,) = wait_lines(s.stdout_text, 1)
    assert (entry["protocol"], entry["path"], entry["status"]) == ("HTTP/2", "/hello", 200)


def test_upstream_client_and_tls_fields(start_backend, start_sluice):
    b = start_backend("a")
    s = start_sluice(config(b))
    assert s.get("/api/delay/150", headers=[("User-Agent", "probe/1.0"),
                                            ("Referer", "https://example.com/")]).status == 200
    assert s.get("/api/status/503").status == 503
    assert s.get("/hello").status == 200
    delay, failed, hello = wait_lines(s.stdout_text, 3)

    assert (delay["user_agent"], delay["referer"]) == ("probe/1.0", "https://example.com/")
    assert (delay["cluster"], delay["upstream_status"]) == ("be", 200)
    # Time to the backend's response head: its 150 ms delay, within the whole exchange.
    assert 150 <= delay["upstream_time_ms"] <= delay["duration_ms"]
    assert delay["tls_version"] is None  # a plain listener
    assert (failed["status"], failed["upstream_status"]) == (503, 503)
    # Answered by sluice itself: no cluster, no upstream response.
    assert (hello["cluster"], hello["upstream_status"], hello["upstream_time_ms"]) == ("", None,
                                                                                     None)


def test_a_backend_that_times_out_has_no_upstream_status(start_backend, start_sluice):
    b = start_backend("a")
    c = config(b)
    c["routes"][1]["timeout"] = "200ms"
    s = start_sluice(c)
    assert s.get("/api/delay/2000").status == 504
    (e,) = wait_lines(s.stdout_text, 1)
    assert (e["status"], e["upstream_status"], e["upstream_time_ms"]) == (504, None, None)
    assert e["cluster"] == "be"


def test_chosen_fields_in_their_order(start_backend, start_sluice):
    b = start_backend("a")
    s = start_sluice(config(b, access_log={
        "path": "stdout", "fields": ["status", "method", "path", "upstream_status"]}))
    assert s.get("/api/x").status == 200
    wait_lines(s.stdout_text, 1)
    assert s.stdout_text().splitlines() == [
        '{"status":200,"method":"GET","path":"/api/x","upstream_status":200}']


def test_a_request_refused_while_its_head_is_read_logs_method_and_path(start_backend,
                                                                       start_sluice):
    b = start_backend("a")
    s = start_sluice(config(b))
    raw = s.raw()
    raw.send(b"PUT /api/too-big?q=1 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
    assert raw.read_response().status == 431
    (e,) = wait_lines(s.stdout_text, 1)
    assert (e["status"], e["method"], e["path"]) == (431, "PUT", "/api/too-big?q=1")
    assert e["route"] == "" and e["upstream_status"] is None
