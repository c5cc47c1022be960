"""pytest fixtures for sluice integration tests (run with /usr/bin/python3 -m pytest).

Binaries come from $SLUICE_BIN and $SLUICE_BACKEND_BIN (set by ctest), else build/release/...
Every process a test starts is stopped at teardown (SIGTERM, bounded wait, SIGKILL); when a test
fails, the tails of their logs are attached to the report.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Callable

import pytest

import helpers
from helpers import Backend, Sluice

# Exit statuses that count as a clean shutdown after SIGTERM.
_CLEAN_EXITS = (0, -signal.SIGTERM)


@pytest.fixture(scope="session")
def sluice_bin() -> Path:
    try:
        return helpers.sluice_binary()
    except FileNotFoundError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def backend_bin() -> Path:
    try:
        return helpers.backend_binary()
    except FileNotFoundError as e:
        pytest.fail(str(e), pytrace=False)


def _register(request: pytest.FixtureRequest, proc: helpers.Process) -> None:
    request.node.__dict__.setdefault("_sluice_processes", []).append(proc)


@pytest.fixture
def start_backend(request, tmp_path, backend_bin) -> Callable[..., Backend]:
    """Factory: start_backend(name="backend", host="127.0.0.1", port=0) -> Backend."""
    started: list[Backend] = []

    def start(name: str = "backend", host: str = helpers.HOST, port: int = 0,
              timeout: float = helpers.DEFAULT_TIMEOUT) -> Backend:
        b = Backend(tmp_path, name, host, port, timeout, binary=backend_bin)
        started.append(b)
        _register(request, b)
        return b

    yield start
    for b in started:
        b.stop()


@pytest.fixture
def backend(start_backend) -> Backend:
    """One backend named "backend"."""
    return start_backend("backend")


@pytest.fixture
def start_sluice(request, tmp_path, sluice_bin) -> Callable[..., Sluice]:
    """Factory: start_sluice(config, *, name="sluice", args=(), env=None, subst=None,
    wait_ready=True, timeout=10.0) -> Sluice, ready (GET admin /ready == 200) unless
    wait_ready=False.

    At teardown each instance gets SIGTERM and 20 s to exit; the test fails if sluice crashed,
    exited non-zero, or had to be killed. Set `instance.expect_clean_exit = False` in tests
    that kill or break it on purpose."""
    started: list[Sluice] = []

    def start(config, **kw) -> Sluice:
        kw.setdefault("binary", sluice_bin)
        s = helpers.start_sluice(tmp_path, config, **kw)
        s.expect_clean_exit = True
        started.append(s)
        _register(request, s)
        return s

    yield start
    problems = []
    for s in started:
        crashed_before_stop = not s.alive() and not s.stopped
        code, killed = s.stop(timeout=20.0)
        if not s.expect_clean_exit:
            continue
        if killed:
            problems.append(f"{s.name} ignored SIGTERM for 20s and was killed")
        elif crashed_before_stop or code not in _CLEAN_EXITS:
            problems.append(f"{s.name} exited with {code}"
                            f"{' before the test ended' if crashed_before_stop else ''}\n"
                            f"{s.log_tail()}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def sluice_with_backend(start_backend, start_sluice) -> Sluice:
    """A backend named "backend" behind sluice's basic_config; the backend is `.backend`."""
    b = start_backend("backend")
    s = start_sluice(helpers.basic_config(b))
    s.backend = b
    return s


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for proc in item.__dict__.get("_sluice_processes", []):
            report.sections.append((f"logs: {proc.name} (exit {proc.returncode})",
                                    proc.log_tail()))


@pytest.fixture(scope="session")
def redis_bin() -> Path:
    try:
        return helpers.redis_binary()
    except FileNotFoundError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture
def start_redis(request, tmp_path, redis_bin) -> Callable[..., helpers.Redis]:
    """Factory: start_redis(name="redis", port=0) -> Redis, answering PING. Each instance is
    resumed if paused and stopped at teardown."""
    started: list[helpers.Redis] = []

    def start(name: str = "redis", port: int = 0,
              timeout: float = helpers.DEFAULT_TIMEOUT) -> helpers.Redis:
        r = helpers.Redis(tmp_path, name, port, timeout, binary=redis_bin)
        started.append(r)
        _register(request, r)
        return r

    yield start
    for r in started:
        r.stop()
