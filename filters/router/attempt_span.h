#pragma once
// The client span of one upstream try (OpenTelemetry's HTTP client conventions): opened when
// the router picks a host for a sampled request, closed when the try ends, whatever way. A
// retry is a new try with its own span, a sibling under the request's server span.
#include <string>
#include <string_view>

#include "core/http.h"
#include "core/trace.h"

namespace sluice::router {

class AttemptSpan {
 public:
  // Opens the span for a try at `host` ("ip:port"), the `resend_count`-th resend of the
  // request, and names it as the parent in the try's traceparent. Ends an open one first.
  void begin(const TraceContext& trace, HeaderMap& upstream_headers, std::string_view host,
             unsigned resend_count);
  void set_status(unsigned status) { status_ = status; }
  // Closes an open span; `error_type` is empty for a try that got its whole response. No-op
  // when none is open.
  void end(const TraceContext& trace, const RequestHead& upstream_head, bool tls,
           std::string_view error_type = {});

 private:
  bool open_ = false;
  unsigned status_ = 0;
  unsigned resend_count_ = 0;
  std::string host_;
  SpanId span_id_{};
  uint64_t start_unix_ns_ = 0;
};

}  // namespace sluice::router
