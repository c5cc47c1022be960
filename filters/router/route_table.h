#pragma once
// Routes compiled from the config: regexes built once (RE2) per snapshot, matched in order,
// first match wins, through an index of hosts and paths (route_index.h) so the cost of a match
// hardly depends on the number of routes. Built on the main thread with the snapshot; immutable
// afterwards and shared read-only by all workers, which may call every const member concurrently.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/http.h"
#include "filters/router/route_index.h"

namespace re2 {
class RE2;
}

namespace sluice::router {

struct CompiledRoute {
  const config::Route* route = nullptr;        // points into the snapshot's Config
  const config::Cluster* cluster = nullptr;    // null for respond / redirect routes
  std::shared_ptr<const re2::RE2> path_regex;  // set only for PathMatch::Kind::regex
  // Parallel to route->match.headers; set only for HeaderMatch::Kind::regex entries.
  std::vector<std::shared_ptr<const re2::RE2>> header_regexes;
};

class RouteTable {
 public:
  // Main thread. `config` must outlive the table. Regexes and cluster names were validated by
  // the config loader, so a failure here is an internal error: returns null with `error` set.
  static std::shared_ptr<const RouteTable> build(const config::Config& config,
                                                 std::string* error = nullptr);

  // Main thread. The routes of `all` that apply on `listener` (no match.listeners, or one
  // naming it), in order, sharing `all`'s compiled regexes; `all` itself when every route
  // applies. Each listener's chain matches against its own view, so match() never compares
  // listener names. A view has its own index.
  static std::shared_ptr<const RouteTable> for_listener(std::shared_ptr<const RouteTable> all,
                                                        std::string_view listener);

  // Any worker. First route whose every condition matches, or null. Does not allocate (RE2
  // may still grow its per-regex DFA cache while warming up, bounded by its max_mem).
  //  - listeners: not checked here (see for_listener()).
  //  - hosts: see host_matches(); empty list = any host.
  //  - path: against request.path() (no query). prefix = plain string prefix, exact = equality,
  //    regex = RE2 full match, any = always.
  //  - methods: exact, case-sensitive (RFC 9110 §9.1); empty list = any method.
  //  - headers: all must match. Names are case-insensitive. `present` = a field exists;
  //    `exact` (case-sensitive) and `regex` (full match) hold when any field of that name has a
  //    matching value (repeated fields are not joined, so matching never allocates).
  // The index yields candidates by host and path; each is checked in full, in config order.
  const CompiledRoute* match(const RequestHead& request) const;

  // Any worker. The same answer as match() by trying every route in order: the reference the
  // tests compare the index with.
  const CompiledRoute* match_linear(const RequestHead& request) const;

  // Any worker. The request target after `route`'s rewrite_prefix (the target unchanged when
  // the route has none). A prefix route replaces the matched prefix; other kinds replace the
  // whole path. The query is kept. No "//" is produced where the rewrite ends in '/' and the
  // rest of the path starts with one ("/v1/" → "/": "/v1/users" → "/users"); otherwise the
  // join is literal, as in Envoy and nginx ("/v1/" → "/v2": "/v1/users" → "/v2users").
  static std::string rewrite_target(const CompiledRoute& route, const RequestHead& request);

  // Any worker. Location for a redirect route: the request's URL (scheme from
  // request.scheme, host and port from request.authority, path, query) with each set part of
  // `redirect` substituted. The request's port is kept only when neither scheme nor host
  // changes (it belongs to them); a port equal to the scheme's default (80/443) is omitted. A
  // redirect path containing '?' brings its own query; strip_query drops the request's. With
  // no host known (no authority, no redirect host), returns a relative reference ("/path?q").
  static std::string redirect_location(const config::Redirect& redirect,
                                       const RequestHead& request);

  const std::vector<CompiledRoute>& routes() const { return routes_; }

 private:
  RouteTable() = default;
  std::vector<CompiledRoute> routes_;
  RouteIndex index_;  // over routes_, built once they are all in place
};

// Host matching: `pattern` is a name compared case-insensitively, "*.suffix" (any host with at
// least one label before ".suffix": "*.example.com" matches "a.example.com" and
// "a.b.example.com", not "example.com"), or "*" (any host). The authority's port is ignored,
// as is one trailing dot; IPv6 literals match with or without brackets ("[::1]" or "::1").
bool host_matches(std::string_view pattern, std::string_view authority);

}  // namespace sluice::router
