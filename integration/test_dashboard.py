"""The live dashboard against the real binary. GET /stats: behind the admin token; its numbers
agree with /metrics after a known number of requests; recent reloads with their trigger and
result; a per-second series of requests/s and p50/p99; bounded with 100 routes. GET /: one
self-contained page with a strict Content-Security-Policy, loaded in a real headless Chromium
(over the DevTools protocol) against sluice under load: screenshots, the expected numbers in the
DOM, no console errors or failed requests, no horizontal overflow on a phone-sized screen, a
visible disconnected state. Loopback only; Chromium is always killed (fixture, finally)."""

import asyncio
import itertools
import re
import signal
import threading
import time

import pytest

import cdp
from helpers import http_request, metric_value, wait_for

TOKEN = "dash-board-token"
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


def token_file(tmp_path, token=TOKEN):
    path = tmp_path / "admin-token"
    path.write_text(token + "\n")
    return path


def bearer(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


def config(tmp_path, *backends, workers=2, routes=None, **top):
    """Listener "main"; route "canned" (respond 200) at /canned, route "limited" (respond, rule
    "tight": 3 per hour per client) at /limited, route "be" (cluster "be") for the rest."""
    c = {
        "workers": workers,
        "admin": {"token_file": str(token_file(tmp_path))},
        "listeners": [{"name": "main"}],
        "routes": routes if routes is not None else [
            {"name": "canned", "match": {"path": {"exact": "/canned"}},
             "respond": {"status": 200, "body": "canned\n"}},
            {"name": "limited", "match": {"path": {"exact": "/limited"}},
             "respond": {"status": 200, "body": "limited\n"}, "rate_limits": ["tight"]},
            {"name": "be", "match": {"path": {"prefix": "/"}}, "cluster": "be"},
        ],
        "rate_limits": [{"name": "tight", "key": ["client_ip"], "rate": "3/h", "burst": 3}],
        "clusters": [{"name": "be", "endpoints": [b.address for b in backends] or
                      ["127.0.0.1:9"]}],
        "access_log": {"path": "off"},
    }
    c.update(top)
    return c


def stats(s, query=""):
    r = http_request("GET", s.admin_url("/stats" + query), headers=bearer())
    assert r.status == 200, (r.status, r.text[:300])
    assert r.header("content-type") == "application/json"
    return r.json()


def metrics(s):
    r = http_request("GET", s.admin_url("/metrics"), headers=bearer())
    assert r.status == 200, r.status
    return r.text


def test_stats_needs_the_token(tmp_path, start_sluice):
    s = start_sluice(config(tmp_path))
    for headers in ({}, bearer("wrong"), bearer(TOKEN + "x"), {"Authorization": TOKEN}):
        r = http_request("GET", s.admin_url("/stats"), headers=headers)
        assert r.status == 401, (headers, r.status)
        assert r.header("www-authenticate", "").startswith("Bearer")
        assert "requests" not in r.text
    body = stats(s)
    assert body["workers"] == 2
    assert body["status_classes"] == list(CLASSES)


def test_stats_without_a_token_file_on_loopback(tmp_path, start_sluice):
    c = config(tmp_path)
    del c["admin"]
    s = start_sluice(c)
    r = http_request("GET", s.admin_url("/stats"))
    assert r.status == 200 and r.json()["workers"] == 2


def test_stats_agree_with_metrics(tmp_path, start_backend, start_sluice):
    a, b = start_backend("a"), start_backend("b")
    s = start_sluice(config(tmp_path, a, b))
    statuses = []
    statuses += [s.get("/be/x").status for _ in range(17)]
    statuses += [s.get("/canned").status for _ in range(5)]
    statuses += [s.get("/status/503").status for _ in range(2)]  # the backend answers 503
    statuses += [s.get("/limited").status for _ in range(5)]  # 3 allowed, 2 refused (429)
    assert statuses.count(200) == 17 + 5 + 3 and statuses.count(503) == 2
    assert statuses.count(429) == 2, statuses

    # The counters are written when a stream ends, just after its response: wait for them.
    wait_for(lambda: stats(s)["requests"]["total"] == 29, what="29 requests in /stats")
    body, text = stats(s), metrics(s)

    assert body["requests"]["by_class"] == [0, 25, 0, 2, 2]
    (main,) = body["listeners"]
    assert main["name"] == "main"
    for i, code in enumerate(CLASSES):
        assert main["requests"][i] == metric_value(
            text, "sluice_downstream_requests_total", listener="main", code=code), code

    routes = {r["name"]: r["requests"] for r in body["routes"]}
    assert routes == {"canned": [0, 5, 0, 0, 0], "limited": [0, 3, 0, 2, 0],
                      "be": [0, 17, 0, 0, 2]}, routes
    for name, counts in routes.items():
        for i, code in enumerate(CLASSES):
            assert counts[i] == (metric_value(text, "sluice_request_duration_seconds_count",
                                              route=name, code=code) or 0), (name, code)

    (rule,) = body["rate_limits"]
    assert rule["name"] == "tight" and rule["mode"] == "enforce" and rule["rate"] == "3/h"
    for decision in ("allowed", "limited", "would_limit", "skipped", "error"):
        assert rule[decision] == metric_value(text, "sluice_ratelimit_decisions_total",
                                              rule="tight", decision=decision), decision
    assert (rule["allowed"], rule["limited"]) == (3, 2)

    (cluster,) = body["clusters"]
    assert cluster["name"] == "be"
    hosts = {h["address"]: h for h in cluster["hosts"]}
    assert set(hosts) == {a.address, b.address}
    for address, h in hosts.items():
        assert h["healthy"] and not h["ejected"] and not h["disabled"]
        assert metric_value(text, "sluice_upstream_host_healthy", cluster="be", host=address) == 1
    assert sum(h["requests_total"] for h in hosts.values()) == 19
    assert cluster["requests_total"] == metric_value(text, "sluice_upstream_requests_total",
                                                     cluster="be")

    assert body["reloads"] == {"succeeded": 0, "failed": 0, "recent": []}


def test_disabled_host_shows_in_stats(tmp_path, start_backend, start_sluice):
    a, b = start_backend("a"), start_backend("b")
    s = start_sluice(config(tmp_path, a, b))
    r = http_request("POST", s.admin_url(f"/clusters/be/hosts/{b.address}/disable"),
                     headers=bearer())
    assert r.status == 200, r.text
    hosts = {h["address"]: h for h in stats(s)["clusters"][0]["hosts"]}
    assert hosts[b.address]["disabled"] and not hosts[b.address]["available"]
    assert not hosts[a.address]["disabled"] and hosts[a.address]["available"]


def test_recent_reloads_newest_first_with_trigger_and_errors(tmp_path, start_sluice):
    c = config(tmp_path)
    s = start_sluice(c)
    s.signal(signal.SIGHUP)
    wait_for(lambda: stats(s)["reloads"]["succeeded"] == 1, what="the SIGHUP reload")

    bad = dict(c, bogus_key=1)
    s.write_config(bad)
    r = http_request("POST", s.admin_url("/reload"), headers=bearer())
    assert r.status == 422, r.text

    s.write_config(c)
    assert http_request("POST", s.admin_url("/reload"), headers=bearer()).status == 200

    reloads = stats(s)["reloads"]
    assert (reloads["succeeded"], reloads["failed"]) == (2, 1)
    text = metrics(s)
    assert reloads["succeeded"] == metric_value(text, "sluice_config_reloads_total",
                                                result="success")
    assert reloads["failed"] == metric_value(text, "sluice_config_reloads_total",
                                             result="failure")
    recent = reloads["recent"]
    assert [(x["trigger"], x["result"]) for x in recent] == [
        ("api", "ok"), ("api", "failed"), ("signal", "ok")], recent
    failed = recent[1]
    assert failed["error_count"] == 1
    assert re.match(re.escape(str(s.config_path)) + r":\d+:\d+: unknown key 'bogus_key'",
                    failed["errors"][0]), failed
    times = [x["time_ms"] for x in recent]
    assert times == sorted(times, reverse=True)
    assert all(abs(t / 1000 - time.time()) < 60 for t in times)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", x["time"]) for x in recent)


def test_series_has_the_rate_and_latency_of_each_second(tmp_path, start_sluice):
    s = start_sluice(config(tmp_path))
    fields = stats(s)["series"]["fields"]
    assert fields == ["time_ms", "requests_per_second", "errors_per_second", "p50_ms", "p99_ms"]
    conn = s.connection()
    try:
        # About 3 seconds of requests on one keep-alive connection.
        end = time.monotonic() + 3
        sent = 0
        while time.monotonic() < end:
            conn.request("GET", "/canned")
            assert conn.getresponse().read() == b"canned\n"
            sent += 1
    finally:
        conn.close()
    # The point of the last busy second arrives within about a second.
    time.sleep(1.5)
    series = stats(s)["series"]
    points = [dict(zip(fields, p)) for p in series["points"]]
    busy = [p for p in points if p["requests_per_second"] > 0]
    assert len(busy) >= 2, points
    # Every request is in one second: rate x interval adds up to what was sent (give or take
    # the jitter of the sampling timer, by which a rate's interval differs from a second).
    counted = sum(p["requests_per_second"] * series["interval_ms"] / 1000 for p in busy)
    assert abs(counted - sent) <= max(3, sent * 0.1), (counted, sent)
    for p in busy:
        assert p["errors_per_second"] == 0
        assert p["p50_ms"] is not None and p["p99_ms"] is not None
        assert 0 < p["p50_ms"] <= p["p99_ms"] <= 10000, p
    idle = [p for p in points if p["requests_per_second"] == 0]
    assert all(p["p50_ms"] is None and p["p99_ms"] is None for p in idle), idle
    times = [p["time_ms"] for p in points]
    assert times == sorted(times) and len(set(times)) == len(times)

    # ?since= the newest point: nothing older comes back.
    newest = times[-1]
    later = stats(s, f"?since={newest}")["series"]["points"]
    assert all(p[0] > newest for p in later), later


def test_100_routes_stay_bounded(tmp_path, start_sluice):
    routes = [{"name": f"route-{i:03d}", "match": {"path": {"exact": f"/r/{i}"}},
               "respond": {"status": 200 if i % 10 else 404, "body": "x"}} for i in range(100)]
    s = start_sluice(config(tmp_path, routes=routes))
    conn = s.connection()
    try:
        for i in range(100):
            for _ in range(3):
                conn.request("GET", f"/r/{i}")
                conn.getresponse().read()
    finally:
        conn.close()
    wait_for(lambda: stats(s)["requests"]["total"] == 300, what="300 requests in /stats")
    time.sleep(2.2)  # a few series points
    full = http_request("GET", s.admin_url("/stats"), headers=bearer())
    body = full.json()
    assert len(body["routes"]) == 100 and body["routes_omitted"] == 0
    assert all(sum(r["requests"]) == 3 for r in body["routes"])
    assert {r["name"]: r["requests"][3] for r in body["routes"]}["route-010"] == 3
    # About 60 bytes a route and 40 a series point (600 of them at most, and the page asks
    # only for the new ones with ?since=).
    points = body["series"]["points"]
    assert len(full.body) < 10 * 1024 + 40 * len(points), len(full.body)
    poll = http_request("GET", s.admin_url(f"/stats?since={points[-1][0]}"), headers=bearer())
    assert len(poll.body) < 10 * 1024, len(poll.body)


# ----------------------------------------------------------------------------- the page


def test_page_is_self_contained_with_a_strict_policy(tmp_path, start_sluice):
    s = start_sluice(config(tmp_path))
    # A browser cannot send a bearer token when it opens a URL; the page holds no data.
    r = http_request("GET", s.admin_url("/"))
    assert r.status == 200
    assert r.header("content-type") == "text/html; charset=utf-8"
    assert r.header("cache-control") == "no-store"
    assert r.header("x-content-type-options") == "nosniff"
    csp = r.header("content-security-policy")
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["connect-src"] == "'self'"
    assert re.fullmatch(r"'sha256-[A-Za-z0-9+/]{43}='", directives["script-src"]), csp
    assert re.fullmatch(r"'sha256-[A-Za-z0-9+/]{43}='", directives["style-src"]), csp
    assert directives["frame-ancestors"] == "'none'"
    page = r.text
    # No external anything: the only URL is the SVG namespace, which is a name, not a request.
    urls = set(re.findall(r"[a-z]+://[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=\"(?!data:)", page)
    assert page.count("<script>") == 1 and page.count("<style>") == 1
    head = http_request("HEAD", s.admin_url("/"))
    assert head.status == 200 and head.header("content-length") == str(len(r.body))
    # Everything else still needs the token.
    assert http_request("GET", s.admin_url("/stats")).status == 401
    assert http_request("GET", s.admin_url("/index.html")).status == 401


class Load:
    """Requests on one keep-alive connection from a background thread until stop() or
    `max_seconds`, at most about `rate` a second, cycling through `paths`."""

    def __init__(self, s, paths, rate=150, max_seconds=120):
        self.s, self.paths, self.rate, self.max_seconds = s, paths, rate, max_seconds
        self.sent = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=15)
        assert not self._thread.is_alive(), "the load thread did not stop"

    def _run(self):
        deadline = time.monotonic() + self.max_seconds
        conn = self.s.connection(timeout=5)
        try:
            for path in itertools.cycle(self.paths):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    conn.request("GET", path)
                    conn.getresponse().read()
                    self.sent += 1
                except OSError as e:
                    self.errors.append(f"{path}: {e}")
                    conn.close()
                    conn = self.s.connection(timeout=5)
                self._stop.wait(1 / self.rate)
        finally:
            conn.close()


@pytest.fixture
def browser(tmp_path):
    """Factory for cdp.Browser (call it inside the test's event loop); every browser started is
    killed at teardown, whatever happened. No chromium is a failure: install-deps installs it."""
    binary = cdp.chromium_binary()
    if binary is None:
        pytest.fail("chromium not found: scripts/install-deps.sh installs Debian's chromium",
                    pytrace=False)
    started: list[cdp.Browser] = []

    def make() -> cdp.Browser:
        b = cdp.Browser(binary, tmp_path / f"chromium-{len(started)}")
        started.append(b)
        return b

    try:
        yield make
    finally:
        for b in started:
            b.close()


def text_of(selector):
    return f"(document.querySelector({selector!r}) || {{}}).textContent"


def row_cells(selector):
    return (f"(() => {{ const r = document.querySelector({selector!r}); "
            f"return r ? [...r.cells].map(c => c.textContent) : null; }})()")


def assert_clean(page, origin):
    assert page.problems() == [], page.problems()
    # Nothing but the admin port: no CDN, no font, no favicon from elsewhere.
    outside = [u for u in page.requests if not u.startswith(origin + "/")]
    assert outside == [], outside


def test_dashboard_in_chromium_under_load(tmp_path, start_backend, start_sluice, browser):
    a, b = start_backend("a"), start_backend("b")
    s = start_sluice(config(tmp_path, a, b))
    for _ in range(7):
        assert s.get("/canned").status == 200
    assert [s.get("/limited").status for _ in range(5)] == [200] * 3 + [429] * 2
    s.signal(signal.SIGHUP)
    wait_for(lambda: stats(s)["reloads"]["succeeded"] == 1, what="the SIGHUP reload")
    origin = s.admin_url("")

    async def scenario(load):
        async with browser() as chrome:
            page = await chrome.new_page()
            await page.set_viewport(1280, 900)
            await page.navigate(s.admin_url("/") + "#token=" + TOKEN)
            await page.wait_for(f"{text_of('#status')} === 'live'", what="the live state")
            # The token left the address bar at once and stays in this tab only.
            assert await page.evaluate("location.hash") == ""
            assert await page.evaluate("sessionStorage.getItem('sluice.admin.token')") == TOKEN

            # Known numbers: 7 on "canned", the rule's 3 allowed and 2 limited, both hosts.
            await page.wait_for(f"JSON.stringify({row_cells('tr[data-route=canned]')})"
                                " === JSON.stringify(['canned','7','7','0','0','0','0',''])",
                                what="route canned with 7 2xx")
            cells = await page.evaluate(row_cells("tr[data-rule=tight]"))
            assert cells[:5] == ["tight", "enforce · local", "3/h", "3", "2"], cells
            for backend in (a, b):
                cells = await page.wait_for(row_cells(f"tr[data-host='{backend.address}']"))
                assert cells[1] == "healthy", cells
            reload_row = await page.evaluate(row_cells("#reloads tbody tr"))
            assert reload_row[1:3] == ["signal", "ok"], reload_row

            # Under load: a rate, latencies and lines in both charts.
            await page.wait_for("document.querySelectorAll('#chart-rps polyline').length > 0 && "
                                "document.querySelectorAll('#chart-latency polyline').length > 0",
                                what="lines in both charts")
            rps = await page.wait_for(
                f"(() => {{ const v = parseFloat({text_of('#tile-rps')}.replace(/,/g, '')); "
                "return v > 0 ? v : 0; })()", what="a request rate above 0")
            assert 0 < rps < 10000
            assert re.fullmatch(r"[\d.]+ m?s", await page.evaluate(text_of("#tile-p99")))
            # The last minute, with a few seconds of points drawn.
            await page.evaluate("document.querySelector('#ranges button[data-min=\"1\"]').click()")
            assert await page.evaluate(text_of("#range-label")) == "last 1 min, one point a second"
            await page.wait_for("(document.querySelector('#chart-rps polyline') || "
                                "{getAttribute: () => ''}).getAttribute('points').split(' ')"
                                ".length >= 5", what="5 points in the rate chart")
            be = await page.evaluate(row_cells("tr[data-route=be]"))
            assert int(be[1].replace(",", "")) > 0, be

            shot = await page.screenshot(tmp_path / "dashboard.png")
            assert cdp.png_size(shot) == (1280, 900)
            assert len(shot) > 20_000, len(shot)  # a drawn page, not a blank one

            # Once the load stops, the page shows exactly /stats' total.
            load.stop()
            prev = -1
            for _ in range(50):
                total = stats(s)["requests"]["total"]
                if total == prev:
                    break
                prev = total
                await asyncio.sleep(0.2)
            await page.wait_for(f"document.getElementById('total-requests').dataset.value "
                                f"=== '{total}'", what=f"total {total} in the page")
            assert load.sent > 50 and load.errors == [], (load.sent, load.errors)
            assert_clean(page, origin)

    with Load(s, ["/be/x", "/be/y", "/status/503"] + ["/be/z"] * 7) as load:
        cdp.run(scenario(load), timeout=120)


def test_dashboard_fits_a_phone_with_100_routes(tmp_path, start_sluice, browser):
    routes = [{"name": f"service-{i:03d}-with-a-rather-long-descriptive-route-name",
               "match": {"path": {"exact": f"/r/{i}"}},
               "respond": {"status": (200, 301, 404, 503)[i % 4], "body": "x"}}
              for i in range(100)]
    s = start_sluice(config(tmp_path, routes=routes))
    origin = s.admin_url("")

    async def scenario():
        async with browser() as chrome:
            page = await chrome.new_page()
            await page.set_viewport(390, 844, scale=3, mobile=True)
            await page.navigate(s.admin_url("/") + "#token=" + TOKEN)
            await page.wait_for("document.querySelectorAll('#routes tbody tr[data-route]')"
                                ".length === 100", what="100 route rows")
            await page.wait_for("document.querySelectorAll('#chart-rps polyline').length > 0",
                                what="a line in the rate chart")
            sizes = await page.evaluate(
                "[document.documentElement.scrollWidth, document.body.scrollWidth, innerWidth]")
            assert sizes[0] <= sizes[2] and sizes[1] <= sizes[2], sizes
            # The long table scrolls inside its box; the page itself does not get wider.
            box = await page.evaluate(
                "(() => { const t = document.getElementById('routes').parentElement; "
                "return [t.scrollWidth, t.clientWidth, t.scrollHeight, t.clientHeight]; })()")
            assert box[0] > box[1] and box[2] > box[3], box
            cells = await page.evaluate(row_cells("tr[data-route='service-003-with-a-rather-"
                                                  "long-descriptive-route-name']"))
            assert cells[1] == "2" and cells[5] == "2", cells  # two 503s
            shot = await page.screenshot(tmp_path / "dashboard-phone.png")
            assert cdp.png_size(shot) == (390 * 3, 844 * 3)
            assert len(shot) > 20_000, len(shot)
            assert_clean(page, origin)

    with Load(s, [f"/r/{i}" for i in range(100)] * 2, rate=200, max_seconds=60) as load:
        wait_for(lambda: load.sent >= 200, timeout=30, what="two rounds over the routes")
        load.stop()
        cdp.run(scenario(), timeout=120)


def test_dashboard_shows_disconnected_and_asks_for_a_token(tmp_path, start_sluice, browser):
    s = start_sluice(config(tmp_path))

    async def scenario():
        async with browser() as chrome:
            page = await chrome.new_page()
            # No token in the URL: the page asks for one (/stats answered 401).
            await page.navigate(s.admin_url("/"))
            await page.wait_for("getComputedStyle(document.getElementById('auth')).display "
                                "!== 'none'", what="the token form")
            assert await page.evaluate(text_of("#status")) == "unauthorized"
            await page.evaluate(f"document.getElementById('token').value = {TOKEN!r}; "
                                "document.getElementById('auth-form').requestSubmit()")
            await page.wait_for(f"{text_of('#status')} === 'live'", what="live after the token")
            assert await page.evaluate(
                "getComputedStyle(document.getElementById('auth')).display") == "none"

            # The admin port goes away: a visible disconnected state, and polling goes on.
            s.stop()
            await page.wait_for(f"{text_of('#status')} === 'disconnected'",
                                what="the disconnected state")
            banner = await page.evaluate(text_of("#banner"))
            assert banner.startswith("Disconnected") and "retrying" in banner, banner
            assert await page.evaluate(
                "getComputedStyle(document.getElementById('banner')).display") == "block"
            before = len(page.requests)
            await asyncio.sleep(4.5)
            assert len(page.requests) >= before + 2, "the page stopped polling"
            # Failed requests are expected here; script errors are not.
            assert page.exceptions == [], page.exceptions
            assert not [c for c in page.console if c["type"] in ("error", "assert")], page.console

    cdp.run(scenario(), timeout=90)
