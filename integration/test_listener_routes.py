"""Listener-scoped routes (`match.listeners`): the HTTP→HTTPS redirect of the docs on a plain
listener, and the site on a TLS listener, without the redirect loop a route on every listener
makes; `--check` names a route that an earlier one hides. Clients: curl and Python's ssl."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from helpers import HOST, check_config
from pki import Pki

NAME = "site.example.com"

CONFIG = """
admin: { address: "127.0.0.1:${admin_port}" }
listeners:
  - { name: plain, address: "127.0.0.1:${port}" }
  - name: secure
    address: "127.0.0.1:${port2}"
    tls: { certificates: [{ cert_file: "${cert}", key_file: "${key}" }] }
routes:
  - name: to-https
    match: { listeners: [plain] }
    redirect: { status: 301, scheme: https, port: ${port2} }
  - name: site
    cluster: backend
clusters:
  - { name: backend, endpoints: ["${backend}"] }
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.site = p.leaf("site", [NAME])
    return p


@pytest.fixture
def proxy(backend, start_sluice, pki):
    return start_sluice(CONFIG, subst={"cert": pki.site["cert_file"],
                                       "key": pki.site["key_file"], "backend": backend.address})


def curl(s, pki: Pki, url: str, *args: str) -> tuple[int, str, str]:
    """One curl request with both ports of `s` resolving NAME to HOST; returns (status of the
    last response, body, every response head, lowercased)."""
    resolve = [a for port in (s.ports["port"], s.ports["port2"])
               for a in ("--resolve", f"{NAME}:{port}:{HOST}")]
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "5", "--max-redirs", "3", "--cacert", str(pki.ca_file),
         *resolve, "-D", "-", "-o", "-", "-w", "\n%{http_code}", *args, url],
        capture_output=True, timeout=15)
    assert out.returncode == 0, out.stderr
    text, _, code = out.stdout.decode().rpartition("\n")
    heads, _, body = text.rpartition("\r\n\r\n")
    return int(code), body, heads.lower()


def test_plain_listener_redirects_to_https(proxy, pki):
    plain, secure = proxy.ports["port"], proxy.ports["port2"]
    status, _, head = curl(proxy, pki, f"http://{NAME}:{plain}/x?q=1")
    assert status == 301
    assert f"location: https://{NAME}:{secure}/x?q=1\r\n" in head + "\r\n"


def test_tls_listener_serves_the_content_without_a_loop(proxy, pki):
    secure = proxy.ports["port2"]
    for flag in ("--http1.1", "--http2"):
        status, body, head = curl(proxy, pki, f"https://{NAME}:{secure}/echo?q=1", flag)
        assert status == 200, (flag, head)
        assert "location:" not in head
        echoed = json.loads(body)
        assert echoed["target"] == "/echo?q=1"
        headers = {k.lower(): v for k, v in echoed["headers"]}
        assert headers["x-forwarded-proto"] == "https"


def test_following_the_redirect_ends_on_the_tls_listener(proxy, pki):
    status, body, head = curl(proxy, pki, f"http://{NAME}:{proxy.ports['port']}/echo", "-L")
    assert status == 200
    assert head.count("location:") == 1  # one redirect, then the content
    headers = {k.lower(): v for k, v in json.loads(body)["headers"]}
    assert headers["x-forwarded-proto"] == "https"
    count = "sluice_request_duration_seconds_count"
    assert proxy.metric(count, route="to-https") == 1
    assert proxy.metric(count, route="site") == 1


def test_without_listeners_the_redirect_hides_the_site_and_check_says_so(tmp_path, pki):
    # The loop the listeners fix: the redirect route also matches on the TLS listener.
    unscoped = CONFIG.replace("    match: { listeners: [plain] }\n", "")
    text = (unscoped.replace("${port2}", "8443").replace("${port}", "8080")
            .replace("${admin_port}", "9901").replace("${cert}", pki.site["cert_file"])
            .replace("${key}", pki.site["key_file"]).replace("${backend}", "127.0.0.1:9"))
    r = check_config(tmp_path, text)
    assert r.returncode == 0, r.stderr
    assert re.search(r"check\.yaml:11:5: route 'site' can never match: route 'to-https' at "
                     r"line 9 matches every request \(warning\)$", r.stderr, re.M), r.stderr
    # Scoped, the same file checks without a warning.
    r = check_config(tmp_path, text.replace("  - name: to-https\n",
                                            "  - name: to-https\n"
                                            "    match: { listeners: [plain] }\n"))
    assert r.returncode == 0, r.stderr
    assert "warning" not in r.stderr, r.stderr
