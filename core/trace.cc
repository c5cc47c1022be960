#include "core/trace.h"

#include <chrono>
#include <cstring>

#include "core/request_id.h"

namespace sluice {

uint64_t unix_now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

namespace {

// Random hex digits, drawn again in the unlikely case they are all zeros (an invalid id).
template <typename Id>
Id new_id() {
  Id id;
  do {
    fill_random_hex(id.data(), id.size());
  } while (to_view(id).find_first_not_of('0') == std::string_view::npos);
  return id;
}

}  // namespace

SpanId new_span_id() { return new_id<SpanId>(); }

TraceId new_trace_id() { return new_id<TraceId>(); }

std::string format_traceparent(const TraceId& trace, const SpanId& span, bool sampled) {
  std::string value = "00-________________________________-________________-00";
  std::memcpy(value.data() + 3, trace.data(), trace.size());
  std::memcpy(value.data() + 36, span.data(), span.size());
  if (sampled) value.back() = '1';
  return value;
}

std::string_view known_http_method(std::string_view method) {
  static constexpr std::string_view kKnown[] = {"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                                "CONNECT", "OPTIONS", "TRACE", "PATCH"};
  for (std::string_view m : kKnown) {
    if (m == method) return m;
  }
  return "_OTHER";
}

}  // namespace sluice
