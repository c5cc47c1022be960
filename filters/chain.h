#pragma once
// The filter chain of a listener: factories built once per snapshot, router always last.
// Which filters run, in order: those the listener lists in `filters:`, then every registered
// filter whose config applies to the listener (a listener or route naming a rate limit, say).
// Immutable; shared by every worker.
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/client_ip.h"
#include "filters/filter.h"

namespace sluice {
class RuntimeState;
namespace router {
class RouteTable;
}

class FilterChainFactory {
 public:
  // A chain of exactly these factories, in order; the caller puts the terminal filter last.
  FilterChainFactory(std::vector<FilterFactoryPtr> factories,
                     std::shared_ptr<const router::RouteTable> routes, TrustedProxies trusted = {})
      : factories_(std::move(factories)),
        routes_(std::move(routes)),
        trusted_(std::move(trusted)) {}

  // Main thread. The chain matches against the routes of `routes` that apply on `listener`
  // (RouteTable::for_listener()). Null with `error` set when a filter cannot be built (an unknown
  // name is rejected by the config loader first, so that is a second line of defence).
  static std::shared_ptr<const FilterChainFactory> build(
      const config::Config& config, const config::Listener& listener,
      std::shared_ptr<const router::RouteTable> routes, RuntimeState& runtime, std::string* error);

  // One instance of every filter for a new stream, router last.
  std::vector<FilterPtr> create(WorkerServices& services) const;

  // The routes streams of this chain match against (null in chains without a router).
  const router::RouteTable* routes() const { return routes_.get(); }
  const TrustedProxies& trusted_proxies() const { return trusted_; }
  // The listener's request_id.echo: responses carry the request's x-request-id.
  bool echo_request_id() const { return echo_request_id_; }
  // Names of the filters in order, router included (for tests and the admin API).
  const std::vector<std::string>& names() const { return names_; }

 private:
  std::vector<FilterFactoryPtr> factories_;
  std::shared_ptr<const router::RouteTable> routes_;
  TrustedProxies trusted_;
  bool echo_request_id_ = false;
  std::vector<std::string> names_;
};

using FilterChainFactoryPtr = std::shared_ptr<const FilterChainFactory>;

}  // namespace sluice
