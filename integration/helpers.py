"""Helpers for sluice integration tests: processes, ports, HTTP clients, raw sockets.

Everything here is bounded: every wait takes a timeout and raises when it expires. Fixtures that
wrap these live in conftest.py; tests import the rest with `from helpers import ...`.
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import re
import signal
import socket
import string
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TIMEOUT = 10.0
HOST = "127.0.0.1"


# --------------------------------------------------------------------------- binaries and ports


def find_binary(env_var: str, candidates: Iterable[str]) -> Path:
    """Returns the binary named by $env_var, else the first existing candidate under the repo."""
    value = os.environ.get(env_var)
    if value:
        path = Path(value)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise FileNotFoundError(f"${env_var}={value} is not an executable file")
        return path
    for rel in candidates:
        path = REPO_ROOT / rel
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError(
        f"set ${env_var} or build one of: {', '.join(str(REPO_ROOT / c) for c in candidates)}")


def sluice_binary() -> Path:
    return find_binary("SLUICE_BIN", ["build/release/proxy/sluice", "build/debug/proxy/sluice"])


def backend_binary() -> Path:
    return find_binary("SLUICE_BACKEND_BIN", [
        "build/release/integration/backend/sluice_test_backend",
        "build/debug/integration/backend/sluice_test_backend",
    ])


def free_port(host: str = HOST) -> int:
    """A port that was free a moment ago (bind to 0, read it, close). Racy by nature; the
    sluice starter retries on 'address in use'."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT,
             interval: float = 0.02, what: str = "condition") -> Any:
    """Polls predicate until it returns a truthy value, which is returned; raises TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- processes


def unique_name(log_dir: Path, name: str, suffix: str) -> str:
    """name, or name-2, name-3... so two processes of one test never share log files."""
    base, n = name, 1
    while (Path(log_dir) / f"{name}{suffix}").exists():
        n += 1
        name = f"{base}-{n}"
    return name


class Process:
    """A child process whose stdout/stderr go to files in log_dir (readable while it runs).
    `stdout`, a file descriptor, replaces the stdout file (stdout_text() is then empty)."""

    def __init__(self, args: list[str], log_dir: Path, name: str,
                 env: Optional[dict[str, str]] = None, stdout: Optional[int] = None):
        self.args = [str(a) for a in args]
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.name = name = unique_name(log_dir, name, ".stdout")
        self.stdout_path = log_dir / f"{name}.stdout"
        self.stderr_path = log_dir / f"{name}.stderr"
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                         stdout=out if stdout is None else stdout, stderr=err,
                                         env=full_env)
        self.stopped = False  # set once stop() was asked for, to tell crashes from shutdowns

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> Optional[int]:
        return self.proc.poll()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stdout_text(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def log_tail(self, limit: int = 4000) -> str:
        return (f"--- {self.name} stdout (tail) ---\n{self.stdout_text()[-limit:]}\n"
                f"--- {self.name} stderr (tail) ---\n{self.stderr_text()[-limit:]}")

    def signal(self, sig: int) -> None:
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Waits for exit; raises subprocess.TimeoutExpired."""
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, bool]:
        """SIGTERM, wait up to timeout, then SIGKILL. Returns (returncode, needed_kill)."""
        self.stopped = True
        if not self.alive():
            return self.proc.returncode, False
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout), False
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=DEFAULT_TIMEOUT), True


class Backend(Process):
    """A running sluice_test_backend. See integration/backend/test_backend.cc for its paths."""

    def __init__(self, log_dir: Path, name: str = "backend", host: str = HOST, port: int = 0,
                 timeout: float = DEFAULT_TIMEOUT, binary: Optional[Path] = None):
        binary = binary or backend_binary()
        super().__init__([binary, "--port", port, "--host", host, "--name", name], log_dir,
                         f"backend-{name}")
        self.backend_name = name
        self.host = host

        def listening() -> Optional[int]:
            if not self.alive():
                raise RuntimeError(f"backend {name} exited early\n{self.log_tail()}")
            m = re.match(r"listening on (\d+)\n", self.stdout_text())
            return int(m.group(1)) if m else None

        try:
            self.port: int = wait_for(listening, timeout, what=f"backend {name} to listen")
        except BaseException:
            self.stop()
            raise

    @property
    def address(self) -> str:
        """"HOST:PORT", as a cluster endpoint."""
        return f"{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def stats(self) -> dict:
        """{"connections_accepted", "connections_active", "requests" (heads read),
        "requests_complete" (bodies read to the end)}; counts this request too."""
        return http_request("GET", self.url("/stats")).json()


def fill_ports(config: dict, ports: Optional[dict] = None) -> tuple[dict, int, dict[str, int]]:
    """Returns (config copy, admin_port, {listener name: port}) with the admin address and every
    listener address that is missing or ends in ':0' set to a free loopback port. `ports` (from a
    previous call) is reused so a rewritten config keeps its ports."""
    config = copy.deepcopy(config)
    ports = ports or {}
    taken: set[int] = set(ports.values())

    def fresh_port() -> int:
        # free_port() may hand out the same port twice in a row: the kernel reuses it.
        while True:
            port = free_port()
            if port not in taken:
                taken.add(port)
                return port

    admin = config.setdefault("admin", {})
    address = admin.get("address")
    if address is None or str(address).endswith(":0"):
        admin_port = ports.get("__admin__") or fresh_port()
        admin["address"] = f"{HOST}:{admin_port}"
    else:
        admin_port = int(str(address).rsplit(":", 1)[1])
    listener_ports: dict[str, int] = {}
    for i, listener in enumerate(config.get("listeners") or []):
        key = str(listener.get("name", i))
        address = listener.get("address")
        if address is None or str(address).endswith(":0"):
            port = ports.get(key) or fresh_port()
            listener["address"] = f"{HOST}:{port}"
        else:
            port = int(str(address).rsplit(":", 1)[1])
        listener_ports[key] = port
    return config, admin_port, listener_ports


def dump_yaml(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


class Sluice(Process):
    """A running `sluice -c FILE`.

    config is a dict (admin and listener addresses filled in by fill_ports) or YAML text in which
    ${admin_port}, ${port}, ${port2}, ${port3} and any key of `subst` are replaced
    (string.Template.safe_substitute, so a regex `$` is left alone). The config is written to
    `config_path` (default: log_dir/NAME.yaml); `stdout` as for Process."""

    def __init__(self, log_dir: Path, config: Union[dict, str], *, name: str = "sluice",
                 args: Iterable[str] = (), env: Optional[dict[str, str]] = None,
                 subst: Optional[dict[str, Any]] = None, wait_ready: bool = True,
                 timeout: float = DEFAULT_TIMEOUT, binary: Optional[Path] = None,
                 config_path: Optional[Path] = None, stdout: Optional[int] = None):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        name = unique_name(self.log_dir, name, ".yaml")
        self.config_path = Path(config_path) if config_path else self.log_dir / f"{name}.yaml"
        self.subst = dict(subst or {})
        self._port_memo: dict[str, int] = {}
        self.admin_port = 0
        self.ports: dict[str, int] = {}  # listener name (or index) -> port
        self.config: Union[dict, str] = config
        self.write_config(config)
        binary = binary or sluice_binary()
        super().__init__([binary, "-c", self.config_path, *args], self.log_dir, name, env,
                         stdout)
        if wait_ready:
            try:
                self.wait_ready(timeout)
            except BaseException:
                self.stop()
                raise

    # -- config

    def render_config(self, config: Union[dict, str]) -> str:
        """The YAML text write_config would write; ports chosen earlier are kept."""
        if isinstance(config, dict):
            filled, self.admin_port, self.ports = fill_ports(
                config, {**self._port_memo, "__admin__": self.admin_port or None})
            self._port_memo.update(self.ports)
            self.config = filled
            text = dump_yaml(filled)
        else:
            for key in ("admin_port", "port", "port2", "port3"):
                self._port_memo.setdefault(key, free_port())
            self.admin_port = self._port_memo["admin_port"]
            self.ports = {k: self._port_memo[k] for k in ("port", "port2", "port3")}
            self.config = config
            text = string.Template(config).safe_substitute({**self._port_memo, **self.subst})
        return text

    def write_config(self, config: Union[dict, str]) -> Path:
        """(Re)writes the config file; ports chosen earlier are kept. Does not signal sluice."""
        text = self.render_config(config)
        self.config_path.write_text(text)
        return self.config_path

    # -- addresses

    @property
    def port(self) -> int:
        """Port of the first listener."""
        return next(iter(self.ports.values()))

    def listener_port(self, listener: Optional[str] = None) -> int:
        return self.port if listener is None else self.ports[listener]

    def address(self, listener: Optional[str] = None) -> str:
        return f"{HOST}:{self.listener_port(listener)}"

    def url(self, path: str = "/", listener: Optional[str] = None) -> str:
        return f"http://{HOST}:{self.listener_port(listener)}{path}"

    def admin_url(self, path: str = "/") -> str:
        return f"http://{HOST}:{self.admin_port}{path}"

    # -- requests

    def request(self, method: str, path: str = "/", **kw) -> "Response":
        """http_request against a listener; kw: headers, body, timeout, listener."""
        listener = kw.pop("listener", None)
        return http_request(method, self.url(path, listener), **kw)

    def get(self, path: str = "/", **kw) -> "Response":
        return self.request("GET", path, **kw)

    def admin_get(self, path: str, **kw) -> "Response":
        return http_request("GET", self.admin_url(path), **kw)

    def connection(self, listener: Optional[str] = None,
                   timeout: float = DEFAULT_TIMEOUT) -> http.client.HTTPConnection:
        """A keep-alive http.client connection to a listener (caller closes it)."""
        return http.client.HTTPConnection(HOST, self.listener_port(listener), timeout=timeout)

    def raw(self, listener: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT) -> "RawConn":
        return RawConn(self.listener_port(listener), timeout=timeout)

    def metrics(self) -> str:
        r = self.admin_get("/metrics")
        if r.status != 200:
            raise AssertionError(f"/metrics returned {r.status}: {r.text[:200]}")
        return r.text

    def metric(self, name: str, **labels: str) -> Optional[float]:
        """Sum of the samples of `name` whose labels include `labels`; None if none match."""
        return metric_value(self.metrics(), name, **labels)

    # -- lifecycle

    def ready(self) -> bool:
        try:
            return self.admin_get("/ready", timeout=1.0).status == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        def check() -> bool:
            if not self.alive():
                raise SluiceExited(self)
            return self.ready()

        try:
            wait_for(check, timeout, interval=0.05, what=f"{self.admin_url('/ready')} to be 200")
        except TimeoutError as e:
            raise TimeoutError(f"{e}\n{self.log_tail()}") from None


class SluiceExited(RuntimeError):
    def __init__(self, proc: Process):
        self.proc = proc
        super().__init__(f"sluice exited with {proc.returncode} before it was ready\n"
                         f"{proc.log_tail()}")

    @property
    def address_in_use(self) -> bool:
        text = self.proc.stderr_text() + self.proc.stdout_text()
        return "in use" in text.lower()


def start_sluice(log_dir: Path, config: Union[dict, str], **kw) -> Sluice:
    """Starts sluice and waits for /ready. Retries (3 attempts) when a port picked for it was
    taken in the meantime, which free_port cannot rule out."""
    for attempt in range(3):
        try:
            return Sluice(log_dir, config, **kw)
        except SluiceExited as e:
            if not e.address_in_use or attempt == 2:
                raise
    raise AssertionError("unreachable")


def check_config(log_dir: Path, config: Union[dict, str, Path],
                 timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Runs `sluice --check -c FILE`. A dict is dumped as YAML; a str is YAML text; a Path is
    used as is. Returns the CompletedProcess (text stdout/stderr)."""
    if isinstance(config, Path):
        path = config
    else:
        path = Path(log_dir) / "check.yaml"
        path.write_text(dump_yaml(config) if isinstance(config, dict) else config)
    return subprocess.run([str(sluice_binary()), "--check", "-c", str(path)],
                          capture_output=True, text=True, timeout=timeout)


def basic_config(*endpoints: Union[str, Backend], cluster: str = "default",
                 **top_level: Any) -> dict:
    """One listener ("main"), one catch-all route to one cluster of `endpoints`. Extra keyword
    arguments become top-level keys (e.g. access_log={"path": "off"}), replacing defaults."""
    config: dict[str, Any] = {
        "listeners": [{"name": "main"}],
        "routes": [{"name": "default", "match": {"path": {"prefix": "/"}}, "cluster": cluster}],
        "clusters": [{
            "name": cluster,
            "endpoints": [e.address if isinstance(e, Backend) else e for e in endpoints],
        }],
    }
    config.update(top_level)
    return config


# --------------------------------------------------------------------------- HTTP client


def _header(headers: list[tuple[str, str]], name: str, default: Optional[str]) -> Optional[str]:
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return default


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]  # in received order, names as received
    body: bytes
    version: str = "HTTP/1.1"

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """First value of a header, case-insensitively."""
        return _header(self.headers, name, default)

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


def http_request(method: str, url: str, headers: Optional[Union[dict, list]] = None,
                 body: Optional[Union[bytes, str, Iterable[bytes]]] = None,
                 timeout: float = DEFAULT_TIMEOUT) -> Response:
    """One request on a fresh connection with http.client: never follows redirects, never raises
    on an HTTP status. `url` is http://host:port/path. An iterable body is sent chunked."""
    m = re.match(r"http://([^/:]+|\[[^\]]+\]):(\d+)(/.*)?$", url)
    if not m:
        raise ValueError(f"unsupported url {url}")
    host, port, path = m.group(1).strip("[]"), int(m.group(2)), m.group(3) or "/"
    # A list of pairs keeps duplicates and order, which a dict cannot.
    items = list(headers.items() if isinstance(headers, dict) else (headers or []))
    names = {k.lower() for k, _ in items}
    if isinstance(body, str):
        body = body.encode()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host="host" in names, skip_accept_encoding=True)
        for k, v in items:
            conn.putheader(k, v)
        chunked = body is not None and not isinstance(body, (bytes, bytearray))
        if chunked:
            if "transfer-encoding" not in names:
                conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders(body, encode_chunked=True)
        else:
            if "content-length" not in names and (body or method in ("POST", "PUT", "PATCH")):
                conn.putheader("Content-Length", str(len(body or b"")))
            conn.endheaders(body or None)
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, resp.reason, list(resp.getheaders()), data,
                        "HTTP/1.1" if resp.version == 11 else "HTTP/1.0")
    finally:
        conn.close()


def http_get(url: str, **kw) -> Response:
    return http_request("GET", url, **kw)


def metric_value(text: str, name: str, **labels: str) -> Optional[float]:
    """Sums Prometheus samples named exactly `name` whose labels include `labels`."""
    total, found = 0.0, False
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
            found = True
    return total if found else None


# --------------------------------------------------------------------------- raw sockets


class IncompleteResponse(Exception):
    """The peer stopped before a whole response arrived. why: "eof", "reset" or "timeout"."""

    def __init__(self, why: str, partial: bytes):
        super().__init__(f"incomplete response ({why}) after {len(partial)} bytes: "
                         f"{partial[:200]!r}")
        self.why = why
        self.partial = partial


@dataclass
class RawResponse:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""  # de-chunked
    raw: bytes = b""  # exactly the bytes of this response on the wire
    chunked: bool = False
    trailers: list[tuple[str, str]] = field(default_factory=list)
    interim: list["RawResponse"] = field(default_factory=list)  # skipped 1xx responses

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        return _header(self.headers, name, default)

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def parse_status_line(line: Union[bytes, str]) -> tuple[str, int, str]:
    """b"HTTP/1.1 200 OK..." -> ("HTTP/1.1", 200, "OK"); only the first line is looked at."""
    if isinstance(line, bytes):
        line = line.split(b"\r\n", 1)[0].decode("latin-1")
    else:
        line = line.split("\r\n", 1)[0]
    m = re.match(r"(HTTP/\d\.\d) (\d{3})(?: (.*))?$", line)
    if not m:
        raise ValueError(f"not a status line: {line[:100]!r}")
    return m.group(1), int(m.group(2)), m.group(3) or ""


class _Reader:
    """Pulls bytes from `fill` (returns b"" at EOF, may raise) into a buffer."""

    def __init__(self, fill: Callable[[], bytes], buf: bytes = b""):
        self.fill = fill
        self.buf = buf
        self.taken = bytearray()  # bytes consumed by the response being read

    def _more(self) -> None:
        try:
            data = self.fill()
        except (ConnectionResetError, BrokenPipeError):
            raise IncompleteResponse("reset", bytes(self.taken) + self.buf) from None
        except (socket.timeout, TimeoutError):
            raise IncompleteResponse("timeout", bytes(self.taken) + self.buf) from None
        if not data:
            raise IncompleteResponse("eof", bytes(self.taken) + self.buf)
        self.buf += data

    def take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        self.taken += out
        return out

    def take_until(self, sep: bytes, limit: int = 1 << 20) -> bytes:
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                return self.take(i + len(sep))
            if len(self.buf) > limit:
                raise ValueError(f"no {sep!r} within {limit} bytes")
            self._more()

    def take_rest(self) -> bytes:
        while True:
            try:
                self._more()
            except IncompleteResponse as e:
                if e.why != "eof":
                    raise
                return self.take(len(self.buf))


def _parse_headers(block: bytes) -> list[tuple[str, str]]:
    headers = []
    for line in block.decode("latin-1").split("\r\n"):
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name, value.strip(" \t")))
    return headers


def _read_one(r: _Reader, head_request: bool, skip_interim: bool) -> RawResponse:
    interim: list[RawResponse] = []
    while True:
        r.taken = bytearray()
        head = r.take_until(b"\r\n\r\n")
        version, status, reason = parse_status_line(head)
        headers = _parse_headers(head.split(b"\r\n", 1)[1])
        resp = RawResponse(version, status, reason, headers)
        if 100 <= status < 200 and status != 101:
            resp.raw = bytes(r.taken)
            if skip_interim:
                interim.append(resp)
                continue
            return resp
        break
    resp.interim = interim
    te = (resp.header("transfer-encoding") or "").lower()
    length = resp.header("content-length")
    if head_request or status in (101, 204, 304):
        pass
    elif "chunked" in te:
        resp.chunked = True
        body = bytearray()
        while True:
            size_line = r.take_until(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (line := r.take_until(b"\r\n")) != b"\r\n":
                    resp.trailers += _parse_headers(line)
                break
            body += r.take(size)
            if r.take(2) != b"\r\n":
                raise ValueError("chunk not followed by CRLF")
        resp.body = bytes(body)
    elif length is not None:
        resp.body = r.take(int(length))
    else:
        resp.body = r.take_rest()
    resp.raw = bytes(r.taken)
    return resp


def parse_response(data: bytes, head_request: bool = False,
                   skip_interim: bool = True) -> RawResponse:
    """Parses the first complete response in `data` (as if the peer closed after it). Raises
    IncompleteResponse("eof") if it is cut short."""
    r = _Reader(lambda: b"", data)
    return _read_one(r, head_request, skip_interim)


class RawConn:
    """A plain TCP connection for exact-bytes tests: pipelining, malformed requests, aborts."""

    def __init__(self, port: int, host: str = HOST, timeout: float = DEFAULT_TIMEOUT):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = b""

    def __enter__(self) -> "RawConn":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, data: Union[bytes, str]) -> None:
        self.sock.sendall(data.encode("latin-1") if isinstance(data, str) else data)

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def _recv(self, timeout: Optional[float]) -> bytes:
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        return self.sock.recv(65536)

    def read_response(self, head_request: bool = False, skip_interim: bool = True,
                      timeout: Optional[float] = None) -> RawResponse:
        """Reads exactly one response (framing per RFC 9112: HEAD/1xx/204/304 bodiless, chunked,
        Content-Length, else until close); bytes after it stay buffered for the next call.
        Raises IncompleteResponse when the peer closes, resets or times out mid-response.
        `timeout` bounds each recv."""
        r = _Reader(lambda: self._recv(timeout), self._buf)
        try:
            return _read_one(r, head_request, skip_interim)
        finally:
            self._buf = r.buf

    def read_until_close(self, timeout: Optional[float] = None) -> bytes:
        """Everything (buffered + new) until EOF, RST or timeout (overall, not per recv)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        data, self._buf = self._buf, b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return data
            try:
                chunk = self._recv(left)
            except (socket.timeout, TimeoutError, ConnectionResetError):
                return data
            if not chunk:
                return data
            data += chunk

    def peer_closed(self, timeout: float = 1.0) -> bool:
        """True if the peer closes (EOF or RST) within timeout. Data arriving first is an error:
        it means the test misread the protocol state."""
        try:
            chunk = self._buf or self._recv(timeout)
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True
        if chunk:
            raise AssertionError(f"expected close, got data: {chunk[:200]!r}")
        return True

    def close(self) -> None:
        self.sock.close()


def raw_request(port: int, data: Union[bytes, str], host: str = HOST,
                timeout: float = 5.0, half_close: bool = False) -> bytes:
    """Sends `data` on a new connection and returns all bytes received until the peer closes
    or `timeout` (overall) passes. half_close sends FIN after the data."""
    with RawConn(port, host, timeout) as c:
        c.send(data)
        if half_close:
            c.shutdown_write()
        return c.read_until_close(timeout)


def request_bytes(method: str = "GET", path: str = "/", headers: Optional[list] = None,
                  body: bytes = b"", host: str = "example.test", version: str = "HTTP/1.1",
                  content_length: bool = True) -> bytes:
    """Builds a request: Host first, then headers (list of pairs), then Content-Length if body."""
    lines = [f"{method} {path} {version}", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in (headers or [])]
    if body and content_length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# --------------------------------------------------------------------------- redis-server


def redis_binary() -> Path:
    """$SLUICE_REDIS_BIN, else redis-server on $PATH, else /usr/bin/redis-server."""
    import shutil

    value = os.environ.get("SLUICE_REDIS_BIN") or shutil.which("redis-server")
    path = Path(value or "/usr/bin/redis-server")
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise FileNotFoundError(f"no redis-server at {path} (set $SLUICE_REDIS_BIN)")
    return path


class RedisError(Exception):
    """An error reply (-ERR ...) from Redis."""


def _read_resp(f) -> Any:
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise IncompleteResponse("eof", line)
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        if len(data) != n + 2:
            raise IncompleteResponse("eof", data)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_resp(f) for _ in range(n)]
    raise ValueError(f"not RESP: {line[:100]!r}")


def redis_command(port: int, *args: Union[str, bytes, int], host: str = HOST,
                  timeout: float = 2.0) -> Any:
    """Sends one command on a fresh connection and returns its reply: str (status), int, bytes
    or None (bulk), list (array). Raises RedisError for an error reply and OSError (a timeout
    included) when Redis does not answer within `timeout`."""
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"".join(out))
        with sock.makefile("rb") as f:
            return _read_resp(f)


class Redis:
    """A redis-server on a loopback port with no persistence (`--save '' --appendonly no`).

    pause() stops it with SIGSTOP (connections stay open, nothing is answered: a hung server),
    resume() continues it; kill() is SIGKILL; restart() starts a new server on the same port
    (empty, as nothing was saved). Each start waits, bounded, until it answers PING."""

    def __init__(self, log_dir: Path, name: str = "redis", port: int = 0,
                 timeout: float = DEFAULT_TIMEOUT, binary: Optional[Path] = None):
        self.log_dir = Path(log_dir)
        self.name = name
        self.binary = binary or redis_binary()
        self.paused = False
        self.incarnations: list[Process] = []
        for attempt in range(3):
            self.port = port or free_port()
            try:
                self._start(timeout)
                return
            except RuntimeError as e:
                # A port picked by free_port may be taken in the meantime: pick another.
                if port or "in use" not in str(e).lower() or attempt == 2:
                    raise

    @property
    def proc(self) -> Process:
        return self.incarnations[-1]

    @property
    def address(self) -> str:
        """"HOST:PORT", as sluice's `redis: { address: }`."""
        return f"{HOST}:{self.port}"

    @property
    def returncode(self) -> Optional[int]:
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc.alive()

    def log_tail(self, limit: int = 2000) -> str:
        return "\n".join(p.log_tail(limit) for p in self.incarnations)

    def _start(self, timeout: float) -> None:
        proc = Process([self.binary, "--port", self.port, "--bind", HOST, "--save", "",
                        "--appendonly", "no"], self.log_dir, self.name)
        self.incarnations.append(proc)
        self.paused = False

        def answers() -> bool:
            if not proc.alive():
                raise RuntimeError(f"redis-server exited with {proc.returncode}\n"
                                   f"{proc.log_tail()}")
            return self.ping(timeout=0.5)

        try:
            wait_for(answers, timeout, interval=0.05, what=f"redis on port {self.port} to answer")
        except TimeoutError as e:
            proc.stop()
            raise TimeoutError(f"{e}\n{proc.log_tail()}") from None
        except BaseException:
            proc.stop()
            raise

    def ping(self, timeout: float = 1.0) -> bool:
        try:
            return redis_command(self.port, "PING", timeout=timeout) == "PONG"
        except (OSError, RedisError, IncompleteResponse, ValueError):
            return False

    def command(self, *args: Union[str, bytes, int], timeout: float = 2.0) -> Any:
        return redis_command(self.port, *args, timeout=timeout)

    def pause(self) -> None:
        """SIGSTOP: the server keeps its connections and its port but answers nothing."""
        self.proc.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.proc.signal(signal.SIGCONT)
        self.paused = False

    def kill(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """SIGKILL and wait for the exit (the port is free afterwards)."""
        self.proc.stopped = True
        if self.proc.alive():
            self.proc.proc.kill()
        self.proc.wait(timeout)
        self.paused = False

    def restart(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """A new, empty server on the same port; kills the old one first if it still runs."""
        if self.proc.alive():
            self.kill(timeout)
        self._start(timeout)

    def stop(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        if self.paused:
            self.resume()  # a stopped process does not act on SIGTERM
        self.proc.stop(timeout)


# --------------------------------------------------------------------------- load


def _keep_alive_worker(port: int, path: str, headers: dict, barrier, stop: Callable[[int], bool],
                       timeout: float) -> tuple[dict[int, int], float]:
    """One keep-alive connection (http.client reconnects by itself after a `close`): connects,
    waits at `barrier`, then sends GETs until stop(sent) is true. Returns ({status: count},
    monotonic time of the last response)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    counts: dict[int, int] = {}
    last = time.monotonic()
    try:
        conn.connect()
        barrier.wait(timeout=timeout)
        sent = 0
        while not stop(sent):
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            r.read()
            sent += 1
            last = time.monotonic()
            counts[r.status] = counts.get(r.status, 0) + 1
    finally:
        conn.close()
    return counts, last


def _run_workers(ports: list[int], connections: int, path: str, headers: Optional[dict],
                 stop_for: Callable[[int], Callable[[int], bool]],
                 timeout: float) -> tuple[dict[int, int], float, float]:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    start = [0.0]
    barrier = threading.Barrier(connections, action=lambda: start.__setitem__(0, time.monotonic()))
    with ThreadPoolExecutor(max_workers=connections) as pool:
        futures = [pool.submit(_keep_alive_worker, ports[i % len(ports)], path, dict(headers or {}),
                               barrier, stop_for(i), timeout) for i in range(connections)]
        results = [f.result(timeout=timeout * 10) for f in futures]
    total: dict[int, int] = {}
    for counts, _ in results:
        for status, n in counts.items():
            total[status] = total.get(status, 0) + n
    return total, start[0], max(last for _, last in results)


def send_concurrently(ports: Union[int, list[int]], total: int, connections: int,
                      path: str = "/", headers: Optional[dict] = None,
                      timeout: float = DEFAULT_TIMEOUT) -> dict[int, int]:
    """Sends exactly `total` GETs over `connections` keep-alive connections, all open at once
    (so SO_REUSEPORT spreads them over the workers; with several ports, connection i goes to
    ports[i % len]). Returns {status: count}."""
    ports = [ports] if isinstance(ports, int) else list(ports)
    shares = [total // connections + (1 if i < total % connections else 0)
              for i in range(connections)]
    counts, _, _ = _run_workers(ports, connections, path, headers,
                                lambda i: (lambda sent: sent >= shares[i]), timeout)
    return counts


def overload(ports: Union[int, list[int]], seconds: float, connections: int, path: str = "/",
             headers: Optional[dict] = None, max_requests: int = 200_000,
             timeout: float = DEFAULT_TIMEOUT) -> tuple[dict[int, int], float]:
    """Sends GETs as fast as `connections` keep-alive connections allow for about `seconds`
    (at most max_requests in all). Returns ({status: count}, elapsed), elapsed running from the
    moment every connection was open to the last response."""
    ports = [ports] if isinstance(ports, int) else list(ports)
    deadline = [0.0]
    per_connection = max_requests // connections

    def stop_for(i: int) -> Callable[[int], bool]:
        def stop(sent: int) -> bool:
            if not deadline[0]:
                deadline[0] = time.monotonic() + seconds
            return sent >= per_connection or time.monotonic() >= deadline[0]
        return stop

    counts, start, end = _run_workers(ports, connections, path, headers, stop_for,
                                      max(timeout, seconds * 2))
    return counts, end - start
