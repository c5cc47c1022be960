"""Upstream health end to end, against the real binary: active health checks (http and tcp) take
a host out of rotation after unhealthy_threshold failed probes and bring it back after
healthy_threshold passes, a flapping host never flips, panic mode and its 0% opposite (503 at
once), the GET /clusters document, and DNS refresh of a hostname endpoint against a real dnsmasq
(a new address is followed, the last good one kept while the server is gone). http checks of
an HTTPS cluster probe over TLS with the cluster's CA, SNI and `verify`, and those of a
`protocol: h2` cluster over HTTP/2; the HTTPS hosts are sluices with a TLS listener in front of
test backends, so /health/set still goes straight to the backend.

The test backend's GET /health answers the status set with GET /health/set/N and counts the
probes (/stats "health_requests"). Probes run every 150-300 ms; every wait is a bounded wait_for
on an observable state (/clusters, /metrics, the backend's counters), never a sleep."""

import os
import re
import shutil
import signal
import socket
import struct

import pytest

from h2_backend import H2Backend
from helpers import HOST, Process, basic_config, free_port, http_get, metric_value, wait_for
from pki import Pki

WAIT = 15.0  # bound of every wait below; the happy path takes well under a second


def health_check(**overrides):
    hc = {"type": "http", "path": "/health", "interval": "150ms", "timeout": "150ms",
          "healthy_threshold": 2, "unhealthy_threshold": 2}
    hc.update(overrides)
    if hc["type"] == "tcp":
        del hc["path"]  # http only (an error otherwise)
    return hc


def cluster(name, *endpoints, **keys):
    c = {"name": name,
         "endpoints": [e if isinstance(e, (str, dict)) else e.address for e in endpoints]}
    c.update(keys)
    return c


def config(*clusters, routes=None, **top):
    """One listener; by default one catch-all route to the first cluster."""
    c = {
        "workers": 2,
        "listeners": [{"name": "main"}],
        "routes": routes or [{"name": "all", "match": {"path": {"prefix": "/"}},
                              "cluster": clusters[0]["name"]}],
        "clusters": list(clusters),
        "access_log": {"path": "off"},
    }
    c.update(top)
    return c


def set_health(backend, status):
    """Sets what the backend's /health answers; returns how many probes it answered before."""
    r = http_get(backend.url(f"/health/set/{status}"), timeout=5)
    assert (r.status, r.text) == (200, f"health {status}\n")
    return int(r.header("x-health-requests"))


def clusters_doc(s):
    r = s.admin_get("/clusters", timeout=5)
    assert r.status == 200, r.text
    assert r.header("content-type", "").startswith("application/json")
    return {c["name"]: c for c in r.json()["clusters"]}


def host_of(s, cluster_name, address):
    for h in clusters_doc(s)[cluster_name]["hosts"]:
        if h["address"] == address:
            return h
    return None


def is_healthy(s, cluster_name, address, want):
    h = host_of(s, cluster_name, address)
    return h is not None and h["healthy"] is want


def healthy_gauge(s, cluster_name, address):
    return metric_value(s.metrics(), "sluice_upstream_host_healthy", cluster=cluster_name,
                        host=address)


def who(s, path="/"):
    """The backend that answered a GET through sluice ("a", "b"...); asserts a 200."""
    r = s.get(path, timeout=5)
    assert r.status == 200, (r.status, r.text)
    m = re.fullmatch(r"hello from (\S+)\n", r.text)
    assert m, r.text
    return m.group(1)


def answered_by(s, n, path="/"):
    return [who(s, path) for _ in range(n)]


def wait_log(s, pattern, what):
    return wait_for(lambda: re.search(pattern, s.stderr_text()), WAIT, what=what)


# --------------------------------------------------------------------------- http health check


def test_failing_health_check_takes_host_out_and_passing_brings_it_back(start_backend,
                                                                       start_sluice):
    a = start_backend("a")
    b = start_backend("b")
    s = start_sluice(config(cluster("pool", a, b, health_check=health_check())))
    # Hosts start healthy and both take requests; both are being probed.
    assert set(answered_by(s, 4)) == {"a", "b"}
    wait_for(lambda: a.stats()["health_requests"] >= 2 and b.stats()["health_requests"] >= 2,
             WAIT, what="probes of both backends")
    assert healthy_gauge(s, "pool", a.address) == 1

    set_health(a, 503)
    wait_for(lambda: is_healthy(s, "pool", a.address, False), WAIT, what="a unhealthy in /clusters")
    wait_log(s, rf"cluster 'pool': host {re.escape(a.address)} is unhealthy \(status 503\)",
             "the unhealthy transition in stderr")
    assert healthy_gauge(s, "pool", a.address) == 0
    assert healthy_gauge(s, "pool", b.address) == 1
    assert host_of(s, "pool", b.address)["healthy"] is True
    # b alone is 50% of the hosts: not below the default panic threshold, so a gets nothing.
    assert answered_by(s, 20) == ["b"] * 20

    set_health(a, 200)
    wait_for(lambda: is_healthy(s, "pool", a.address, True), WAIT, what="a healthy again")
    wait_log(s, rf"cluster 'pool': host {re.escape(a.address)} is healthy \(status 200\)",
             "the healthy transition in stderr")
    assert healthy_gauge(s, "pool", a.address) == 1
    assert "a" in answered_by(s, 10)
    assert (metric_value(s.metrics(), "sluice_upstream_panic_total", cluster="pool") or 0) == 0


def test_expected_statuses_decide_what_passes(start_backend, start_sluice):
    """A 404 from the health endpoint passes when listed; a 200 fails when it is not."""
    a = start_backend("a")
    b = start_backend("b")
    s = start_sluice(config(cluster("pool", a, b,
                                    health_check=health_check(expected_statuses=[404]))))
    set_health(b, 404)
    wait_for(lambda: is_healthy(s, "pool", a.address, False), WAIT,
             what="a (answering 200, not expected) unhealthy")
    wait_for(lambda: b.stats()["health_requests"] >= 4, WAIT, what="four probes of b")
    assert host_of(s, "pool", b.address)["healthy"] is True
    assert answered_by(s, 10) == ["b"] * 10


def _flap(backend, statuses, toggles, threshold):
    """Answers the probes of `backend` alternately with statuses[0] and statuses[1]: after each
    probe the test sets the other one; it leaves statuses[1] set. Returns the lengths of the
    runs of probes that saw the same status (longer than 1 only when the test missed a probe).

    /health/set answers with the number of probes served so far, all of them with the old
    status (one thread serves both paths), so each probe's result is known exactly."""
    runs = []
    current = 0
    before = set_health(backend, statuses[current])
    for i in range(toggles):
        wait_for(lambda: backend.stats()["health_requests"] > before, WAIT, interval=0.005,
                 what="the next probe")
        following = 1 - current if i + 1 < toggles else 1
        served = set_health(backend, statuses[following])
        runs.append(served - before)  # these all saw statuses[current]
        before, current = served, following
    if max(runs) >= threshold:
        pytest.skip(f"inconclusive: the test was too slow to toggle after each probe of "
                    f"{backend.backend_name} (runs of equal results: {runs}; the threshold is "
                    f"{threshold}); sluice was not at fault")
    return runs


def test_flapping_health_never_flips_the_host(start_backend, start_sluice):
    """Thresholds of 3 and a health status that changes after every probe: no run of 3 equal
    results, so the host stays healthy, and once unhealthy it stays unhealthy.

    Deterministic, not a race against sluice's schedule: the test watches the backend's probe
    counter and flips the status after each probe, and knows which status each probe got (see
    _flap). Probes come every 300 ms; only a test stalled for two whole intervals could let 3
    equal results through, and that is detected and reported as a skip (inconclusive), never as
    a pass."""
    a = start_backend("a")
    b = start_backend("b")
    hc = health_check(interval="300ms", timeout="300ms", jitter="0%", healthy_threshold=3,
                      unhealthy_threshold=3)
    s = start_sluice(config(cluster("pool", a, b, health_check=hc)))
    unhealthy_line = rf"host {re.escape(a.address)} is unhealthy"
    healthy_line = rf"host {re.escape(a.address)} is healthy"

    # Healthy host: fail, pass, fail, pass... never 3 failures in a row.
    runs = _flap(a, (503, 200), toggles=8, threshold=3)
    assert not re.search(unhealthy_line, s.stderr_text()), (runs, s.stderr_text()[-2000:])
    assert host_of(s, "pool", a.address)["healthy"] is True
    assert healthy_gauge(s, "pool", a.address) == 1

    # Make it unhealthy for real, then flap: never 3 passes in a row.
    set_health(a, 503)
    wait_for(lambda: is_healthy(s, "pool", a.address, False), WAIT, what="a unhealthy")
    runs += _flap(a, (200, 503), toggles=8, threshold=3)
    assert not re.search(healthy_line, s.stderr_text()), (runs, s.stderr_text()[-2000:])
    assert host_of(s, "pool", a.address)["healthy"] is False
    assert healthy_gauge(s, "pool", a.address) == 0
    assert len(re.findall(unhealthy_line, s.stderr_text())) == 1


def test_health_is_kept_across_a_reload_that_keeps_the_address(start_backend, start_sluice):
    """Docs: a host's health survives a reload while its address stays in the cluster (here a
    third endpoint is added); a new host starts healthy."""
    a = start_backend("a")
    b = start_backend("b")
    c = start_backend("c")
    cfg = config(cluster("pool", a, b, health_check=health_check()))
    s = start_sluice(cfg)
    set_health(a, 503)
    wait_for(lambda: is_healthy(s, "pool", a.address, False), WAIT, what="a unhealthy")
    cfg["clusters"][0]["endpoints"].append(c.address)
    s.write_config(cfg)
    s.signal(signal.SIGHUP)
    wait_for(lambda: "config reloaded" in s.stderr_text(), WAIT, what="the reload")
    doc = {h["address"]: h["healthy"] for h in clusters_doc(s)["pool"]["hosts"]}
    assert doc == {a.address: False, b.address: True, c.address: True}
    assert set(answered_by(s, 10)) == {"b", "c"}
    assert len(re.findall(rf"host {re.escape(a.address)} is unhealthy", s.stderr_text())) == 1


def test_a_reload_that_removes_the_check_counts_every_host_available_again(start_backend,
                                                                           start_sluice):
    """Without a check every host is healthy again, and the count panic mode reads must say so:
    2 of 3 hosts were unhealthy, which is panic at the default 50%."""
    a = start_backend("a")
    b = start_backend("b")
    c = start_backend("c")
    cfg = config(cluster("pool", a, b, c, health_check=health_check()))
    s = start_sluice(cfg)
    set_health(a, 503)
    set_health(b, 503)
    for backend in (a, b):
        wait_for(lambda: is_healthy(s, "pool", backend.address, False), WAIT,
                 what=f"{backend.backend_name} unhealthy")
    del cfg["clusters"][0]["health_check"]
    s.write_config(cfg)
    s.signal(signal.SIGHUP)
    wait_for(lambda: "config reloaded" in s.stderr_text(), WAIT, what="the reload")
    assert all(h["healthy"] and h["available"] for h in clusters_doc(s)["pool"]["hosts"])
    panic_before = clusters_doc(s)["pool"]["panic_total"]
    assert set(answered_by(s, 9)) == {"a", "b", "c"}
    assert clusters_doc(s)["pool"]["panic_total"] == panic_before


# --------------------------------------------------------------------------- panic mode


def test_all_hosts_down_503_at_once_without_panic_and_spread_with_it(start_backend,
                                                                     start_sluice):
    """Two clusters over the same two backends: `strict` with panic_threshold 0% (panic off) and
    `panicky` with the default 50%. Both backends fail their health checks."""
    a = start_backend("a")
    b = start_backend("b")
    s = start_sluice(config(
        cluster("strict", a, b, health_check=health_check(), panic_threshold="0%"),
        cluster("panicky", a, b, health_check=health_check()),
        routes=[
            {"name": "strict", "match": {"path": {"prefix": "/strict/"}}, "cluster": "strict",
             "timeout": "15s"},
            {"name": "panicky", "match": {"path": {"prefix": "/panicky/"}}, "cluster": "panicky",
             "timeout": "15s"},
        ]))
    assert who(s, "/strict/x") in ("a", "b")
    set_health(a, 503)
    set_health(b, 503)
    for name in ("strict", "panicky"):
        for backend in (a, b):
            wait_for(lambda: is_healthy(s, name, backend.address, False), WAIT,
                     what=f"{backend.backend_name} unhealthy in {name}")
            assert healthy_gauge(s, name, backend.address) == 0

    def counter(name, cluster_name):
        return metric_value(s.metrics(), name, cluster=cluster_name) or 0

    def forwarded():
        """Requests the backends got other than probes, counting this /stats request."""
        return sum(st["requests"] - st["health_requests"] for st in (a.stats(), b.stats()))

    before = counter("sluice_upstream_no_healthy_host_total", "strict")
    forwarded_before = forwarded()
    for _ in range(5):
        # A bound, not a measurement: with no host, sluice must not wait for the 15 s route
        # timeout (a socket timeout raises here).
        r = s.get("/strict/x", timeout=2.0)
        assert r.status == 503, (r.status, r.text)
    wait_for(lambda: counter("sluice_upstream_no_healthy_host_total", "strict") >= before + 5,
             WAIT, what="no_healthy_host_total to count the 5 requests")
    # The two /stats requests are the only new ones: nothing went to the backends.
    assert forwarded() == forwarded_before + 2
    assert clusters_doc(s)["strict"]["no_healthy_host_total"] >= 5
    assert counter("sluice_upstream_panic_total", "strict") == 0

    panic_before = counter("sluice_upstream_panic_total", "panicky")
    got = answered_by(s, 10, "/panicky/x")
    assert set(got) == {"a", "b"}, got
    wait_for(lambda: counter("sluice_upstream_panic_total", "panicky") >= panic_before + 10,
             WAIT, what="panic_total to count the 10 requests")
    assert clusters_doc(s)["panicky"]["panic_total"] >= 10
    assert counter("sluice_upstream_no_healthy_host_total", "panicky") == 0


# --------------------------------------------------------------------------- tcp health check


def test_tcp_health_check_takes_out_a_closed_port(start_backend, start_sluice):
    a = start_backend("a")
    b = start_backend("b")
    s = start_sluice(config(cluster("pool", a, b, health_check=health_check(type="tcp"))))
    assert set(answered_by(s, 4)) == {"a", "b"}
    port = a.port
    a.stop()
    wait_for(lambda: is_healthy(s, "pool", a.address, False), WAIT, what="a unhealthy")
    wait_log(s, rf"host {re.escape(a.address)} is unhealthy \(connect: ",
             "the unhealthy transition (connect failure) in stderr")
    assert healthy_gauge(s, "pool", a.address) == 0
    assert answered_by(s, 20) == ["b"] * 20
    # A tcp check sends no request.
    assert b.stats()["health_requests"] == 0

    # Back on the same port: healthy again after healthy_threshold connects.
    a2 = start_backend("a", port=port)
    wait_for(lambda: is_healthy(s, "pool", a2.address, True), WAIT, what="a healthy again")
    wait_for(lambda: "a" in answered_by(s, 4), WAIT, what="a request to reach a again")


# --------------------------------------------------------------------------- GET /clusters


def test_clusters_document_lists_every_cluster_and_host(start_backend, start_sluice):
    a = start_backend("a")
    b = start_backend("b")
    c = start_backend("c")
    # One worker: its round robin alone decides, so the 3:1 split of 8 requests is exact.
    s = start_sluice(config(
        cluster("web", {"address": a.address, "weight": 3}, b, health_check=health_check()),
        cluster("solo", c, lb="least_request"),
        routes=[
            {"name": "solo", "match": {"path": {"prefix": "/solo/"}}, "cluster": "solo"},
            {"name": "web", "match": {"path": {"prefix": "/"}}, "cluster": "web"},
        ], workers=1))
    got = answered_by(s, 8)
    assert got.count("a") == 6 and got.count("b") == 2, got  # weights 3:1
    r = s.get("/status/503", timeout=5)
    assert r.status == 503
    assert who(s, "/solo/x") == "c"

    def settled():
        d = clusters_doc(s)
        return d if d["web"]["requests_total"] == 9 and d["solo"]["requests_total"] == 1 else None

    doc = wait_for(settled, WAIT, what="/clusters to count the requests")
    assert set(doc) == {"web", "solo"}
    web, solo = doc["web"], doc["solo"]
    assert (web["lb"], web["health_check"]) == ("round_robin", True)
    assert (solo["lb"], solo["health_check"]) == ("least_request", False)
    for cl in (web, solo):
        for key in ("active_requests", "pending_requests", "open_connections", "requests_total",
                    "responses_5xx_total", "retries_total", "no_healthy_host_total",
                    "panic_total", "overflow_total", "ejections_total", "dns_failures_total"):
            assert isinstance(cl[key], int) and cl[key] >= 0, (cl["name"], key, cl[key])
        assert cl["active_requests"] == 0 and cl["pending_requests"] == 0
    assert web["responses_5xx_total"] == 1 and solo["responses_5xx_total"] == 0
    assert web["no_healthy_host_total"] == 0 and web["ejections_total"] == 0

    hosts = {h["address"]: h for h in web["hosts"]}
    assert list(hosts) == [a.address, b.address]
    assert [h["address"] for h in solo["hosts"]] == [c.address]
    for h in web["hosts"] + solo["hosts"]:
        assert "hostname" not in h  # IP endpoints
        assert h["healthy"] is True and h["ejected"] is False
        assert h["active_requests"] == 0
        assert isinstance(h["failures_total"], int)
    assert (hosts[a.address]["weight"], hosts[b.address]["weight"]) == (3, 1)
    # The last probe's result, for checked clusters only.
    assert all("last_check" not in h for h in solo["hosts"])
    wait_for(lambda: all(h["last_check"] == "status 200" for h in clusters_doc(s)["web"]["hosts"]),
             WAIT, what="each web host's last check to read 'status 200'")
    # The 503 counts as a failure of the one host that answered it.
    assert sorted(h["failures_total"] for h in hosts.values()) == [0, 1]
    assert solo["hosts"][0]["weight"] == 1


# --------------------------------------------------------------------------- DNS (dnsmasq)


def dnsmasq_binary():
    found = shutil.which("dnsmasq") or shutil.which("dnsmasq", path="/usr/sbin:/sbin")
    if not found:
        pytest.skip("dnsmasq is not installed (Debian: apt-get install dnsmasq-base); skipping "
                    "the DNS refresh test against a real DNS server")
    return found


def dns_query(name, qid=0x5151):
    header = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # recursion desired, 1 question
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return header + qname + struct.pack(">HH", 1, 1)  # A, IN


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.bind((HOST, 0))
        return u.getsockname()[1]


class Dnsmasq:
    """A real dnsmasq on 127.0.0.1:<free UDP port> answering from a hosts file with TTL 1; every
    other name is NXDOMAIN (--local=/#/: nothing is forwarded)."""

    def __init__(self, log_dir, hosts_text):
        self.binary = dnsmasq_binary()
        self.dir = log_dir
        self.hosts_path = log_dir / "dns-hosts"
        self.write_hosts(hosts_text)
        self.proc = None
        for _ in range(3):  # the port can be taken between free_udp_port() and dnsmasq's bind
            self.port = free_udp_port()
            args = [self.binary, "--no-daemon", f"--port={self.port}",
                    "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv",
                    "--no-hosts", f"--addn-hosts={self.hosts_path}", "--local-ttl=1",
                    "--local=/#/", "--conf-file=/dev/null", "--pid-file=", "--log-queries",
                    "--log-facility=-"]
            if os.geteuid() == 0:
                args.append("--user=root")  # else it becomes nobody, who cannot read tmp_path
            proc = Process(args, log_dir, "dnsmasq")
            try:
                wait_for(lambda: self._answers(proc), WAIT, interval=0.02,
                         what="dnsmasq to answer")
                self.proc = proc
                return
            except (RuntimeError, TimeoutError):
                proc.stop()
        raise RuntimeError(f"dnsmasq did not start\n{proc.log_tail()}")

    def _answers(self, proc):
        if not proc.alive():
            raise RuntimeError("dnsmasq exited")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(0.1)
            try:
                u.sendto(dns_query("api.sluice.test"), (HOST, self.port))
                return len(u.recv(512)) > 12
            except OSError:  # refused before it binds, or no answer yet
                return False

    @property
    def server(self):
        return f"127.0.0.1:{self.port}"

    def write_hosts(self, text):
        """Whole file at once (rename), so dnsmasq never reads half of it."""
        tmp = self.hosts_path.with_suffix(".new")
        tmp.write_text(text)
        tmp.replace(self.hosts_path)

    def reload(self):
        self.proc.signal(signal.SIGHUP)

    def stop(self):
        if self.proc:
            self.proc.stop()


@pytest.fixture
def start_dnsmasq(tmp_path):
    started = []

    def start(hosts_text):
        d = Dnsmasq(tmp_path, hosts_text)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


def backends_on_two_loopback_addresses(start_backend):
    """Backend a on 127.0.0.2:P and b on 127.0.0.3:P, the same port: DNS gives addresses, not
    ports. P is retried when 127.0.0.3:P turns out to be taken."""
    for attempt in range(5):
        a = start_backend("a", host="127.0.0.2", port=free_port("127.0.0.2"))
        try:
            b = start_backend("b", host="127.0.0.3", port=a.port)
            return a, b
        except RuntimeError:
            a.stop()
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def test_dns_refresh_follows_the_name_and_keeps_the_last_addresses(start_backend, start_sluice,
                                                                    start_dnsmasq):
    dnsmasq_binary()
    a, b = backends_on_two_loopback_addresses(start_backend)
    port = a.port
    dns = start_dnsmasq("127.0.0.2 api.sluice.test\n")
    s = start_sluice(config(cluster("api", f"api.sluice.test:{port}", dns_refresh="1s"),
                            dns={"servers": [dns.server]}))
    # The first resolution finished before /ready: the first requests find the host.
    assert answered_by(s, 5) == ["a"] * 5
    hosts = clusters_doc(s)["api"]["hosts"]
    assert [(h["address"], h.get("hostname")) for h in hosts] == \
        [(f"127.0.0.2:{port}", "api.sluice.test")]

    dns.write_hosts("127.0.0.3 api.sluice.test\n")
    dns.reload()
    wait_for(lambda: who(s) == "b", WAIT, what="requests to reach b after the DNS change")
    assert answered_by(s, 10) == ["b"] * 10
    hosts = clusters_doc(s)["api"]["hosts"]
    assert [(h["address"], h.get("hostname")) for h in hosts] == \
        [(f"127.0.0.3:{port}", "api.sluice.test")]
    wait_log(s, rf"cluster 'api': api\.sluice\.test resolves to 127\.0\.0\.3:{port}",
             "the address change in stderr")
    assert healthy_gauge(s, "api", f"127.0.0.3:{port}") == 1
    assert healthy_gauge(s, "api", f"127.0.0.2:{port}") is None  # no longer in the cluster

    def dns_failures():
        return metric_value(s.metrics(), "sluice_dns_failures_total", cluster="api") or 0

    assert dns_failures() == 0
    dns.stop()
    wait_for(lambda: dns_failures() >= 1, 30.0, interval=0.1,
             what="a failed resolution once dnsmasq is gone")
    wait_log(s, r"cluster 'api': .*; keeping the last addresses", "the failure in stderr")
    assert answered_by(s, 10) == ["b"] * 10
    doc = clusters_doc(s)["api"]
    assert [h["address"] for h in doc["hosts"]] == [f"127.0.0.3:{port}"]
    assert doc["dns_failures_total"] >= 1


# --------------------------------------------------------------------------- over TLS and HTTP/2


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.backend = p.leaf("backend", ["backend.example.com"])
    p.stranger = Pki(p.dir, ca_stem="stranger-ca")
    return p


def https_host(start_sluice, backend, pki):
    """An HTTPS host (ALPN h2 or http/1.1) whose every path is `backend`'s."""
    c = basic_config(backend, access_log={"path": "off"})
    c["listeners"][0]["tls"] = {"certificates": [pki.backend]}
    return start_sluice(c, name=f"https-{backend.backend_name}")


def tls_handshakes(host):
    return metric_value(host.metrics(), "sluice_tls_handshakes_total", listener="main",
                        result="success") or 0


@pytest.mark.parametrize("protocol", ["http1", "h2"])
def test_http_health_check_over_tls_takes_out_a_host_answering_503(start_backend, start_sluice,
                                                                   pki, protocol):
    a = start_backend("a")
    b = start_backend("b")
    ha = https_host(start_sluice, a, pki)
    hb = https_host(start_sluice, b, pki)
    tls = {"sni": "backend.example.com", "ca_file": str(pki.ca_file)}
    s = start_sluice(config(cluster("pool", f"{HOST}:{ha.port}", f"{HOST}:{hb.port}", tls=tls,
                                    protocol=protocol, health_check=health_check())))
    a_addr = f"{HOST}:{ha.port}"
    # Healthy HTTPS hosts stay in rotation, and are probed through TLS.
    wait_for(lambda: a.stats()["health_requests"] >= 3 and b.stats()["health_requests"] >= 3,
             WAIT, what="probes of both backends through their HTTPS fronts")
    assert host_of(s, "pool", a_addr)["healthy"] is True
    assert set(answered_by(s, 6)) == {"a", "b"}
    assert tls_handshakes(ha) >= 3

    set_health(a, 503)
    wait_for(lambda: is_healthy(s, "pool", a_addr, False), WAIT, what="a unhealthy in /clusters")
    wait_log(s, rf"cluster 'pool': host {re.escape(a_addr)} is unhealthy \(status 503\)",
             "the unhealthy transition in stderr")
    assert healthy_gauge(s, "pool", a_addr) == 0
    assert answered_by(s, 20) == ["b"] * 20

    set_health(a, 200)
    wait_for(lambda: is_healthy(s, "pool", a_addr, True), WAIT, what="a healthy again")
    assert "a" in answered_by(s, 10)


def test_http_health_check_names_the_tls_failure_and_verify_false_accepts(start_backend,
                                                                         start_sluice, pki):
    """One HTTPS host in two clusters: one trusts another CA, the other does not verify."""
    a = start_backend("a")
    ha = https_host(start_sluice, a, pki)
    addr = f"{HOST}:{ha.port}"
    routes = [{"name": "strict", "match": {"path": {"prefix": "/strict"}}, "cluster": "strict"},
              {"name": "all", "match": {"path": {"prefix": "/"}}, "cluster": "lenient"}]
    s = start_sluice(config(
        cluster("strict", addr, tls={"sni": "backend.example.com",
                                     "ca_file": str(pki.stranger.ca_file)},
                health_check=health_check()),
        cluster("lenient", addr, tls={"verify": False}, health_check=health_check()),
        routes=routes))
    wait_for(lambda: is_healthy(s, "strict", addr, False), WAIT, what="strict's host unhealthy")
    # The check that failed is named: here "certificate signature failure", as both test CAs
    # have the same name.
    wait_log(s, rf"cluster 'strict': host {re.escape(addr)} is unhealthy \(tls: certificate "
                r"verify failed \([a-z ]+\)\)",
             "the TLS reason in the unhealthy transition")
    # Only the lenient cluster's probes reach the backend; they pass and keep the host in.
    before = a.stats()["health_requests"]
    wait_for(lambda: a.stats()["health_requests"] >= before + 3, WAIT, what="lenient probes")
    assert host_of(s, "lenient", addr)["healthy"] is True
    assert host_of(s, "lenient", addr)["last_check"] == "status 200"
    # The admin API names the failed check as the log does.
    assert re.fullmatch(r"tls: certificate verify failed \([a-z ]+\)",
                        host_of(s, "strict", addr)["last_check"]), host_of(s, "strict", addr)
    assert "cluster 'lenient'" not in s.stderr_text()
    assert who(s, "/") == "a"
    assert s.get("/strict", timeout=5).status == 503


def test_a_ca_file_replaced_in_place_is_trusted_by_probes_after_a_reload(start_backend,
                                                                          start_sluice, pki,
                                                                          tmp_path):
    """The cluster's tls settings are unchanged (same ca_file path); its contents change. A
    reload must build the probes' TLS context again, as it does the requests'."""
    a = start_backend("a")
    ha = https_host(start_sluice, a, pki)
    addr = f"{HOST}:{ha.port}"
    ca = tmp_path / "upstream-ca.pem"
    ca.write_bytes(pki.stranger.ca_file.read_bytes())
    cfg = config(cluster("pool", addr, tls={"sni": "backend.example.com", "ca_file": str(ca)},
                         health_check=health_check(), panic_threshold="0%"))
    s = start_sluice(cfg)
    wait_for(lambda: is_healthy(s, "pool", addr, False), WAIT, what="the host unhealthy")
    assert host_of(s, "pool", addr)["last_check"].startswith("tls: certificate verify failed")
    assert s.get("/", timeout=5).status == 503

    ca.write_bytes(pki.ca_file.read_bytes())
    s.signal(signal.SIGHUP)
    wait_for(lambda: "config reloaded" in s.stderr_text(), WAIT, what="the reload")
    wait_for(lambda: is_healthy(s, "pool", addr, True), WAIT, what="the host healthy again")
    assert host_of(s, "pool", addr)["last_check"] == "status 200"
    assert who(s, "/") == "a"


def test_http_health_check_over_h2c(start_sluice):
    """protocol: h2 without TLS: the probe is an HTTP/2 GET with prior knowledge."""
    b = H2Backend()
    try:
        s = start_sluice(config(cluster("pool", b.address, protocol="h2",
                                        health_check=health_check(host="svc.internal"))))
        wait_for(lambda: sum(r["path"] == "/health" for r in list(b.requests)) >= 3, WAIT,
                 what="three HTTP/2 probes")
        probe = next(r for r in list(b.requests) if r["path"] == "/health")
        assert (probe["method"], probe["scheme"], probe["authority"]) == ("GET", "http",
                                                                          "svc.internal")
        assert ["user-agent", "sluice-health-check"] in probe["headers"]
        assert host_of(s, "pool", b.address)["healthy"] is True
        assert "is unhealthy" not in s.stderr_text()
    finally:
        b.stop()
