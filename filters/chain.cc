#include "filters/chain.h"

#include "filters/router/router_filter.h"

namespace sluice {

std::shared_ptr<const FilterChainFactory> FilterChainFactory::build(
    const config::Listener& listener, std::shared_ptr<const router::RouteTable> routes,
    std::string* error) {
  std::vector<FilterFactoryPtr> factories;
  for (const auto& name : listener.filters) {
    // No filters besides the router exist yet; rate_limit and sanitize register here.
    if (error) *error = "listener '" + listener.name + "': unknown filter '" + name + "'";
    return nullptr;
  }
  factories.push_back(std::make_shared<router::RouterFilterFactory>(std::move(routes)));
  return std::make_shared<FilterChainFactory>(std::move(factories));
}

std::vector<FilterPtr> FilterChainFactory::create() const {
  std::vector<FilterPtr> filters;
  filters.reserve(factories_.size());
  for (const auto& f : factories_) filters.push_back(f->create());
  return filters;
}

}  // namespace sluice
