#include "core/error.h"

namespace sluice {

unsigned status_for(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::bad_request: return 400;
    case ErrorKind::not_implemented: return 501;
    case ErrorKind::header_too_large: return 431;
    case ErrorKind::uri_too_long: return 414;
    case ErrorKind::body_too_large: return 413;
    case ErrorKind::no_route: return 404;
    case ErrorKind::no_healthy_host: return 503;
    case ErrorKind::overflow: return 503;
    case ErrorKind::connect_failed: return 503;
    case ErrorKind::upstream_timeout: return 504;
    case ErrorKind::bad_response: return 502;
    case ErrorKind::upstream_reset: return 502;
    case ErrorKind::internal: return 500;
  }
  return 500;
}

std::string_view to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::bad_request: return "bad_request";
    case ErrorKind::not_implemented: return "not_implemented";
    case ErrorKind::header_too_large: return "header_too_large";
    case ErrorKind::uri_too_long: return "uri_too_long";
    case ErrorKind::body_too_large: return "body_too_large";
    case ErrorKind::no_route: return "no_route";
    case ErrorKind::overflow: return "overflow";
    case ErrorKind::no_healthy_host: return "no_healthy_host";
    case ErrorKind::connect_failed: return "connect_failed";
    case ErrorKind::upstream_timeout: return "upstream_timeout";
    case ErrorKind::bad_response: return "bad_response";
    case ErrorKind::upstream_reset: return "upstream_reset";
    case ErrorKind::internal: return "internal";
  }
  return "internal";
}

}  // namespace sluice
