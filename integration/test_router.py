"""Routing end to end: match conditions (hosts, path, methods, headers), route order, the three
actions (cluster, respond, redirect), prefix rewrite and the no-route 404, against the real
binary with two named test backends so the answering cluster is visible in the body."""

import subprocess

import pytest


def routes_config(a, b):
    """Two clusters ("a" answers "hello from a", "b" likewise) and a route per feature. Order
    matters: several routes overlap on purpose to prove that the first match wins."""
    return {
        "workers": 1,
        "listeners": [{"name": "main"}],
        "routes": [
            # hosts: exact (port ignored) and wildcard
            {"name": "host-exact", "match": {"hosts": ["api.example.com"]}, "cluster": "a"},
            {"name": "host-wild", "match": {"hosts": ["*.wild.test"]}, "cluster": "b"},
            # path kinds
            {"name": "exact", "match": {"path": {"exact": "/exact"}},
             "respond": {"status": 200, "body": "exact\n"}},
            {"name": "regex", "match": {"path": {"regex": "/items/[0-9]+"}},
             "respond": {"status": 200, "body": "regex\n"}},
            # methods
            {"name": "post-only", "match": {"path": {"prefix": "/m/"}, "methods": ["POST", "PUT"]},
             "respond": {"status": 201, "body": "post\n"}},
            {"name": "m-other", "match": {"path": {"prefix": "/m/"}},
             "respond": {"status": 200, "body": "other-method\n"}},
            # headers: exact, regex, present (all three on separate routes)
            {"name": "hdr-exact",
             "match": {"path": {"prefix": "/h/"}, "headers": [{"name": "X-Env", "exact": "prod"}]},
             "respond": {"status": 200, "body": "hdr-exact\n"}},
            {"name": "hdr-regex",
             "match": {"path": {"prefix": "/h/"},
                       "headers": [{"name": "x-version", "regex": "v[0-9]+"}]},
             "respond": {"status": 200, "body": "hdr-regex\n"}},
            {"name": "hdr-present",
             "match": {"path": {"prefix": "/h/"}, "headers": [{"name": "x-canary", "present": True}]},
             "respond": {"status": 200, "body": "hdr-present\n"}},
            # first match wins: /first/x matches both; the earlier one answers
            {"name": "first", "match": {"path": {"prefix": "/first/"}},
             "respond": {"status": 200, "body": "first\n"}},
            {"name": "first-shadowed", "match": {"path": {"prefix": "/first/x"}},
             "respond": {"status": 200, "body": "second\n"}},
            # respond with status, body and headers
            {"name": "teapot", "match": {"path": {"exact": "/teapot"}},
             "respond": {"status": 418, "body": "short and stout\n",
                         "headers": {"content-type": "text/plain", "x-kind": "teapot"}}},
            # redirect
            {"name": "to-https", "match": {"path": {"prefix": "/old/"}},
             "redirect": {"status": 308, "scheme": "https", "port": 8443}},
            {"name": "moved", "match": {"path": {"exact": "/moved"}},
             "redirect": {"status": 302, "path": "/new", "strip_query": True}},
            # rewrite: /api/echo reaches backend b as /echo
            {"name": "rewrite", "match": {"path": {"prefix": "/api/"}}, "cluster": "b",
             "rewrite": {"prefix": "/"}},
            # plain cluster route for a path prefix; nothing matches "/" itself
            {"name": "to-a", "match": {"path": {"prefix": "/a/"}}, "cluster": "a"},
        ],
        "clusters": [
            {"name": "a", "endpoints": [a.address]},
            {"name": "b", "endpoints": [b.address]},
        ],
    }


@pytest.fixture
def proxy(start_backend, start_sluice):
    a = start_backend("a")
    b = start_backend("b")
    s = start_sluice(routes_config(a, b))
    s.a, s.b = a, b
    return s


def curl(url, *args, timeout=10):
    """One curl request; returns (status, body, response head lowercased)."""
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "5", "-D", "-", "-o", "-", "-w", "\n%{http_code}", *args,
         url], capture_output=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    text, _, code = out.stdout.decode().rpartition("\n")
    head, _, body = text.partition("\r\n\r\n")
    return int(code), body, head.lower()


# ----------------------------------------------------------------------------- hosts


def test_exact_host_matches_with_any_port(proxy):
    for host in ("api.example.com", "api.example.com:8080", "API.Example.COM"):
        r = proxy.get("/", headers={"Host": host})
        assert (r.status, r.text) == (200, "hello from a\n"), host


def test_wildcard_host_matches_subdomains_only(proxy):
    code, body, _ = curl(proxy.url("/"), "-H", "Host: x.wild.test:1234")
    assert (code, body) == (200, "hello from b\n")
    code, body, _ = curl(proxy.url("/"), "-H", "Host: a.b.wild.test")
    assert (code, body) == (200, "hello from b\n")
    # The bare suffix is not covered by "*.wild.test", and no other route matches "/".
    code, _, _ = curl(proxy.url("/"), "-H", "Host: wild.test")
    assert code == 404


# ----------------------------------------------------------------------------- paths


def test_exact_path(proxy):
    assert proxy.get("/exact").text == "exact\n"
    assert proxy.get("/exact?q=1").text == "exact\n"  # the query is not part of the path
    assert proxy.get("/exact/").status == 404
    assert proxy.get("/exactly").status == 404


def test_regex_path_is_a_full_match(proxy):
    assert proxy.get("/items/42").text == "regex\n"
    assert proxy.get("/items/42x").status == 404
    assert proxy.get("/x/items/42").status == 404


def test_prefix_path_routes_to_cluster(proxy):
    r = proxy.get("/a/anything")
    assert (r.status, r.text) == (200, "hello from a\n")


# ----------------------------------------------------------------------------- methods


def test_methods(proxy):
    r = proxy.request("POST", "/m/x", body=b"")
    assert (r.status, r.text) == (201, "post\n")
    r = proxy.request("PUT", "/m/x", body=b"data")
    assert (r.status, r.text) == (201, "post\n")
    r = proxy.get("/m/x")
    assert (r.status, r.text) == (200, "other-method\n")
    code, body, _ = curl(proxy.url("/m/x"), "-X", "DELETE")
    assert (code, body) == (200, "other-method\n")


# ----------------------------------------------------------------------------- headers


def test_header_exact_regex_present(proxy):
    assert proxy.get("/h/", headers={"x-env": "prod"}).text == "hdr-exact\n"
    # exact is case-sensitive on the value; falls through to nothing else that matches
    assert proxy.get("/h/", headers={"x-env": "Prod"}).status == 404
    assert proxy.get("/h/", headers={"X-Version": "v12"}).text == "hdr-regex\n"
    assert proxy.get("/h/", headers={"X-Version": "v12-beta"}).status == 404  # full match
    assert proxy.get("/h/", headers={"x-canary": ""}).text == "hdr-present\n"
    assert proxy.get("/h/", headers={"x-canary": "anything"}).text == "hdr-present\n"
    assert proxy.get("/h/").status == 404


def test_header_match_with_curl(proxy):
    code, body, _ = curl(proxy.url("/h/"), "-H", "x-version: v3")
    assert (code, body) == (200, "hdr-regex\n")


# ----------------------------------------------------------------------------- order


def test_first_match_wins(proxy):
    assert proxy.get("/first/x").text == "first\n"
    assert proxy.get("/first/xyz").text == "first\n"
    # The host route comes first, so a matching Host beats every path route below it.
    r = proxy.get("/exact", headers={"Host": "api.example.com"})
    assert r.text == "hello from a\n"


# ----------------------------------------------------------------------------- actions


def test_respond_status_body_headers(proxy):
    code, body, head = curl(proxy.url("/teapot"))
    assert code == 418
    assert body == "short and stout\n"
    assert "x-kind: teapot" in head
    assert "content-type: text/plain" in head
    assert f"content-length: {len(body)}" in head


def test_redirect(proxy):
    r = proxy.get("/old/page?x=1", headers={"Host": "site.test:8080"})
    assert r.status == 308
    assert r.header("location") == "https://site.test:8443/old/page?x=1"
    code, _, head = curl(proxy.url("/moved?drop=me"), "-H", "Host: site.test")
    assert code == 302
    assert "location: http://site.test/new\r" in head + "\r"


def test_rewrite_prefix_shows_in_backend_echo(proxy):
    r = proxy.get("/api/echo?k=v")
    assert r.status == 200
    echo = r.json()
    assert echo["target"] == "/echo?k=v"
    code, body, _ = curl(proxy.url("/api/echo"))
    assert code == 200 and '"target":"/echo"' in body


def test_no_matching_route_is_404(proxy):
    r = proxy.get("/")
    assert r.status == 404
    code, _, _ = curl(proxy.url("/nothing/here"))
    assert code == 404
    # Neither backend saw these requests: only its own /stats call counts.
    assert proxy.a.stats()["requests"] == 1
