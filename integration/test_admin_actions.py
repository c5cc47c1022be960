"""Admin API that can act, against the real binary: bearer-token auth (admin.token_file) on every
path but /healthz and /ready; the loopback rule for unauthenticated admin ports; POST /reload
(errors as FILE:LINE:COL in the JSON, a bad config never replaces the running one), POST /drain
and /drain?cancel, POST /clusters/{cluster}/hosts/{address}/disable|enable under load with no
failed request; 405 with Allow; every action logged with the client's address. Loopback only."""

import http.client
import json
import re
import signal
import socket
import subprocess
import threading
import time

from helpers import HOST, check_config, http_request, metric_value, wait_for

TOKEN = "s3cret-admin-token"


def token_file(tmp_path, token=TOKEN, name="admin-token"):
    path = tmp_path / name
    path.write_text(token + "\n")
    return path


def config(*backends, token_path=None, workers=2, **top):
    c = {
        "workers": workers,
        "listeners": [{"name": "main"}],
        "routes": [
            {"name": "r", "match": {"path": {"exact": "/r"}},
             "respond": {"status": 200, "body": "one\n"}},
            {"name": "be", "match": {"path": {"prefix": "/"}}, "cluster": "be"},
        ],
        "clusters": [{"name": "be", "endpoints": [b.address for b in backends] or
                      ["127.0.0.1:9"]}],
        "access_log": {"path": "off"},
    }
    if token_path is not None:
        c["admin"] = {"token_file": str(token_path)}
    c.update(top)
    return c


def bearer(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


def admin(s, method, path, token=TOKEN, **kw):
    headers = dict(kw.pop("headers", {}))
    if token is not None:
        headers.update(bearer(token))
    return http_request(method, s.admin_url(path), headers=headers, **kw)


def metric(s, name, **labels):
    r = admin(s, "GET", "/metrics")
    assert r.status == 200, r.status
    return metric_value(r.text, name, **labels) or 0


def admin_log_lines(s):
    return [line for line in s.stderr_text().splitlines() if "admin: POST " in line]


def wait_admin_log(s, *patterns):
    """The admin log lines once each pattern matches one: a line reaches stderr through the
    log thread and the test's pipe reader, after the reply may have."""
    def found():
        lines = admin_log_lines(s)
        return lines if all(any(re.search(p, x) for x in lines) for p in patterns) else None
    return wait_for(found, 5, what=f"admin log lines matching {patterns}")


# ----------------------------------------------------------------------------- auth


def test_token_guards_every_path_but_the_probes(tmp_path, start_sluice):
    s = start_sluice(config(token_path=token_file(tmp_path)))
    for path in ("/healthz", "/ready"):
        assert admin(s, "GET", path, token=None).status == 200, path
        assert admin(s, "GET", path, token="wrong").status == 200, path
    for path in ("/metrics", "/config", "/clusters", "/ratelimits", "/nope"):
        for token in (None, "wrong", TOKEN + "x", TOKEN[:-1], ""):
            r = admin(s, "GET", path, token=token)
            assert r.status == 401, (path, token)
            assert r.header("www-authenticate", "").startswith("Bearer"), r.headers
        assert admin(s, "GET", path).status == (404 if path == "/nope" else 200), path
    # The scheme is case-insensitive; the token is not.
    assert admin(s, "GET", "/metrics", token=None,
                 headers={"Authorization": f"bearer {TOKEN}"}).status == 200
    assert admin(s, "GET", "/metrics", token=None,
                 headers={"Authorization": f"Bearer {TOKEN.upper()}"}).status == 401
    assert admin(s, "GET", "/metrics", token=None,
                 headers={"Authorization": f"Basic {TOKEN}"}).status == 401
    # HEAD too (no body, but the status).
    assert admin(s, "HEAD", "/metrics", token=None).status == 401


def test_config_shows_the_token_file_never_the_token(tmp_path, start_sluice):
    path = token_file(tmp_path)
    s = start_sluice(config(token_path=path))
    r = admin(s, "GET", "/config")
    assert r.status == 200
    assert r.json()["admin"]["token_file"] == str(path)
    assert TOKEN not in r.text
    assert TOKEN not in s.stderr_text()


def test_without_a_token_file_loopback_needs_no_token(start_sluice):
    s = start_sluice(config())
    assert admin(s, "GET", "/metrics", token=None).status == 200
    assert admin(s, "POST", "/drain", token=None).status == 200
    assert admin(s, "POST", "/drain?cancel", token=None).status == 200


def test_off_loopback_without_a_token_is_a_config_error(tmp_path):
    c = config(workers=1)
    c["listeners"][0]["address"] = "127.0.0.1:8080"
    c["admin"] = {"address": "0.0.0.0:9901"}
    r = check_config(tmp_path, c)
    assert r.returncode == 1, r.stderr
    assert re.search(r"check\.yaml:\d+:\d+: address: the admin API on 0\.0\.0\.0:9901 \(not "
                     r"loopback\) needs 'token_file'", r.stderr), r.stderr

    c["admin"]["allow_unauthenticated"] = True
    r = check_config(tmp_path, c)
    assert r.returncode == 0, r.stderr
    assert re.search(r"check\.yaml:\d+:\d+: .*takes requests from anyone.*\(warning\)$", r.stderr,
                     re.M), r.stderr

    c["admin"] = {"address": "0.0.0.0:9901", "token_file": str(token_file(tmp_path))}
    r = check_config(tmp_path, c)
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr


def test_missing_or_empty_token_file_stops_the_start(tmp_path, sluice_bin):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for path, message in ((tmp_path / "absent", "No such file or directory"),
                          (empty, "is empty")):
        c = config(workers=1, token_path=path)
        c["admin"]["address"] = "127.0.0.1:0"
        file = tmp_path / "start.yaml"
        file.write_text(json.dumps(c))
        r = subprocess.run([str(sluice_bin), "-c", str(file)], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 1
        assert re.search(re.escape(str(file)) + r":\d+:\d+: token_file: .*" + message,
                         r.stderr), r.stderr


def test_actions_need_the_token_and_refusals_are_logged(tmp_path, start_backend, start_sluice):
    b = start_backend("a")
    s = start_sluice(config(b, token_path=token_file(tmp_path)))
    for path in ("/reload", "/drain", "/drain?cancel", f"/clusters/be/hosts/{b.address}/disable",
                 f"/clusters/be/hosts/{b.address}/enable"):
        r = admin(s, "POST", path, token=None)
        assert r.status == 401, path
        assert r.header("www-authenticate", "").startswith("Bearer")
        assert admin(s, "POST", path, token="nope").status == 401
    # Nothing happened.
    assert admin(s, "GET", "/ready", token=None).status == 200
    host = admin(s, "GET", "/clusters").json()["clusters"][0]["hosts"][0]
    assert host["disabled"] is False
    assert metric(s, "sluice_config_reloads_total", result="success") == 0
    # Logged: peer, what, result; never the token.
    wait_for(lambda: len(admin_log_lines(s)) >= 10, 5, what="admin log lines")
    lines = admin_log_lines(s)
    assert any(re.search(r"admin: POST /reload from 127\.0\.0\.1:\d+: 401 no token", x)
               for x in lines), lines
    assert any(re.search(r"admin: POST /drain from 127\.0\.0\.1:\d+: 401 wrong token", x)
               for x in lines), lines
    assert "nope" not in s.stderr_text()


def test_wrong_method_is_405_with_allow(start_sluice):
    s = start_sluice(config())
    for path in ("/reload", "/drain", "/clusters/be/hosts/127.0.0.1:9/disable",
                 "/clusters/be/hosts/127.0.0.1:9/enable"):
        for method in ("GET", "PUT", "DELETE"):
            r = admin(s, method, path, token=None)
            assert (r.status, r.header("allow")) == (405, "POST"), (method, path)
    for path in ("/metrics", "/config", "/clusters"):
        r = admin(s, "POST", path, token=None)
        assert (r.status, r.header("allow")) == (405, "GET, HEAD"), path
    # A GET is not an action: /ready is untouched and nothing is logged as one.
    assert s.ready()
    assert admin_log_lines(s) == []


# ----------------------------------------------------------------------------- reload


def test_reload_good_then_bad_then_good(tmp_path, start_sluice):
    s = start_sluice(config(token_path=token_file(tmp_path)))
    assert s.get("/r").text == "one\n"

    good = config(token_path=token_file(tmp_path))
    good["routes"][0]["respond"]["body"] = "two\n"
    s.write_config(good)
    r = admin(s, "POST", "/reload")
    assert r.status == 200, r.text
    body = r.json()
    assert body["result"] == "ok" and body["errors"] == [] and body["config"] == str(s.config_path)
    assert s.get("/r").text == "two\n"

    bad = dict(good, drain_timeout="5 seconds", bogus_key=1)
    bad["routes"] = good["routes"] + [{"name": "x", "cluster": "nope"}]
    s.write_config(bad)
    r = admin(s, "POST", "/reload")
    assert r.status == 422, r.text
    body = r.json()
    assert body["result"] == "failed"
    where = re.escape(str(s.config_path)) + r":\d+:\d+: "
    errors = body["errors"]
    assert len(errors) == 3, errors
    assert any(re.match(where + r".*drain_timeout", e) for e in errors), errors
    assert any(re.match(where + r"unknown key 'bogus_key'", e) for e in errors), errors
    assert any(re.match(where + r"cluster: unknown cluster 'nope'", e) for e in errors), errors
    # The running config stays.
    assert s.get("/r").text == "two\n"
    assert admin(s, "GET", "/config").json()["drain_timeout"] != "5 seconds"

    s.write_config(config(token_path=token_file(tmp_path)))
    assert admin(s, "POST", "/reload").json()["result"] == "ok"
    assert s.get("/r").text == "one\n"
    assert metric(s, "sluice_config_reloads_total", result="success") == 2
    assert metric(s, "sluice_config_reloads_total", result="failure") == 1
    wait_admin_log(s, r"POST /reload from 127\.0\.0\.1:\d+: 422 failed")
    wait_for(lambda: sum("200 reloaded" in x for x in admin_log_lines(s)) >= 2, 5,
             what="both reloads in the admin log")
    lines = admin_log_lines(s)
    assert sum(bool(re.search(r"POST /reload from 127\.0\.0\.1:\d+: 200 reloaded", x))
               for x in lines) == 2, lines
    assert any(re.search(r"POST /reload from 127\.0\.0\.1:\d+: 422 failed \(3 error\(s\)\)", x)
               for x in lines), lines


def test_reload_that_cannot_bind_reports_it(tmp_path, start_sluice):
    s = start_sluice(config())
    taken = socket.socket()
    taken.bind((HOST, 0))
    taken.listen()
    try:
        c = config()
        c["listeners"].append({"name": "other", "address": f"{HOST}:{taken.getsockname()[1]}"})
        s.write_config(c)
        r = admin(s, "POST", "/reload", token=None)
        assert r.status == 422
        assert any(e.startswith(str(s.config_path) + ": listener 'other'")
                   for e in r.json()["errors"]), r.text
        assert s.get("/r").text == "one\n"
    finally:
        taken.close()


def test_reload_rotates_the_token(tmp_path, start_sluice):
    path = token_file(tmp_path)
    s = start_sluice(config(token_path=path))
    path.write_text("the-new-token\n")
    assert admin(s, "GET", "/metrics").status == 200  # read at reload, not per request
    assert admin(s, "POST", "/reload").status == 200
    assert admin(s, "GET", "/metrics").status == 401
    assert admin(s, "GET", "/metrics", token="the-new-token").status == 200

    # An emptied token file is a failed reload; the token in force stays.
    path.write_text("")
    r = admin(s, "POST", "/reload", token="the-new-token")
    assert r.status == 422
    assert any(re.search(r":\d+:\d+: token_file: .* is empty", e) for e in r.json()["errors"])
    assert admin(s, "GET", "/metrics", token="the-new-token").status == 200


def test_watch_reloads_when_the_token_file_changes(tmp_path, start_sluice):
    path = token_file(tmp_path)
    s = start_sluice(config(token_path=path), args=["--watch"])
    path.write_text("rotated-token\n")
    wait_for(lambda: admin(s, "GET", "/metrics", token="rotated-token").status == 200, 10,
             interval=0.1, what="--watch to pick up the new token")
    assert admin(s, "GET", "/metrics").status == 401


# ----------------------------------------------------------------------------- drain


def test_drain_and_cancel(tmp_path, start_sluice):
    s = start_sluice(config(token_path=token_file(tmp_path)))
    conn = http.client.HTTPConnection(HOST, s.port, timeout=5)
    try:
        conn.request("GET", "/r")
        r = conn.getresponse()
        r.read()
        assert r.getheader("connection") != "close"

        d = admin(s, "POST", "/drain")
        assert d.status == 200, d.text
        assert d.json()["draining"] is True and d.json()["changed"] is True
        assert admin(s, "GET", "/ready", token=None).status == 503
        assert admin(s, "GET", "/healthz", token=None).status == 200
        assert admin(s, "POST", "/drain").json()["changed"] is False

        # New connections are still served (nothing is refused), each closed after its
        # request; the idle keep-alive connection above was closed.
        for _ in range(3):
            r = s.get("/r")
            assert (r.status, r.text, r.header("connection")) == (200, "one\n", "close")

        c = admin(s, "POST", "/drain?cancel")
        assert c.status == 200, c.text
        assert c.json()["draining"] is False and c.json()["changed"] is True
        assert admin(s, "GET", "/ready", token=None).status == 200
        r = s.get("/r")
        assert r.status == 200 and r.header("connection") != "close"
    finally:
        conn.close()
    lines = wait_admin_log(s, r"POST /drain from ", r"POST /drain\?cancel from ")
    assert any(re.search(r"POST /drain from 127\.0\.0\.1:\d+: 200 draining$", x)
               for x in lines), lines
    assert any(re.search(r"POST /drain\?cancel from 127\.0\.0\.1:\d+: 200 not draining$", x)
               for x in lines), lines


def test_drain_lets_a_request_in_flight_finish_then_closes(start_backend, start_sluice):
    b = start_backend("a")
    s = start_sluice(config(b))
    conn = http.client.HTTPConnection(HOST, s.port, timeout=10)
    try:
        conn.request("GET", "/delay/800")
        time.sleep(0.2)
        assert admin(s, "POST", "/drain", token=None).status == 200
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, b"hello from a\n")
        assert r.getheader("connection") == "close"
    finally:
        conn.close()


def test_sigterm_after_an_api_drain_still_exits_cleanly(start_sluice):
    s = start_sluice(config())
    assert admin(s, "POST", "/drain", token=None).status == 200
    s.stopped = True
    s.signal(signal.SIGTERM)
    assert s.wait(timeout=10) == 0


def test_actions_during_a_shutdown_drain(start_backend, start_sluice):
    b = start_backend("a")
    s = start_sluice(config(b))
    conn = http.client.HTTPConnection(HOST, s.port, timeout=10)
    try:
        conn.request("GET", "/delay/1500")  # keeps the drain going
        time.sleep(0.2)
        s.stopped = True
        s.signal(signal.SIGTERM)
        wait_for(lambda: admin(s, "GET", "/ready", token=None).status == 503, 5,
                 what="the drain to start")
        for path in ("/reload", "/drain", "/drain?cancel"):
            r = admin(s, "POST", path, token=None)
            assert r.status == 409 and "shutting down" in r.json()["error"], (path, r.text)
        assert admin(s, "GET", "/ready", token=None).status == 503
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    assert s.wait(timeout=10) == 0


# ----------------------------------------------------------------------------- hosts


class Load:
    """`connections` keep-alive http.client connections sending GET / in a loop (at most
    `limit` requests each) until stop(); records (time sent, time answered, status, x-backend)
    per request."""

    def __init__(self, port, connections=4, limit=3000):
        self.port = port
        self.results = []
        self.errors = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(limit,), daemon=True)
                        for _ in range(connections)]
        for t in self.threads:
            t.start()

    def _run(self, limit):
        conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
        try:
            for _ in range(limit):
                if self.done.is_set():
                    break
                sent = time.monotonic()
                try:
                    conn.request("GET", "/")
                    r = conn.getresponse()
                    r.read()
                    row = (sent, time.monotonic(), r.status, r.getheader("x-backend"))
                except (OSError, http.client.HTTPException) as e:
                    with self.lock:
                        self.errors.append(repr(e))
                    conn.close()
                    continue
                with self.lock:
                    self.results.append(row)
        finally:
            conn.close()

    def count(self):
        with self.lock:
            return len(self.results)

    def wait_for_more(self, n, timeout=10):
        target = self.count() + n
        wait_for(lambda: self.count() >= target, timeout, interval=0.01,
                 what=f"{n} more requests")

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join(timeout=30)
        with self.lock:
            return list(self.results), list(self.errors)


def hosts_of(s, cluster="be"):
    for c in admin(s, "GET", "/clusters").json()["clusters"]:
        if c["name"] == cluster:
            return {h["address"]: h for h in c["hosts"]}
    raise AssertionError(f"no cluster {cluster}")


def test_disable_and_enable_a_host_under_load(tmp_path, start_backend, start_sluice):
    a, b = start_backend("a"), start_backend("b")
    s = start_sluice(config(a, b, token_path=token_file(tmp_path)))
    load = Load(s.port)
    try:
        load.wait_for_more(200)
        disabling_at = time.monotonic()
        r = admin(s, "POST", f"/clusters/be/hosts/{a.address}/disable")
        assert r.status == 200, r.text
        assert r.json() == {"result": "ok", "cluster": "be", "host": a.address,
                            "disabled": True, "changed": True, "available_hosts": 1, "hosts": 2}
        disabled_at = time.monotonic()
        assert hosts_of(s)[a.address]["disabled"] is True
        assert hosts_of(s)[a.address]["available"] is False
        assert hosts_of(s)[b.address]["disabled"] is False
        load.wait_for_more(300)
        assert admin(s, "POST", f"/clusters/be/hosts/{a.address}/disable").json()["changed"] \
            is False

        enabling_at = time.monotonic()
        r = admin(s, "POST", f"/clusters/be/hosts/{a.address}/enable")
        assert r.status == 200 and r.json()["changed"] is True, r.text
        enabled_at = time.monotonic()
        load.wait_for_more(300)
    finally:
        results, errors = load.stop()
    assert errors == []
    assert [row for row in results if row[2] != 200] == []
    # A request is picked between its sending and its answer: these windows are exact.
    before = [x for _, answered, _, x in results if answered < disabling_at]
    during = [x for sent, answered, _, x in results
              if sent > disabled_at and answered < enabling_at]
    after = [x for sent, _, _, x in results if sent > enabled_at]
    assert {"a", "b"} <= set(before), set(before)
    assert during and set(during) == {"b"}, set(during)
    assert "a" in after
    assert hosts_of(s)[a.address]["disabled"] is False
    lines = wait_admin_log(s, r"/disable from .*: 200 disabled$", r"already disabled$",
                           r"/enable from .*: 200 enabled$")
    assert any(re.search(r"POST /clusters/be/hosts/127\.0\.0\.1:\d+/disable from "
                         r"127\.0\.0\.1:\d+: 200 disabled$", x) for x in lines), lines
    assert any(re.search(r"/disable from 127\.0\.0\.1:\d+: 200 already disabled$", x)
               for x in lines), lines
    assert any(re.search(r"/enable from 127\.0\.0\.1:\d+: 200 enabled$", x) for x in lines), lines


def test_a_disabled_host_stays_disabled_across_reloads_while_it_exists(tmp_path, start_backend,
                                                                      start_sluice):
    a, b = start_backend("a"), start_backend("b")
    s = start_sluice(config(a, b))
    assert admin(s, "POST", f"/clusters/be/hosts/{a.address}/disable", token=None).status == 200

    c = config(a, b)
    c["routes"][0]["respond"]["body"] = "two\n"
    s.write_config(c)
    assert admin(s, "POST", "/reload", token=None).status == 200
    s.signal(signal.SIGHUP)
    wait_for(lambda: metric(s, "sluice_config_reloads_total", result="success") == 2, 5,
             what="SIGHUP reload")
    assert hosts_of(s)[a.address]["disabled"] is True
    assert {s.get("/").header("x-backend") for _ in range(20)} == {"b"}

    # Gone from the config and back: a new host, in rotation.
    s.write_config(config(b))
    assert admin(s, "POST", "/reload", token=None).status == 200
    s.write_config(config(a, b))
    assert admin(s, "POST", "/reload", token=None).status == 200
    assert hosts_of(s)[a.address]["disabled"] is False
    assert "a" in {s.get("/").header("x-backend") for _ in range(20)}


def test_disabled_hosts_stay_out_when_most_are_disabled(start_backend, start_sluice):
    a, b, c = start_backend("a"), start_backend("b"), start_backend("c")
    s = start_sluice(config(a, b, c))
    for h in (a, b):
        assert admin(s, "POST", f"/clusters/be/hosts/{h.address}/disable", token=None).status == 200
    # Two of three out of rotation is not panic (they are not failing): all goes to c.
    assert {s.get("/").header("x-backend") for _ in range(30)} == {"c"}
    cluster = admin(s, "GET", "/clusters", token=None).json()["clusters"][0]
    assert cluster["panic_total"] == 0
    # With every host disabled there is nothing to pick: 503 at once.
    assert admin(s, "POST", f"/clusters/be/hosts/{c.address}/disable", token=None).status == 200
    assert s.get("/").status == 503
    assert admin(s, "GET", "/clusters", token=None).json()["clusters"][0][
        "no_healthy_host_total"] >= 1


def test_unknown_cluster_or_host_is_404(start_backend, start_sluice):
    a = start_backend("a")
    s = start_sluice(config(a))
    r = admin(s, "POST", f"/clusters/nope/hosts/{a.address}/disable", token=None)
    assert r.status == 404 and "no cluster 'nope'" in r.json()["error"]
    r = admin(s, "POST", "/clusters/be/hosts/127.0.0.1:1/disable", token=None)
    assert r.status == 404 and "has no host '127.0.0.1:1'" in r.json()["error"]
    # Percent-encoded addresses are decoded.
    enc = a.address.replace(":", "%3A")
    assert admin(s, "POST", f"/clusters/be/hosts/{enc}/disable", token=None).status == 200
    assert hosts_of(s)[a.address]["disabled"] is True
    assert admin(s, "POST", "/clusters/be/hosts/a%2Fb/disable", token=None).status == 404


def test_an_address_that_keeps_guessing_the_token_is_refused_for_a_while(tmp_path, start_sluice):
    s = start_sluice(config(token_path=token_file(tmp_path)))
    for _ in range(10):
        assert admin(s, "GET", "/metrics", token="guess").status == 401
    r = admin(s, "POST", "/reload")  # the right token, but not checked now
    assert r.status == 429
    assert 0 < int(r.header("retry-after")) <= 60
    assert admin(s, "GET", "/ready", token=None).status == 200  # probes are never refused
    wait_admin_log(s, r"429 refused: too many wrong tokens")
