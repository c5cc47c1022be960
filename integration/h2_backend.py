"""An HTTP/2 test backend on python3-h2, run in a thread of the test process, for cluster
`protocol: h2` tests. It echoes each request as JSON (method, path, authority, headers, body,
trailers, connection and stream numbers), and can be told to:

- delay a response: path /delay/<ms>
- end a response with trailers: path /trailers
- send the head and part of the body, then drop the connection: path /die-mid
- advertise SETTINGS_MAX_CONCURRENT_STREAMS (`max_streams`)
- answer the first request of its first connection with GOAWAY(last_stream_id=0) and close
  without a response (`goaway_first=True`): that request was not processed.

It counts connections, connections closed by the client (`closed`, and `goaways` among
them), streams the client reset (`resets`), and the highest number of streams open at once
on any connection.
Plain h2c, or TLS with ALPN h2 when given a certificate and key."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from typing import Optional

import h2.config
import h2.connection
import h2.events
import h2.settings


class H2Backend:
    def __init__(self, max_streams: int = 100, goaway_first: bool = False,
                 cert: Optional[dict] = None):
        self.max_streams = max_streams
        self.goaway_first = goaway_first
        self.connections = 0
        self.max_open = 0
        self.resets = 0
        self.goaways = 0
        self.closed = 0
        self.requests: list[dict] = []
        self.alpn: list[Optional[str]] = []
        self._lock = threading.Lock()
        self._ssl = None
        if cert:
            self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._ssl.load_cert_chain(cert["cert_file"], cert["key_file"])
            self._ssl.set_alpn_protocols(["h2"])
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept.start()

    def stop(self) -> None:
        self._stop.set()
        self._accept.join(5)
        for t in self._threads:
            t.join(5)
        self._sock.close()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            with self._lock:
                self.connections += 1
                number = self.connections
            t = threading.Thread(target=self._serve, args=(conn, number), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, sock: socket.socket, number: int) -> None:
        try:
            if self._ssl:
                sock = self._ssl.wrap_socket(sock, server_side=True)
                with self._lock:
                    self.alpn.append(sock.selected_alpn_protocol())
            _Connection(self, sock, number).run()
        except (OSError, ssl.SSLError):
            pass
        finally:
            sock.close()


class _Connection:
    def __init__(self, backend: H2Backend, sock: socket.socket, number: int):
        self.b = backend
        self.sock = sock
        self.number = number
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        self.lock = threading.Lock()  # delayed responses write from timer threads
        self.streams: dict[int, dict] = {}
        self.open = 0
        self.first = True

    def send(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def run(self) -> None:
        self.sock.settimeout(0.2)
        with self.lock:
            # One SETTINGS frame carrying the limit, as servers normally send it.
            self.h2.local_settings = h2.settings.Settings(
                client=False,
                initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS:
                                self.b.max_streams})
            self.h2.initiate_connection()
            self.send()
        while not self.b._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                with self.b._lock:
                    self.b.closed += 1
                return
            with self.lock:
                for event in self.h2.receive_data(data):
                    if not self.handle(event):
                        return
                self.send()

    def handle(self, event) -> bool:
        if isinstance(event, h2.events.RequestReceived):
            self.open += 1
            with self.b._lock:
                self.b.max_open = max(self.b.max_open, self.open)
            headers = [(k.decode(), v.decode()) for k, v in event.headers]
            self.streams[event.stream_id] = {"headers": headers, "body": b"", "trailers": []}
        elif isinstance(event, h2.events.DataReceived):
            self.streams[event.stream_id]["body"] += event.data
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            self.streams[event.stream_id]["trailers"] = [
                (k.decode(), v.decode()) for k, v in event.headers]
        elif isinstance(event, h2.events.StreamEnded):
            if self.first and self.number == 1 and self.b.goaway_first:
                self.h2.close_connection(last_stream_id=0)
                self.send()
                return False
            self.first = False
            self.respond(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            with self.b._lock:
                self.b.resets += 1
            if self.streams.pop(event.stream_id, None) is not None:
                self.open -= 1
        elif isinstance(event, h2.events.ConnectionTerminated):
            with self.b._lock:
                self.b.goaways += 1
        return True

    def respond(self, sid: int) -> None:
        req = self.streams[sid]
        pseudo = {k: v for k, v in req["headers"] if k.startswith(":")}
        path = pseudo.get(":path", "/")
        record = {
            "method": pseudo.get(":method"), "path": path, "authority": pseudo.get(":authority"),
            "scheme": pseudo.get(":scheme"),
            "headers": [[k, v] for k, v in req["headers"] if not k.startswith(":")],
            "body": req["body"].decode("latin-1"), "trailers": req["trailers"],
            "connection": self.number, "stream": sid,
        }
        with self.b._lock:
            self.b.requests.append(record)
        delay = 0.0
        if path.startswith("/delay/"):
            delay = int(path.split("/")[2]) / 1000

        if path == "/die-mid":
            self.h2.send_headers(sid, [(":status", "200"), ("content-type", "text/plain")])
            self.h2.send_data(sid, b"partial")
            self.send()
            self.sock.shutdown(socket.SHUT_RDWR)
            return

        def finish() -> None:  # with self.lock held
            if sid not in self.streams:
                return  # reset by the client meanwhile
            body = json.dumps(record).encode()
            trailers = path.startswith("/trailers")
            try:
                self.h2.send_headers(sid, [(":status", "200"),
                                           ("content-type", "application/json"),
                                           ("x-backend-connection", str(self.number))])
                self.h2.send_data(sid, body, end_stream=not trailers)
                if trailers:
                    self.h2.send_headers(sid, [("x-checksum", "abc"), ("x-count", "1")],
                                         end_stream=True)
                self.send()
            except Exception:  # the stream or connection went away meanwhile
                pass
            self.open -= 1

        def later() -> None:
            with self.lock:
                finish()

        if delay:
            threading.Timer(delay, later).start()
        else:
            finish()
