"""A WebSocket backend on python3-websockets (not ours), run on an asyncio loop in a thread of
the test process, and a small RFC 6455 frame codec for clients that speak WebSocket over a raw
socket or an HTTP/2 stream.

Paths:
- /echo (any other path too): echoes every message; its first message is a JSON object of the
  handshake's request headers when the path is /headers.
- /push/<count>/<size>: sends <count> binary messages of <size> bytes, then echoes.
- /refuse: answers the handshake with 403 (no switch).

`handshakes` counts accepted upgrades, `closed` the connections that ended with a close frame
from the client."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import threading
from http import HTTPStatus
from typing import Optional

import websockets
import websockets.server


class WsBackend:
    def __init__(self, host: str = "127.0.0.1"):
        self.handshakes = 0
        self.closed_by_client = 0
        self.pushed = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: Optional[asyncio.Future] = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, args=(host,), daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("WebSocket backend did not start")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set_result, None)
        self._thread.join(10)

    def _run(self, host: str) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve(host))
        self._loop.close()

    async def _serve(self, host: str) -> None:
        self._stop = self._loop.create_future()

        async def refuse(path, headers):
            if path == "/refuse":
                return HTTPStatus.FORBIDDEN, [("content-type", "text/plain")], b"refused\n"
            return None

        async with websockets.serve(self._handle, host, 0, process_request=refuse,
                                    max_size=None, compression=None) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop

    async def _handle(self, ws, path: str) -> None:
        self.handshakes += 1
        try:
            if path == "/headers":
                await ws.send(json.dumps({k.lower(): v for k, v in ws.request_headers.raw_items()}))
            if path.startswith("/push/"):
                _, _, count, size = path.split("/")
                chunk = os.urandom(int(size))
                for _ in range(int(count)):
                    await ws.send(chunk)  # waits while the peer does not read (flow control)
                    self.pushed += 1
            async for message in ws:
                await ws.send(message)
        except websockets.ConnectionClosed:
            pass
        if ws.close_code == 1000:
            self.closed_by_client += 1


# --------------------------------------------------------------------------- RFC 6455 frames

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def encode_frame(opcode: int, payload: bytes, mask: bool = True) -> bytes:
    """One final frame; clients mask (RFC 6455 §5.3)."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if n < 4096 else _xor(payload, key)
    return head + key + masked


def _xor(payload: bytes, key: bytes) -> bytes:
    k = int.from_bytes(key * ((len(payload) + 3) // 4), "big") >> (8 * ((-len(payload)) % 4))
    return (int.from_bytes(payload, "big") ^ k).to_bytes(len(payload), "big")


class FrameReader:
    """Feeds bytes in, takes whole (unfragmented, unmasked server) frames out."""

    def __init__(self):
        self.buf = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        frames = []
        while True:
            if len(self.buf) < 2:
                return frames
            opcode = self.buf[0] & 0x0F
            n = self.buf[1] & 0x7F
            pos = 2
            if n == 126:
                if len(self.buf) < 4:
                    return frames
                n = struct.unpack("!H", self.buf[2:4])[0]
                pos = 4
            elif n == 127:
                if len(self.buf) < 10:
                    return frames
                n = struct.unpack("!Q", self.buf[2:10])[0]
                pos = 10
            if len(self.buf) < pos + n:
                return frames
            frames.append((opcode, self.buf[pos:pos + n]))
            self.buf = self.buf[pos + n:]
