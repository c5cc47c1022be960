#pragma once
// Routes compiled from the config: regexes built once (RE2) per snapshot, matched in order,
// first match wins. Immutable after build(); shared read-only by all workers.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/http.h"

namespace re2 {
class RE2;
}

namespace sluice::router {

struct CompiledRoute {
  const config::Route* route = nullptr;  // points into the snapshot's Config
  const config::Cluster* cluster = nullptr;  // null for respond / redirect routes
  std::shared_ptr<const re2::RE2> path_regex;
  std::vector<std::shared_ptr<const re2::RE2>> header_regexes;  // parallel to match.headers
};

class RouteTable {
 public:
  // `config` must outlive the table. Regexes were validated by the config loader, so a
  // failure here is an internal error (returns nullopt with `error` set).
  static std::shared_ptr<const RouteTable> build(const config::Config& config,
                                                 std::string* error = nullptr);

  // First route whose every condition matches, or null.
  const CompiledRoute* match(const RequestHead& request) const;

  // The request target after `route`'s rewrite.prefix is applied (query kept).
  static std::string rewrite_target(const CompiledRoute& route, const RequestHead& request);
  // Location for a redirect route.
  static std::string redirect_location(const config::Redirect& redirect,
                                       const RequestHead& request);

 private:
  std::vector<CompiledRoute> routes_;
};

// Host matching: exact (case-insensitive) or "*.suffix" wildcard; the request's port is ignored.
bool host_matches(std::string_view pattern, std::string_view authority);

}  // namespace sluice::router
