#!/usr/bin/python3
"""Writes the seed corpus of http2_client_fuzz: what a backend sends after its (empty) SETTINGS
frame, which the fuzz target sends itself, answering the target's two requests (stream 1, a
GET; stream 3, a POST with trailers). Made with python3-h2's server side, and by hand where h2
refuses to make it. Run from anywhere; writes corpus/http2_client/ beside this file."""

from pathlib import Path

import h2.config
import h2.connection
import h2.errors

OUT = Path(__file__).resolve().parent / "corpus" / "http2_client"


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + \
        stream.to_bytes(4, "big") + payload


def server() -> h2.connection.H2Connection:
    """A server that has seen the target's two requests."""
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    for sid, method in ((1, "GET"), (3, "POST")):
        c.send_headers(sid, [(":method", method), (":path", "/"), (":scheme", "http"),
                             (":authority", "fuzz")], end_stream=sid == 1)
    c.send_headers(3, [("x-sum", "42")], end_stream=True)
    s = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    s.initiate_connection()
    s.receive_data(c.data_to_send())
    s.data_to_send()  # its SETTINGS: the target sends an empty one itself
    return s


def write(name: str, data: bytes) -> None:
    (OUT / name).write_bytes(data)


OUT.mkdir(parents=True, exist_ok=True)

s = server()
for sid in (1, 3):
    s.send_headers(sid, [(":status", "200"), ("content-type", "text/plain")])
    s.send_data(sid, b"hello", end_stream=sid == 1)
s.send_headers(3, [("grpc-status", "0"), ("grpc-message", "")], end_stream=True)
write("responses_with_trailers", s.data_to_send())

s = server()
s.send_headers(1, [(":status", "103"), ("link", "</a>; rel=preload")])
s.send_headers(1, [(":status", "204")], end_stream=True)
s.reset_stream(3, h2.errors.ErrorCodes.REFUSED_STREAM)
write("interim_and_refused", s.data_to_send())

s = server()
s.send_headers(1, [(":status", "200"), ("content-length", "3")])
s.send_data(1, b"toolong")  # more than content-length
write("content_length_mismatch", s.data_to_send())

s = server()
s.send_headers(1, [(":status", "200")])
s.close_connection(last_stream_id=1)
write("goaway_after_first", s.data_to_send())

s = server()
s.send_headers(1, [(":status", "200"), ("x-big", "v" * 70000)], end_stream=True)
write("huge_response_head", s.data_to_send())

write("push_promise", frame(5, 0x4, 1, b"\x00\x00\x00\x02\x82\x86\x84\x41\x04fuzz"))
write("bad_hpack", frame(1, 0x5, 1, b"\xff\xff\xff\xff"))
write("headers_on_stream_zero", frame(1, 0x5, 0, b"\x88"))
write("data_without_headers", frame(0, 0x1, 1, b"data"))
write("window_overflow", frame(8, 0, 1, b"\x7f\xff\xff\xff") * 2)
write("ping_and_settings", frame(6, 0, 0, b"12345678") +
      frame(4, 0, 0, b"\x00\x03\x00\x00\x00\x01\x00\x04\x00\x00\x00\x00"))
write("garbage", b"\xff" * 64)
