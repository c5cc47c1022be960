#pragma once
// OTLP's JSON encoding of an ExportTraceServiceRequest (OTLP specification, "JSON Protobuf
// Encoding"): the protobuf JSON mapping with lowerCamelCase field names, trace and span ids as
// hex strings (not base64), enums as integers and 64-bit integers as decimal strings. Pure; any
// thread.
#include <span>
#include <string>
#include <string_view>

#include "core/trace.h"

namespace sluice::tracing {

// One resourceSpans entry (service.name = `service_name`, the sluice version) holding one
// scopeSpans entry (scope "sluice") with `spans`.
std::string encode_export_request(std::span<const SpanRecord> spans, std::string_view service_name);

}  // namespace sluice::tracing
