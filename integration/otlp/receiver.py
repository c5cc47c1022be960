"""An OTLP/HTTP JSON trace receiver for integration tests: `from otlp.receiver import OtlpReceiver`.

    with OtlpReceiver() as rx:
        s = start_sluice(config_with(tracing={"otlp_endpoint": rx.endpoint, ...}))
        ...
        spans = rx.wait_for_spans(2)
        children = assert_tree(spans)
        rx.assert_no_errors()

It listens on 127.0.0.1:<ephemeral>, HTTP/1.1 with keep-alive, and decodes every POST to
/v1/traces with the strict decoder in otlp/decode.py (built from the published .proto files).
A body that does not decode is recorded in `errors` and answered 400; anything else that is not
a well-formed export (wrong path or method, wrong Content-Type, no Content-Length) is recorded in
`errors` too. A decoded export is answered 200 `{}` (application/json: full success) unless
`respond_with` scripted another answer. Only exports answered 200 count as accepted: their spans
are what `spans()` and `wait_for_spans()` return.
"""

from __future__ import annotations

import gzip
import http.server
import json
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Union

from otlp.decode import (SPAN_KIND_CLIENT, SPAN_KIND_SERVER, DecodeError, Span, decode_export,
                         trace_service_pb2)

__all__ = ["OtlpReceiver", "Reply", "ExportRequest", "Span", "DecodeError", "assert_tree",
           "roots", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT", "PATH", "MAX_DELAY",
           "DEFAULT_TOLERANCE_NS"]

PATH = "/v1/traces"
MAX_BODY = 64 << 20            # the spec's recommended request limit; larger gets 413
MAX_DELAY = 5.0                # a scripted delay longer than this is refused
# assert_tree's default slack for "child within parent": sluice takes its timestamps from one
# clock, but a child's end may be taken just after the parent's on another thread.
DEFAULT_TOLERANCE_NS = 1_000_000


@dataclass
class Reply:
    """One scripted answer: status, optional Retry-After value (seconds or an HTTP-date, sent
    verbatim), optional delay in seconds before answering (at most MAX_DELAY)."""
    status: int = 200
    retry_after: Optional[Union[int, str]] = None
    delay: float = 0.0


@dataclass
class ExportRequest:
    """One request the receiver got, whatever became of it."""
    method: str
    path: str
    headers: dict[str, str]        # names lowercased; repeated headers joined with ", "
    body: bytes                    # after Content-Encoding: gzip was undone
    received_ns: int               # time.time_ns() when the body had been read
    status: Optional[int] = None   # what was answered; None if the client had gone
    error: Optional[str] = None    # why it was rejected, if it was
    json: Any = None               # the body as parsed JSON (as sent: hex ids)
    message: Any = None            # the ExportTraceServiceRequest protobuf message
    spans: list[Span] = field(default_factory=list)
    client_closed: bool = False    # the client closed the connection during a scripted delay
    wire_length: int = 0           # the body's length as sent (compressed, if it was)

    @property
    def accepted(self) -> bool:
        return self.status == 200 and self.error is None

    def as_dict(self) -> dict[str, Any]:
        """The decoded message as json_format.MessageToDict gives it (base64 ids)."""
        from google.protobuf import json_format
        return json_format.MessageToDict(self.message) if self.message is not None else {}


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, receiver: "OtlpReceiver"):
        self.receiver = receiver
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sluice-otlp-test-receiver"
    timeout = 60  # an idle keep-alive connection is closed after this

    def setup(self):
        super().setup()
        with self.server.conn_lock:
            self.server.connections.add(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            with self.server.conn_lock:
                self.server.connections.discard(self.connection)

    def log_message(self, fmt, *args):  # quiet: the receiver records everything itself
        pass

    def do_POST(self):
        self.server.receiver._handle(self)

    def do_GET(self):
        self.server.receiver._handle(self)

    do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def reply(self, status: int, body: dict, extra: Iterable[tuple[str, str]] = ()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()


class OtlpReceiver:
    """A test OTLP/HTTP JSON collector. See the module docstring."""

    def __init__(self, tls: Optional[dict] = None, host: str = "127.0.0.1"):
        """tls: {"cert_file", "key_file"} (as Pki.leaf returns) serves https instead; `host` is
        the name `endpoint` uses (a name the certificate holds, say)."""
        trace_service_pb2()  # compile the protos now: fail here, not in a handler thread
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._requests: list[ExportRequest] = []
        self._errors: list[str] = []
        self._script: list[Reply] = []
        self._stopping = threading.Event()
        self._server = _Server(self)
        self._scheme, self._host = "http", host
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls["cert_file"], tls["key_file"])
            # A client that rejects the certificate fails in accept(): the server goes on.
            self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="otlp-receiver", daemon=True)
        self._thread.start()
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"{self._scheme}://{self._host}:{self.port}{PATH}"

    def close(self) -> None:
        """Stops the server thread and closes every connection; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()  # wakes scripted delays
        try:
            self._server.shutdown()
        finally:
            with self._server.conn_lock:
                conns = list(self._server.connections)
            for c in conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._server.server_close()
            self._thread.join(timeout=10)

    def __enter__(self) -> "OtlpReceiver":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ scripting

    def respond_with(self, replies: Iterable[Union[int, Reply, tuple]],
                     retry_after: Optional[Union[int, str]] = None) -> None:
        """The next exports get these answers in order, then 200s again. Each item is a status,
        a Reply, or a (status, retry_after) tuple; `retry_after` applies to the plain statuses.
        A scripted status is answered only to a body that decodes (a bad body always gets 400),
        with a JSON Status body {"message": ...}."""
        script = []
        for r in replies:
            if isinstance(r, Reply):
                script.append(r)
            elif isinstance(r, tuple):
                script.append(Reply(*r))
            else:
                script.append(Reply(int(r), retry_after if r != 200 else None))
        for r in script:
            if not 0 <= r.delay <= MAX_DELAY:
                raise ValueError(f"delay {r.delay} s is outside 0..{MAX_DELAY} s")
        with self._lock:
            self._script.extend(script)

    def delay_next(self, seconds: float, count: int = 1, status: int = 200) -> None:
        """The next `count` exports are answered (with `status`) only after `seconds` (at most
        MAX_DELAY); a client that closes the connection meanwhile is recorded with
        status=None, client_closed=True, and its spans are not accepted. close() cuts a delay
        short and answers nothing (status=None)."""
        self.respond_with([Reply(status, None, seconds)] * count)

    def pending_replies(self) -> int:
        """Scripted answers not yet used."""
        with self._lock:
            return len(self._script)

    # ------------------------------------------------------------------ results

    @property
    def requests(self) -> list[ExportRequest]:
        """Every request received, in order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def errors(self) -> list[str]:
        """One entry per rejected request: "METHOD PATH -> STATUS: problem" then a line
        "  body: <the offending body, first 4 KiB>" (a copy)."""
        with self._lock:
            return list(self._errors)

    def spans(self) -> list[Span]:
        """Spans of every accepted export (answered 200), in the order received."""
        with self._lock:
            return [s for r in self._requests if r.accepted for s in r.spans]

    def clear(self) -> None:
        """Forgets requests and errors (not the script)."""
        with self._lock:
            self._requests.clear()
            self._errors.clear()

    def assert_no_errors(self) -> None:
        errors = self.errors
        assert not errors, "OTLP receiver rejected exports:\n" + "\n".join(errors)

    def wait_for_spans(self, n: int, timeout: float = 10.0) -> list[Span]:
        """Waits until at least n spans were accepted and returns all accepted spans. Raises
        AssertionError at once if an export was rejected, and on timeout, saying what came."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                if self._errors:
                    raise AssertionError("OTLP receiver rejected an export while waiting for "
                                         f"{n} spans:\n" + "\n".join(self._errors))
                spans = [s for r in self._requests if r.accepted for s in r.spans]
                if len(spans) >= n:
                    return spans
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"waited {timeout} s for {n} spans, got {len(spans)}"
                                         f"\n{self._summary_locked()}")
                self._changed.wait(min(left, 0.5))

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> list[ExportRequest]:
        """Waits until at least n requests (of any outcome) were answered or abandoned."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"waited {timeout} s for {n} requests, got "
                                         f"{len(self._requests)}\n{self._summary_locked()}")
                self._changed.wait(min(left, 0.5))
            return list(self._requests)

    def _summary_locked(self) -> str:
        if not self._requests:
            return "no request reached the receiver at " + self.endpoint
        lines = []
        for i, r in enumerate(self._requests):
            names = ", ".join(f"{s.name}({s.span_id})" for s in r.spans[:20])
            lines.append(f"  #{i} {r.method} {r.path} -> {r.status}"
                         f"{' client closed' if r.client_closed else ''}"
                         f"{' error: ' + r.error if r.error else ''}: {len(r.spans)} spans"
                         f"{': ' + names if names else ''}")
        return "requests:\n" + "\n".join(lines)

    # ------------------------------------------------------------------ serving

    def _record(self, req: ExportRequest) -> None:
        with self._changed:
            self._requests.append(req)
            if req.error is not None:
                body = req.body[:4096].decode("utf-8", "replace")
                self._errors.append(f"{req.method} {req.path} -> {req.status}: {req.error}\n"
                                    f"  body: {body}")
            self._changed.notify_all()

    def _handle(self, h: _Handler) -> None:
        headers: dict[str, str] = {}
        for k, v in h.headers.items():
            k = k.lower()
            headers[k] = f"{headers[k]}, {v}" if k in headers else v
        req = ExportRequest(method=h.command, path=h.path, headers=headers, body=b"",
                            received_ns=0)

        def fail(status: int, error: str, extra=()):
            req.received_ns = req.received_ns or time.time_ns()
            req.status, req.error = status, error
            self._record(req)
            try:  # a JSON google.rpc.Status; the spec lets the server omit its code
                h.reply(status, {"message": error}, extra)
            except OSError:
                h.close_connection = True

        length = headers.get("content-length")
        if length is None and "transfer-encoding" not in headers and h.command != "POST":
            length = "0"
        if "transfer-encoding" in headers or length is None:
            h.close_connection = True
            return fail(411, "no Content-Length (the exporter must send one)")
        try:
            n = int(length)
            if n < 0:
                raise ValueError
        except ValueError:
            h.close_connection = True
            return fail(400, f"bad Content-Length {length!r}")
        if n > MAX_BODY:
            h.close_connection = True
            return fail(413, f"body of {n} bytes is over {MAX_BODY}")
        body = h.rfile.read(n)
        req.received_ns = time.time_ns()
        if len(body) != n:
            h.close_connection = True
            return fail(400, f"body ended after {len(body)} of {n} bytes")
        req.body = body
        req.wire_length = n

        if h.path != PATH:
            return fail(404, f"path {h.path!r}, want {PATH}")
        if h.command != "POST":
            return fail(405, f"method {h.command}, want POST", [("Allow", "POST")])
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            return fail(415, f"Content-Type {headers.get('content-type')!r}, "
                             "want application/json")
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding == "gzip":
            try:
                req.body = body = gzip.decompress(body)
            except (OSError, EOFError) as e:
                return fail(400, f"bad gzip body: {e}")
        elif encoding != "identity":
            return fail(415, f"Content-Encoding {encoding!r} (gzip or none)")
        try:
            req.message, req.json, req.spans = decode_export(body)
        except DecodeError as e:
            return fail(400, str(e))

        with self._lock:
            reply = self._script.pop(0) if self._script else Reply()
        if reply.delay > 0:
            if self._stopping.wait(reply.delay):  # close(): no answer
                h.close_connection = True
                self._record(req)
                return
            if _peer_closed(h.connection):
                req.client_closed = True
                h.close_connection = True
                self._record(req)
                return
        extra = []
        if reply.retry_after is not None:
            extra.append(("Retry-After", str(reply.retry_after)))
        req.status = reply.status
        self._record(req)
        body_out = {} if reply.status == 200 else {"message": f"scripted {reply.status}"}
        try:
            h.reply(reply.status, body_out, extra)
        except OSError:
            h.close_connection = True


def _peer_closed(sock: socket.socket) -> bool:
    """True if the peer has closed (or reset) the connection: readable with nothing to read."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except ValueError:  # a TLS socket takes no flags: not known, so not closed
        return False
    except OSError:
        return True


# --------------------------------------------------------------------------- span trees


def assert_tree(spans: Iterable[Span], remote_parents: Iterable[str] = (),
                tolerance_ns: int = DEFAULT_TOLERANCE_NS) -> dict[str, list[Span]]:
    """Checks the parent/child links of a set of spans and returns {span_id: [children]} (every
    span id is a key; children sorted by start time).

    - span ids are unique;
    - a span with a parent: the parent is among `spans` with the same trace id, unless the
      parent id is in `remote_parents` (e.g. the span id of the traceparent a test sent) or the
      span's flags say its parent is remote;
    - a child's [start, end] lies within its parent's, give or take `tolerance_ns` (1 ms by
      default) at either end."""
    spans = list(spans)
    by_id: dict[str, Span] = {}
    for s in spans:
        assert s.span_id not in by_id, f"span id {s.span_id} appears twice: {by_id[s.span_id]}" \
                                       f" and {s}"
        by_id[s.span_id] = s
    remote = {r.lower() for r in remote_parents}
    children: dict[str, list[Span]] = {s.span_id: [] for s in spans}
    for s in spans:
        if not s.parent_span_id:
            continue
        parent = by_id.get(s.parent_span_id)
        if parent is None or parent.trace_id != s.trace_id:
            assert s.parent_span_id in remote or s.parent_is_remote, (
                f"span {s.name!r} {s.span_id} (trace {s.trace_id}) has parent "
                f"{s.parent_span_id}, which is not among the spans of that trace and not a "
                f"declared remote parent ({sorted(remote) or 'none declared'})")
            continue
        assert parent.start_ns - tolerance_ns <= s.start_ns and \
            s.end_ns <= parent.end_ns + tolerance_ns, (
                f"span {s.name!r} [{s.start_ns}, {s.end_ns}] is not within its parent "
                f"{parent.name!r} [{parent.start_ns}, {parent.end_ns}] (tolerance "
                f"{tolerance_ns} ns): starts {s.start_ns - parent.start_ns} ns after it, ends "
                f"{parent.end_ns - s.end_ns} ns before it")
        children[parent.span_id].append(s)
    for c in children.values():
        c.sort(key=lambda x: x.start_ns)
    return children


def roots(spans: Iterable[Span]) -> list[Span]:
    """Spans with no parent among `spans` (local roots and children of remote parents)."""
    spans = list(spans)
    ids = {(s.trace_id, s.span_id) for s in spans}
    return [s for s in spans if not s.parent_span_id or (s.trace_id, s.parent_span_id) not in ids]
