#!/usr/bin/python3
"""Writes the seed corpus of http2_server_fuzz: client frames after the preface, made with
python3-h2 (and by hand where h2 refuses to make them). Each file: one byte of piece size,
then the frames. Run from anywhere; writes corpus/http2_server/ beside this file."""

from pathlib import Path

import h2.config
import h2.connection

OUT = Path(__file__).resolve().parent / "corpus" / "http2_server"


def client(validate: bool = True) -> h2.connection.H2Connection:
    c = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, header_encoding="utf-8", validate_outbound_headers=validate,
        normalize_outbound_headers=validate))
    c.initiate_connection()
    c.data_to_send()  # the preface and SETTINGS: the fuzz target sends the preface itself
    return c


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + \
        stream.to_bytes(4, "big") + payload


def request(c, sid, path="/", method="GET", extra=(), end=True):
    c.send_headers(sid, [(":method", method), (":path", path), (":scheme", "http"),
                         (":authority", "fuzz")] + list(extra), end_stream=end)


def settings() -> bytes:
    return frame(4, 0, 0, b"")


def write(name: str, piece: int, data: bytes) -> None:
    (OUT / name).write_bytes(bytes([piece]) + data)


OUT.mkdir(parents=True, exist_ok=True)
c = client()
request(c, 1)
request(c, 3, "/old/page")
request(c, 5, "/204")
three = settings() + c.data_to_send()
write("get_three", 0, three)
write("get_three_bytewise", 1, three)

c = client()
request(c, 1, "/upload", "POST", end=False)
c.send_data(1, b"x" * 3000)
c.send_data(1, b"y" * 10, end_stream=True)
write("post_body", 7, settings() + c.data_to_send())

c = client()
for sid in range(1, 400, 2):
    request(c, sid, "/slow")
    c.reset_stream(sid)
write("rapid_reset", 0, settings() + c.data_to_send())

c = client(validate=False)
request(c, 1, "/", extra=[("connection", "keep-alive")])
request(c, 3, "/", extra=[("Upper", "x")])
request(c, 5, "/", extra=[("te", "gzip")])
request(c, 7, "/", extra=[("x", "a\r\nb")])
write("malformed_headers", 0, settings() + c.data_to_send())

c = client()
request(c, 1, "/", extra=[("cookie", "a=1"), ("cookie", "b=2"), ("x-long", "v" * 5000)])
write("big_headers", 13, settings() + c.data_to_send())

pings = b"".join(frame(6, 0, 0, b"%08d" % i) for i in range(50))
write("pings", 0, settings() + pings)

block = bytes([0x82, 0x86, 0x84, 0x41, 0x04]) + b"fuzz"
cont = b"".join(frame(9, 0, 1, bytes([0x40, 0x02]) + b"xh" + bytes([0x01]) + b"v")
                for _ in range(30))
write("continuation_flood", 0, settings() + frame(1, 0x1, 1, block) + cont)
write("headers_then_continuation", 3,
      settings() + frame(1, 0x1, 1, block[:3]) + frame(9, 0x4, 1, block[3:]))

write("window_update_overflow", 0, settings() + frame(8, 0, 0, b"\x7f\xff\xff\xff") * 2)
write("goaway", 0, settings() + frame(7, 0, 0, b"\0\0\0\0\0\0\0\0"))
write("data_on_idle_stream", 0, settings() + frame(0, 0x1, 9, b"data"))
write("garbage", 5, b"\xff" * 64)
