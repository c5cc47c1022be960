"""The OTLP/HTTP JSON test receiver (integration/otlp/) on its own, without sluice: it must
decode a hand-written export field by field, reject what the OTLP JSON encoding forbids, serve
scripted answers in order and time out with a useful message, so that the tracing tests that use
it cannot pass against a wrong exporter."""

import copy
import gzip
import http.client
import json
import socket
import threading
import time

import pytest

from otlp import decode
from otlp.receiver import MAX_DELAY, OtlpReceiver, Reply, assert_tree, roots

TRACE = "5b8efff798038103d269b633813fc60c"
SERVER = "eee19b7ec3c1b174"
CLIENT = "00f067aa0ba902b7"
REMOTE = "a3ce929d0e0e4736"
T0 = 1_700_000_000_000_000_000


def export():
    """An ExportTraceServiceRequest in OTLP/JSON, written from the specification: one resource,
    one scope, a server span under a remote parent and a client span under it."""
    return {
        "resourceSpans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "sluice"}},
                {"key": "service.instance.id", "value": {"stringValue": "w1"}},
            ]},
            "scopeSpans": [{
                "scope": {"name": "sluice", "version": "0.1.0"},
                "spans": [
                    {
                        "traceId": TRACE, "spanId": SERVER, "parentSpanId": REMOTE,
                        "traceState": "vendor=x",
                        "flags": 0x301,
                        "name": "GET /items/{id}", "kind": 2,
                        "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 5_000_000),
                        "attributes": [
                            {"key": "http.request.method", "value": {"stringValue": "GET"}},
                            {"key": "url.path", "value": {"stringValue": "/items/7"}},
                            {"key": "http.response.status_code", "value": {"intValue": "503"}},
                            {"key": "server.port", "value": {"intValue": 8080}},
                            {"key": "sampled.ratio", "value": {"doubleValue": 0.25}},
                            {"key": "tls", "value": {"boolValue": False}},
                            {"key": "tags", "value": {"arrayValue": {"values": [
                                {"stringValue": "a"}, {"intValue": "2"}]}}},
                        ],
                        "events": [{"timeUnixNano": str(T0 + 1000), "name": "retry",
                                    "attributes": [{"key": "n", "value": {"intValue": "1"}}]}],
                        "status": {"code": 2, "message": "upstream 503"},
                    },
                    {
                        "traceId": TRACE, "spanId": CLIENT, "parentSpanId": SERVER,
                        "name": "GET", "kind": 3,
                        "startTimeUnixNano": T0 + 1_000_000, "endTimeUnixNano": T0 + 4_000_000,
                        "attributes": [
                            {"key": "network.peer.address",
                             "value": {"stringValue": "127.0.0.1"}},
                            {"key": "error.type", "value": {"stringValue": "503"}},
                        ],
                        "links": [{"traceId": "0af7651916cd43dd8448eb211c80319c",
                                   "spanId": "b7ad6b7169203331"}],
                    },
                ],
            }],
        }],
    }


def post(rx, body, content_type="application/json", conn=None, headers=None, timeout=5.0):
    """POSTs body (dict -> JSON, str, bytes) to the receiver; returns (status, headers, body)."""
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", rx.port, timeout=timeout)
    try:
        h = {"Content-Type": content_type} if content_type else {}
        h.update(headers or {})
        conn.request("POST", "/v1/traces", body=body, headers=h)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        if own:
            conn.close()


@pytest.fixture
def rx():
    with OtlpReceiver() as r:
        yield r


# --------------------------------------------------------------------------- decoding


def test_a_valid_export_is_decoded_field_by_field(rx):
    before = time.time_ns()
    status, headers, body = post(rx, export())
    assert (status, json.loads(body)) == (200, {})
    assert headers["content-type"] == "application/json"
    assert rx.errors == []
    assert rx.endpoint == f"http://127.0.0.1:{rx.port}/v1/traces"

    server, client = rx.spans()
    assert (server.trace_id, server.span_id, server.parent_span_id) == (TRACE, SERVER, REMOTE)
    assert (server.name, server.kind, server.status_code, server.status_message) == \
        ("GET /items/{id}", decode.SPAN_KIND_SERVER, 2, "upstream 503")
    assert (server.start_ns, server.end_ns, server.duration_ns) == \
        (T0, T0 + 5_000_000, 5_000_000)
    assert server.attributes == {
        "http.request.method": "GET", "url.path": "/items/7", "http.response.status_code": 503,
        "server.port": 8080, "sampled.ratio": 0.25, "tls": False, "tags": ["a", 2]}
    assert type(server.attributes["http.response.status_code"]) is int
    assert type(server.attributes["tls"]) is bool
    assert server.resource == {"service.name": "sluice", "service.instance.id": "w1"}
    assert (server.scope_name, server.scope_version) == ("sluice", "0.1.0")
    assert (server.trace_state, server.flags, server.sampled, server.parent_is_remote) == \
        ("vendor=x", 0x301, True, True)
    assert server.events == [{"name": "retry", "time_ns": T0 + 1000, "attributes": {"n": 1}}]

    assert (client.trace_id, client.span_id, client.parent_span_id, client.kind) == \
        (TRACE, CLIENT, SERVER, decode.SPAN_KIND_CLIENT)
    assert (client.start_ns, client.end_ns) == (T0 + 1_000_000, T0 + 4_000_000)
    assert client.status_code == 0 and client.parent_is_remote is None
    assert client.attributes == {"network.peer.address": "127.0.0.1", "error.type": "503"}
    assert [(ln["trace_id"], ln["span_id"]) for ln in client.links] == \
        [("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")]

    (req,) = rx.requests
    assert req.accepted and req.status == 200 and req.error is None
    assert req.headers["content-type"] == "application/json"
    assert before <= req.received_ns <= time.time_ns()
    assert req.json == export()
    # The protobuf message itself: ids are bytes there, and MessageToDict gives them in base64.
    assert req.message.resource_spans[0].scope_spans[0].spans[1].span_id == bytes.fromhex(CLIENT)
    assert req.as_dict()["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["kind"] == \
        "SPAN_KIND_SERVER"

    children = assert_tree(rx.spans(), remote_parents=[REMOTE])
    assert [c.span_id for c in children[SERVER]] == [CLIENT] and children[CLIENT] == []
    assert [s.span_id for s in roots(rx.spans())] == [SERVER]


def test_ids_are_case_insensitive_hex_and_reported_lowercase(rx):
    e = export()
    s = e["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    s["traceId"], s["spanId"] = TRACE.upper(), SERVER.upper()
    assert post(rx, e)[0] == 200
    assert (rx.spans()[0].trace_id, rx.spans()[0].span_id) == (TRACE, SERVER)


def test_int64_as_numbers_or_strings_and_an_empty_export_are_accepted(rx):
    e = export()
    s = e["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    s["startTimeUnixNano"], s["endTimeUnixNano"] = T0, T0 + 1
    s["attributes"] = [{"key": "big", "value": {"intValue": 2**63 - 1}},
                       {"key": "neg", "value": {"intValue": "-5"}}]
    s["parentSpanId"] = ""
    assert post(rx, e)[0] == 200
    assert rx.spans()[0].attributes == {"big": 2**63 - 1, "neg": -5}
    assert rx.spans()[0].parent_span_id == ""
    assert post(rx, {})[0] == 200
    assert post(rx, {"resourceSpans": []})[0] == 200
    assert len(rx.spans()) == 2 and rx.errors == []


def span0(e):
    return e["resourceSpans"][0]["scopeSpans"][0]["spans"][0]


def rename(d, old, new):
    d[new] = d.pop(old)


def attr(e, value):
    span0(e)["attributes"] = [{"key": "k", "value": value}]


BASE64_TRACE = "W47/95gDgQPSabYzgT/GDA=="  # TRACE's 16 bytes as proto3 JSON would write them

# (id, mutation of export(), a word the error must contain)
BAD_EXPORTS = [
    ("unknown-field-spanID", lambda e: rename(span0(e), "spanId", "spanID"),
     "unknown field 'spanID'"),
    ("unknown-field-top", lambda e: e.update(resourceSpan=[]),
     "unknown field 'resourceSpan'"),
    ("proto-name-not-json-name", lambda e: rename(span0(e), "spanId", "span_id"),
     "lowerCamelCase"),
    ("base64-trace-id", lambda e: span0(e).update(traceId=BASE64_TRACE), "hex"),
    ("trace-id-too-short", lambda e: span0(e).update(traceId=TRACE[:30]), "32 hex"),
    ("trace-id-too-long", lambda e: span0(e).update(traceId=TRACE + "00"), "32 hex"),
    ("span-id-wrong-length", lambda e: span0(e).update(spanId=SERVER[:15]), "hex"),
    ("span-id-missing", lambda e: span0(e).pop("spanId"), "required"),
    ("parent-id-wrong-length", lambda e: span0(e).update(parentSpanId=TRACE), "16 hex"),
    ("zero-trace-id", lambda e: span0(e).update(traceId="0" * 32), "zeros"),
    ("zero-span-id", lambda e: span0(e).update(spanId="0" * 16), "zeros"),
    ("id-not-a-string", lambda e: span0(e).update(spanId=123), "hex string"),
    ("int-value-not-integer", lambda e: attr(e, {"intValue": "12.5"}), "intValue"),
    ("int-value-not-a-number", lambda e: attr(e, {"intValue": "abc"}), "intValue"),
    ("bool-value-as-string", lambda e: attr(e, {"boolValue": "true"}), "boolValue"),
    ("two-values-in-one-anyvalue", lambda e: attr(e, {"intValue": "1", "stringValue": "1"}),
     "oneof"),
    ("time-not-integer", lambda e: span0(e).update(startTimeUnixNano="1.5"),
     "startTimeUnixNano"),
    ("kind-as-name", lambda e: span0(e).update(kind="SPAN_KIND_SERVER"), "integer"),
    ("kind-unspecified", lambda e: span0(e).update(kind=0), "UNSPECIFIED"),
    ("kind-out-of-range", lambda e: span0(e).update(kind=9), "SpanKind"),
    ("status-code-as-name", lambda e: span0(e).update(status={"code": "STATUS_CODE_ERROR"}),
     "integer"),
    ("end-before-start", lambda e: span0(e).update(endTimeUnixNano=str(T0 - 1)), "> end"),
    ("no-start-time", lambda e: span0(e).pop("startTimeUnixNano"), "required"),
    ("empty-name", lambda e: span0(e).update(name=""), "empty name"),
    ("null-field", lambda e: span0(e).update(name=None), "null"),
    ("repeated-attribute-key", lambda e: span0(e)["attributes"].append(
        {"key": "url.path", "value": {"stringValue": "/x"}}), "repeated"),
    ("spans-not-a-list", lambda e: e["resourceSpans"][0]["scopeSpans"][0].update(
        spans=span0(e)), "array"),
]


@pytest.mark.parametrize("mutate,word", [b[1:] for b in BAD_EXPORTS],
                         ids=[b[0] for b in BAD_EXPORTS])
def test_an_export_that_breaks_the_encoding_is_rejected_with_400(rx, mutate, word):
    e = export()
    mutate(e)
    body = json.dumps(e)
    status, headers, resp = post(rx, body)
    assert status == 400, resp
    assert headers["content-type"] == "application/json"
    assert "message" in json.loads(resp)
    (error,) = rx.errors
    problem, recorded_body = error.split("\n  body: ", 1)
    assert word.lower() in problem.lower(), error
    assert recorded_body == body  # the offending body is in the record
    assert rx.spans() == []
    (req,) = rx.requests
    assert not req.accepted and req.status == 400
    with pytest.raises(AssertionError, match="rejected"):
        rx.wait_for_spans(1, timeout=5)
    with pytest.raises(AssertionError):
        rx.assert_no_errors()


@pytest.mark.parametrize("body,word", [
    ('{"resourceSpans": [', "not JSON"),
    ('{"resourceSpans": [], "resourceSpans": []}', "duplicate"),
    ('{"resourceSpans": NaN}', "NaN"),
    ('[]', "object"),
])
def test_a_body_that_is_not_a_json_export_is_rejected(rx, body, word):
    assert post(rx, body)[0] == 400
    assert word in rx.errors[0]


@pytest.mark.parametrize("content_type", ["application/x-protobuf", "text/plain", None])
def test_a_wrong_content_type_is_rejected(rx, content_type):
    status, _, _ = post(rx, export(), content_type=content_type)
    assert status == 415
    assert "Content-Type" in rx.errors[0] and rx.spans() == []


def test_a_charset_parameter_and_gzip_are_accepted(rx):
    status, _, _ = post(rx, gzip.compress(json.dumps(export()).encode()),
                        content_type="application/json; charset=utf-8",
                        headers={"Content-Encoding": "gzip"})
    assert status == 200 and len(rx.spans()) == 2


def test_wrong_path_method_and_chunked_bodies_are_recorded_as_errors(rx):
    conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=5)
    conn.request("POST", "/v1/trace", body=b"{}", headers={"Content-Type": "application/json"})
    assert conn.getresponse().status == 404
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=5)
    conn.request("GET", "/v1/traces")
    assert conn.getresponse().status == 405
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=5)
    conn.request("POST", "/v1/traces", body=iter([b"{}"]),
                 headers={"Content-Type": "application/json"}, encode_chunked=True)
    assert conn.getresponse().status == 411
    conn.close()
    assert [r.status for r in rx.requests] == [404, 405, 411]
    assert len(rx.errors) == 3


def test_exports_on_one_keep_alive_connection(rx):
    conn = http.client.HTTPConnection("127.0.0.1", rx.port, timeout=5)
    try:
        for _ in range(3):
            assert post(rx, export(), conn=conn)[0] == 200
        sock = conn.sock
        assert post(rx, export(), conn=conn)[0] == 200
        assert conn.sock is sock  # not reconnected
    finally:
        conn.close()
    assert len(rx.requests) == 4 and len(rx.spans()) == 8


# --------------------------------------------------------------------------- scripted answers


def test_scripted_503_then_200_in_order_with_retry_after(rx):
    rx.respond_with([503, 429], retry_after=2)
    rx.respond_with([Reply(502, "Wed, 21 Oct 2026 07:28:00 GMT"), (200,)])
    assert rx.pending_replies() == 4
    got = [post(rx, export()) for _ in range(5)]
    assert [g[0] for g in got] == [503, 429, 502, 200, 200]
    assert [g[1].get("retry-after") for g in got] == \
        ["2", "2", "Wed, 21 Oct 2026 07:28:00 GMT", None, None]
    assert json.loads(got[0][2]) == {"message": "scripted 503"}
    assert json.loads(got[3][2]) == {}
    assert [r.status for r in rx.requests] == [503, 429, 502, 200, 200]
    # Only exports answered 200 were accepted; the refused ones are not errors.
    assert len(rx.spans()) == 4 and rx.errors == []
    assert rx.pending_replies() == 0


def test_a_bad_body_gets_400_and_leaves_the_script_alone(rx):
    rx.respond_with([503])
    assert post(rx, "{]")[0] == 400
    assert post(rx, export())[0] == 503


def test_a_delayed_answer_and_a_client_that_gave_up(rx):
    rx.delay_next(1.0)
    start = time.monotonic()
    assert post(rx, export())[0] == 200
    assert time.monotonic() - start >= 0.9

    rx.delay_next(1.0)
    with pytest.raises(TimeoutError):
        post(rx, export(), timeout=0.2)  # the exporter's timeout: it closes the connection
    reqs = rx.wait_for_requests(2, timeout=5)
    assert reqs[1].client_closed and reqs[1].status is None and not reqs[1].accepted
    assert len(rx.spans()) == 2  # the abandoned export's spans were not accepted

    with pytest.raises(ValueError):
        rx.delay_next(MAX_DELAY + 1)


def test_close_stops_the_server_even_during_a_delay():
    rx = OtlpReceiver()
    rx.delay_next(MAX_DELAY)
    outcome = []

    def export_once():
        try:
            outcome.append(post(rx, export(), timeout=10))
        except (OSError, http.client.HTTPException) as e:
            outcome.append(e)

    t = threading.Thread(target=export_once)
    t.start()
    deadline = time.monotonic() + 5
    while rx.pending_replies() and time.monotonic() < deadline:  # the delay has begun
        time.sleep(0.02)
    assert rx.pending_replies() == 0
    start = time.monotonic()
    rx.close()
    rx.close()  # idempotent
    assert time.monotonic() - start < 3
    t.join(10)
    assert not t.is_alive()
    assert isinstance(outcome[0], (OSError, http.client.HTTPException)), outcome  # no answer
    assert rx.requests[0].status is None and rx.spans() == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", rx.port), timeout=1).close()


# --------------------------------------------------------------------------- waiting, trees


def test_wait_for_spans_returns_when_enough_arrived(rx):
    threading.Timer(0.3, post, (rx, export())).start()
    spans = rx.wait_for_spans(2, timeout=5)
    assert {s.span_id for s in spans} == {SERVER, CLIENT}


def test_wait_for_spans_times_out_saying_what_came(rx):
    with pytest.raises(AssertionError, match=r"got 0\n.*no request reached"):
        rx.wait_for_spans(1, timeout=0.3)
    rx.respond_with([503])
    post(rx, export())
    post(rx, export())
    start = time.monotonic()
    with pytest.raises(AssertionError) as e:
        rx.wait_for_spans(3, timeout=0.5)
    assert time.monotonic() - start >= 0.5
    msg = str(e.value)
    assert "3 spans, got 2" in msg
    assert "-> 503" in msg and "-> 200" in msg
    assert f"GET /items/{{id}}({SERVER})" in msg


def test_assert_tree_catches_broken_links_and_timing():
    _, _, spans = decode.decode_export(json.dumps(export()))
    server, client = spans
    with pytest.raises(AssertionError, match="not a declared remote parent"):
        assert_tree([client])
    server.flags = 0x101  # "parent known to be local": the missing parent is an error
    with pytest.raises(AssertionError, match=f"parent {REMOTE}"):
        assert_tree([server, client])
    assert assert_tree([server, client], remote_parents=[REMOTE.upper()])[SERVER] == [client]

    other_trace = copy.copy(client)
    other_trace.trace_id = "1" * 32
    with pytest.raises(AssertionError, match="not among the spans of that trace"):
        assert_tree([server, other_trace], remote_parents=[REMOTE])

    late = copy.copy(client)
    late.end_ns = server.end_ns + 1_000_001
    with pytest.raises(AssertionError, match="not within its parent"):
        assert_tree([server, late], remote_parents=[REMOTE])
    late.end_ns = server.end_ns + 1_000_000  # within the 1 ms tolerance
    assert_tree([server, late], remote_parents=[REMOTE])
    with pytest.raises(AssertionError, match="not within its parent"):
        assert_tree([server, late], remote_parents=[REMOTE], tolerance_ns=0)

    early = copy.copy(client)
    early.start_ns = server.start_ns - 2_000_000
    with pytest.raises(AssertionError, match="not within its parent"):
        assert_tree([server, early], remote_parents=[REMOTE])
    with pytest.raises(AssertionError, match="appears twice"):
        assert_tree([server, client, client], remote_parents=[REMOTE])


def test_a_missing_protoc_is_an_error_not_a_skip(monkeypatch):
    monkeypatch.setattr(decode, "_modules", {})
    monkeypatch.setattr(decode.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="protoc not found"):
        OtlpReceiver()
