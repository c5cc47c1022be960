"""Admin API against the real binary: /healthz, /ready, /metrics (promtool-clean, values that
match the traffic sent, summed over two workers; build and process metrics) and /config (the
active config, updated by a reload)."""

import re
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from helpers import HOST, http_request, metric_value, wait_for


def config(backend, **top):
    c = {
        "workers": 2,
        "listeners": [{"name": "main"}],
        "routes": [
            {"name": "canned", "match": {"path": {"exact": "/canned"}},
             "respond": {"status": 200, "body": "canned\n"}},
            {"name": "api", "match": {"path": {"prefix": "/api/"}}, "cluster": "be",
             "rewrite": {"prefix": "/"}},
        ],
        "clusters": [{"name": "be", "endpoints": [backend.address]}],
        "access_log": {"path": "off"},
    }
    c.update(top)
    return c


def promtool_check(text):
    return subprocess.run(["/usr/bin/promtool", "check", "metrics"], input=text,
                          capture_output=True, text=True, timeout=30)


def test_healthz_and_ready(start_backend, start_sluice):
    b = start_backend("a")
    s = start_sluice(config(b))
    r = s.admin_get("/healthz")
    assert (r.status, r.text) == (200, "ok\n")
    r = s.admin_get("/ready")
    assert r.status == 200
    # Ready means bound: the listener accepts and serves right away.
    assert s.get("/canned").text == "canned\n"
    assert s.admin_get("/nope").status == 404


def test_ready_only_after_listeners_are_bound(start_backend, start_sluice):
    b = start_backend("a")
    s = start_sluice(config(b), wait_ready=False)

    def state():
        try:
            ready = s.admin_get("/ready", timeout=1).status == 200
        except OSError:
            return None
        if ready:
            with socket.create_connection((HOST, s.port), timeout=1):
                return "ready-and-bound"
        return None

    assert wait_for(state, 10) == "ready-and-bound"


def test_metrics_reflect_traffic_over_two_workers(start_backend, start_sluice):
    b = start_backend("a")
    s = start_sluice(config(b))
    assert s.metric("sluice_workers") == 2

    jobs = ([("/api/", 200)] * 20 + [("/api/status/503", 503)] * 5 + [("/canned", 200)] * 7
            + [("/none", 404)] * 3)

    def one(job):
        return http_request("GET", s.url(job[0]), timeout=10).status

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(one, jobs)) == [code for _, code in jobs]

    def down(code):
        return s.metric("sluice_downstream_requests_total", listener="main", code=code)

    wait_for(lambda: down("2xx") == 27 and down("5xx") == 5 and down("4xx") == 3, 5,
             what="downstream counts")
    text = s.metrics()
    check = promtool_check(text)
    assert check.returncode == 0, check.stdout + check.stderr

    assert metric_value(text, "sluice_downstream_requests_total", code="1xx") == 0
    assert metric_value(text, "sluice_downstream_requests_total", code="3xx") == 0
    assert metric_value(text, "sluice_upstream_requests_total", cluster="be", code="2xx") == 20
    assert metric_value(text, "sluice_upstream_requests_total", cluster="be", code="5xx") == 5
    assert metric_value(text, "sluice_downstream_connections_total", listener="main") == 35
    # Histogram by route and status class: the 404s matched no route and are in none.
    assert metric_value(text, "sluice_request_duration_seconds_count", route="api") == 25
    assert metric_value(text, "sluice_request_duration_seconds_count", route="api",
                        code="2xx") == 20
    assert metric_value(text, "sluice_request_duration_seconds_count", route="api",
                        code="5xx") == 5
    assert metric_value(text, "sluice_request_duration_seconds_count", route="canned") == 7
    assert metric_value(text, "sluice_request_duration_seconds_bucket", route="api",
                        code="5xx", le="+Inf") == 5
    assert metric_value(text, "sluice_request_duration_seconds_sum", route="api",
                        code="2xx") > 0
    # Classes that had no response have no histogram.
    assert metric_value(text, "sluice_request_duration_seconds_count", code="4xx") is None
    assert metric_value(text, "sluice_request_duration_seconds_count", code="1xx") is None
    assert "# TYPE sluice_request_duration_seconds histogram" in text
    assert metric_value(text, "sluice_config_reloads_total", result="success") == 0


def test_connections_active_gauge(start_backend, start_sluice):
    b = start_backend("a")
    s = start_sluice(config(b))

    def active():
        return s.metric("sluice_downstream_connections_active", listener="main")

    assert active() == 0
    conns = [s.connection() for _ in range(5)]
    try:
        for c in conns:
            c.request("GET", "/canned")
            assert c.getresponse().read() == b"canned\n"
        # Five idle keep-alive connections, spread over the workers, summed.
        assert active() == 5
    finally:
        for c in conns:
            c.close()
    wait_for(lambda: active() == 0, 5, what="gauge to drop to 0")


def test_config_endpoint_shows_active_config_and_follows_reload(start_backend, start_sluice):
    b = start_backend("a")
    s = start_sluice(config(b))
    r = s.admin_get("/config")
    assert r.status == 200
    assert r.header("content-type").startswith("application/json")
    active = r.json()
    assert active["workers"] == 2
    assert [route["name"] for route in active["routes"]] == ["canned", "api"]
    assert active["clusters"][0]["endpoints"] == [{"address": b.address, "weight": 1}]
    assert active["drain_timeout"] == "15s"  # defaults filled in
    assert active["source"] == str(s.config_path)

    new = config(b)
    new["routes"].insert(0, {"name": "added", "match": {"path": {"exact": "/added"}},
                             "respond": {"status": 204}})
    s.write_config(new)
    s.signal(signal.SIGHUP)
    wait_for(lambda: s.metric("sluice_config_reloads_total", result="success") == 1, 5)
    after = s.admin_get("/config").json()
    assert [route["name"] for route in after["routes"]] == ["added", "canned", "api"]
    assert s.get("/added").status == 204

    # A failed reload leaves /config as it was.
    s.config_path.write_text("routes: [")
    s.signal(signal.SIGHUP)
    wait_for(lambda: s.metric("sluice_config_reloads_total", result="failure") == 1, 5)
    assert s.admin_get("/config").json() == after


def test_build_info_matches_version(start_backend, start_sluice, sluice_bin):
    b = start_backend("a")
    s = start_sluice(config(b))
    version = subprocess.run([str(sluice_bin), "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    m = re.fullmatch(r"sluice (\S+)\n", version)
    assert m, version
    line = next(l for l in s.metrics().splitlines() if l.startswith("sluice_build_info{"))
    labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
    assert labels["version"] == m.group(1)
    assert line.endswith("} 1")
    assert re.fullmatch(r"\S+ \d+(\.\d+)*", labels["compiler"]), labels  # "GNU 12.2.0"
    # The library in use, as `openssl version` names it (same library on this machine).
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True,
                             timeout=30).stdout
    assert openssl.startswith(f"OpenSSL {labels['openssl']} "), (labels, openssl)


def test_process_metrics_follow_the_process(start_backend, start_sluice):
    b = start_backend("a")
    started = time.time()
    s = start_sluice(config(b))
    text = s.metrics()
    check = promtool_check(text)
    assert check.returncode == 0, check.stdout + check.stderr
    # Started a moment ago, by the wall clock.
    start = metric_value(text, "process_start_time_seconds")
    assert started - 2 <= start <= time.time() + 1, (started, start)
    assert metric_value(text, "process_resident_memory_bytes") > 1e6
    assert metric_value(text, "process_virtual_memory_bytes") >= \
        metric_value(text, "process_resident_memory_bytes")
    limit = int(subprocess.run(["sh", "-c", "ulimit -n"], capture_output=True, text=True,
                               timeout=30).stdout)
    assert metric_value(text, "process_max_fds") == limit

    # Open descriptors follow open client connections: 20 more, then back.
    idle = metric_value(text, "process_open_fds")
    conns = [socket.create_connection((HOST, s.port), timeout=10) for _ in range(20)]
    try:
        wait_for(lambda: s.metric("sluice_downstream_connections_active", listener="main") == 20,
                 10, what="20 connections accepted")
        assert s.metric("process_open_fds") >= idle + 20
    finally:
        for c in conns:
            c.close()
    wait_for(lambda: s.metric("process_open_fds") < idle + 5, 10, what="descriptors closed")

    # CPU time grows with work: a few hundred requests take some.
    cpu_before = s.metric("process_cpu_seconds_total")
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: http_request("GET", s.url("/api/"), timeout=10).status,
                      range(400)))
    cpu_after = s.metric("process_cpu_seconds_total")
    assert cpu_after > cpu_before > 0, (cpu_before, cpu_after)
