#!/usr/bin/python3
"""Memory per idle keep-alive connection, plain HTTP/1.1 and HTTP/1.1 over TLS 1.3, for sluice,
nginx and HAProxy, measured the same way for each.

    integration/bench/idle_memory.py [--count N] [--warmup N] [--rounds N] [--targets LIST]

Environment: SLUICE_BIN (default build/release/proxy/sluice), KEEP_WORK=1 keeps configs/logs.

Every proxy runs 1 worker, keep-alive on, a plaintext listener and a TLS listener with the same
self-signed ECDSA P-256 certificate, and forwards to one nginx answering `return 200` (upstream
keep-alive). For each target and kind (plain, tls) a fresh proxy process is started; then
WARMUP connections each make one GET and stay open, RSS is read (VmRSS summed over the target's
processes: nginx's master and worker), COUNT more connections each make one GET and stay open,
and after 0.5 s RSS is read again. Printed: (RSS growth) / COUNT, in bytes per connection. The
client offers only ALPN http/1.1 and TLS 1.3. With --rounds > 1 every round is printed and the
table shows the median."""

import argparse
import os
import resource
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
READY_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


class Server:
    """A process started with its output in WORK/NAME.{out,err}; stopped by stop()."""

    def __init__(self, work: Path, name: str, args: list[str]):
        self.name = name
        self.err = work / f"{name}.err"
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=open(work / f"{name}.out", "wb"),
                                     stderr=open(self.err, "wb"))

    def pids(self) -> list[int]:
        return [self.proc.pid] + children(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def get(port: int, ctx: ssl.SSLContext | None, timeout: float = 5.0) -> socket.socket:
    """Connects, makes one GET /, reads the whole response, returns the open socket."""
    c = socket.create_connection((HOST, port), timeout=timeout)
    if ctx is not None:
        c = ctx.wrap_socket(c, server_hostname="localhost")
    c.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    data = b""
    while not data.endswith(b"hello\n"):
        chunk = c.recv(4096)
        if not chunk:
            raise RuntimeError(f"port {port}: connection closed after {data!r}")
        data += chunk
    if not data.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"port {port}: {data[:80]!r}")
    return c


def wait_ready(server: Server, port: int, ctx: ssl.SSLContext | None) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited: {server.err.read_text()[-2000:]}")
        try:
            get(port, ctx, timeout=1.0).close()
            return
        except (OSError, RuntimeError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} not ready on {port}: "
                                   f"{server.err.read_text()[-2000:]}")
            time.sleep(0.1)


def nginx_temp_paths(d: Path) -> str:
    return "".join(f"  {m}_temp_path {d}/{m}_temp;\n"
                   for m in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))


def start_backend(work: Path) -> tuple[Server, int]:
    """nginx, 1 worker, answering every request with 200 "hello"."""
    d = work / "backend"
    (d / "logs").mkdir(parents=True)
    port = free_port()
    (d / "nginx.conf").write_text(f"""worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  default_type text/plain;
  keepalive_requests 100000000;
{nginx_temp_paths(d)}
  server {{ listen {HOST}:{port}; location / {{ return 200 "hello\\n"; }} }}
}}
""")
    s = Server(work, "backend", ["nginx", "-p", str(d), "-e", str(d / "logs/error.log"),
                                 "-c", str(d / "nginx.conf"), "-g", "daemon off;"])
    wait_ready(s, port, None)
    return s, port


def start_sluice(work: Path, binary: str, backend: int, cert: Path, key: Path, tls: bool):
    port = free_port()
    listener = f"""  - name: bench
    address: "{HOST}:{port}"
"""
    if tls:
        listener += f"    tls: {{ certificates: [{{ cert_file: {cert}, key_file: {key} }}] }}\n"
    (work / "sluice.yaml").write_text(f"""workers: 1
admin: {{ address: "{HOST}:{free_port()}" }}
access_log: {{ path: "off" }}
listeners:
{listener}routes:
  - {{ name: all, match: {{ path: {{ prefix: / }} }}, cluster: backend }}
clusters:
  - {{ name: backend, endpoints: ["{HOST}:{backend}"] }}
""")
    return Server(work, "sluice", [binary, "-c", str(work / "sluice.yaml")]), port


def start_nginx(work: Path, backend: int, cert: Path, key: Path, tls: bool):
    d = work / "nginx"
    shutil.rmtree(d, ignore_errors=True)
    (d / "logs").mkdir(parents=True)
    port = free_port()
    listen = f"{HOST}:{port} ssl" if tls else f"{HOST}:{port}"
    (d / "nginx.conf").write_text(f"""worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
{nginx_temp_paths(d)}
  upstream backend {{ server {HOST}:{backend}; keepalive 64; keepalive_requests 100000000; }}
  server {{
    listen {listen};
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
""")
    return Server(work, "nginx", ["nginx", "-p", str(d), "-e", str(d / "logs/error.log"),
                                  "-c", str(d / "nginx.conf"), "-g", "daemon off;"]), port


def start_haproxy(work: Path, backend: int, cert: Path, key: Path, tls: bool):
    port = free_port()
    pem = work / "cert.pem"
    pem.write_text(cert.read_text() + key.read_text())
    bind = f"{HOST}:{port} ssl crt {pem} alpn h2,http/1.1" if tls else f"{HOST}:{port}"
    (work / "haproxy.cfg").write_text(f"""global
  nbthread 1
  maxconn 8192
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 2s
  timeout client 60s
  timeout server 15s
  timeout http-keep-alive 60s
frontend bench
  bind {bind}
  default_backend backend
backend backend
  server s1 {HOST}:{backend}
""")
    return Server(work, "haproxy", ["haproxy", "-db", "-f", str(work / "haproxy.cfg")]), port


def measure(start, ctx: ssl.SSLContext | None, warmup: int, count: int) -> float:
    server, port = start()
    conns: list[socket.socket] = []
    try:
        wait_ready(server, port, ctx)
        conns += [get(port, ctx) for _ in range(warmup)]
        time.sleep(0.5)
        pids = server.pids()
        before = rss_bytes(pids)
        conns += [get(port, ctx) for _ in range(count)]
        time.sleep(0.5)
        after = rss_bytes(pids)
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited during the run")
        return (after - before) / count
    finally:
        for c in conns:
            c.close()
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--targets", default="sluice,nginx,haproxy")
    args = ap.parse_args()
    binary = os.environ.get("SLUICE_BIN", str(ROOT / "build/release/proxy/sluice"))
    targets = args.targets.split(",")
    for t in targets:
        if t != "sluice" and shutil.which(t) is None:
            sys.exit(f"missing {t}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 4 * (args.count + args.warmup) + 100
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))

    work = Path(tempfile.mkdtemp(prefix="sluice-idle-"))
    cert, key = work / "cert.crt", work / "cert.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(["http/1.1"])

    git = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                         capture_output=True, text=True).stdout.strip()
    load = open("/proc/loadavg").read().split()[:3]
    print(f"sluice {git} ({binary}), {os.cpu_count()} CPUs, {time.strftime('%FT%TZ', time.gmtime())}"
          f", load average {' '.join(load)}; {args.count} connections after {args.warmup} "
          f"warm-up, {args.rounds} round(s)", flush=True)
    backend, backend_port = start_backend(work)
    results: dict[tuple[str, str], list[float]] = {}
    try:
        for r in range(args.rounds):
            for t in targets:
                for kind in ("plain", "tls"):
                    tls = kind == "tls"
                    if t == "sluice":
                        start = lambda: start_sluice(work, binary, backend_port, cert, key, tls)  # noqa: E731
                    elif t == "nginx":
                        start = lambda: start_nginx(work, backend_port, cert, key, tls)  # noqa: E731
                    else:
                        start = lambda: start_haproxy(work, backend_port, cert, key, tls)  # noqa: E731
                    v = measure(start, ctx if tls else None, args.warmup, args.count)
                    results.setdefault((t, kind), []).append(v)
                    if args.rounds > 1:
                        print(f"  round {r + 1}: {t} {kind} {v:.0f} bytes/conn", flush=True)
    finally:
        backend.stop()
        if os.environ.get("KEEP_WORK"):
            print(f"configs and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    print("\n| target | plain bytes/conn | TLS bytes/conn |\n|---|---:|---:|")
    for t in targets:
        plain = statistics.median(results[(t, "plain")])
        tls = statistics.median(results[(t, "tls")])
        print(f"| {t} | {plain:.0f} | {tls:.0f} |")
    print(f"load average at the end: {' '.join(open('/proc/loadavg').read().split()[:3])}")


if __name__ == "__main__":
    main()
