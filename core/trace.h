#pragma once
// Trace context and recorded spans (OpenTelemetry's data model, the parts sluice records). A
// request's TraceContext is filled from its W3C traceparent by assign_request_ids()
// (core/request_id.h); spans are recorded only for a sampled request and handed to a SpanSink
// (the OTLP exporter), which encodes and sends them off the worker threads.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace sluice {

using TraceId = std::array<char, 32>;  // lowercase hex digits, as in traceparent
using SpanId = std::array<char, 16>;

inline std::string_view to_view(const TraceId& id) { return {id.data(), id.size()}; }
inline std::string_view to_view(const SpanId& id) { return {id.data(), id.size()}; }

class SpanSink;

struct TraceContext {
  TraceId trace_id{};  // set on every request (from its traceparent, or a new trace)
  SpanId parent_id{};  // the caller's span, when the request carried a valid traceparent
  bool has_parent = false;
  bool parent_sampled = false;  // the incoming traceparent's sampled flag
  // Set when tracing is on and this request is recorded; then `span_id` is the server span's
  // id and spans go to `sink`.
  bool sampled = false;
  SpanId span_id{};
  SpanSink* sink = nullptr;
};

enum class SpanKind : uint8_t { server = 2, client = 3 };  // OTLP's SpanKind numbers

struct SpanAttribute {
  std::string_view key;  // a semantic-convention name: static storage
  std::variant<std::string, int64_t> value;
};

struct SpanRecord {
  TraceId trace_id{};
  SpanId span_id{};
  SpanId parent_id{};
  bool has_parent = false;
  SpanKind kind = SpanKind::server;
  std::string name;
  uint64_t start_unix_ns = 0;
  uint64_t end_unix_ns = 0;
  bool error = false;  // status ERROR; otherwise left unset, as the conventions ask
  std::vector<SpanAttribute> attributes;

  void add(std::string_view key, std::string value) {
    attributes.push_back({key, std::move(value)});
  }
  void add(std::string_view key, int64_t value) { attributes.push_back({key, value}); }
};

// Where finished spans go. submit() is called on worker threads and must not block.
class SpanSink {
 public:
  virtual ~SpanSink() = default;
  virtual void submit(SpanRecord&& span) = 0;
};

// Nanoseconds since the Unix epoch, now.
uint64_t unix_now_ns();

// A new random span id (never all zeros).
SpanId new_span_id();

// "00-<trace id>-<span id>-<flags>": the traceparent that names `span` as the parent of the
// next hop, flags 01 when `sampled`, else 00.
std::string format_traceparent(const TraceId& trace, const SpanId& span, bool sampled);

// A new random trace id (never all zeros).
TraceId new_trace_id();

// The method as the conventions want it in http.request.method: one of the registered methods
// of RFC 9110 and RFC 5789, or "_OTHER" (the original then goes in
// http.request.method_original).
std::string_view known_http_method(std::string_view method);

}  // namespace sluice
