"""Process control: worker threads, SIGHUP reload (valid, invalid, new listener) without
dropping connections, and SIGTERM/SIGINT drain (refuse new connections, /ready 503, finish
in-flight requests, exit 0, bounded by drain_timeout)."""

import os
import re
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers import HOST, IncompleteResponse, RawConn, http_request, request_bytes, wait_for


def respond_config(body, *, backend=None, workers=1, **top):
    """Listener "main": /r answers `body`; /b/... goes to `backend` (if given)."""
    routes = [{"name": "r", "match": {"path": {"exact": "/r"}},
               "respond": {"status": 200, "body": body}}]
    clusters = []
    if backend is not None:
        routes.append({"name": "b", "match": {"path": {"prefix": "/b/"}}, "cluster": "be",
                       "rewrite": {"prefix": "/"}})
        clusters.append({"name": "be", "endpoints": [backend.address]})
    config = {"workers": workers, "listeners": [{"name": "main"}], "routes": routes,
              "clusters": clusters, "access_log": {"path": "off"}}
    config.update(top)
    return config


def in_background(fn, *args, **kw):
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(fn, *args, **kw)
    pool.shutdown(wait=False)
    return future


def wait_backend_requests(backend, n, timeout=5.0):
    """Waits until the backend has read `n` request heads besides its own /stats calls."""
    calls = 0

    def seen():
        nonlocal calls
        calls += 1
        return backend.stats()["requests"] - calls >= n

    wait_for(seen, timeout, interval=0.02, what=f"{n} request(s) at the backend")


def connect_refused(port):
    """True once a connect is refused. A connect that lands in the backlog of an acceptor that
    is closing is reset instead; that counts as not yet."""
    try:
        socket.create_connection((HOST, port), timeout=1.0).close()
        return False
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        return False


def reloads(s, result):
    return s.metric("sluice_config_reloads_total", result=result)


def task_names(pid):
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out[int(tid)] = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except FileNotFoundError:
            pass
    return out


def cpu_ticks(pid, tid):
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15)


# ----------------------------------------------------------------------------- workers


def test_two_workers_both_serve(start_sluice):
    s = start_sluice(respond_config("hi\n", workers=2))
    assert s.metric("sluice_workers") == 2
    names = task_names(s.pid)
    assert len(names) >= 3, names  # main + 2 workers (+ admin)
    workers = sorted(tid for tid, name in names.items() if name.startswith("sluice-w"))
    assert len(workers) == 2, names
    before = {tid: cpu_ticks(s.pid, tid) for tid in workers}

    # Many connections: SO_REUSEPORT spreads them over both workers' acceptors.
    n_conns = 200
    def one(i):
        return http_request("GET", s.url(f"/r?i={i}"), timeout=10).status
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(one, range(n_conns)))
    assert statuses == [200] * n_conns
    # The per-worker counters add up to exactly what was sent. (A response can reach the
    # client a moment before its stream is counted, hence the wait.)
    wait_for(lambda: s.metric("sluice_downstream_requests_total", listener="main",
                              code="2xx") == n_conns, 5, what="request count")
    assert s.metric("sluice_downstream_connections_total", listener="main") == n_conns

    # Then enough load that each worker's CPU time visibly grows.
    out = subprocess.run(["wrk", "-t2", "-c64", "-d1s", s.url("/r")], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    after = {tid: cpu_ticks(s.pid, tid) for tid in workers}
    for tid in workers:
        assert after[tid] > before[tid], (names[tid], before, after)


def test_workers_auto_uses_the_cpus_the_process_may_run_on(start_sluice):
    s = start_sluice(respond_config("hi\n", workers="auto"))
    assert s.metric("sluice_workers") == len(os.sched_getaffinity(0))
    # Pinned to one CPU (taskset, a cpuset), it starts one worker, not one per CPU of the host.
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(mine)})  # inherited by the child
    try:
        pinned = start_sluice(respond_config("hi\n", workers="auto"))
    finally:
        os.sched_setaffinity(0, mine)
    assert pinned.metric("sluice_workers") == 1


# ----------------------------------------------------------------------------- reload


def test_reload_applies_new_config_without_dropping_connections(start_backend, start_sluice):
    b = start_backend("a")
    s = start_sluice(respond_config("old\n", backend=b))
    conn = s.connection()
    try:
        conn.request("GET", "/r")
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, b"old\n")

        slow = in_background(http_request, "GET", s.url("/b/delay/1500"), timeout=10)
        wait_backend_requests(b, 1)

        s.write_config(respond_config("new\n", backend=b))
        s.signal(signal.SIGHUP)
        wait_for(lambda: reloads(s, "success") == 1, 5, what="reload to succeed")
        assert reloads(s, "failure") == 0
        assert s.get("/r").text == "new\n"

        # The keep-alive connection opened before the reload still works, on the new config.
        conn.request("GET", "/r")
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, b"new\n")

        # The request that was in flight across the reload completes normally.
        done = slow.result(timeout=10)
        assert (done.status, done.text) == (200, "hello from a\n")
    finally:
        conn.close()
    assert "config reloaded" in s.stderr_text()


def test_invalid_reload_is_logged_and_old_config_keeps_serving(start_sluice):
    s = start_sluice(respond_config("old\n"))
    good = s.config
    bad = dict(good, drain_timeout="5 seconds", bogus_key=1)
    s.write_config(bad)
    s.signal(signal.SIGHUP)
    wait_for(lambda: reloads(s, "failure") == 1, 5, what="reload to fail")
    assert reloads(s, "success") == 0
    assert s.get("/r").text == "old\n"
    err = s.stderr_text()
    path = str(s.config_path)
    assert re.search(re.escape(path) + r":\d+:\d+: .*drain_timeout", err), err
    assert re.search(re.escape(path) + r":\d+:\d+: unknown key 'bogus_key'", err), err
    assert "previous config stays in force" in err

    # A good file after a bad one is picked up again.
    s.write_config(respond_config("fixed\n"))
    s.signal(signal.SIGHUP)
    wait_for(lambda: reloads(s, "success") == 1, 5, what="second reload")
    assert s.get("/r").text == "fixed\n"
    assert reloads(s, "failure") == 1


def test_workers_change_warns_until_set_back_to_the_running_value(start_sluice):
    s = start_sluice(respond_config("one\n", workers=1))
    warning = "a change of 'workers' takes effect only after a restart"

    s.write_config(respond_config("two\n", workers=2))
    s.signal(signal.SIGHUP)
    wait_for(lambda: reloads(s, "success") == 1, 5)
    wait_for(lambda: s.stderr_text().count(warning) == 1, 5)

    # Back to what is running: nothing to restart for, so no warning.
    s.write_config(respond_config("three\n", workers=1))
    s.signal(signal.SIGHUP)
    wait_for(lambda: reloads(s, "success") == 2, 5)
    wait_for(lambda: s.get("/r").text == "three\n", 5)
    assert s.stderr_text().count(warning) == 1
    assert s.metric("sluice_workers") == 1


def test_reload_adds_and_removes_listeners(start_sluice):
    s = start_sluice(respond_config("one\n"))
    config = respond_config("one\n")
    config["listeners"] = [{"name": "main"}, {"name": "extra"}]
    s.write_config(config)
    extra = s.ports["extra"]
    assert connect_refused(extra)
    s.signal(signal.SIGHUP)
    wait_for(lambda: reloads(s, "success") == 1, 5, what="reload")
    r = http_request("GET", f"http://{HOST}:{extra}/r")
    assert (r.status, r.text) == (200, "one\n")
    assert s.metric("sluice_downstream_connections_active", listener="extra") is not None

    # Removing it again closes its port and its idle connections; "main" is untouched.
    with RawConn(extra) as idle, s.raw() as kept:
        for c in (idle, kept):
            c.send(request_bytes("GET", "/r"))
            assert c.read_response().status == 200
        s.write_config(respond_config("two\n"))
        s.signal(signal.SIGHUP)
        wait_for(lambda: reloads(s, "success") == 2, 5, what="second reload")
        wait_for(lambda: connect_refused(extra), 5, what="removed listener to close")
        assert idle.peer_closed(timeout=3)
        kept.send(request_bytes("GET", "/r"))
        assert kept.read_response().body == b"two\n"
    assert s.get("/r").text == "two\n"


def test_reload_moves_a_listener_and_old_connections_finish(start_backend, start_sluice):
    b = start_backend("a")
    s = start_sluice(respond_config("one\n", backend=b, workers=2))
    old_port = s.port
    conn = s.connection()
    conn.request("GET", "/r")
    assert conn.getresponse().read() == b"one\n"
    slow = in_background(http_request, "GET", s.url("/b/delay/1000"), timeout=10)
    wait_backend_requests(b, 1)

    config = respond_config("two\n", backend=b, workers=2)
    config["listeners"] = [{"name": "main", "address": f"{HOST}:0"}]
    s._port_memo.pop("main")  # let the harness pick a new port for "main"
    s.write_config(config)
    new_port = s.port
    assert new_port != old_port
    s.signal(signal.SIGHUP)
    wait_for(lambda: reloads(s, "success") == 1, 5, what="reload")
    assert http_request("GET", f"http://{HOST}:{new_port}/r").text == "two\n"
    wait_for(lambda: connect_refused(old_port), 5, what="old address to close")
    # Connections accepted on the old address are drained: the idle one is closed, the busy
    # one finishes its exchange and then closes.
    r = slow.result(timeout=10)
    assert (r.status, r.header("connection")) == (200, "close")
    conn.sock.settimeout(2)
    assert conn.sock.recv(1) == b""
    conn.close()
    s.stopped = True
    s.signal(signal.SIGTERM)
    assert s.wait(timeout=5) == 0


def test_reload_that_cannot_bind_fails_and_keeps_serving(start_sluice):
    s = start_sluice(respond_config("one\n"))
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        config = respond_config("two\n")
        config["listeners"] = [{"name": "main"},
                               {"name": "busy", "address": f"{HOST}:{taken.getsockname()[1]}"}]
        s.write_config(config)
        s.signal(signal.SIGHUP)
        wait_for(lambda: reloads(s, "failure") == 1, 5, what="reload to fail")
    assert s.get("/r").text == "one\n"
    assert "in use" in s.stderr_text()


# ----------------------------------------------------------------------------- drain


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_drain_finishes_in_flight_requests_and_exits_0(start_backend, start_sluice, sig):
    b = start_backend("a")
    s = start_sluice(respond_config("hi\n", backend=b, workers=2))
    port = s.port
    slow = in_background(http_request, "GET", s.url("/b/delay/2000"), timeout=10)
    wait_backend_requests(b, 1)
    s.stopped = True  # this test signals it; teardown must not treat the exit as a crash
    s.signal(sig)

    # New connections are refused soon after, while the slow request is still running.
    wait_for(lambda: connect_refused(port), 1.5, what="listener to close")
    assert s.admin_get("/ready").status == 503
    assert s.admin_get("/healthz").status == 200
    assert not slow.done()

    r = slow.result(timeout=10)
    assert (r.status, r.text) == (200, "hello from a\n")
    assert r.header("connection") == "close"
    assert s.wait(timeout=10) == 0
    err = s.stderr_text()
    assert "draining" in err and "stopped" in err
    assert "drain timeout" not in err


def test_drain_closes_idle_keep_alive_connections_at_once(start_sluice):
    s = start_sluice(respond_config("hi\n"))
    with s.raw() as c:
        c.send(request_bytes("GET", "/r"))
        assert c.read_response().status == 200
        started = time.monotonic()
        s.stopped = True
        s.signal(signal.SIGTERM)
        assert c.peer_closed(timeout=3.0)
    assert s.wait(timeout=5) == 0
    assert time.monotonic() - started < 3.0  # not the 15 s drain_timeout


def test_drain_timeout_bounds_shutdown(start_backend, start_sluice):
    b = start_backend("a")
    s = start_sluice(respond_config("hi\n", backend=b, drain_timeout="1s"))
    with s.raw() as c:
        c.send(request_bytes("GET", "/b/delay/5000"))
        wait_backend_requests(b, 1)
        started = time.monotonic()
        s.stopped = True
        s.signal(signal.SIGTERM)
        assert s.wait(timeout=5) == 0
        elapsed = time.monotonic() - started
        assert 0.9 <= elapsed <= 3.0, elapsed
        # The unfinished exchange is cut off, never presented as a response.
        with pytest.raises(IncompleteResponse):
            c.read_response(timeout=2)
    assert "drain timeout: closing 1 connection(s)" in s.stderr_text()


def test_second_signal_stops_drain_at_once(start_backend, start_sluice):
    b = start_backend("a")
    s = start_sluice(respond_config("hi\n", backend=b, drain_timeout="30s"))
    slow = in_background(http_request, "GET", s.url("/b/delay/5000"), timeout=10)
    wait_backend_requests(b, 1)
    s.stopped = True
    s.signal(signal.SIGTERM)
    wait_for(lambda: "draining" in s.stderr_text(), 2, what="drain to start")
    started = time.monotonic()
    s.signal(signal.SIGTERM)
    assert s.wait(timeout=5) == 0
    assert time.monotonic() - started < 3.0
    with pytest.raises(Exception):
        slow.result(timeout=5)


def test_sighup_during_drain_is_ignored(start_backend, start_sluice):
    b = start_backend("a")
    s = start_sluice(respond_config("hi\n", backend=b))
    slow = in_background(http_request, "GET", s.url("/b/delay/1000"), timeout=10)
    wait_backend_requests(b, 1)
    s.stopped = True
    s.signal(signal.SIGTERM)
    wait_for(lambda: "draining" in s.stderr_text(), 2, what="drain to start")
    s.signal(signal.SIGHUP)
    assert slow.result(timeout=10).status == 200
    assert s.wait(timeout=10) == 0
    assert "SIGHUP ignored while draining" in s.stderr_text()


def test_shutdown_does_not_wait_for_a_hanging_upstream_connect(start_sluice):
    # A listener whose accept queue is full drops further SYNs: connecting to it hangs until
    # the connect timeout (here far beyond the drain timeout).
    with socket.socket() as blackhole:
        blackhole.bind((HOST, 0))
        blackhole.listen(0)
        fillers = []
        try:
            for _ in range(4):
                f = socket.socket()
                f.setblocking(False)
                f.connect_ex(blackhole.getsockname())
                fillers.append(f)
            config = respond_config("hi\n", workers=2, drain_timeout="0s")
            config["routes"].append({"name": "hang", "match": {"path": {"prefix": "/hang"}},
                                     "cluster": "hole"})
            config["clusters"] = [{"name": "hole", "endpoints": [
                f"{HOST}:{blackhole.getsockname()[1]}"], "connect_timeout": "30s"}]
            s = start_sluice(config)
            hung = in_background(http_request, "GET", s.url("/hang"), timeout=10)
            wait_for(lambda: s.metric("sluice_upstream_connections_created_total",
                                      cluster="hole") == 1, 5, what="upstream connect")
            started = time.monotonic()
            s.stopped = True
            s.signal(signal.SIGTERM)
            assert s.wait(timeout=10) == 0
            assert time.monotonic() - started < 3.0
            with pytest.raises(Exception):
                hung.result(timeout=5)
        finally:
            for f in fillers:
                f.close()
