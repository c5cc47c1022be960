#pragma once
// Errors on the data plane are values, never exceptions. Each carries where it came from and
// whether the request may be retried; status_for() is the one place that maps them to HTTP.
#include <string>
#include <string_view>

namespace sluice {

enum class ErrorSource { downstream, upstream, internal };

enum class ErrorKind {
  bad_request,         // 400: malformed or ambiguous downstream request
  not_implemented,     // 501: unknown transfer coding
  header_too_large,    // 431: header section over the listener limit
  uri_too_long,        // 414
  body_too_large,      // 413
  no_route,            // 404
  no_healthy_host,     // 503: the cluster has no host to try
  overflow,            // 503: a circuit breaker of the cluster is at its limit
  connect_failed,      // 503: every connect attempt failed or was refused
  upstream_timeout,    // 504: the route timeout expired before the response head
  bad_response,        // 502: the upstream sent something that is not a valid response
  upstream_reset,      // 502: the upstream closed or reset before the response head
  internal,            // 500
};

struct Error {
  ErrorKind kind = ErrorKind::internal;
  ErrorSource source = ErrorSource::internal;
  bool retry_safe = false;  // nothing of the request reached the upstream application
  std::string detail;       // for logs, never sent to clients
};

unsigned status_for(ErrorKind kind);
inline unsigned status_for(const Error& e) { return status_for(e.kind); }
std::string_view to_string(ErrorKind kind);

}  // namespace sluice
