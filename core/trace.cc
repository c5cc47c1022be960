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

SpanId new_span_id() {
  SpanId id;
  do {
    fill_random_hex(id.data(), id.size());
  } while (to_view(id).find_first_not_of('0') == std::string_view::npos);
  return id;
}

std::string sampled_traceparent(const TraceId& trace, const SpanId& span) {
  std::string value = "00-________________________________-________________-01";
  std::memcpy(value.data() + 3, trace.data(), trace.size());
  std::memcpy(value.data() + 36, span.data(), span.size());
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
