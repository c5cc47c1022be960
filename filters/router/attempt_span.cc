#include "filters/router/attempt_span.h"

namespace sluice::router {

void AttemptSpan::begin(const TraceContext& trace, HeaderMap& upstream_headers,
                        std::string_view host, unsigned resend_count) {
  open_ = true;
  status_ = 0;
  resend_count_ = resend_count;
  host_ = host;
  span_id_ = new_span_id();
  start_unix_ns_ = unix_now_ns();
  upstream_headers.set("traceparent", format_traceparent(trace.trace_id, span_id_, true));
}

void AttemptSpan::end(const TraceContext& trace, const RequestHead& upstream_head, bool tls,
                      std::string_view error_type) {
  if (!open_) return;
  open_ = false;
  SpanRecord span;
  span.trace_id = trace.trace_id;
  span.span_id = span_id_;
  span.parent_id = trace.span_id;
  span.has_parent = true;
  span.kind = SpanKind::client;
  const std::string_view method = known_http_method(upstream_head.method);
  span.name = method;  // no URL template is known to a proxy
  span.start_unix_ns = start_unix_ns_;
  span.end_unix_ns = unix_now_ns();
  span.attributes.reserve(10);
  span.add("http.request.method", std::string(method));
  if (method == "_OTHER") span.add("http.request.method_original", upstream_head.method);
  const AuthorityParts peer = split_authority(host_);
  span.add("server.address", std::string(peer.host));
  if (peer.port) span.add("server.port", int64_t{*peer.port});
  span.add("network.peer.address", std::string(peer.host));
  if (peer.port) span.add("network.peer.port", int64_t{*peer.port});
  const bool v6 = peer.host.find(':') != std::string_view::npos;
  span.add("url.full", std::string(tls ? "https://" : "http://") + (v6 ? "[" : "") +
                           std::string(peer.host) + (v6 ? "]" : "") +
                           (peer.port ? ":" + std::to_string(*peer.port) : "") +
                           upstream_head.target);
  if (resend_count_ > 0) span.add("http.request.resend_count", int64_t{resend_count_});
  if (status_ != 0) span.add("http.response.status_code", int64_t{status_});
  // A client span fails on a 4xx or 5xx as well as on no (complete) response.
  if (!error_type.empty()) {
    span.error = true;
    span.add("error.type", std::string(error_type));
  } else if (status_ >= 400) {
    span.error = true;
    span.add("error.type", std::to_string(status_));
  }
  trace.sink->submit(std::move(span));
}

}  // namespace sluice::router
