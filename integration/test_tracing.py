"""OpenTelemetry tracing against the real binary and a receiver that decodes every OTLP/HTTP JSON
export with the published .proto files (integration/otlp/): one server span per request and one
client span per upstream try (retries are sibling spans), W3C traceparent honoured and
propagated, the current semantic-convention attributes, the trace id in the access log, batching,
retry on 429/503 from the collector, drop-and-count on overload, flush on exit, config errors."""

import json
import re
import signal
import time

import pytest

from helpers import basic_config, check_config, metric_value, wait_for
from pki import Pki
from otlp.receiver import SPAN_KIND_CLIENT, SPAN_KIND_SERVER, OtlpReceiver, assert_tree

TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def receiver():
    with OtlpReceiver() as r:
        yield r
    r.assert_no_errors()


def tracing(receiver, **kw):
    t = {"otlp_endpoint": receiver.endpoint, "service_name": "edge-test", "batch_delay": "100ms"}
    t.update(kw)
    return t


def start(start_backend, start_sluice, receiver, routes=None, endpoints=None, **kw):
    b = start_backend()
    cfg = basic_config(*(endpoints or [b]), workers=1, access_log={"path": "stdout"},
                       tracing=tracing(receiver, **kw))
    if routes:
        cfg["routes"] = routes
    s = start_sluice(cfg)
    s.backend = b
    return s


def echoed(s, path="/echo", headers=()):
    r = s.get(path, headers=list(headers))
    assert r.status == 200, r.text
    return {k.lower(): v for k, v in r.json()["headers"]}


def by_kind(spans, kind):
    return [x for x in spans if x.kind == kind]


def metric(s, name, **labels):
    r = s.admin_get("/metrics")
    assert r.status == 200
    return metric_value(r.text, name, **labels) or 0


def test_a_request_gives_a_server_span_and_a_client_span_under_it(start_backend, start_sluice,
                                                                   receiver):
    s = start(start_backend, start_sluice, receiver)
    before = time.time_ns()
    seen = echoed(s, "/echo?q=1", [("User-Agent", "trace-test/1")])
    after = time.time_ns()
    spans = receiver.wait_for_spans(2)
    assert len(spans) == 2, spans
    server, = by_kind(spans, SPAN_KIND_SERVER)
    client, = by_kind(spans, SPAN_KIND_CLIENT)
    tree = assert_tree(spans)
    assert [c.span_id for c in tree[server.span_id]] == [client.span_id]
    # A new trace: the server span is its root, and the backend's parent is the client span.
    assert server.parent_span_id == "" and client.parent_span_id == server.span_id
    assert client.trace_id == server.trace_id
    m = TRACEPARENT.fullmatch(seen["traceparent"])
    assert m and m.group(1) == server.trace_id and m.group(2) == client.span_id
    assert m.group(3) == "01"  # sampled: the backend should record its part too
    assert before <= server.start_ns <= client.start_ns <= client.end_ns <= after
    # The server span ends when the exchange is over, which is just after the client has read
    # the response.
    assert client.end_ns <= server.end_ns <= after + 1_000_000_000
    assert server.resource["service.name"] == "edge-test"
    assert server.scope_name == "sluice"

    assert server.name == "GET default"
    assert server.attributes == {
        "http.request.method": "GET", "url.scheme": "http", "url.path": "/echo", "url.query": "q=1",
        "http.route": "default", "server.address": "127.0.0.1", "server.port": s.port,
        "client.address": "127.0.0.1", "network.peer.address": "127.0.0.1",
        "network.peer.port": server.attributes["network.peer.port"],
        "network.protocol.version": "1.1", "user_agent.original": "trace-test/1",
        "http.response.status_code": 200}
    assert 1024 <= server.attributes["network.peer.port"] <= 65535
    assert server.status_code == 0  # unset: a success
    backend_port = s.backend.port
    assert client.name == "GET"
    assert client.attributes == {
        "http.request.method": "GET", "server.address": "127.0.0.1", "server.port": backend_port,
        "network.peer.address": "127.0.0.1", "network.peer.port": backend_port,
        "url.full": f"http://127.0.0.1:{backend_port}/echo?q=1",
        "http.response.status_code": 200}

    # The access log has the trace id.
    def logged():
        return [json.loads(x) for x in s.stdout_text().splitlines() if x.startswith("{")]
    wait_for(lambda: logged(), 5)
    assert logged()[0]["trace_id"] == server.trace_id
    # Counted once the collector's 200 has been read, just after the receiver has the spans.
    wait_for(lambda: metric(s, "sluice_tracing_spans_exported_total") == 2, 5)


def test_a_sampled_caller_is_always_traced_an_unsampled_one_never(start_backend, start_sluice,
                                                                 receiver):
    s = start(start_backend, start_sluice, receiver, sample_rate="0")
    incoming = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    seen = echoed(s, headers=[("traceparent", incoming), ("tracestate", "vendor=opaque")])
    server, client = sorted(receiver.wait_for_spans(2), key=lambda x: x.kind)
    assert server.trace_id == CALLER_TRACE and server.parent_span_id == CALLER_SPAN
    assert server.parent_is_remote is True and client.parent_is_remote is False
    assert_tree([server, client], remote_parents=[CALLER_SPAN])
    assert seen["traceparent"] == f"00-{CALLER_TRACE}-{client.span_id}-01"
    assert seen["tracestate"] == "vendor=opaque"  # passed on unchanged

    # Not sampled by the caller: nothing recorded, the traceparent passed on as it came.
    unsampled = f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"
    seen = echoed(s, headers=[("traceparent", unsampled)])
    assert seen["traceparent"] == unsampled
    # sample_rate 0: a new trace is not recorded either.
    for _ in range(20):
        echoed(s)
    time.sleep(0.5)  # five batch_delays
    assert len(receiver.spans()) == 2


def test_sample_rate_records_about_that_share_of_new_traces(start_backend, start_sluice,
                                                           receiver):
    s = start(start_backend, start_sluice, receiver, sample_rate="0.25")
    sent = 400
    for _ in range(sent):
        echoed(s)
    wait_for(lambda: metric(s, "sluice_tracing_spans_exported_total") >= 2, 5)
    time.sleep(0.3)
    traces = {x.trace_id for x in receiver.spans()}
    assert len(receiver.spans()) == 2 * len(traces)  # each recorded request has both spans
    # Binomial(400, 0.25): mean 100, sd 8.7; 60..140 is more than 4.5 sd either way.
    assert 60 <= len(traces) <= 140, len(traces)


def test_each_retry_is_its_own_client_span(start_backend, start_sluice, receiver):
    b1 = start_backend("b1")
    b2 = start_backend("b2")
    routes = [{"name": "flaky", "match": {"path": {"prefix": "/"}}, "cluster": "default",
               "retry": {"attempts": 1, "on": ["503"]}}]
    s = start(start_backend, start_sluice, receiver, routes=routes, endpoints=[b1, b2])
    r = s.get("/status/503")
    assert r.status == 503
    spans = receiver.wait_for_spans(3)
    server, = by_kind(spans, SPAN_KIND_SERVER)
    tries = sorted(by_kind(spans, SPAN_KIND_CLIENT), key=lambda x: x.start_ns)
    assert len(tries) == 2
    tree = assert_tree(spans)
    assert [c.span_id for c in tree[server.span_id]] == [t.span_id for t in tries]
    assert tries[0].end_ns <= tries[1].start_ns
    assert "http.request.resend_count" not in tries[0].attributes
    assert tries[1].attributes["http.request.resend_count"] == 1
    ports = {tries[0].attributes["server.port"], tries[1].attributes["server.port"]}
    assert ports == {b1.port, b2.port}  # a retry goes to another host
    for t in tries:
        assert t.attributes["http.response.status_code"] == 503
        assert t.attributes["error.type"] == "503" and t.status_code == 2
    assert server.attributes["error.type"] == "503" and server.status_code == 2


def test_a_failed_connection_is_a_client_span_with_its_error(start_backend, start_sluice,
                                                            receiver):
    s = start(start_backend, start_sluice, receiver, endpoints=["127.0.0.1:9"])
    assert s.get("/").status == 503
    spans = receiver.wait_for_spans(2)
    server, = by_kind(spans, SPAN_KIND_SERVER)
    client, = by_kind(spans, SPAN_KIND_CLIENT)
    assert client.parent_span_id == server.span_id
    assert client.attributes["error.type"] == "connect_failed" and client.status_code == 2
    assert "http.response.status_code" not in client.attributes
    assert server.attributes["http.response.status_code"] == 503


def test_a_local_answer_has_a_server_span_only(start_backend, start_sluice, receiver):
    routes = [{"name": "teapot", "match": {"path": {"exact": "/tea"}},
               "respond": {"status": 418, "body": "short and stout\n"}}]
    s = start(start_backend, start_sluice, receiver, routes=routes)
    assert s.get("/tea").status == 418
    assert s.get("/nowhere").status == 404
    spans = receiver.wait_for_spans(2)
    assert all(x.kind == SPAN_KIND_SERVER for x in spans)
    tea = next(x for x in spans if x.attributes["url.path"] == "/tea")
    assert tea.name == "GET teapot" and tea.attributes["http.response.status_code"] == 418
    assert tea.status_code == 0  # 4xx is the client's error, not the server's
    nowhere = next(x for x in spans if x.attributes["url.path"] == "/nowhere")
    assert nowhere.name == "GET" and "http.route" not in nowhere.attributes


def test_the_collector_saying_503_and_429_is_retried(start_backend, start_sluice, receiver):
    receiver.respond_with([503, (429, "1"), 200])
    s = start(start_backend, start_sluice, receiver)
    echoed(s)
    spans = receiver.wait_for_spans(2, timeout=15)
    assert len(spans) == 2
    statuses = [r.status for r in receiver.requests]
    assert statuses == [503, 429, 200]
    # The same spans were sent each time.
    assert len({r.body for r in receiver.requests}) == 1
    wait_for(lambda: metric(s, "sluice_tracing_spans_exported_total") == 2, 5)
    assert metric(s, "sluice_tracing_export_failures_total") == 2
    assert metric(s, "sluice_tracing_spans_dropped_total", reason="export_failed") == 0


def test_an_unreachable_collector_drops_and_counts_and_requests_go_on(start_backend, start_sluice,
                                                                     receiver):
    b = start_backend()
    cfg = basic_config(b, workers=1, access_log={"path": "off"},
                       tracing={"otlp_endpoint": "http://127.0.0.1:9/v1/traces",
                                "batch_delay": "50ms", "export_timeout": "300ms"})
    s = start_sluice(cfg)
    for _ in range(5):
        assert s.get("/").status == 200
    wait_for(lambda: metric(s, "sluice_tracing_spans_dropped_total", reason="export_failed") == 10,
             10)
    assert metric(s, "sluice_tracing_export_failures_total") >= 1
    assert "tracing: export of" in s.log_tail()


def test_a_full_queue_drops_spans_not_requests(start_backend, start_sluice, receiver):
    receiver.delay_next(3, count=1)  # the first export hangs; the queue fills behind it
    s = start(start_backend, start_sluice, receiver, max_queue_spans=4, max_batch_spans=2,
              batch_delay="10ms")
    for _ in range(30):
        assert s.get("/").status == 200
    dropped = metric(s, "sluice_tracing_spans_dropped_total", reason="queue_full")
    assert dropped >= 30 * 2 - 4 - 2 - 2  # at most a batch in flight and a queue kept
    wait_for(lambda: metric(s, "sluice_tracing_spans_exported_total") + dropped == 60, 15)


def test_spans_still_queued_are_sent_at_exit(start_backend, start_sluice, receiver):
    s = start(start_backend, start_sluice, receiver, batch_delay="1m")
    for _ in range(3):
        echoed(s)
    assert receiver.spans() == []
    code, killed = s.stop(10)
    assert code == 0 and not killed
    assert len(receiver.wait_for_spans(6)) == 6


def test_export_headers_are_sent_and_config_hides_their_values(start_backend, start_sluice,
                                                               receiver):
    s = start(start_backend, start_sluice, receiver, headers={"X-Api-Key": "secret-key-123"})
    echoed(s)
    receiver.wait_for_spans(2)
    req = receiver.requests[0]
    assert req.headers["x-api-key"] == "secret-key-123"
    assert req.headers["content-type"] == "application/json"
    assert "content-encoding" not in req.headers  # compression: none, the default
    shown = s.admin_get("/config")
    assert shown.status == 200
    assert "secret-key-123" not in shown.text
    assert shown.json()["tracing"]["headers"] == ["X-Api-Key"]


@pytest.mark.parametrize("tracing_yaml,message", [
    ("{otlp_endpoint: 'ftp://collector:4318/v1/traces'}", "unsupported scheme"),
    ("{otlp_endpoint: 'https://collector/v1/traces', ca_file: /nonexistent/ca.pem}",
     "ca_file: "),
    ("{otlp_endpoint: 'collector:4318'}", "unsupported scheme"),
    ("{otlp_endpoint: 'http://collector:4318', sample_rate: 2}", "expected a number from 0 to 1"),
    ("{otlp_endpoint: 'http://c:4318', sample_rat: 1}", "did you mean 'sample_rate'"),
    ("{service_name: x}", "missing required key 'otlp_endpoint'"),
    ("{otlp_endpoint: 'http://c:4318', headers: {Content-Type: x}}", "set by the exporter"),
    ("{otlp_endpoint: 'http://c:4318', headers: {content-encoding: br}}", "set by the exporter"),
    ("{otlp_endpoint: 'http://c:4318', compression: zstd}", "unknown value 'zstd'"),
    ("{otlp_endpoint: 'http://c:4318', max_batch_spans: 100, max_queue_spans: 10}",
     "must not exceed max_queue_spans"),
])
def test_bad_tracing_config_is_an_error_with_its_position(tmp_path, tracing_yaml, message):
    text = ("listeners: [{name: main, address: 127.0.0.1:0}]\n"
            f"tracing: {tracing_yaml}\n")
    r = check_config(tmp_path, text)
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"check\.yaml:2:\d+: .*" + re.escape(message), r.stderr), r.stderr


@pytest.fixture(scope="module")
def collector_pki(tmp_path_factory):
    pki = Pki(tmp_path_factory.mktemp("otlp-pki"))
    return pki, pki.leaf("collector", ["collector.test", "localhost"], ips=("127.0.0.1",))


def test_an_https_collector_gets_the_spans_with_its_ca_file(start_backend, start_sluice,
                                                            collector_pki, tmp_path):
    pki, cert = collector_pki
    with OtlpReceiver(tls=cert, host="localhost") as rx:
        s = start(start_backend, start_sluice, rx, ca_file=str(pki.ca_file))
        echoed(s)
        assert_tree(rx.wait_for_spans(2))
        rx.assert_no_errors()
        assert s.admin_get("/config").json()["tracing"]["ca_file"] == str(pki.ca_file)
        # The same CA file from an IP address: the certificate's IP entry is checked.
        with OtlpReceiver(tls=cert) as by_ip:
            s.write_config({**s.config, "tracing": tracing(by_ip, ca_file=str(pki.ca_file))})
            s.signal(signal.SIGHUP)
            wait_for(lambda: metric(s, "sluice_config_reloads_total", result="success") >= 1, 10)
            echoed(s)
            assert len(by_ip.wait_for_spans(2)) == 2
            by_ip.assert_no_errors()
    assert "https://localhost:" in rx.endpoint


def test_compression_gzip_sends_gzip_bodies(start_backend, start_sluice, receiver):
    s = start(start_backend, start_sluice, receiver, compression="gzip", max_batch_spans=20,
              batch_delay="300ms")
    for _ in range(10):
        echoed(s)
    assert_tree(receiver.wait_for_spans(20))
    receiver.assert_no_errors()
    for req in receiver.requests:
        assert req.headers["content-encoding"] == "gzip"
        assert req.wire_length < len(req.body) / 3, (req.wire_length, len(req.body))
    assert s.admin_get("/config").json()["tracing"]["compression"] == "gzip"


def test_ca_file_is_only_for_an_https_endpoint(collector_pki, tmp_path):
    pki, _ = collector_pki
    text = ("listeners: [{name: main, address: 127.0.0.1:0}]\n"
            f"tracing: {{otlp_endpoint: 'http://c:4318', ca_file: '{pki.ca_file}'}}\n")
    r = check_config(tmp_path, text)
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"check\.yaml:2:\d+: ca_file: only used with an https otlp_endpoint",
                     r.stderr), r.stderr


@pytest.mark.parametrize("case", ["untrusted", "wrong_name"])
def test_an_https_collector_that_fails_the_certificate_check_gets_nothing(
        start_backend, start_sluice, collector_pki, case):
    pki, cert = collector_pki
    b = start_backend()
    if case == "untrusted":  # the system's CA store does not hold the test CA
        extra, host = {}, "localhost"
        reason = "unable to get local issuer certificate"
    else:  # trusted, but the certificate is for other names than the one sluice dials
        other = pki.leaf("other", ["other.test"])
        cert, extra, host = other, {"ca_file": str(pki.ca_file)}, "localhost"
        reason = "hostname mismatch"
    with OtlpReceiver(tls=cert, host=host) as rx:
        cfg = basic_config(b, workers=1, access_log={"path": "off"},
                           tracing={"otlp_endpoint": rx.endpoint, "batch_delay": "50ms",
                                    "export_timeout": "500ms", **extra})
        s = start_sluice(cfg)
        for _ in range(3):
            assert s.get("/").status == 200
        wait_for(lambda: metric(s, "sluice_tracing_spans_dropped_total",
                                reason="export_failed") == 6, 10)
        assert rx.requests == []
        assert metric(s, "sluice_tracing_export_failures_total") >= 1
        wait_for(lambda: reason in s.stderr_text(), 5)
        assert "TLS handshake" in s.stderr_text()


def test_a_reload_moves_or_stops_tracing(start_backend, start_sluice, receiver):
    s = start(start_backend, start_sluice, receiver)
    echoed(s)
    assert len(receiver.wait_for_spans(2)) == 2

    def reload(cfg):
        before = metric(s, "sluice_config_reloads_total", result="success")
        s.write_config(cfg)
        s.signal(signal.SIGHUP)
        wait_for(lambda: metric(s, "sluice_config_reloads_total", result="success") > before, 10)

    with OtlpReceiver() as second:
        cfg = dict(s.config)
        cfg["tracing"] = tracing(second, service_name="moved")
        reload(cfg)
        echoed(s)
        spans = second.wait_for_spans(2)
        assert {x.resource["service.name"] for x in spans} == {"moved"}
        assert len(receiver.spans()) == 2  # nothing more to the old collector

        del cfg["tracing"]
        reload(cfg)
        seen = echoed(s)
        time.sleep(0.5)
        assert len(second.spans()) == 2 and len(receiver.spans()) == 2
        # Still a trace id for the backend and the log; just nothing recorded.
        assert TRACEPARENT.fullmatch(seen["traceparent"]).group(3) == "00"
        second.assert_no_errors()
