"""Every PromQL example in the docs, run against a real Prometheus scraping a running sluice.

The docs fence their queries as ```promql; alerting rule files (```yaml with `groups:`) are
checked with `promtool check rules` and their `expr`s run too. sluice serves traffic (proxied,
canned, rate limited, 5xx) in two rounds with a scrape in between, so every counter the examples
use grows between two samples: each example must parse and return at least one series, and no
NaN (a ratio of two sides whose labels do not match returns nothing; one over no traffic, NaN).
An alert condition (`expr > 0`) is run as is (it must parse; it is normally empty) and without
its comparison (it must then return series). The Helm chart's alerts have their own promtool
unit tests (helm/tests) and are not run here.

Prometheus (/usr/bin/prometheus, Debian package `prometheus`) scrapes the admin port every second
with its data in the test's tmp directory; it is stopped at the end. Every wait is bounded."""

from __future__ import annotations

import json
import math
import re
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from helpers import HOST, REPO_ROOT, Process, free_port, wait_for

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")
DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
# What marks a line of PromQL, to find examples that are not fenced as promql.
# (A sample of the exposition, `sluice_x{a="b"} 12`, is not PromQL.)
PROMQL_HINT = re.compile(r"\b(rate|increase|histogram_quantile)\(|\b(sum|avg|count) by \(|"
                         r"^\s*(sluice|process)_\w+(\{[^}]*\})?\s*(==|!=|>|<|/|\*|\+|-)")
COMPARISON = re.compile(r"\s*(>|<|>=|<=|==|!=)\s*-?[0-9.]+\s*$")


def fenced_blocks(text: str):
    """(language, body, line) for each ``` block of a markdown text."""
    for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        yield m.group(1), m.group(2), text[:m.start()].count("\n") + 1


def expressions(body: str) -> list[str]:
    """The queries of a promql block: '#' lines are comments, blank lines separate, and a line
    that starts with white space continues the query above it."""
    out: list[str] = []
    for line in body.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            out.append("")
            continue
        if line[0].isspace() and out and out[-1]:
            out[-1] += " " + line.strip()
        else:
            out.append(line.strip())
    return [e for e in out if e]


def doc_examples() -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[str]]:
    """([(where, query)], [(where, rule file text)], [unfenced blocks that look like PromQL])."""
    queries, rule_files, unfenced = [], [], []
    for path in DOCS:
        for lang, body, line in fenced_blocks(path.read_text()):
            where = f"{path.relative_to(REPO_ROOT)}:{line}"
            if lang == "promql":
                queries += [(where, e) for e in expressions(body)]
            elif lang == "yaml":
                doc = yaml.safe_load(body)
                if isinstance(doc, dict) and "groups" in doc:
                    rule_files.append((where, body))
                    for group in doc["groups"]:
                        for rule in group["rules"]:
                            queries.append((f"{where} ({rule.get('alert') or rule.get('record')})",
                                            " ".join(str(rule["expr"]).split())))
            elif lang not in ("json", "yaml", "sh", "bash") and any(
                    PROMQL_HINT.search(l) for l in body.splitlines()):
                unfenced.append(f"{where}: {body.splitlines()[0]}")
    return queries, rule_files, unfenced


def test_promql_examples_are_fenced_as_promql():
    queries, rule_files, unfenced = doc_examples()
    assert not unfenced, "fence PromQL examples as ```promql so they are tested:\n" + \
        "\n".join(unfenced)
    files = {where.split(":")[0] for where, _ in queries}
    for doc in ("operations.md", "rate-limiting.md", "upstreams.md", "deploy.md"):
        assert f"docs/{doc}" in files, f"no ```promql example found in docs/{doc}"
    assert len(queries) >= 20, queries
    assert rule_files, "the rate-limiting.md alert rules were not found"


def test_alert_rule_examples_pass_promtool(tmp_path):
    _, rule_files, _ = doc_examples()
    for where, body in rule_files:
        path = tmp_path / "rules.yaml"
        path.write_text(body)
        r = subprocess.run([str(PROMTOOL), "check", "rules", str(path)], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, f"{where}\n{r.stdout}{r.stderr}"


# --------------------------------------------------------------------------- Prometheus


class Prometheus(Process):
    def __init__(self, tmp_path: Path, targets: list[str]):
        self.port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "sluice",
                                "static_configs": [{"targets": targets}]}],
        }))
        super().__init__([PROMETHEUS, f"--config.file={config}",
                          f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
                          f"--web.listen-address={HOST}:{self.port}",
                          "--storage.tsdb.retention.time=1h", "--log.level=warn"],
                         tmp_path, "prometheus")

    def api(self, path: str, **params) -> dict:
        url = f"http://{HOST}:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:  # a bad query: 400 with a JSON error
            return json.load(e)

    def query(self, expr: str) -> dict:
        return self.api("/api/v1/query", query=expr)

    def value(self, expr: str) -> float | None:
        r = self.query(expr)
        result = r.get("data", {}).get("result", [])
        return float(result[0]["value"][1]) if result else None

    def ready(self) -> bool:
        if not self.alive():
            raise RuntimeError(f"prometheus exited\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False


@pytest.fixture
def prometheus_for(tmp_path):
    if not PROMETHEUS.exists():
        pytest.fail(f"{PROMETHEUS} is missing: install the Debian package prometheus "
                    "(scripts/install-deps.sh)", pytrace=False)
    started: list[Prometheus] = []

    def start(targets: list[str]) -> Prometheus:
        p = Prometheus(tmp_path, targets)
        started.append(p)
        wait_for(p.ready, 30, interval=0.2, what="prometheus /-/ready")
        return p

    yield start
    for p in started:
        code, killed = p.stop(timeout=20)
        assert not killed, f"prometheus ignored SIGTERM\n{p.log_tail()}"


def sluice_config(backend) -> dict:
    return {
        "workers": 2,
        "listeners": [{"name": "main", "rate_limits": ["per_client"]}],
        "routes": [
            {"name": "canned", "match": {"path": {"exact": "/canned"}},
             "respond": {"status": 200, "body": "canned\n"}},
            {"name": "limited", "match": {"path": {"prefix": "/limited/"}}, "cluster": "be",
             "rate_limits": ["tight", "per_key"]},
            {"name": "api", "match": {"path": {"prefix": "/api/"}}, "cluster": "be",
             "rewrite": {"prefix": "/"}},
        ],
        "clusters": [{"name": "be", "endpoints": [backend.address]}],
        "rate_limits": [
            {"name": "per_client", "key": ["client_ip"], "rate": "10000/s"},
            # Refuses most of the /limited/ requests: 1 per hour after a burst of 2.
            {"name": "tight", "key": ["client_ip"], "rate": "1/h", "burst": 2},
            # Skipped when the header is missing, in shadow mode when present.
            {"name": "per_key", "key": ["header:x-api-key"], "rate": "1/h", "burst": 1,
             "mode": "shadow"},
        ],
        "access_log": {"path": "off"},
    }


def send_traffic(s) -> int:
    """A round of requests of every kind; returns how many were answered."""
    n = 0
    for _ in range(10):
        assert s.get("/api/").status == 200
        n += 1
    for _ in range(3):
        assert s.get("/api/status/503").status == 503
        n += 1
    for _ in range(5):
        assert s.get("/canned").status == 200
        n += 1
    for i in range(4):
        headers = {"x-api-key": "k1"} if i % 2 else {}
        assert s.get("/limited/x", headers=headers).status in (200, 429)
        n += 1
    assert s.get("/nowhere").status == 404
    return n + 1


def test_every_promql_example_returns_series(start_backend, start_sluice, prometheus_for):
    queries, _, _ = doc_examples()
    backend = start_backend("be")
    s = start_sluice(sluice_config(backend))
    prom = prometheus_for([f"{HOST}:{s.admin_port}"])
    wait_for(lambda: prom.value('up{job="sluice"}') == 1, 30, interval=0.2,
             what="the sluice target to be up")

    # Two rounds, each seen by a scrape, so every counter grows between two samples.
    total = 0
    for _ in range(2):
        total += send_traffic(s)
        want = total
        wait_for(lambda: (prom.value('sum(sluice_downstream_requests_total{job="sluice"})')
                          or 0) >= want, 30, interval=0.2, what=f"a scrape seeing {want} requests")
    wait_for(lambda: (prom.value('count_over_time(sluice_workers{job="sluice"}[5m])') or 0) >= 3,
             30, interval=0.2, what="three scrapes")

    problems = []
    for where, expr in queries:
        runs = [(expr, False)]
        bare = COMPARISON.sub("", expr)
        if bare != expr:
            runs.append((bare, True))  # an alert condition: the series it compares
        else:
            runs[0] = (expr, True)
        for q, must_have_series in runs:
            r = prom.query(q)
            if r.get("status") != "success":
                problems.append(f"{where}: {q}\n    {r.get('errorType')}: {r.get('error')}")
                continue
            result = r["data"]["result"]
            if not must_have_series:
                continue
            if not result:
                problems.append(f"{where}: {q}\n    returned no series")
                continue
            nan = [x["metric"] for x in result if math.isnan(float(x["value"][1]))]
            if nan:
                problems.append(f"{where}: {q}\n    NaN for {nan}")
    assert not problems, "\n".join(problems)


def test_connection_reuse_example_is_a_share(start_backend, start_sluice, prometheus_for):
    """The example a user reported returning nothing: it returns, per cluster, a share in
    [0, 1] (here close to 1: the backend keeps connections alive)."""
    backend = start_backend("be")
    s = start_sluice(sluice_config(backend))
    prom = prometheus_for([f"{HOST}:{s.admin_port}"])
    wait_for(lambda: prom.value('up{job="sluice"}') == 1, 30, interval=0.2,
             what="the sluice target to be up")
    conn = s.connection()
    try:
        for _ in range(40):
            conn.request("GET", "/api/")
            assert conn.getresponse().read()
    finally:
        conn.close()
    wait_for(lambda: (prom.value('sum(sluice_upstream_requests_total{job="sluice"})') or 0)
             >= 40, 30, interval=0.2, what="a scrape seeing the requests")
    queries = [e for where, e in doc_examples()[0]
               if "sluice_upstream_connections_created_total" in e]
    assert len(queries) == 1, queries
    r = prom.query(queries[0])
    assert r["status"] == "success", r
    result = r["data"]["result"]
    assert [x["metric"] for x in result] == [{"cluster": "be"}]
    reuse = float(result[0]["value"][1])
    # 40 requests over at most 2 connections (one per worker): well above 0.9.
    assert 0.9 <= reuse <= 1, reuse
