"""The command line: --check (summary or every error as FILE:LINE:COL: message), --version,
--help, running with -c, and refusing to start on a bad config."""

import re
import socket
import subprocess

import pytest

from helpers import basic_config, dump_yaml, free_port, sluice_binary

# One file, six different mistakes; each must be reported at its own line and column.
BAD = """\
workers: 2
drain_timeout: 10
listeners:
  - name: main
    adress: 127.0.0.1:8080
    limits: { max_request_header_bytes: 64KB2 }
  - name: main
    address: 127.0.0.1:99999
routes:
  - name: r
    cluster: apii
clusters:
  - name: api
    endpoints: [127.0.0.1:9001]
"""

EXPECTED = [
    (2, 16, "drain_timeout: invalid duration '10'"),
    (5, 5, "unknown key 'adress' in listener (did you mean 'address'?)"),
    (6, 41, "max_request_header_bytes: invalid size '64KB2'"),
    (7, 11, "duplicate listener name 'main'"),
    (8, 14, "address: invalid address '127.0.0.1:99999'"),
    (11, 14, "cluster: unknown cluster 'apii' (did you mean 'api'?)"),
]

DIAG = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<msg>.*)$")


def run(*args, timeout=20):
    return subprocess.run([str(sluice_binary()), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def diagnostics(stderr):
    out = []
    for line in stderr.splitlines():
        m = DIAG.match(line)
        assert m, f"not FILE:LINE:COL: message: {line!r}"
        out.append((m["file"], int(m["line"]), int(m["col"]), m["msg"]))
    return out


@pytest.fixture
def bad_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    return path


def assert_every_error(stderr, path):
    diags = diagnostics(stderr)
    for line, col, text in EXPECTED:
        hits = [d for d in diags if d[1] == line and d[2] == col and text in d[3]]
        assert hits, f"missing {line}:{col}: {text}\n{stderr}"
        assert hits[0][0] == str(path)


def test_check_valid_file_prints_summary_and_exits_0(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(dump_yaml(basic_config("127.0.0.1:9", listeners=[
        {"name": "main", "address": "127.0.0.1:8080"}])))
    r = run("--check", "-c", path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{path}: ok (1 listener(s), 1 route(s), 1 cluster(s))"
    assert r.stderr == ""


def test_check_reports_every_error_with_position(bad_file):
    r = run("--check", "-c", bad_file)
    assert r.returncode == 1
    assert r.stdout == ""
    assert_every_error(r.stderr, bad_file)


def test_check_of_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    r = run("--check", "-c", path)
    assert r.returncode == 1
    assert str(path) in r.stderr and "No such file" in r.stderr


def test_run_with_bad_config_exits_nonzero_with_errors(bad_file):
    r = run("-c", bad_file)
    assert r.returncode != 0
    assert_every_error(r.stderr, bad_file)


def test_run_with_valid_config_serves(start_backend, start_sluice):
    b = start_backend("a")
    s = start_sluice(basic_config(b, workers=1))
    assert s.get("/").text == "hello from a\n"
    assert s.admin_get("/ready").status == 200


def test_version():
    r = run("--version")
    assert r.returncode == 0
    assert re.fullmatch(r"sluice \d+\.\d+\.\d+\n", r.stdout)


def test_help():
    r = run("--help")
    assert r.returncode == 0
    for text in ("-c FILE", "--check", "--watch", "--version", "SIGHUP", "SIGTERM", "/metrics",
                 "/ready", "docs/configuration.md", "docs/deploy.md"):
        assert text in r.stdout


@pytest.mark.parametrize("args", [[], ["-c"], ["--bogus"], ["--check"]])
def test_usage_errors_exit_2(args):
    r = run(*args)
    assert r.returncode == 2
    assert "usage:" in r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("taken_by", ["listener", "admin"])
def test_bind_failure_exits_nonzero(tmp_path, taken_by):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        free = f"127.0.0.1:{free_port()}"
        path = tmp_path / "busy.yaml"
        path.write_text(dump_yaml(basic_config(
            "127.0.0.1:9", admin={"address": busy if taken_by == "admin" else free},
            listeners=[{"name": "main", "address": free if taken_by == "admin" else busy}])))
        r = run("-c", path)
    assert r.returncode == 1
    assert f"cannot bind {busy}: Address already in use" in r.stderr
    assert "admin: admin:" not in r.stderr


def test_warnings_do_not_fail_check_or_start(tmp_path, start_sluice):
    config = basic_config("127.0.0.1:9", workers=1)
    config["routes"][0]["match"]["methods"] = ["get"]
    path = tmp_path / "warn.yaml"
    path.write_text(dump_yaml(dict(config, listeners=[{"name": "main",
                                                        "address": "127.0.0.1:8080"}])))
    r = run("--check", "-c", path)
    assert r.returncode == 0, r.stderr
    assert re.search(re.escape(str(path)) + r":\d+:\d+: .*'get'.* \(warning\)$", r.stderr,
                     re.M), r.stderr
    s = start_sluice(config)
    assert re.search(r":\d+:\d+: .*'get'.* \(warning\)$", s.stderr_text(), re.M), s.stderr_text()
