#include "tracing/otlp_json.h"

#include "core/json.h"
#include "core/version.h"

namespace sluice::tracing {
namespace {

void append_string_attribute(std::string& out, std::string_view key, std::string_view value) {
  out += "{\"key\":";
  append_json_string(out, key);
  out += ",\"value\":{\"stringValue\":";
  append_json_string(out, value);
  out += "}}";
}

void append_attribute(std::string& out, const SpanAttribute& a) {
  if (const auto* s = std::get_if<std::string>(&a.value)) {
    append_string_attribute(out, a.key, *s);
    return;
  }
  out += "{\"key\":";
  append_json_string(out, a.key);
  out += ",\"value\":{\"intValue\":\"";
  out += std::to_string(std::get<int64_t>(a.value));
  out += "\"}}";
}

void append_span(std::string& out, const SpanRecord& s) {
  out += "{\"traceId\":\"";
  out += to_view(s.trace_id);
  out += "\",\"spanId\":\"";
  out += to_view(s.span_id);
  out += '"';
  if (s.has_parent) {
    out += ",\"parentSpanId\":\"";
    out += to_view(s.parent_id);
    out += '"';
  }
  // Bits 0-7 are the W3C trace flags (sampled: every recorded span is); bit 8 says bit 9 is
  // meaningful, and bit 9 that the parent is remote: a server span's is another process's.
  const bool remote_parent = s.kind == SpanKind::server && s.has_parent;
  out += ",\"flags\":";
  out += remote_parent ? "769" : "257";
  out += ",\"name\":";
  append_json_string(out, s.name);
  out += ",\"kind\":";
  out += std::to_string(static_cast<int>(s.kind));
  out += ",\"startTimeUnixNano\":\"";
  out += std::to_string(s.start_unix_ns);
  out += "\",\"endTimeUnixNano\":\"";
  out += std::to_string(s.end_unix_ns);
  out += "\",\"attributes\":[";
  for (size_t i = 0; i < s.attributes.size(); ++i) {
    if (i > 0) out += ',';
    append_attribute(out, s.attributes[i]);
  }
  out += ']';
  if (s.error) out += ",\"status\":{\"code\":2}";  // STATUS_CODE_ERROR
  out += '}';
}

}  // namespace

std::string encode_export_request(std::span<const SpanRecord> spans,
                                  std::string_view service_name) {
  std::string out;
  out.reserve(256 + spans.size() * 640);
  out += "{\"resourceSpans\":[{\"resource\":{\"attributes\":[";
  append_string_attribute(out, "service.name", service_name);
  out += ',';
  append_string_attribute(out, "service.version", kVersion);
  out += ',';
  append_string_attribute(out, "telemetry.sdk.name", "sluice");
  out += ',';
  append_string_attribute(out, "telemetry.sdk.language", "cpp");
  out += ',';
  append_string_attribute(out, "telemetry.sdk.version", kVersion);
  out += "]},\"scopeSpans\":[{\"scope\":{\"name\":\"sluice\",\"version\":";
  append_json_string(out, kVersion);
  out += "},\"spans\":[";
  for (size_t i = 0; i < spans.size(); ++i) {
    if (i > 0) out += ',';
    append_span(out, spans[i]);
  }
  out += "]}]}]}";
  return out;
}

}  // namespace sluice::tracing
