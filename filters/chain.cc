#include "filters/chain.h"

#include "filters/router/router_filter.h"

namespace sluice {

std::shared_ptr<const FilterChainFactory> FilterChainFactory::build(
    const config::Listener& listener, std::shared_ptr<const router::RouteTable> routes,
    std::string* error) {
  auto chain = std::make_shared<FilterChainFactory>();
  for (const auto& name : listener.filters) {
    // No filters besides the router exist yet; rate_limit and sanitize register here.
    if (error) *error = "listener '" + listener.name + "': unknown filter '" + name + "'";
    return nullptr;
  }
  chain->factories_.push_back(std::make_shared<router::RouterFilterFactory>(std::move(routes)));
  return chain;
}

std::vector<FilterPtr> FilterChainFactory::create() const {
  std::vector<FilterPtr> filters;
  filters.reserve(factories_.size());
  for (const auto& f : factories_) filters.push_back(f->create());
  return filters;
}

}  // namespace sluice
