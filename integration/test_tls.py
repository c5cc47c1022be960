"""TLS termination on a listener: certificates picked by SNI, version floor, ALPN, handshake
timeout and failures (counted, never stalling the worker), certificate reload on SIGHUP, and
config errors for bad files. Clients: Python's ssl module, curl and openssl s_client."""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import time
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from pki import Pki, name
from helpers import HOST, basic_config, check_config, free_port, metric_value, wait_for


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    p = Pki(tmp_path_factory.mktemp("pki"))
    p.default = p.leaf("default", ["default.example.com"])
    p.a = p.leaf("a", ["a.example.com"])
    p.wild = p.leaf("wild", ["*.b.example.com"])
    p.other = p.leaf("other", ["default.example.com", "reloaded.example.com"])
    p.client = p.leaf("client", ["client.example.com"], subject=x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme"),
        x509.NameAttribute(NameOID.COMMON_NAME, "client-1")]))
    p.client_der = p.last_der
    return p


def tls_config(backend, certificates: list[dict], **tls) -> dict:
    config = basic_config(backend)
    config["listeners"][0]["tls"] = {"certificates": certificates, **tls}
    return config


def client_context(pki: Pki, **kw) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def handshake(s, ctx: ssl.SSLContext, server_name: str | None) -> ssl.SSLSocket:
    raw = socket.create_connection((HOST, s.port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname=server_name)


def served_names(s, pki: Pki, server_name: str | None) -> list[str]:
    ctx = client_context(pki)
    ctx.check_hostname = False  # the chain is verified; which names it carries is the point
    with handshake(s, ctx, server_name) as tls:
        der = tls.getpeercert(binary_form=True)
    cert = x509.load_der_x509_certificate(der)
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
        .get_values_for_type(x509.DNSName)


def https_get(s, pki: Pki, path: str = "/", host: str = "default.example.com",
              tls: ssl.SSLSocket | None = None) -> tuple[int, dict, bytes]:
    """One HTTP/1.1 request over TLS (a new connection unless `tls` is given)."""
    own = tls is None
    if own:
        tls = handshake(s, client_context(pki), host)
    tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        assert chunk, "connection closed before the response head"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = tls.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    if own:
        tls.close()
    return status, headers, body


def handshakes(s, result: str) -> float:
    return metric_value(s.metrics(), "sluice_tls_handshakes_total", listener="main",
                        result=result) or 0.0


# ----------------------------------------------------------------------------- serving


def test_https_request_is_proxied_with_forwarded_proto(backend, start_sluice, pki):
    s = start_sluice(tls_config(backend, [pki.default]))
    status, headers, body = https_get(s, pki, "/echo")
    assert status == 200
    echoed = {k.lower(): v for k, v in json.loads(body)["headers"]}
    assert echoed["x-forwarded-proto"] == "https"
    assert echoed["host"] == "default.example.com"
    assert handshakes(s, "success") == 1


def test_sni_picks_the_certificate_byname(backend, start_sluice, pki):
    s = start_sluice(tls_config(backend, [pki.default, pki.a, pki.wild]))
    assert served_names(s, pki, "a.example.com") == ["a.example.com"]
    assert served_names(s, pki, "A.Example.COM") == ["a.example.com"]  # case-insensitive
    assert served_names(s, pki, "x.b.example.com") == ["*.b.example.com"]
    # A wildcard covers one label only; unknown names and no SNI get the first certificate.
    ctx = client_context(pki)
    ctx.check_hostname = False
    with handshake(s, ctx, "x.y.b.example.com") as tls:
        der = tls.getpeercert(binary_form=True)
    assert x509.load_der_x509_certificate(der).subject == name("default.example.com")
    assert served_names(s, pki, "unknown.example.org") == ["default.example.com"]
    assert served_names(s, pki, None) == ["default.example.com"]


def test_keep_alive_and_large_bodies_over_tls(backend, start_sluice, pki):
    s = start_sluice(tls_config(backend, [pki.default]))
    with handshake(s, client_context(pki), "default.example.com") as tls:
        for _ in range(5):
            status, _, body = https_get(s, pki, "/bytes/3000000", tls=tls)
            assert status == 200 and len(body) == 3_000_000
    assert handshakes(s, "success") == 1  # five requests, one handshake


def test_curl_over_tls_12_and_13(backend, start_sluice, pki):
    s = start_sluice(tls_config(backend, [pki.default]))
    for version, flags in (("TLSv1.2", ["--tlsv1.2", "--tls-max", "1.2"]),
                           ("TLSv1.3", ["--tlsv1.3"])):
        out = subprocess.run(
            ["curl", "-sS", "-v", "--http1.1", *flags, "--cacert", str(pki.ca_file),
             "--resolve", f"default.example.com:{s.port}:{HOST}", "-o", "/dev/null",
             "-w", "%{http_code}", f"https://default.example.com:{s.port}/"],
            capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout == "200"
        assert f"SSL connection using {version}" in out.stderr
        assert "ALPN: server accepted http/1.1" in out.stderr


def test_alpn_prefers_h2_then_http11(backend, start_sluice, pki):
    s = start_sluice(tls_config(backend, [pki.default]))
    for offered, selected in ((["h2", "http/1.1"], "h2"), (["http/1.1", "h2"], "h2"),
                              (["http/1.1"], "http/1.1")):
        ctx = client_context(pki)
        ctx.set_alpn_protocols(offered)
        with handshake(s, ctx, "default.example.com") as tls:
            assert tls.selected_alpn_protocol() == selected, offered


def test_alpn_configured_http11_only(backend, start_sluice, pki):
    s = start_sluice(tls_config(backend, [pki.default], alpn=["http/1.1"]))
    ctx = client_context(pki)
    ctx.set_alpn_protocols(["h2"])  # nothing in common: no ALPN, HTTP/1.1 still served
    with handshake(s, ctx, "default.example.com") as tls:
        assert tls.selected_alpn_protocol() is None
        assert https_get(s, pki, "/", tls=tls)[0] == 200


def test_min_version_13_refuses_a_tls12_client(backend, start_sluice, pki):
    s = start_sluice(tls_config(backend, [pki.default], min_version="1.3"))
    ctx = client_context(pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ssl.SSLError):
        handshake(s, ctx, "default.example.com")
    wait_for(lambda: handshakes(s, "failure") == 1)
    ctx = client_context(pki, minimum_version=ssl.TLSVersion.TLSv1_3)
    with handshake(s, ctx, "default.example.com") as tls:
        assert tls.version() == "TLSv1.3"


def test_openssl_s_client_sees_sni_certificate_and_alpn(backend, start_sluice, pki):
    s = start_sluice(tls_config(backend, [pki.default, pki.a]))
    for server_name, alpn, cn, selected in (("a.example.com", "h2,http/1.1", "a.example.com", "h2"),
                                            ("other.example", "http/1.1", "default.example.com",
                                             "http/1.1")):
        out = subprocess.run(
            ["openssl", "s_client", "-connect", f"{HOST}:{s.port}", "-servername", server_name,
             "-alpn", alpn, "-CAfile", str(pki.ca_file), "-verify_return_error"],
            input="", capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert f"subject=CN = {cn}" in out.stdout
        assert f"ALPN protocol: {selected}" in out.stdout
        assert "Verify return code: 0 (ok)" in out.stdout


def test_tls_11_is_refused_by_the_server(backend, start_sluice, pki):
    s = start_sluice(tls_config(backend, [pki.default]))
    # SECLEVEL=0 lets the client offer TLS 1.1, so the refusal is the server's.
    out = subprocess.run(
        ["openssl", "s_client", "-connect", f"{HOST}:{s.port}", "-tls1_1",
         "-cipher", "DEFAULT@SECLEVEL=0", "-servername", "default.example.com"],
        input="", capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "Cipher is (NONE)" in out.stdout or "alert" in out.stderr
    wait_for(lambda: handshakes(s, "failure") == 1)
    assert https_get(s, pki)[0] == 200


def test_garbage_instead_of_a_hello_is_a_failed_handshake(backend, start_sluice, pki):
    s = start_sluice(tls_config(backend, [pki.default]))
    with socket.create_connection((HOST, s.port), timeout=10) as c:
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        c.settimeout(10)
        data = c.recv(4096)
        while data:  # an alert, then the close; never an HTTP response
            assert b"HTTP/1.1" not in data
            data = c.recv(4096)
    wait_for(lambda: handshakes(s, "failure") == 1)
    assert https_get(s, pki)[0] == 200
    assert backend.stats()["requests"] == 2  # only the good request (and this /stats)


def test_handshake_timeout_closes_a_silent_client(backend, start_sluice, pki):
    s = start_sluice(tls_config(backend, [pki.default], handshake_timeout="300ms"))
    with socket.create_connection((HOST, s.port), timeout=10) as silent:
        # Meanwhile others are served.
        assert https_get(s, pki)[0] == 200
        silent.settimeout(10)
        started = time.monotonic()
        assert silent.recv(1) == b""  # closed by sluice
        assert time.monotonic() - started < 8
    assert handshakes(s, "timeout") == 1
    assert handshakes(s, "success") == 1


def test_handshake_metrics_pass_promtool(backend, start_sluice, pki):
    s = start_sluice(tls_config(backend, [pki.default]))
    https_get(s, pki)
    text = s.metrics()
    assert 'sluice_tls_handshakes_total{listener="main",result="success"} 1' in text
    out = subprocess.run(["/usr/bin/promtool", "check", "metrics"], input=text,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr


def test_reload_swaps_certificates_and_keeps_open_connections(backend, start_sluice, pki):
    s = start_sluice(tls_config(backend, [pki.default]))
    old = handshake(s, client_context(pki), "default.example.com")
    assert https_get(s, pki, tls=old)[0] == 200
    s.write_config(tls_config(backend, [pki.other]))
    s.signal(signal.SIGHUP)
    wait_for(lambda: metric_value(s.metrics(), "sluice_config_reloads_total",
                                  result="success") == 1)
    assert served_names(s, pki, "default.example.com") == ["default.example.com",
                                                           "reloaded.example.com"]
    assert https_get(s, pki, tls=old)[0] == 200  # the connection from before goes on
    old.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_sessions_resume_also_across_a_reload(backend, start_sluice, pki, version):
    s = start_sluice(tls_config(backend, [pki.default]))
    ctx = client_context(pki, minimum_version=version, maximum_version=version)

    def connect(session=None) -> tuple[ssl.SSLSession, bool]:
        raw = socket.create_connection((HOST, s.port), timeout=10)
        with ctx.wrap_socket(raw, server_hostname="default.example.com",
                             session=session) as tls:
            assert https_get(s, pki, tls=tls)[0] == 200  # TLS 1.3 tickets come after data
            return tls.session, tls.session_reused

    session, reused = connect()
    assert not reused
    session, reused = connect(session)
    assert reused
    s.write_config(tls_config(backend, [pki.default], handshake_timeout="9s"))
    s.signal(signal.SIGHUP)
    wait_for(lambda: metric_value(s.metrics(), "sluice_config_reloads_total",
                                  result="success") == 1)
    # New contexts, same ticket keys: a ticket from before the reload still resumes (TLS 1.2
    # without a ticket would need the old context's session cache).
    _, reused = connect(session)
    assert reused


# ----------------------------------------------------------------------------- client certificates


def echoed_headers(s, pki: Pki, ctx: ssl.SSLContext, extra: str = "") -> dict:
    with handshake(s, ctx, "default.example.com") as tls:
        tls.sendall(f"GET /echo HTTP/1.1\r\nHost: default.example.com\r\n{extra}"
                    "Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200"), head
    return {k.lower(): v for k, v in json.loads(body)["headers"]}


def with_client_cert(pki: Pki, cert: dict) -> ssl.SSLContext:
    ctx = client_context(pki)
    ctx.load_cert_chain(cert["cert_file"], cert["key_file"])
    return ctx


def test_client_certificate_required(backend, start_sluice, pki):
    s = start_sluice(tls_config(backend, [pki.default],
                                client_auth={"ca_file": str(pki.ca_file), "mode": "require"}))
    h = echoed_headers(s, pki, with_client_cert(pki, pki.client),
                       extra="X-Forwarded-Client-Cert: Subject=\"CN=forged\"\r\n")
    digest = hashes.Hash(hashes.SHA256())
    digest.update(pki.client_der)
    assert h["x-forwarded-client-cert"] == \
        f'Hash={digest.finalize().hex()};Subject="CN=client-1,O=Acme"'
    # Without a certificate the handshake is refused (TLS 1.3 reports it at the first read).
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        echoed_headers(s, pki, client_context(pki))
    wait_for(lambda: handshakes(s, "failure") >= 1)


def test_client_certificate_optional_and_spoofing_stripped(backend, start_sluice, pki):
    s = start_sluice(tls_config(backend, [pki.default],
                                client_auth={"ca_file": str(pki.ca_file), "mode": "optional"}))
    h = echoed_headers(s, pki, client_context(pki),
                       extra="X-Forwarded-Client-Cert: Hash=00;Subject=\"CN=forged\"\r\n")
    assert "x-forwarded-client-cert" not in h
    h = echoed_headers(s, pki, with_client_cert(pki, pki.client))
    assert 'Subject="CN=client-1,O=Acme"' in h["x-forwarded-client-cert"]
    # A certificate from another CA is refused even when one is optional.
    stranger = Pki(pki.dir, ca_stem="stranger-ca")  # its leaves do not chain to pki's CA
    bad = stranger.leaf("stranger", ["stranger.example.com"])
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        echoed_headers(s, pki, with_client_cert(pki, bad))


def test_forged_client_cert_header_is_stripped_on_plaintext(backend, start_sluice):
    s = start_sluice(basic_config(backend))
    r = s.get("/echo", headers={"X-Forwarded-Client-Cert": 'Subject="CN=forged"'})
    assert r.status == 200
    assert "x-forwarded-client-cert" not in {k.lower() for k, _ in r.json()["headers"]}


# ----------------------------------------------------------------------------- config errors


def diagnostics(out: subprocess.CompletedProcess) -> str:
    return out.stdout + out.stderr


def test_bad_certificate_files_are_config_errors(tmp_path, backend, pki):
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    config = f"""\
listeners:
  - name: main
    address: 127.0.0.1:{free_port()}
    tls:
      certificates:
        - {{ cert_file: missing.crt, key_file: {pki.a['key_file']} }}
        - {{ cert_file: garbage.pem, key_file: {pki.a['key_file']} }}
        - {{ cert_file: {pki.a['cert_file']}, key_file: {pki.wild['key_file']} }}
      min_version: "1.1"
routes: [{{ name: r, cluster: c }}]
clusters: [{{ name: c, endpoints: ["{backend.address}"] }}]
"""
    path = tmp_path / "bad.yaml"
    path.write_text(config)
    out = check_config(tmp_path, path)
    assert out.returncode == 1
    text = diagnostics(out)
    assert f"{path}:6:24: cert_file: cannot read {tmp_path}/missing.crt: No such file" in text
    assert f"{path}:7:24: cert_file: {tmp_path}/garbage.pem is not a PEM certificate" in text
    line8 = config.splitlines()[7]
    col = line8.index("key_file: ") + len("key_file: ") + 1
    assert f"{path}:8:{col}: key_file: {pki.wild['key_file']} does not match the certificate" \
        f" in {pki.a['cert_file']}" in text
    assert f"{path}:9:20: min_version: '1.1' is not supported" in text


def test_expired_certificate_is_a_warning(tmp_path, backend, pki):
    expired = pki.leaf("expired", ["old.example.com"], expired=True)
    config = tls_config(backend, [expired])
    config["listeners"][0]["address"] = f"127.0.0.1:{free_port()}"
    out = check_config(tmp_path, config)
    assert out.returncode == 0, diagnostics(out)
    assert "expired on" in diagnostics(out)
