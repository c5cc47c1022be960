"""Strict decoder for OTLP/HTTP JSON trace exports, built from the published .proto files.

`decode_export(body)` turns the body of a POST /v1/traces into an `ExportTraceServiceRequest`
(the class protoc generates from the vendored proto/ tree) and a flat list of `Span`s, or raises
`DecodeError` saying what is wrong and where.

It follows the OTLP specification's "JSON Protobuf Encoding" (docs/specification.md in
opentelemetry-proto) on top of the proto3 JSON mapping that `google.protobuf.json_format`
implements:

- `traceId`, `spanId`, `parentSpanId` (in Span and Span.Link) are hex strings, not base64.
  The spec says case-insensitive; they are accepted in either case and reported lowercase.
- enum fields (`kind`, `status.code`) are integers; enum names are rejected.
- keys are lowerCamelCase json names; proto field names (`trace_id`) are rejected, which
  json_format alone would accept.
- 64-bit integers (`intValue`, `*TimeUnixNano`) may be decimal strings or JSON numbers.

Stricter than a collector, on purpose, because it checks our exporter rather than serving
arbitrary clients: an unknown field is an error (a receiver MUST ignore it, but sluice writing a
field the schema lacks is a bug: "spanID", "parent_span_id"), so are JSON null, duplicate keys,
NaN/Infinity literals, enum values outside the enum, kind 0 (UNSPECIFIED: "Do NOT use"), an
all-zero or wrong-length id, an empty span name, a zero or reversed start/end time, an empty or
repeated attribute key.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROTO_DIR = Path(__file__).resolve().parent / "proto"
PROTO_FILES = (
    "opentelemetry/proto/common/v1/common.proto",
    "opentelemetry/proto/resource/v1/resource.proto",
    "opentelemetry/proto/trace/v1/trace.proto",
    "opentelemetry/proto/collector/trace/v1/trace_service.proto",
)

# Span kinds (trace.proto Span.SpanKind) and status codes (Status.StatusCode).
SPAN_KIND_INTERNAL, SPAN_KIND_SERVER, SPAN_KIND_CLIENT = 1, 2, 3
SPAN_KIND_PRODUCER, SPAN_KIND_CONSUMER = 4, 5
STATUS_CODE_UNSET, STATUS_CODE_OK, STATUS_CODE_ERROR = 0, 1, 2
# Span.flags bits (trace.proto SpanFlags).
SPAN_FLAGS_TRACE_FLAGS_MASK = 0x000000FF
SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK = 0x00000100
SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK = 0x00000200

# bytes fields written as hex in OTLP JSON, with their length in bytes ("" allowed where 0 is
# listed: a root span has no parent).
_HEX_IDS = {"trace_id": (16,), "span_id": (8,), "parent_span_id": (0, 8)}


class DecodeError(ValueError):
    """The body is not a valid OTLP/JSON ExportTraceServiceRequest."""


# --------------------------------------------------------------------------- protoc, once


_compile_lock = threading.Lock()
_modules: dict[str, Any] = {}


def _compile() -> dict[str, Any]:
    """Compiles the vendored .proto files with protoc into a temporary directory (once per
    process) and imports the generated modules. Raises RuntimeError if protoc is missing."""
    with _compile_lock:
        if _modules:
            return _modules
        protoc = shutil.which("protoc")
        if protoc is None:
            raise RuntimeError("protoc not found: install Debian's protobuf-compiler "
                               "(scripts/install-deps.sh) to decode OTLP exports")
        if importlib.util.find_spec("google.protobuf") is None:
            raise RuntimeError("python3-protobuf is missing (scripts/install-deps.sh)")
        out = Path(tempfile.mkdtemp(prefix="sluice-otlp-pb2-"))
        result = subprocess.run([protoc, f"--proto_path={PROTO_DIR}", f"--python_out={out}",
                                 *PROTO_FILES], capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"protoc failed ({result.returncode}): {result.stderr}")
        # Regular packages (with __init__.py) first on sys.path, so that an installed
        # `opentelemetry` distribution cannot shadow the generated code.
        for d in [out / "opentelemetry", *(p for p in (out / "opentelemetry").rglob("*")
                                           if p.is_dir())]:
            (d / "__init__.py").touch()
        sys.path.insert(0, str(out))
        names = {"common": "opentelemetry.proto.common.v1.common_pb2",
                 "resource": "opentelemetry.proto.resource.v1.resource_pb2",
                 "trace": "opentelemetry.proto.trace.v1.trace_pb2",
                 "trace_service": "opentelemetry.proto.collector.trace.v1.trace_service_pb2"}
        loaded = {k: importlib.import_module(v) for k, v in names.items()}
        for k, m in loaded.items():
            if not Path(m.__file__).resolve().is_relative_to(out.resolve()):
                raise RuntimeError(f"{names[k]} was imported from {m.__file__}, not from the "
                                   f"code protoc generated in {out}")
        _modules.update(loaded)
        return _modules


def trace_service_pb2():
    """The generated module holding ExportTraceServiceRequest/Response."""
    return _compile()["trace_service"]


# --------------------------------------------------------------------------- flat spans


@dataclass
class Span:
    """One decoded span, flattened with its resource and scope. Ids are lowercase hex."""
    trace_id: str
    span_id: str
    parent_span_id: str          # "" for a root span
    name: str
    kind: int                    # SPAN_KIND_SERVER = 2, SPAN_KIND_CLIENT = 3, ...
    start_ns: int                # startTimeUnixNano
    end_ns: int                  # endTimeUnixNano
    status_code: int             # 0 unset, 1 ok, 2 error
    status_message: str
    attributes: dict[str, Any]   # {key: str | int | bool | float | list | dict | bytes | None}
    resource: dict[str, Any]     # resource attributes, e.g. {"service.name": "sluice"}
    scope_name: str
    scope_version: str
    scope_attributes: dict[str, Any] = field(default_factory=dict)
    trace_state: str = ""
    flags: int = 0               # Span.flags: W3C trace flags in bits 0-7, is-remote bits 8-9
    events: list[dict[str, Any]] = field(default_factory=list)   # name, time_ns, attributes
    links: list[dict[str, Any]] = field(default_factory=list)    # trace_id, span_id, ...
    dropped_attributes_count: int = 0
    dropped_events_count: int = 0
    dropped_links_count: int = 0

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    @property
    def parent_is_remote(self) -> bool | None:
        """From Span.flags: True/False if the exporter said, None if it did not."""
        if not self.flags & SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK:
            return None
        return bool(self.flags & SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK)

    @property
    def sampled(self) -> bool:
        return bool(self.flags & 0x01)


def any_value(v) -> Any:
    """An AnyValue message as a plain Python value (None when no value is set)."""
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return attributes(v.kvlist_value.values)
    return getattr(v, which)


def attributes(kvs) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


def flatten(request) -> list[Span]:
    """Every span of an ExportTraceServiceRequest, with its resource and scope."""
    out = []
    for rs in request.resource_spans:
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            scope_attrs = attributes(ss.scope.attributes)
            for s in ss.spans:
                out.append(Span(
                    trace_id=s.trace_id.hex(), span_id=s.span_id.hex(),
                    parent_span_id=s.parent_span_id.hex(), name=s.name, kind=s.kind,
                    start_ns=s.start_time_unix_nano, end_ns=s.end_time_unix_nano,
                    status_code=s.status.code, status_message=s.status.message,
                    attributes=attributes(s.attributes), resource=dict(resource),
                    scope_name=ss.scope.name, scope_version=ss.scope.version,
                    scope_attributes=dict(scope_attrs), trace_state=s.trace_state,
                    flags=s.flags,
                    events=[{"name": e.name, "time_ns": e.time_unix_nano,
                             "attributes": attributes(e.attributes)} for e in s.events],
                    links=[{"trace_id": ln.trace_id.hex(), "span_id": ln.span_id.hex(),
                            "trace_state": ln.trace_state, "flags": ln.flags,
                            "attributes": attributes(ln.attributes)} for ln in s.links],
                    dropped_attributes_count=s.dropped_attributes_count,
                    dropped_events_count=s.dropped_events_count,
                    dropped_links_count=s.dropped_links_count))
    return out


# --------------------------------------------------------------------------- decoding


def _reject_constant(name: str):
    raise DecodeError(f"{name} is not JSON")


def _no_duplicate_keys(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise DecodeError(f"duplicate key {k!r} in one JSON object")
        obj[k] = v
    return obj


def _hex_id(value, fname: str, lengths: tuple[int, ...], where: str) -> str:
    """An OTLP/JSON hex id as the base64 json_format expects; checks length and non-zero."""
    if not isinstance(value, str):
        raise DecodeError(f"{where}: {fname} must be a hex string, got {value!r}")
    want = " or ".join("empty" if n == 0 else f"{2 * n} hex digits" for n in lengths)
    try:
        raw = binascii.unhexlify(value)
    except (binascii.Error, ValueError):
        raise DecodeError(f"{where}: {fname} {value!r} is not hex ({want}; OTLP/JSON ids are "
                          f"hex, not base64)") from None
    if len(raw) not in lengths:
        raise DecodeError(f"{where}: {fname} {value!r} has {len(value)} characters, "
                          f"want {want}")
    if raw and not any(raw):
        raise DecodeError(f"{where}: {fname} is all zeros (an invalid id)")
    return base64.b64encode(raw).decode()


def _to_proto3_json(desc, obj, where: str):
    """Walks one JSON object against its message descriptor: rejects what OTLP/JSON forbids,
    converts hex ids to base64, and returns what json_format.Parse reads."""
    from google.protobuf.descriptor import FieldDescriptor as F
    if not isinstance(obj, dict):
        raise DecodeError(f"{where}: expected a JSON object for {desc.name}, got {obj!r:.80}")
    by_json = {f.json_name: f for f in desc.fields}
    by_proto = {f.name: f for f in desc.fields}
    out = {}
    for key, value in obj.items():
        f = by_json.get(key)
        if f is None:
            hint = ""
            if key in by_proto:
                hint = f" (OTLP/JSON keys are lowerCamelCase: {by_proto[key].json_name!r})"
            else:
                close = [n for n in by_json if n.lower() == key.lower()]
                if close:
                    hint = f" (did you mean {close[0]!r}?)"
            raise DecodeError(f"{where}: unknown field {key!r} in {desc.full_name}{hint}")
        path = f"{where}.{key}"
        if value is None:
            raise DecodeError(f"{path}: null (omit the field instead)")
        if f.label == F.LABEL_REPEATED:
            if not isinstance(value, list):
                raise DecodeError(f"{path}: expected a JSON array, got {value!r:.80}")
            out[key] = [_field_value(f, v, f"{path}[{i}]") for i, v in enumerate(value)]
        else:
            out[key] = _field_value(f, value, path)
    return out


def _field_value(f, value, path: str):
    from google.protobuf.descriptor import FieldDescriptor as F
    if value is None:
        raise DecodeError(f"{path}: null (omit the field instead)")
    if f.type == F.TYPE_MESSAGE:
        return _to_proto3_json(f.message_type, value, path)
    if f.type == F.TYPE_ENUM:
        if not isinstance(value, int) or isinstance(value, bool):
            raise DecodeError(f"{path}: enum values are integers in OTLP/JSON, got {value!r}")
        if f.enum_type.values_by_number.get(value) is None:
            raise DecodeError(f"{path}: {value} is not a value of {f.enum_type.full_name}")
        return value
    if f.type == F.TYPE_BYTES and f.name in _HEX_IDS:
        return _hex_id(value, f.json_name, _HEX_IDS[f.name], path.rsplit(".", 1)[0])
    return value


def _check_span(s, where: str) -> None:
    if not s.name:
        raise DecodeError(f"{where}: empty name")
    if len(s.trace_id) != 16 or len(s.span_id) != 8:
        raise DecodeError(f"{where}: traceId and spanId are required")
    if s.kind == 0:
        raise DecodeError(f"{where}: kind 0 (SPAN_KIND_UNSPECIFIED) must not be used")
    if s.start_time_unix_nano == 0 or s.end_time_unix_nano == 0:
        raise DecodeError(f"{where}: startTimeUnixNano and endTimeUnixNano are required")
    if s.start_time_unix_nano > s.end_time_unix_nano:
        raise DecodeError(f"{where}: startTimeUnixNano {s.start_time_unix_nano} > "
                          f"endTimeUnixNano {s.end_time_unix_nano}")
    if s.parent_span_id == s.span_id:
        raise DecodeError(f"{where}: the span is its own parent")
    _check_keys(s.attributes, f"{where}.attributes")
    for i, e in enumerate(s.events):
        _check_keys(e.attributes, f"{where}.events[{i}].attributes")
    for i, ln in enumerate(s.links):
        if len(ln.trace_id) != 16 or len(ln.span_id) != 8:
            raise DecodeError(f"{where}.links[{i}]: traceId and spanId are required")
        _check_keys(ln.attributes, f"{where}.links[{i}].attributes")


def _check_keys(kvs, where: str) -> None:
    seen = set()
    for kv in kvs:
        if not kv.key:
            raise DecodeError(f"{where}: empty attribute key")
        if kv.key in seen:
            raise DecodeError(f"{where}: attribute key {kv.key!r} repeated")
        seen.add(kv.key)


def decode_json(text: str | bytes):
    """Parses an OTLP/JSON ExportTraceServiceRequest body; returns (message, parsed JSON)."""
    from google.protobuf import json_format
    pb = trace_service_pb2()
    try:
        doc = json.loads(text, parse_constant=_reject_constant,
                         object_pairs_hook=_no_duplicate_keys)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DecodeError(f"not JSON: {e}") from None
    converted = _to_proto3_json(pb.ExportTraceServiceRequest.DESCRIPTOR, doc, "$")
    message = pb.ExportTraceServiceRequest()
    try:
        json_format.Parse(json.dumps(converted), message, ignore_unknown_fields=False)
    except json_format.ParseError as e:
        raise DecodeError(f"json_format: {e}") from None
    for r, rs in enumerate(message.resource_spans):
        _check_keys(rs.resource.attributes, f"$.resourceSpans[{r}].resource.attributes")
        for c, ss in enumerate(rs.scope_spans):
            _check_keys(ss.scope.attributes, f"$.resourceSpans[{r}].scopeSpans[{c}].scope")
            for i, s in enumerate(ss.spans):
                _check_span(s, f"$.resourceSpans[{r}].scopeSpans[{c}].spans[{i}]")
    return message, doc


def decode_export(body: str | bytes):
    """(ExportTraceServiceRequest, parsed JSON, [Span]) for one body; raises DecodeError."""
    message, doc = decode_json(body)
    return message, doc, flatten(message)
