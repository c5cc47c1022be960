#!/usr/bin/python3
"""Memory per idle keep-alive connection, plaintext and TLS, for the release sluice.

    integration/bench/idle_memory.py [COUNT]   (default 1000 connections per kind)

Starts the test backend and sluice (1 worker, a plaintext and a TLS listener, certificates
from a throwaway CA), opens 100 warm-up connections and then COUNT more of each kind, each
after one request, and prints the growth of sluice's RSS divided by COUNT."""

import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "integration"))
from helpers import Backend, Sluice, basic_config  # noqa: E402
from pki import Pki  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    work = Path(tempfile.mkdtemp(prefix="sluice-idle-"))
    pki = Pki(work)
    cert = pki.leaf("srv", ["localhost"])
    backend = Backend(work, "backend", binary=ROOT / "build/release/integration/backend/sluice_test_backend")
    config = basic_config(backend, workers=1, access_log={"path": "off"})
    config["listeners"].append({"name": "tls", "tls": {"certificates": [cert]}})
    s = Sluice(work, config, binary=ROOT / "build/release/proxy/sluice")
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))
    try:
        for kind in ("plain", "tls"):
            port = s.listener_port("main" if kind == "plain" else "tls")

            def connect():
                c = socket.create_connection(("127.0.0.1", port))
                if kind == "tls":
                    c = ctx.wrap_socket(c, server_hostname="localhost")
                c.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                data = b""
                while not data.endswith(b"hello from backend\n"):
                    data += c.recv(4096)
                return c

            warm = [connect() for _ in range(100)]
            time.sleep(0.3)
            before = rss_kib(s.pid)
            conns = [connect() for _ in range(count)]
            time.sleep(0.5)
            grown = rss_kib(s.pid) - before
            print(f"{kind}: {grown * 1024 / count:.0f} bytes per idle keep-alive connection "
                  f"({count} connections)")
            for c in conns + warm:
                c.close()
    finally:
        s.stop()
        backend.stop()
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
