"""WebSocket through sluice: the HTTP/1.1 upgrade becomes a byte tunnel on the backend's 101,
WebSocket over HTTP/2 (RFC 8441 extended CONNECT) reaches an HTTP/1.1 backend, flow control
holds across the tunnel, and routes can refuse upgrades. The backend is python3-websockets (not
ours); the HTTP/1.1 client is python3-websockets too, the HTTP/2 one python3-h2 with the frame
codec of ws_backend.py."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time

import h2.config
import h2.connection
import h2.events
import pytest
import websockets

from helpers import HOST, wait_for
from ws_backend import BINARY, CLOSE, TEXT, FrameReader, WsBackend, encode_frame


@pytest.fixture
def ws_backend():
    b = WsBackend()
    yield b
    b.stop()


def config(ws: WsBackend, plain=None) -> dict:
    routes = [
        {"name": "idle", "match": {"path": {"prefix": "/idle"}}, "cluster": "ws",
         "upgrade_idle_timeout": "1s"},
        {"name": "closed", "match": {"path": {"prefix": "/closed"}}, "cluster": "ws",
         "upgrades": []},
        {"name": "ws", "match": {"path": {"prefix": "/"}}, "cluster": "ws"},
    ]
    clusters = [{"name": "ws", "endpoints": [ws.address]}]
    if plain is not None:
        routes.insert(0, {"name": "plain", "match": {"path": {"prefix": "/plain"}},
                          "cluster": "plain"})
        clusters.append({"name": "plain", "endpoints": [plain.address]})
    return {
        "workers": 1,
        "access_log": {"path": "stdout"},
        "listeners": [{"name": "main", "http2": {"cleartext": True}}],
        "routes": routes,
        "clusters": clusters,
    }


def log_lines(s) -> list[dict]:
    return [json.loads(x) for x in s.stdout_text().splitlines() if x.startswith("{")]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_websocket_echo_over_http1_with_large_messages_and_close(ws_backend, start_sluice):
    s = start_sluice(config(ws_backend))
    big = os.urandom(3 * 1024 * 1024)

    async def session():
        async with websockets.connect(f"ws://{HOST}:{s.port}/echo", max_size=None,
                                      compression=None) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            for payload in (os.urandom(70_000), big):
                await ws.send(payload)
                assert await ws.recv() == payload
            await ws.close()
            return ws.close_code

    assert run(session()) == 1000
    wait_for(lambda: ws_backend.closed_by_client == 1, 5, what="the backend to see the close")
    assert s.metric("sluice_upgrades_total", route="ws") == 1
    assert s.metric("sluice_upgrades_total", route="closed") == 0

    line = wait_for(lambda: [e for e in log_lines(s) if e.get("route") == "ws"], 5)[0]
    assert line["status"] == 101
    payload_bytes = 5 + 70_000 + len(big)
    assert line["bytes_in"] > payload_bytes  # frames, masked, as they crossed
    assert line["bytes_out"] > payload_bytes


def test_the_backend_sees_the_handshake_headers(ws_backend, start_sluice):
    s = start_sluice(config(ws_backend))

    async def session():
        async with websockets.connect(f"ws://{HOST}:{s.port}/headers",
                                      subprotocols=["chat"]) as ws:
            return json.loads(await ws.recv())

    seen = run(session())
    assert seen["upgrade"].lower() == "websocket"
    assert "upgrade" in seen["connection"].lower()
    assert seen["sec-websocket-version"] == "13"
    assert seen["sec-websocket-protocol"] == "chat"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert "x-request-id" in seen


def handshake(path: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode()


def read_head(sock: socket.socket) -> tuple[str, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head.decode(), rest


def test_a_route_with_upgrades_off_refuses_with_403(ws_backend, start_sluice):
    s = start_sluice(config(ws_backend))
    with socket.create_connection((HOST, s.port), timeout=10) as sock:
        sock.sendall(handshake("/closed"))
        head, _ = read_head(sock)
    assert head.startswith("HTTP/1.1 403"), head
    assert ws_backend.handshakes == 0


def test_a_backend_that_does_not_switch_answers_as_usual(ws_backend, backend, start_sluice):
    s = start_sluice(config(ws_backend, plain=backend))
    with socket.create_connection((HOST, s.port), timeout=10) as sock:
        sock.sendall(handshake("/refuse"))
        head, body = read_head(sock)
        assert head.startswith("HTTP/1.1 403"), head
        while len(body) < len(b"refused\n"):
            body += sock.recv(100)
        assert body == b"refused\n"
    # An HTTP backend that ignores Upgrade: its response passes, and the connection goes on.
    with socket.create_connection((HOST, s.port), timeout=10) as sock:
        sock.sendall(handshake("/plain/one"))
        head, _ = read_head(sock)
        assert head.startswith("HTTP/1.1 200"), head
        assert "upgrade" not in head.lower()
        sock.sendall(f"GET /plain/two HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        time.sleep(0.2)
        assert b"HTTP/1.1 200" in sock.recv(65536)
    assert s.metric("sluice_upgrades_total", route="ws") == 0


def test_a_slow_reader_holds_the_backend_back(ws_backend, start_sluice):
    """The backend pushes 64 MiB to a client that does not read: sluice stops reading the
    backend instead of buffering, so the backend is held back; then everything arrives."""
    s = start_sluice(config(ws_backend))
    count, size = 64, 1024 * 1024
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.settimeout(20)
        sock.connect((HOST, s.port))
        sock.sendall(handshake(f"/push/{count}/{size}"))
        head, rest = read_head(sock)
        assert head.startswith("HTTP/1.1 101"), head
        time.sleep(3)  # not reading
        held = ws_backend.pushed
        # What the kernel's socket buffers hold on the way, plus sluice's watermarks: far less
        # than the whole 64 MiB the backend wants to send.
        assert held <= 24, f"backend pushed {held} MiB into a client that reads nothing"
        reader = FrameReader()
        frames = reader.feed(rest)
        while len(frames) < count:
            frames += reader.feed(sock.recv(1 << 20))
        assert [(op, len(p)) for op, p in frames] == [(BINARY, size)] * count


def test_a_tunnel_idle_for_upgrade_idle_timeout_is_closed(ws_backend, start_sluice):
    s = start_sluice(config(ws_backend))

    async def session():
        async with websockets.connect(f"ws://{HOST}:{s.port}/idle", ping_interval=None) as ws:
            await ws.send("x")
            assert await ws.recv() == "x"
            started = time.monotonic()
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            return time.monotonic() - started

    assert run(session()) >= 0.9
    line = wait_for(lambda: [e for e in log_lines(s) if e.get("route") == "idle"], 5)[0]
    assert line["status"] == 101


class H2WebSocket:
    """WebSocket over one HTTP/2 stream (RFC 8441) on a python3-h2 client connection."""

    def __init__(self, port: int, path: str):
        self.sock = socket.create_connection((HOST, port), timeout=10)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.frames = FrameReader()
        self.events: list = []
        self.ended = False
        while not self.conn.remote_settings.enable_connect_protocol:
            self._pump()
        self.id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(self.id, [
            (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
            (":path", path), (":authority", f"{HOST}:{port}"),
            ("sec-websocket-version", "13"),
        ])
        self.sock.sendall(self.conn.data_to_send())
        self.status = None
        while self.status is None:
            for e in self._pump():
                if isinstance(e, h2.events.ResponseReceived):
                    self.status = dict(e.headers)[b":status"].decode()

    def _pump(self) -> list:
        data = self.sock.recv(1 << 20)
        assert data, "connection closed"
        events = self.conn.receive_data(data)
        for e in events:
            if isinstance(e, h2.events.DataReceived):
                self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                self.events += self.frames.feed(e.data)
            if isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)):
                self.ended = True
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)
        return events

    def send(self, opcode: int, payload: bytes) -> None:
        data = encode_frame(opcode, payload)
        while data:
            window = min(self.conn.local_flow_control_window(self.id),
                         self.conn.max_outbound_frame_size)
            if window == 0:
                self._pump()
                continue
            self.conn.send_data(self.id, data[:window])
            data = data[window:]
            self.sock.sendall(self.conn.data_to_send())

    def receive(self) -> tuple[int, bytes]:
        while not self.events:
            self._pump()
        return self.events.pop(0)


def test_websocket_over_http2_reaches_an_http1_backend(ws_backend, start_sluice):
    s = start_sluice(config(ws_backend))
    ws = H2WebSocket(s.port, "/echo")
    assert ws.status == "200"
    ws.send(TEXT, b"over h2")
    assert ws.receive() == (TEXT, b"over h2")
    big = os.urandom(300_000)  # larger than every flow-control window on the way
    ws.send(BINARY, big)
    assert ws.receive() == (BINARY, big)
    ws.send(CLOSE, (1000).to_bytes(2, "big"))
    opcode, payload = ws.receive()
    assert opcode == CLOSE and payload[:2] == (1000).to_bytes(2, "big")
    wait_for(lambda: ws.ended or ws._pump() is None, 10, what="the stream to end")
    ws.sock.close()
    wait_for(lambda: ws_backend.closed_by_client == 1, 5)
    assert s.metric("sluice_upgrades_total", route="ws") == 1


def test_extended_connect_to_a_route_without_upgrades_is_refused(ws_backend, start_sluice):
    s = start_sluice(config(ws_backend))
    ws = H2WebSocket(s.port, "/closed")
    assert ws.status == "403"
    assert ws_backend.handshakes == 0
