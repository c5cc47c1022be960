"""A log sink that does not keep up never stalls the proxy: with the access log on stdout and
stdout a pipe nobody reads (a stalled log collector), every request is still answered, and the
lines that could not be written are dropped and counted, never queued without bound."""

import fcntl
import http.client
import os
import threading

from helpers import HOST, basic_config, wait_for

F_GETPIPE_SZ = 1032  # fcntl.F_GETPIPE_SZ, Linux; Python 3.10+ names it, Debian's 3.11 does


def test_a_pipe_nobody_reads_costs_dropped_lines_not_stalled_requests(start_backend,
                                                                       start_sluice):
    backend = start_backend()
    read_end, write_end = os.pipe()
    try:
        pipe_bytes = fcntl.fcntl(write_end, F_GETPIPE_SZ)
        cfg = basic_config(backend)
        cfg["access_log"] = {"path": "stdout", "format": "json"}
        cfg["workers"] = 1
        s = start_sluice(cfg, stdout=write_end)
        os.close(write_end)  # sluice holds the only write end; nobody reads until the end
        write_end = -1

        # Each line is about 300 bytes, so the pipe holds a few hundred: before the logging
        # thread, the worker blocked in write() from then on and the clients timed out.
        per_client, clients = 1500, 4
        failures: list[str] = []
        answered = [0] * clients

        def client(i: int) -> None:
            conn = http.client.HTTPConnection(HOST, s.port, timeout=5)
            try:
                for n in range(per_client):
                    conn.request("GET", f"/client/{i}/request/{n}")
                    r = conn.getresponse()
                    r.read()
                    if r.status != 200:
                        failures.append(f"client {i} request {n}: {r.status}")
                        return
                    answered[i] += 1
            except OSError as e:
                failures.append(f"client {i} after {answered[i]} requests: {e!r}")
            finally:
                conn.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        total = per_client * clients
        assert failures == [], failures
        assert sum(answered) == total

        dropped = s.metric("sluice_access_log_dropped_total")
        assert dropped > 0, "the pipe cannot hold every line; some must have been dropped"

        # Now read: every line that was not dropped arrives whole, and none is lost or doubled.
        os.set_blocking(read_end, False)
        data = b""

        def drain() -> float:
            nonlocal data
            try:
                while chunk := os.read(read_end, 1 << 16):
                    data += chunk
            except BlockingIOError:
                pass
            return data.count(b"\n") + s.metric("sluice_access_log_dropped_total")

        wait_for(lambda: drain() == total, 10,
                 what=f"logged + dropped lines to add up to the {total} requests")
        lines = data.decode().splitlines()
        assert len(data) > pipe_bytes  # more than the pipe alone held: the buffer kept lines
        assert all(line.startswith("{") and line.endswith("}") for line in lines)
        assert s.metric("sluice_error_log_dropped_total") == 0
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
