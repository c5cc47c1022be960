"""HTTPS upstreams: cluster `tls` with SNI, CA and name/IP verification, `verify: false`, and
pooled TLS connections reused across requests. The HTTPS backend is a second sluice with a TLS
listener in front of the plain test backend."""

from __future__ import annotations

import json
import signal

import pytest

from helpers import basic_config, metric_value, wait_for
from pki import Pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.named = p.leaf("named", ["backend.example.com"])
    p.with_ip = p.leaf("with-ip", ["backend.example.com"], ips=("127.0.0.1",))
    p.stranger = Pki(p.dir, ca_stem="stranger-ca")
    return p


def https_backend(start_sluice, backend, cert: dict):
    """A sluice terminating TLS in front of `backend`."""
    config = basic_config(backend)
    config["listeners"][0]["tls"] = {"certificates": [cert]}
    return start_sluice(config, name="https-backend")


def front(start_sluice, https, **tls):
    config = basic_config(f"127.0.0.1:{https.port}")
    config["clusters"][0]["tls"] = tls
    config["clusters"][0]["connect_timeout"] = "2s"
    return start_sluice(config, name="front")


def test_https_upstream_with_sni_and_verification(backend, start_sluice, pki):
    https = https_backend(start_sluice, backend, pki.named)
    s = front(start_sluice, https, sni="backend.example.com", ca_file=str(pki.ca_file))
    for _ in range(20):
        r = s.get("/echo")
        assert r.status == 200, r.text
    headers = {k.lower(): v for k, v in r.json()["headers"]}
    assert headers["x-forwarded-proto"] == "https"  # the hop sluice -> https-backend was TLS
    # Pooled: twenty requests, few TLS connections.
    accepted = metric_value(https.metrics(), "sluice_downstream_connections_total",
                            listener="main")
    assert accepted <= 4
    assert metric_value(https.metrics(), "sluice_tls_handshakes_total", listener="main",
                        result="success") == accepted


def test_ip_endpoint_is_verified_against_ip_sans(backend, start_sluice, pki):
    https = https_backend(start_sluice, backend, pki.with_ip)
    s = front(start_sluice, https, ca_file=str(pki.ca_file))
    assert s.get("/").status == 200
    # The same without an IP SAN fails verification: 503, never a hang.
    https2 = https_backend(start_sluice, backend, pki.named)
    s2 = front(start_sluice, https2, ca_file=str(pki.ca_file))
    r = s2.get("/")
    assert r.status == 503


def test_untrusted_certificate_is_refused_unless_verify_is_off(backend, start_sluice, pki):
    https = https_backend(start_sluice, backend, pki.named)
    s = front(start_sluice, https, sni="backend.example.com", ca_file=str(pki.stranger.ca_file))
    r = s.get("/")
    assert r.status == 503
    s2 = front(start_sluice, https, sni="backend.example.com", verify=False)
    assert s2.get("/").status == 200


def test_https_upstream_large_bodies_both_ways(backend, start_sluice, pki):
    https = https_backend(start_sluice, backend, pki.named)
    s = front(start_sluice, https, sni="backend.example.com", ca_file=str(pki.ca_file))
    r = s.get("/bytes/3000000")
    assert r.status == 200 and len(r.body) == 3_000_000
    r = s.request("POST", "/echo", body=b"y" * 2_000_000)
    assert r.status == 200 and json.loads(r.body)["body_bytes"] == 2_000_000


def test_reload_keeps_pooled_tls_connections_unless_tls_settings_change(backend, start_sluice,
                                                                        pki):
    https = https_backend(start_sluice, backend, pki.named)
    config = basic_config(f"127.0.0.1:{https.port}", workers=1)
    config["clusters"][0]["tls"] = {"sni": "backend.example.com", "ca_file": str(pki.ca_file)}
    s = start_sluice(config, name="front")

    def accepted() -> float:
        return metric_value(https.metrics(), "sluice_downstream_connections_total",
                            listener="main")

    def reload(new_config) -> None:
        before = s.metric("sluice_config_reloads_total", result="success") or 0
        s.write_config(new_config)
        s.signal(signal.SIGHUP)
        wait_for(lambda: s.metric("sluice_config_reloads_total", result="success") == before + 1,
                 timeout=5)

    assert s.get("/").status == 200
    assert accepted() == 1
    config["routes"][0]["timeout"] = "20s"  # a change elsewhere: the TLS context is kept
    reload(config)
    assert s.get("/").status == 200
    assert accepted() == 1  # the pooled connection was reused
    config["clusters"][0]["tls"]["verify"] = False  # new TLS settings: new connections
    reload(config)
    assert s.get("/").status == 200
    assert accepted() == 2
