"""gRPC through sluice: a real python3-grpcio client and server, unary and streaming calls in
every direction, status codes and messages, trailing metadata and large messages, over h2c and
over TLS downstream, to a cluster with `protocol: h2`."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest

from helpers import basic_config, metric_value
from pki import Pki

SERVICE = "sluice.test.Echo"
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0), ("grpc.max_receive_message_length", 8 << 20),
                   ("grpc.max_send_message_length", 8 << 20)]


def unary(request: bytes, context) -> bytes:
    context.set_trailing_metadata((("x-served-by", "grpc-backend"),))
    if request == b"missing":
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    return b"echo:" + request


def server_stream(request: bytes, context):
    for i in range(5):
        yield b"%d:" % i + request


def client_stream(requests, context) -> bytes:
    return b"|".join(requests)


def bidi(requests, context):
    for r in requests:
        yield r.upper()


@pytest.fixture
def grpc_backend():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                         options=[("grpc.max_receive_message_length", 8 << 20),
                                  ("grpc.max_send_message_length", 8 << 20)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    }),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)


def grpc_config(backend: str) -> dict:
    config = basic_config(backend, workers=1)
    config["clusters"][0]["protocol"] = "h2"
    config["listeners"][0]["http2"] = {"cleartext": True}
    return config


def check_calls(channel: grpc.Channel) -> None:
    call = channel.unary_unary(f"/{SERVICE}/Unary")
    reply, info = call.with_call(b"hello", timeout=10)
    assert reply == b"echo:hello"
    assert ("x-served-by", "grpc-backend") in info.trailing_metadata()
    assert info.code() == grpc.StatusCode.OK

    with pytest.raises(grpc.RpcError) as failed:
        call(b"missing", timeout=10)
    assert failed.value.code() == grpc.StatusCode.NOT_FOUND
    assert failed.value.details() == "no such thing"

    stream = channel.unary_stream(f"/{SERVICE}/ServerStream")
    assert list(stream(b"x", timeout=10)) == [b"0:x", b"1:x", b"2:x", b"3:x", b"4:x"]

    upload = channel.stream_unary(f"/{SERVICE}/ClientStream")
    assert upload(iter([b"a", b"b", b"c"]), timeout=10) == b"a|b|c"

    chat = channel.stream_stream(f"/{SERVICE}/Bidi")
    assert list(chat(iter([b"one", b"two", b"three"]), timeout=10)) == [b"ONE", b"TWO", b"THREE"]

    # Larger than every flow-control window on the way, both ways.
    big = bytes(range(256)) * 12_000  # 3 MB
    assert call(big, timeout=30) == b"echo:" + big


def test_grpc_calls_through_h2c(grpc_backend, start_sluice):
    s = start_sluice(grpc_config(grpc_backend))
    with grpc.insecure_channel(f"127.0.0.1:{s.port}", options=CHANNEL_OPTIONS) as channel:
        check_calls(channel)
    # A gRPC error still travels in a 200 response: only its trailers say NOT_FOUND.
    assert metric_value(s.metrics(), "sluice_upstream_requests_total", cluster="default",
                        code="2xx") >= 6


def test_grpc_calls_over_tls(grpc_backend, start_sluice, tmp_path):
    (tmp_path / "pki").mkdir()
    pki = Pki(tmp_path / "pki")
    cert = pki.leaf("front", ["grpc.example.com"])
    config = grpc_config(grpc_backend)
    config["listeners"][0].pop("http2")
    config["listeners"][0]["tls"] = {"certificates": [cert]}
    s = start_sluice(config)
    credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca_file.read_bytes())
    options = CHANNEL_OPTIONS + [("grpc.ssl_target_name_override", "grpc.example.com")]
    with grpc.secure_channel(f"127.0.0.1:{s.port}", credentials, options=options) as channel:
        check_calls(channel)
