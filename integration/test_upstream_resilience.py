"""Upstream resilience end to end: retries, outlier ejection, circuit breakers, load-balancing
policies (spread over workers, least_request with a slow host, hashing stability) and a cluster
that is all down. Health checks and DNS are in test_upstream_health.py."""
import http.server
import signal
import socketserver
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import helpers
from helpers import HOST, http_request


class FixedServer:
    """A real HTTP/1.1 server on loopback (a thread of this test) that answers every request
    with `status` after `delay` seconds, counting them: a backend that is sick in one known way."""

    def __init__(self, status: int = 503, delay: float = 0.0, name: str = "fixed"):
        self.count = 0
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                with owner.lock:
                    owner.count += 1
                if delay:
                    time.sleep(delay)
                body = f"{status} from {name}\n".encode()
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server((HOST, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fixed_server():
    servers = []

    def start(**kw) -> FixedServer:
        s = FixedServer(**kw)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


def config_with(endpoints, cluster_extra=None, route_extra=None, **top):
    cfg = helpers.basic_config(*endpoints, access_log={"path": "off"}, **top)
    cfg["clusters"][0].update(cluster_extra or {})
    cfg["routes"][0].update(route_extra or {})
    return cfg


def who(resp) -> str:
    """The backend that answered: "hello from NAME" (test backend) or "503 from NAME"."""
    return resp.text.strip().split()[-1]


def test_a_retry_on_503_goes_to_the_other_host(start_backend, start_sluice, fixed_server):
    sick = fixed_server(status=503, name="sick")
    good = start_backend("good")
    s = start_sluice(config_with([sick.address, good],
                                 route_extra={"retry": {"attempts": 2, "on": ["503"]}}))
    for _ in range(10):
        r = s.get("/")
        assert r.status == 200 and who(r) == "good"
    assert sick.count >= 4, "round robin sent first tries to the sick host too"
    assert s.metric("sluice_upstream_retries_total", cluster="default", reason="status") == sick.count


def test_non_idempotent_requests_are_not_retried(start_backend, start_sluice, fixed_server):
    sick = fixed_server(status=503, name="sick")
    good = start_backend("good")
    s = start_sluice(config_with([sick.address, good],
                                 route_extra={"retry": {"attempts": 2, "on": ["503"]}}))
    statuses = [s.request("POST", "/echo", body="x").status for _ in range(10)]
    assert statuses.count(503) == sick.count and sick.count >= 4
    assert statuses.count(200) == 10 - sick.count
    # retry_non_idempotent: the same POSTs succeed.
    cfg = config_with([sick.address, good], route_extra={
        "retry": {"attempts": 2, "on": ["503"], "retry_non_idempotent": True}})
    s2 = start_sluice(cfg, name="retry-posts")
    assert all(s2.request("POST", "/echo", body="x").status == 200 for _ in range(10))


def test_no_failed_gets_while_a_backend_is_killed_under_load(start_backend, start_sluice):
    a = start_backend("a")
    b = start_backend("b")
    s = start_sluice(config_with(
        [a, b], route_extra={"retry": {"attempts": 2,
                                       "on": ["connect-failure", "reset", "502", "503"]}},
        workers=2))
    stop = threading.Event()
    results: list[int] = []
    lock = threading.Lock()

    def client():
        n = 0
        while not stop.is_set() and n < 2000:
            r = http_request("GET", s.url("/delay/5"))
            n += 1
            with lock:
                results.append(r.status)

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(client) for _ in range(8)]
        helpers.wait_for(lambda: len(results) >= 100, what="load to start")
        a.proc.kill()  # mid-load: in-flight requests to it are reset, new ones refused
        a.proc.wait(timeout=10)
        helpers.wait_for(lambda: len(results) >= 400, what="load after the kill")
        stop.set()
        for f in futures:
            f.result(timeout=60)
    failed = [st for st in results if st != 200]
    assert not failed, f"{len(failed)} of {len(results)} GETs failed: {sorted(set(failed))}"
    assert len(results) >= 400
    assert (s.metric("sluice_upstream_retries_total", cluster="default", reason="connect_failure")
            or 0) + (s.metric("sluice_upstream_retries_total", cluster="default", reason="reset")
                     or 0) > 0


def test_outlier_detection_ejects_a_failing_host(start_backend, start_sluice, fixed_server):
    sick = fixed_server(status=503, name="sick")
    good = start_backend("good")
    s = start_sluice(config_with([sick.address, good], cluster_extra={
        "outlier_detection": {"consecutive_failures": 3, "base_ejection_time": "30s"}}))
    for _ in range(8):
        s.get("/")
    helpers.wait_for(lambda: s.metric("sluice_upstream_ejections_total", cluster="default") == 1,
                     what="the sick host to be ejected")
    hosts = {h["address"]: h for h in s.admin_get("/clusters").json()["clusters"][0]["hosts"]}
    assert hosts[sick.address]["ejected"] is True
    assert hosts[sick.address]["available"] is False
    assert hosts[good.address]["ejected"] is False
    before = sick.count
    assert all(s.get("/").status == 200 for _ in range(20))
    assert sick.count == before, "an ejected host gets no requests"
    assert "ejected for 30s after 3 failures in a row" in s.stderr_text()
    assert s.metric("sluice_upstream_host_ejected", cluster="default", host=sick.address) == 1


def test_max_ejection_percent_keeps_hosts_in_rotation(start_sluice, fixed_server):
    a = fixed_server(status=503, name="a")
    b = fixed_server(status=503, name="b")
    s = start_sluice(config_with([a.address, b.address], cluster_extra={
        "outlier_detection": {"consecutive_failures": 2, "max_ejection_percent": 50}}))
    for _ in range(12):
        assert s.get("/").status == 503
    # One of two may go (always at least one); the second would be 100 %.
    time.sleep(0.2)
    assert s.metric("sluice_upstream_ejections_total", cluster="default") == 1
    assert "max_ejection_percent reached" in s.stderr_text()


def test_max_requests_breaker_answers_503_at_once(start_backend, start_sluice):
    b = start_backend("b")
    s = start_sluice(config_with([b], cluster_extra={"circuit_breakers": {"max_requests": 1}}))
    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(http_request, "GET", s.url("/delay/1500"))
        helpers.wait_for(lambda: s.admin_get("/clusters").json()["clusters"][0]
                         ["active_requests"] == 1, what="the slow request to be in flight")
        t0 = time.monotonic()
        r = s.get("/")
        assert r.status == 503
        assert time.monotonic() - t0 < 1.0, "refused at once, not after the slow one"
        assert slow.result(timeout=10).status == 200
    assert s.metric("sluice_upstream_overflow_total", cluster="default",
                    breaker="max_requests") == 1
    assert s.get("/").status == 200


def test_all_hosts_down_answers_503_without_waiting(start_sluice):
    dead = [f"{HOST}:{helpers.free_port()}", f"{HOST}:{helpers.free_port()}"]
    s = start_sluice(config_with(dead, route_extra={"timeout": "15s"}))
    t0 = time.monotonic()
    r = s.get("/")
    assert r.status == 503
    assert time.monotonic() - t0 < 3.0


def test_round_robin_spreads_fresh_connections_over_workers(start_backend, start_sluice):
    a = start_backend("a")
    b = start_backend("b")
    s = start_sluice(config_with([a, b], workers=2))
    # Each GET on its own connection: whichever worker takes it, the hosts alternate.
    seen = [who(s.get("/")) for _ in range(4)]
    assert sorted(seen) == ["a", "a", "b", "b"], seen


def test_least_request_prefers_the_fast_host(start_backend, start_sluice, fixed_server):
    slow = fixed_server(status=200, delay=0.3, name="slow")
    fast = start_backend("fast")
    counts = {}
    for lb in ("round_robin", "least_request"):
        s = start_sluice(config_with([slow.address, fast], cluster_extra={"lb": lb}), name=lb)
        before = slow.count
        result = helpers.send_concurrently(s.port, total=120, connections=6, path="/")
        assert result == {200: 120}
        counts[lb] = slow.count - before
    # Round robin gives the slow host half; least_request sees its requests pile up.
    assert counts["round_robin"] >= 50
    assert counts["least_request"] < counts["round_robin"] / 2, counts


@pytest.mark.parametrize("lb", ["ring_hash", "maglev"])
def test_hashing_keeps_a_key_on_its_host(start_backend, start_sluice, lb):
    backends = [start_backend(n) for n in ("a", "b", "c")]
    cfg = config_with(backends, cluster_extra={"lb": lb, "hash_on": "header:x-user"})
    s = start_sluice(cfg)
    users = [f"user-{i}" for i in range(30)]

    def placement():
        return {u: who(s.get("/", headers={"x-user": u})) for u in users}

    first = placement()
    assert placement() == first, "the same key reaches the same host"
    assert len(set(first.values())) == 3, "keys spread over every host"
    # Host c leaves: only its keys move.
    cfg2 = config_with(backends[:2], cluster_extra={"lb": lb, "hash_on": "header:x-user"})
    s.write_config(cfg2)
    s.signal(signal.SIGHUP)
    helpers.wait_for(lambda: "config reloaded" in s.stderr_text(), what="reload")
    after = placement()
    moved = [u for u in users if after[u] != first[u]]
    assert all(first[u] == "c" for u in moved), moved
    assert "c" not in after.values()


def test_a_try_over_per_try_timeout_goes_to_the_other_host(start_backend, start_sluice,
                                                           fixed_server):
    stuck = fixed_server(status=200, delay=3.0, name="stuck")
    good = start_backend("good")
    s = start_sluice(config_with([stuck.address, good], route_extra={
        "timeout": "10s", "retry": {"attempts": 1, "on": ["504"], "per_try_timeout": "300ms"}}))
    for _ in range(4):
        t0 = time.monotonic()
        r = s.get("/")
        assert r.status == 200 and who(r) == "good"
        assert time.monotonic() - t0 < 2.5, "the stuck try was abandoned, not waited for"
    assert stuck.count >= 1
    assert s.metric("sluice_upstream_retries_total", cluster="default",
                    reason="per_try_timeout") == stuck.count
    # Without a retry policy the route's timeout is what bounds the request.
    s2 = start_sluice(config_with([stuck.address], route_extra={"timeout": "500ms"}), name="plain")
    assert s2.get("/").status == 504


def test_a_streamed_response_counts_on_its_host_until_it_ends(start_backend, start_sluice):
    b = start_backend("b")
    s = start_sluice(config_with([b]))

    def active() -> int:
        return s.admin_get("/clusters").json()["clusters"][0]["hosts"][0]["active_requests"]

    with ThreadPoolExecutor(max_workers=1) as pool:
        # 40 chunks 50 ms apart: the head comes at once, the body over about 2 s.
        stream = pool.submit(http_request, "GET", s.url("/bytes/40000?chunk=1000&delay=50"))
        helpers.wait_for(lambda: active() == 1, what="the stream to be in flight")
        time.sleep(0.5)  # well after the head: least_request must still see it
        assert active() == 1
        r = stream.result(timeout=30)
        assert r.status == 200 and len(r.body) == 40000
    helpers.wait_for(lambda: active() == 0, what="the stream to end")
    assert s.admin_get("/clusters").json()["clusters"][0]["hosts"][0]["requests_total"] == 1


@pytest.mark.parametrize("budget", [0, 100])
def test_the_retry_budget_caps_retries_in_flight(start_backend, start_sluice, fixed_server,
                                                 budget):
    sick = fixed_server(status=503, name="sick")  # answers at once, whatever the path
    good = start_backend("good")
    s = start_sluice(config_with([sick.address, good], route_extra={
        "retry": {"attempts": 1, "on": ["503"], "budget_percent": budget}}))
    # Ten requests at once; those whose first try hits the sick host retry on the good one,
    # which holds each retry for a second, so the retries are all in flight together.
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda _: http_request("GET", s.url("/delay/1000")).status,
                                 range(10)))
    assert sick.count >= 4, "round robin sends about half of the first tries to the sick host"
    refused = s.metric("sluice_upstream_retries_total", cluster="default",
                       reason="budget_exhausted")
    if budget == 0:
        # 0 % of the requests in flight, but 3 retries are always allowed.
        assert statuses.count(503) == sick.count - 3
        assert refused == sick.count - 3
    else:
        assert statuses == [200] * 10
        assert refused == 0


def test_max_pending_requests_breaker_answers_503_at_once(start_sluice):
    import socket
    # Accepts connections and never answers: a TLS handshake with it waits for connect_timeout,
    # so the first request stays pending (waiting for a connection) meanwhile.
    silent = socket.socket()
    silent.bind((HOST, 0))
    silent.listen(16)
    try:
        cfg = config_with([f"{HOST}:{silent.getsockname()[1]}"], cluster_extra={
            "tls": {"verify": False}, "connect_timeout": "3s",
            "circuit_breakers": {"max_pending_requests": 1}})
        s = start_sluice(cfg)
        with ThreadPoolExecutor(max_workers=1) as pool:
            first = pool.submit(http_request, "GET", s.url("/"))
            helpers.wait_for(lambda: s.admin_get("/clusters").json()["clusters"][0]
                             ["pending_requests"] == 1, what="the first request to be pending")
            t0 = time.monotonic()
            assert s.get("/").status == 503
            assert time.monotonic() - t0 < 1.5, "refused at once"
            assert first.result(timeout=20).status == 503  # its connect timed out
        assert s.metric("sluice_upstream_overflow_total", cluster="default",
                        breaker="max_pending_requests") == 1
    finally:
        silent.close()


@pytest.mark.parametrize("second", ["silent", "closes"])
def test_a_503_retried_to_a_host_that_does_not_answer_ends_in_502_or_504(start_sluice,
                                                                         fixed_server, second):
    import socket
    import threading
    sick = fixed_server(status=503, name="sick")
    other = socket.socket()
    other.bind((HOST, 0))
    other.listen(16)
    held = []

    def accept_loop():
        while True:
            try:
                conn, _ = other.accept()
            except OSError:
                return
            if second == "closes":
                conn.close()  # before any response byte
            else:
                held.append(conn)  # never answered

    threading.Thread(target=accept_loop, daemon=True).start()
    try:
        s = start_sluice(config_with(
            [sick.address, f"{HOST}:{other.getsockname()[1]}"],
            route_extra={"timeout": "1s", "retry": {"attempts": 1, "on": ["503"]}}))
        statuses = []
        for _ in range(4):
            t0 = time.monotonic()
            statuses.append(s.get("/").status)
            assert time.monotonic() - t0 < 5, "bounded by the route timeout"
        # Whichever host round robin tried first, the client gets the outcome of a host that
        # did not answer, never the sick host's 503 (dropped when it was retried) nor a hang.
        assert statuses == [504 if second == "silent" else 502] * 4, statuses
        assert sick.count >= 1
    finally:
        other.close()
        for c in held:
            c.close()
