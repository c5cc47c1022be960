"""Local rate limits against the real binary: exact admission counts over several workers, a
sustained rate under overload, listener vs route rules, missing key parts, shadow mode, the
RateLimit/Retry-After fields, counts kept across a reload, X-Forwarded-For behind trusted
proxies, config errors (--check and reload), GET /ratelimits and promtool-clean /metrics.

Rules use rates like 1/h or 1/min with small bursts so that no bucket refills while a test runs:
the counts asserted do not depend on how fast the machine is."""

import json
import re
import signal
import subprocess

import pytest

from helpers import check_config, metric_value, overload, send_concurrently, wait_for


def rule(name, rate, burst=None, key=("client_ip",), **kw):
    r = {"name": name, "key": list(key), "rate": rate}
    if burst is not None:
        r["burst"] = burst
    r.update(kw)
    return r


def respond_route(name, prefix, **extra):
    return {"name": name, "match": {"path": {"prefix": prefix}},
            "respond": {"status": 200, "body": f"{name}\n"}, **extra}


def config(rules, *, listener_limits=None, routes=None, workers=1, listeners=None, **top):
    """Listener "main" (with `listener_limits`), a catch-all respond route unless `routes`."""
    if listeners is None:
        listener = {"name": "main"}
        if listener_limits is not None:
            listener["rate_limits"] = listener_limits
        listeners = [listener]
    c = {"workers": workers, "listeners": listeners,
         "routes": routes if routes is not None else [respond_route("all", "/")],
         "rate_limits": rules, "access_log": {"path": "off"}}
    c.update(top)
    return c


def decisions(s, rule_name):
    """{decision: count} of one rule from /metrics."""
    text = s.metrics()
    return {d: metric_value(text, "sluice_ratelimit_decisions_total", rule=rule_name, decision=d)
            for d in ("allowed", "limited", "would_limit", "skipped", "error")}


def statuses(s, n, path="/", **kw):
    return [s.get(path, **kw).status for _ in range(n)]


def reloads(s, result):
    return s.metric("sluice_config_reloads_total", result=result)


def reload(s, new_config, result="success"):
    before = reloads(s, result) or 0
    s.write_config(new_config)
    s.signal(signal.SIGHUP)
    wait_for(lambda: reloads(s, result) == before + 1, 10, what=f"reload ({result})")


RATE_FIELDS = ("retry-after", "ratelimit", "ratelimit-policy")


def rate_fields(r):
    return {name: r.header(name) for name in RATE_FIELDS if r.header(name) is not None}


def promtool_check(text):
    return subprocess.run(["/usr/bin/promtool", "check", "metrics"], input=text,
                          capture_output=True, text=True, timeout=30)


# ----------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("workers", [2, 4])
def test_burst_is_exact_across_workers(start_sluice, workers):
    burst = 50
    s = start_sluice(config([rule("per_ip", "1/h", burst)], listener_limits=["per_ip"],
                            workers=workers))
    assert s.metric("sluice_workers") == workers
    # 16 connections open at once: SO_REUSEPORT spreads them over the workers, which all take
    # from the one bucket of 127.0.0.1.
    total = 4 * burst
    counts = send_concurrently(s.port, total, connections=16)
    assert counts == {200: burst, 429: total - burst}
    d = decisions(s, "per_ip")
    assert (d["allowed"], d["limited"]) == (burst, total - burst)


def test_sustained_rate_under_overload(start_sluice):
    rate, burst = 100, 10
    s = start_sluice(config([rule("per_ip", f"{rate}/s", burst)], listener_limits=["per_ip"],
                            workers=2))
    counts, elapsed = overload(s.port, seconds=3.0, connections=4)
    admitted = counts.get(200, 0)
    assert set(counts) <= {200, 429}, counts
    assert counts.get(429, 0) > admitted, counts  # it really was overloaded
    # GCRA admits at most burst + rate * t in any window of length t, and the client's window
    # is never shorter than the server's (+1 of slack).
    assert admitted <= burst + rate * elapsed + 1, (counts, elapsed)
    assert admitted >= 0.9 * rate * elapsed, (counts, elapsed)


# ----------------------------------------------------------------------------- where rules apply


def test_listener_rules_apply_to_their_listener_and_route_rules_to_their_route(start_sluice):
    s = start_sluice(config(
        [rule("per_listener", "1/h", 3), rule("per_route", "1/h", 2)],
        listeners=[{"name": "public", "rate_limits": ["per_listener"]}, {"name": "internal"}],
        routes=[respond_route("a", "/a/", rate_limits=["per_route"]),
                respond_route("b", "/b/")]))

    # No listener rule on "internal": only the route rule of /a/ applies there.
    assert statuses(s, 10, "/b/x", listener="internal") == [200] * 10
    assert statuses(s, 3, "/a/x", listener="internal") == [200, 200, 429]
    limited = s.get("/a/x", listener="internal")
    assert limited.header("ratelimit").startswith('"per_route";')

    # On "public" every request counts against the listener rule, routed or not.
    assert statuses(s, 3, "/b/x", listener="public") == [200] * 3
    r = s.get("/b/x", listener="public")
    assert r.status == 429 and r.header("ratelimit").startswith('"per_listener";')
    r = s.get("/no-route", listener="public")
    assert r.status == 429 and r.header("ratelimit").startswith('"per_listener";')
    # ... while "internal" is still unlimited off /a/.
    assert statuses(s, 3, "/b/x", listener="internal") == [200] * 3

    assert decisions(s, "per_listener") == {"allowed": 3, "limited": 2, "would_limit": 0,
                                            "skipped": 0, "error": 0}
    assert decisions(s, "per_route") == {"allowed": 2, "limited": 2, "would_limit": 0,
                                         "skipped": 0, "error": 0}


def test_request_without_a_key_part_is_not_limited_and_counts_skipped(start_sluice):
    s = start_sluice(config([rule("per_key", "1/h", 1, key=["header:x-api-key"])],
                            listener_limits=["per_key"]))
    assert statuses(s, 5) == [200] * 5
    assert statuses(s, 2, headers={"X-API-Key": "a"}) == [200, 429]
    assert statuses(s, 2, headers={"x-api-key": "b"}) == [200, 429]
    assert statuses(s, 2) == [200, 200]
    assert decisions(s, "per_key") == {"allowed": 2, "limited": 2, "would_limit": 0,
                                       "skipped": 7, "error": 0}


def test_query_and_method_key_parts_make_separate_buckets(start_sluice):
    s = start_sluice(config([rule("per_user", "1/h", 1, key=["query:user", "method"])],
                            listener_limits=["per_user"]))
    assert statuses(s, 2, "/x?user=alice") == [200, 429]
    assert statuses(s, 2, "/y?a=1&user=bob") == [200, 429]
    assert s.request("HEAD", "/x?user=alice").status == 200  # another method, another bucket
    assert statuses(s, 2, "/x?username=alice") == [200, 200]  # no `user` parameter: skipped
    assert decisions(s, "per_user")["skipped"] == 2


def test_shadow_rule_never_blocks_and_counts_would_limit(start_sluice):
    s = start_sluice(config([rule("watch", "1/h", 2, mode="shadow", headers=True)],
                            listener_limits=["watch"]))
    responses = [s.get("/") for _ in range(6)]
    assert [r.status for r in responses] == [200] * 6
    for r in responses:
        assert rate_fields(r) == {}, r.headers
    assert decisions(s, "watch") == {"allowed": 2, "limited": 0, "would_limit": 4,
                                     "skipped": 0, "error": 0}


# ----------------------------------------------------------------------------- response fields


def test_rate_limit_fields_on_refusals_and_with_headers_true_on_allowed(start_backend,
                                                                        start_sluice):
    b = start_backend("a")
    s = start_sluice(config(
        [rule("loud", "1/min", 3, headers=True), rule("quiet", "1/min", 2, status=503)],
        routes=[{"name": "be", "match": {"path": {"prefix": "/be/"}}, "cluster": "be",
                 "rewrite": {"prefix": "/"}, "rate_limits": ["loud"]},
                respond_route("canned", "/canned", rate_limits=["quiet"])],
        clusters=[{"name": "be", "endpoints": [b.address]}]))

    # headers: true — every allowed response (here from the backend) carries the fields, with
    # r counting down and t the seconds until the whole quota is back (T = 60 s, burst 3).
    policy = '"loud";q=3;w=180'
    allowed = [s.get("/be/") for _ in range(3)]
    assert [r.status for r in allowed] == [200] * 3
    assert allowed[0].text == "hello from a\n"
    assert [rate_fields(r) for r in allowed] == [
        {"ratelimit-policy": policy, "ratelimit": '"loud";r=2;t=60'},
        {"ratelimit-policy": policy, "ratelimit": '"loud";r=1;t=120'},
        {"ratelimit-policy": policy, "ratelimit": '"loud";r=0;t=180'},
    ]
    refused = s.get("/be/")
    assert refused.status == 429
    assert rate_fields(refused) == {"retry-after": "60", "ratelimit-policy": policy,
                                    "ratelimit": '"loud";r=0;t=60'}

    # headers: false — nothing on allowed responses; a refusal still says when to come back,
    # with the rule's own status.
    allowed = [s.get("/canned") for _ in range(2)]
    assert [(r.status, rate_fields(r)) for r in allowed] == [(200, {}), (200, {})]
    refused = s.get("/canned")
    assert refused.status == 503
    assert rate_fields(refused) == {"retry-after": "60", "ratelimit-policy": '"quiet";q=2;w=120',
                                    "ratelimit": '"quiet";r=0;t=60'}
    assert b.stats()["requests"] == 3 + 1  # the refused request never reached the backend


# ----------------------------------------------------------------------------- reload


def test_reload_keeps_counts_of_an_unchanged_rule_and_resets_a_changed_one(start_sluice):
    base = config([rule("per_ip", "1/h", 2)], listener_limits=["per_ip"], workers=2)
    s = start_sluice(base)
    assert statuses(s, 3) == [200, 200, 429]

    # Something unrelated changes: the rule keeps its bucket.
    more = config([rule("per_ip", "1/h", 2)], listener_limits=["per_ip"], workers=2,
                  routes=[respond_route("new", "/new"), respond_route("all", "/")])
    reload(s, more)
    assert [r["name"] for r in s.admin_get("/config").json()["routes"]] == ["new", "all"]
    assert statuses(s, 2) == [429, 429]
    assert statuses(s, 1, "/new") == [429]  # the listener's rule covers the new route too

    # The rate changes: a new rule, a fresh bucket.
    changed = config([rule("per_ip", "2/h", 2)], listener_limits=["per_ip"], workers=2)
    reload(s, changed)
    assert statuses(s, 3) == [200, 200, 429]


def test_reload_with_a_bad_rate_limit_keeps_the_old_config(start_sluice):
    s = start_sluice(config([rule("per_ip", "1/h", 2)], listener_limits=["per_ip"]))
    assert statuses(s, 1) == [200]
    bad = config([rule("per_ip", "1/h", 0)], listener_limits=["per_ip"])
    reload(s, bad, result="failure")
    assert re.search(re.escape(str(s.config_path)) + r":\d+:\d+: burst: must be at least 1",
                     s.stderr_text()), s.stderr_text()
    # The old rule is in force, with its count.
    assert statuses(s, 2) == [200, 429]


# ----------------------------------------------------------------------------- client address


def access_entries(s, n):
    def entries():
        lines = [json.loads(line) for line in s.stdout_text().splitlines() if line.strip()]
        return lines if len(lines) >= n else None
    return wait_for(entries, 5, what=f"{n} access log lines")


def get_on(conn, path, headers):
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    r.read()
    return r.status


def test_x_forwarded_for_is_ignored_without_trusted_proxies(start_sluice):
    s = start_sluice(config([rule("per_ip", "1/h", 2)], listener_limits=["per_ip"],
                            access_log={"path": "stdout"}))
    got = [s.get("/", headers={"X-Forwarded-For": f"198.51.100.{i}"}).status for i in (1, 2, 3)]
    assert got == [200, 200, 429]  # one bucket: the peer's
    for e in access_entries(s, 3):
        assert e["client"] == "127.0.0.1"
        assert re.fullmatch(r"127\.0\.0\.1:\d+", e["peer"]), e


def test_x_forwarded_for_from_a_trusted_proxy_names_the_client(start_sluice):
    s = start_sluice(config(
        [rule("per_ip", "1/h", 2)],
        listeners=[{"name": "main", "rate_limits": ["per_ip"],
                    "trusted_proxies": ["127.0.0.0/8"]}],
        access_log={"path": "stdout"}))
    conn = s.connection()
    try:
        conn.connect()
        local_port = conn.sock.getsockname()[1]
        one = {"X-Forwarded-For": "198.51.100.1"}
        two = {"X-Forwarded-For": "198.51.100.2"}
        assert [get_on(conn, "/", one) for _ in range(3)] == [200, 200, 429]
        assert [get_on(conn, "/", two) for _ in range(3)] == [200, 200, 429]
        # Right to left past trusted hops: the client is 198.51.100.2 again.
        assert get_on(conn, "/", {"X-Forwarded-For": "198.51.100.2, 127.0.0.9"}) == 429
        # A spoofed leftmost entry does not help: the rightmost untrusted one is the client.
        assert get_on(conn, "/", {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}) == 200
        # Without the header the peer itself is the client: a bucket of its own.
        assert [get_on(conn, "/", {}) for _ in range(3)] == [200, 200, 429]
    finally:
        conn.close()
    entries = access_entries(s, 11)
    clients = [e["client"] for e in entries]
    assert clients == (["198.51.100.1"] * 3 + ["198.51.100.2"] * 4 + ["203.0.113.7"]
                       + ["127.0.0.1"] * 3)
    # "peer" is the connection's own address, whatever the client claims.
    assert entries[0]["peer"] == f"127.0.0.1:{local_port}"
    for e in entries:
        assert re.fullmatch(r"127\.0\.0\.1:\d+", e["peer"]), e


# ----------------------------------------------------------------------------- config errors


CHECK_BASE = """\
listeners:
  - name: main
    address: 127.0.0.1:1
    trusted_proxies: [{cidr}]
routes:
  - name: r
    match: {{ path: {{ prefix: / }} }}
    respond: {{ status: 200 }}
    rate_limits: [{route_rule}]
rate_limits:
  - {{ name: ok, key: [client_ip], rate: 10/s }}
  - {{ name: rule, key: [{key}], rate: {rate}, burst: {burst}, scope: {scope} }}
"""
GOOD = {"cidr": "10.0.0.0/8", "route_rule": "ok", "key": "client_ip", "rate": "10/s",
        "burst": "5", "scope": "local"}
BAD_CASES = {
    # name: (field, bad value, line, the value's column or None, message)
    "bad rate": ("rate", "10/fortnight", 12, "10/fortnight",
                 r"rate: expected N/s, N/min or N/h .*got '10/fortnight'"),
    "rate zero": ("rate", "0/s", 12, "0/s", r"rate: expected N/s"),
    "burst 0": ("burst", "0", 12, "0,", r"burst: must be at least 1"),
    "unknown key part": ("key", "client_ip, cookie:session", 12, "cookie:session",
                         r"key: unknown key part 'cookie:session'"),
    "unknown rule on a route": ("route_rule", "no_such_rule", 9, "no_such_rule",
                                r"rate_limits: unknown rate limit 'no_such_rule'"),
    "global without redis": ("scope", "global", 12, None,
                             r"scope: global needs a Redis server"),
    "invalid CIDR": ("cidr", "10.0.0.0/33", 4, "10.0.0.0/33",
                     r"trusted_proxies: '10\.0\.0\.0/33'"),
    "invalid CIDR address": ("cidr", "10.0.0.300/8", 4, "10.0.0.300/8",
                             r"trusted_proxies: '10\.0\.0\.300/8'"),
}


def test_check_accepts_the_good_base(tmp_path):
    out = check_config(tmp_path, CHECK_BASE.format(**GOOD))
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_check_reports_rate_limit_errors_with_file_line_col(tmp_path, case):
    field, value, line, token, message = BAD_CASES[case]
    text = CHECK_BASE.format(**dict(GOOD, **{field: value}))
    out = check_config(tmp_path, text)
    assert out.returncode == 1, out.stdout + out.stderr
    path = str(tmp_path / "check.yaml")
    m = re.search(re.escape(path) + r":(\d+):(\d+): (.*)", out.stdout + out.stderr)
    assert m, out.stdout + out.stderr
    assert int(m.group(1)) == line, m.group(0)
    if token is not None:
        assert int(m.group(2)) == text.splitlines()[line - 1].index(token) + 1, m.group(0)
    assert re.match(message, m.group(3)), m.group(0)
    errors = re.findall(re.escape(path) + r":\d+:\d+: ", out.stdout + out.stderr)
    assert len(errors) == 1, out.stdout + out.stderr


def test_check_reports_every_rate_limit_error_at_once(tmp_path):
    text = CHECK_BASE.format(cidr="10.0.0.0/33", route_rule="nope", key="cookie:x", rate="5/s",
                             burst="0", scope="local")
    text += "  - { name: g, key: [client_ip], rate: 1/fortnight, scope: global }\n"
    out = check_config(tmp_path, text)
    assert out.returncode == 1
    path = re.escape(str(tmp_path / "check.yaml"))
    found = sorted(int(n) for n in re.findall(path + r":(\d+):\d+: ", out.stdout + out.stderr))
    # CIDR, route rule, key part and burst (line 12), rate and scope of the global rule.
    assert found == [4, 9, 12, 12, 13, 13], out.stdout + out.stderr


# ----------------------------------------------------------------------------- admin


def test_ratelimits_endpoint_lists_rules_with_key_counts(start_sluice):
    s = start_sluice(config(
        [rule("per_key", "100/s", 20, key=["header:x-api-key"], headers=True, max_keys=1000),
         rule("per_ip", "6000/min", mode="shadow", status=503)],
        listener_limits=["per_key", "per_ip"]))
    for k in ("a", "b", "c", "a"):
        assert s.get("/", headers={"x-api-key": k}).status == 200
    r = s.admin_get("/ratelimits")
    assert r.status == 200
    assert r.header("content-type").startswith("application/json")
    assert r.json() == {"rules": [
        {"name": "per_key", "rate": "100/s", "burst": 20, "key": ["header:x-api-key"],
         "scope": "local", "mode": "enforce", "status": 429, "headers": True, "max_keys": 1000,
         "keys": 3, "evictions": 0},
        {"name": "per_ip", "rate": "6000/min", "burst": 6000, "key": ["client_ip"],
         "scope": "local", "mode": "shadow", "status": 503, "headers": False,
         "max_keys": 100000, "keys": 1, "evictions": 0},
    ]}


def test_metrics_with_rate_limit_families_pass_promtool(start_sluice):
    s = start_sluice(config(
        [rule("per_ip", "1/h", 2), rule("per_key", "1/h", 1, key=["header:x-api-key"]),
         rule("watch", "1/h", 1, mode="shadow")],
        routes=[respond_route("ip", "/ip", rate_limits=["per_ip"]),
                respond_route("key", "/key", rate_limits=["per_key"]),
                respond_route("watch", "/watch", rate_limits=["watch"])],
        workers=2))
    assert statuses(s, 3, "/ip") == [200, 200, 429]
    assert statuses(s, 2, "/key", headers={"x-api-key": "k"}) == [200, 429]
    assert statuses(s, 1, "/key") == [200]
    assert statuses(s, 3, "/watch") == [200, 200, 200]
    text = s.metrics()
    check = promtool_check(text)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "# TYPE sluice_ratelimit_decisions_total counter" in text
    assert "# TYPE sluice_redis_errors_total counter" in text
    assert metric_value(text, "sluice_redis_errors_total") == 0
    assert decisions(s, "per_ip") == {"allowed": 2, "limited": 1, "would_limit": 0,
                                      "skipped": 0, "error": 0}
    assert decisions(s, "per_key") == {"allowed": 1, "limited": 1, "would_limit": 0,
                                       "skipped": 1, "error": 0}
    assert decisions(s, "watch") == {"allowed": 1, "limited": 0, "would_limit": 2,
                                     "skipped": 0, "error": 0}
