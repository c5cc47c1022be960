"""Admin API against the real binary: /healthz, /ready, /metrics (promtool-clean, values that
match the traffic sent, summed over two workers) and /config (the active config, updated by a
reload)."""

import signal
import socket
import subprocess
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
    # Histogram by route: the 404s matched no route and are in none.
    assert metric_value(text, "sluice_request_duration_seconds_count", route="api") == 25
    assert metric_value(text, "sluice_request_duration_seconds_count", route="canned") == 7
    assert metric_value(text, "sluice_request_duration_seconds_bucket", route="api",
                        le="+Inf") == 25
    assert metric_value(text, "sluice_request_duration_seconds_sum", route="api") > 0
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
