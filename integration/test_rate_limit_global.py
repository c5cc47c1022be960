"""Global rate limits against a real redis-server: one limit shared exactly by three sluice
processes, a sustained rate under overload, the RateLimit fields and the keys in Redis, and what
happens while Redis hangs (SIGSTOP) or dies: on_error allow keeps answering, deny answers 503,
and limiting resumes once Redis is back (the client reconnects; its breaker probes every 1 s).

Every wait is bounded; each request of a background load has a 5 s socket timeout, far below the
test's, so a request stuck behind a hung Redis fails the test instead of hanging it."""

import http.client
import re
import subprocess
import threading
import time

from helpers import HOST, overload, send_concurrently, wait_for


def rule(name, rate, burst=None, key=("client_ip",), **kw):
    r = {"name": name, "key": list(key), "rate": rate, "scope": "global"}
    if burst is not None:
        r["burst"] = burst
    r.update(kw)
    return r


def config(redis, rules, *, workers=2, timeout="1s", on_error="allow", **top):
    """Listener "main" with every rule in `rules`, one catch-all respond route. The generous
    Redis timeout keeps a loaded machine from turning slow answers into errors (which on_error
    allow would admit) in the tests that count admissions."""
    c = {"workers": workers,
         "listeners": [{"name": "main", "rate_limits": [r["name"] for r in rules]}],
         "routes": [{"name": "all", "match": {"path": {"prefix": "/"}},
                     "respond": {"status": 200, "body": "ok\n"}}],
         "rate_limits": rules,
         "redis": {"address": redis.address, "timeout": timeout, "on_error": on_error},
         "access_log": {"path": "off"}}
    c.update(top)
    return c


def decision(sluices, rule_name, which):
    """A rule's decision count summed over processes."""
    if not isinstance(sluices, (list, tuple)):
        sluices = [sluices]
    return sum(s.metric("sluice_ratelimit_decisions_total", rule=rule_name, decision=which) or 0
               for s in sluices)


def redis_errors(s):
    return s.metric("sluice_redis_errors_total")


class Load:
    """GETs in the background over `connections` keep-alive connections until stop(). Bounded:
    each request by a 5 s socket timeout, the whole by max_seconds and max_requests. Statuses
    are counted; an exception (a timeout included) is kept and re-raised by stop()."""

    def __init__(self, port, connections=3, path="/", max_seconds=60.0, max_requests=200_000,
                 timeout=5.0):
        self.port, self.path, self.timeout = port, path, timeout
        self.deadline = time.monotonic() + max_seconds
        self.max_requests = max_requests
        self.counts = {}
        self.errors = []
        self.sent = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True)
                        for _ in range(connections)]
        for t in self.threads:
            t.start()

    def _run(self):
        conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        try:
            while not self.stopping.is_set():
                with self.lock:
                    if self.sent >= self.max_requests or time.monotonic() > self.deadline:
                        return
                    self.sent += 1
                conn.request("GET", self.path)
                r = conn.getresponse()
                r.read()
                with self.lock:
                    self.counts[r.status] = self.counts.get(r.status, 0) + 1
        except Exception as e:  # noqa: BLE001 - reported by stop()
            with self.lock:
                self.errors.append(repr(e))
        finally:
            conn.close()

    def snapshot(self):
        with self.lock:
            return dict(self.counts)

    def check(self):
        with self.lock:
            assert not self.errors, self.errors
            assert time.monotonic() <= self.deadline, "load ran out of time"

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=self.timeout + 5)
            assert not t.is_alive(), "a load thread did not finish"
        assert not self.errors, self.errors
        return dict(self.counts)


# ----------------------------------------------------------------------------- shared limit


def test_burst_is_exact_across_three_processes(start_redis, start_sluice):
    redis = start_redis()
    burst = 60
    cfg = config(redis, [rule("shared", "1/h", burst)])
    sluices = [start_sluice(cfg, name=f"sluice-{i}") for i in range(3)]
    total = 4 * burst
    counts = send_concurrently([s.port for s in sluices], total, connections=12)
    assert counts == {200: burst, 429: total - burst}
    assert decision(sluices, "shared", "allowed") == burst
    assert decision(sluices, "shared", "limited") == total - burst
    assert decision(sluices, "shared", "error") == 0

    listed = sluices[0].admin_get("/ratelimits").json()["rules"]
    assert listed == [{"name": "shared", "rate": "1/h", "burst": burst, "key": ["client_ip"],
                       "scope": "global", "mode": "enforce", "status": 429, "headers": False,
                       "max_keys": 100000}]


def test_sustained_rate_is_shared_by_three_processes(start_redis, start_sluice):
    redis = start_redis()
    rate, burst = 50, 5
    cfg = config(redis, [rule("shared", f"{rate}/s", burst)])
    sluices = [start_sluice(cfg, name=f"sluice-{i}") for i in range(3)]
    counts, elapsed = overload([s.port for s in sluices], seconds=3.0, connections=6)
    admitted = counts.get(200, 0)
    assert set(counts) <= {200, 429}, counts
    assert counts.get(429, 0) > admitted, counts  # it really was overloaded
    assert decision(sluices, "shared", "error") == 0
    # One GCRA in Redis for all three: burst + rate * t, the interval in whole microseconds
    # (20000 us here, exact), the client's window never shorter than Redis's.
    expected = rate * elapsed
    assert 0.98 * expected <= admitted <= 1.02 * expected + burst, (counts, elapsed)


def test_fields_and_redis_keys_of_a_global_rule(start_redis, start_sluice):
    redis = start_redis()
    s = start_sluice(config(redis, [rule("g", "1/min", 2, headers=True)]))
    policy = '"g";q=2;w=120'
    first, second, refused = (s.get("/") for _ in range(3))
    assert (first.status, first.header("ratelimit-policy"), first.header("ratelimit")) == (
        200, policy, '"g";r=1;t=60')
    assert (second.status, second.header("ratelimit")) == (200, '"g";r=0;t=120')
    assert refused.status == 429
    assert (refused.header("retry-after"), refused.header("ratelimit-policy"),
            refused.header("ratelimit")) == ("60", policy, '"g";r=0;t=60')

    # One key for the one client, and it expires: Redis does not fill up with old clients.
    keys = redis.command("KEYS", "sluice:rl:g:*")
    assert len(keys) == 1, keys
    ttl = redis.command("PTTL", keys[0])
    assert 0 < ttl <= 120_001, ttl


def test_keep_alive_connection_goes_on_after_a_refusal(start_redis, start_sluice):
    # The verdict comes after the Redis round trip, once the request was put on hold: the
    # refusal must not leave the connection on hold for the next request.
    redis = start_redis()
    s = start_sluice(config(redis, [rule("g", "1/h", 1)], workers=1))
    conn = s.connection(timeout=5)
    got = []
    try:
        for _ in range(3):
            conn.request("GET", "/")
            r = conn.getresponse()
            r.read()
            got.append(r.status)
    except TimeoutError:
        got.append("no answer within 5 s")
    finally:
        conn.close()
    assert got == [200, 429, 429]


def test_refusals_over_http2(start_redis, start_sluice):
    redis = start_redis()
    cfg = config(redis, [rule("g", "1/h", 2)], workers=1)
    cfg["listeners"][0]["http2"] = {"cleartext": True}
    s = start_sluice(cfg)
    # Six streams on one h2c connection (prior knowledge), decided concurrently.
    out = subprocess.run(["nghttp", "-nv", "-t", "10"] + [s.url(f"/?{i}") for i in range(6)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr
    got = sorted(int(code) for code in re.findall(r":status: (\d+)", out.stdout))
    assert got == [200, 200, 429, 429, 429, 429], out.stdout[-2000:]
    assert decision(s, "g", "allowed") == 2


# ----------------------------------------------------------------------------- Redis failures


def test_hung_redis_with_on_error_allow_answers_and_limiting_resumes(start_redis, start_sluice):
    redis = start_redis()
    burst = 5
    s = start_sluice(config(redis, [rule("g", "1/h", burst)], timeout="200ms"))
    load = Load(s.port, connections=3)
    try:
        wait_for(lambda: decision(s, "g", "limited") >= 10, 15, what="limiting under load")
        assert redis_errors(s) == 0

        redis.pause()
        wait_for(lambda: decision(s, "g", "error") >= 30 and redis_errors(s) >= 30, 20,
                 what="requests decided without Redis")
        load.check()  # every request so far was answered
        during = s.get("/", timeout=5)
        assert during.status == 200

        redis.resume()
        limited = decision(s, "g", "limited")
        wait_for(lambda: decision(s, "g", "limited") >= limited + 20, 20,
                 what="limiting to resume after SIGCONT")
    finally:
        counts = load.stop()
    assert set(counts) <= {200, 429}, counts
    # Admitted: the burst while Redis answered, and every request it did not answer.
    errors = decision(s, "g", "error")
    assert decision(s, "g", "allowed") == burst
    assert counts[200] == burst + errors - 1, (counts, errors)  # less the one sent by hand
    assert redis_errors(s) == errors
    # A new connection may land on a worker whose breaker waits for its next probe (1 s).
    wait_for(lambda: s.get("/", timeout=5).status == 429, 10, interval=0.2,
             what="a new connection to be limited")


def test_hung_redis_with_on_error_deny_answers_503(start_redis, start_sluice):
    redis = start_redis()
    s = start_sluice(config(redis, [rule("g", "100000/s")], timeout="200ms", on_error="deny"))
    load = Load(s.port, connections=3)
    try:
        wait_for(lambda: decision(s, "g", "allowed") >= 20, 15, what="traffic through Redis")

        redis.pause()
        wait_for(lambda: decision(s, "g", "error") >= 20, 20, what="errors while Redis hangs")
        load.check()
        during = s.get("/", timeout=5)
        assert (during.status, during.text) == (503, "rate limit service unavailable\n")

        redis.resume()
        allowed = decision(s, "g", "allowed")
        wait_for(lambda: decision(s, "g", "allowed") >= allowed + 20, 20,
                 what="requests allowed again after SIGCONT")
    finally:
        counts = load.stop()
    assert set(counts) <= {200, 503}, counts
    assert counts[503] == decision(s, "g", "error") - 1  # less the one sent by hand
    assert counts[200] == decision(s, "g", "allowed")
    # A new connection may land on a worker whose breaker waits for its next probe (1 s).
    wait_for(lambda: s.get("/", timeout=5).status == 200, 10, interval=0.2,
             what="a new connection to be allowed")


def test_killed_redis_with_on_error_allow_answers_and_limiting_resumes_after_restart(
        start_redis, start_sluice):
    redis = start_redis()
    burst = 5
    s = start_sluice(config(redis, [rule("g", "1/h", burst)], timeout="200ms"))
    load = Load(s.port, connections=3)
    try:
        wait_for(lambda: decision(s, "g", "limited") >= 10, 15, what="limiting under load")

        redis.kill()
        wait_for(lambda: decision(s, "g", "error") >= 30 and redis_errors(s) >= 30, 20,
                 what="requests decided without Redis")
        load.check()
        assert s.get("/", timeout=5).status == 200

        redis.restart()  # empty: the client starts over with a fresh bucket
        limited = decision(s, "g", "limited")
        wait_for(lambda: decision(s, "g", "limited") >= limited + 20, 20,
                 what="limiting to resume after the restart")
    finally:
        counts = load.stop()
    assert set(counts) <= {200, 429}, counts
    errors = decision(s, "g", "error")
    # The burst before the kill and again on the restarted, empty Redis.
    assert decision(s, "g", "allowed") == 2 * burst
    assert counts[200] == 2 * burst + errors - 1, (counts, errors)  # less the one sent by hand
    assert redis_errors(s) == errors
    wait_for(lambda: s.get("/", timeout=5).status == 429, 10, interval=0.2,
             what="a new connection to be limited")
