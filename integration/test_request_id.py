"""Request identity: every request reaches its backend with an x-request-id (ours unless a
trusted proxy sent one) and a W3C traceparent (the client's when valid, a new trace otherwise);
the id is in the access log and, with `request_id: { echo: true }`, in the response."""

import json
import re

from helpers import basic_config, wait_for

HEX32 = re.compile(r"[0-9a-f]{32}")
TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def echoed(s, headers=()):
    r = s.get("/echo", headers=list(headers))
    assert r.status == 200, r.text
    return r, {k.lower(): v for k, v in r.json()["headers"]}


def start(start_backend, start_sluice, **listener):
    b = start_backend()
    cfg = basic_config(b, workers=1)
    cfg["listeners"][0].update(listener)
    cfg["access_log"] = {"path": "stdout"}
    return start_sluice(cfg)


def test_a_request_without_an_id_gets_a_new_one_each_time(start_backend, start_sluice):
    s = start(start_backend, start_sluice)
    r, seen = echoed(s)
    first = seen["x-request-id"]
    assert HEX32.fullmatch(first)
    assert "x-request-id" not in {k.lower() for k, _ in r.headers}  # not echoed by default
    _, seen = echoed(s)
    assert HEX32.fullmatch(seen["x-request-id"]) and seen["x-request-id"] != first

    # The access log carries the id the backend saw.
    def logged():
        lines = [json.loads(x) for x in s.stdout_text().splitlines() if x.startswith("{")]
        return [e["request_id"] for e in lines]
    wait_for(lambda: len(logged()) == 2, 5)
    assert logged() == [first, seen["x-request-id"]]


def test_an_untrusted_clients_id_is_replaced_a_trusted_proxys_kept(start_backend, start_sluice):
    s = start(start_backend, start_sluice)
    _, seen = echoed(s, [("X-Request-Id", "client-chosen-1")])
    assert seen["x-request-id"] != "client-chosen-1"
    assert HEX32.fullmatch(seen["x-request-id"])

    t = start(start_backend, start_sluice, trusted_proxies=["127.0.0.1/32"])
    _, seen = echoed(t, [("X-Request-Id", "lb-1234-abcd")])
    assert seen["x-request-id"] == "lb-1234-abcd"
    # Not an id even from a trusted proxy: too long.
    _, seen = echoed(t, [("X-Request-Id", "x" * 201)])
    assert HEX32.fullmatch(seen["x-request-id"])


def test_echo_puts_the_id_in_the_response(start_backend, start_sluice):
    s = start(start_backend, start_sluice, request_id={"echo": True})
    r, seen = echoed(s)
    assert r.header("x-request-id") == seen["x-request-id"]
    # Local answers too (an encoded slash: 400 from the sanitize filter, never forwarded).
    r = s.get("/a%2Fb")
    assert r.status == 400
    assert HEX32.fullmatch(r.header("x-request-id") or ""), r.headers


def test_traceparent_passes_through_or_starts_a_new_trace(start_backend, start_sluice):
    s = start(start_backend, start_sluice)
    valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    _, seen = echoed(s, [("traceparent", valid), ("tracestate", "vendor=1")])
    assert seen["traceparent"] == valid
    assert seen["tracestate"] == "vendor=1"

    _, seen = echoed(s)
    m = TRACEPARENT.fullmatch(seen["traceparent"])
    assert m and m.group(1) != "0" * 32 and m.group(3) == "00"
    _, again = echoed(s)
    assert again["traceparent"] != seen["traceparent"]

    # Malformed (upper-case hex, all-zero trace id): a new trace, and the old state dropped.
    for bad in ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "garbage"):
        _, seen = echoed(s, [("traceparent", bad), ("tracestate", "vendor=1")])
        assert TRACEPARENT.fullmatch(seen["traceparent"]) and seen["traceparent"] != bad
        assert "tracestate" not in seen
