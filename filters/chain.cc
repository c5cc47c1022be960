#include "filters/chain.h"

#include <algorithm>

#include "filters/registry.h"
#include "filters/router/route_table.h"

namespace sluice {

std::shared_ptr<const FilterChainFactory> FilterChainFactory::build(
    const config::Config& config, const config::Listener& listener,
    std::shared_ptr<const router::RouteTable> routes, RuntimeState& runtime, std::string* error) {
  std::vector<std::string> names = listener.filters;
  std::vector<std::string> first;
  for (const FilterRegistration& r : FilterRegistry::all()) {
    const config::FilterConfig* fc = config.filter_config(r.schema.name);
    if (!fc || !r.applies_to || !r.applies_to(*fc, listener)) continue;
    if (std::find(names.begin(), names.end(), r.schema.name) == names.end()) {
      (r.runs_first ? first : names).push_back(r.schema.name);
    }
  }
  names.insert(names.begin(), first.begin(), first.end());
  std::vector<FilterFactoryPtr> factories;
  FactoryContext context{config, listener, runtime};
  for (const std::string& name : names) {
    const FilterRegistration* r = FilterRegistry::find(name);
    const config::FilterConfig* fc = config.filter_config(name);
    if (!r || !fc || r->schema.terminal) {
      if (error) *error = "listener '" + listener.name + "': unknown filter '" + name + "'";
      return nullptr;
    }
    FilterFactoryPtr factory = r->make_factory(*fc, context, error);
    if (!factory) return nullptr;
    factories.push_back(std::move(factory));
  }
  const FilterRegistration* terminal = FilterRegistry::terminal();
  const config::FilterConfig* terminal_config =
      terminal ? config.filter_config(terminal->schema.name) : nullptr;
  if (!terminal_config) {
    if (error) *error = "no terminal filter registered (register_builtin_filters() not called)";
    return nullptr;
  }
  FilterFactoryPtr last = terminal->make_factory(*terminal_config, context, error);
  if (!last) return nullptr;
  factories.push_back(std::move(last));
  names.push_back(terminal->schema.name);

  TrustedProxies trusted;
  for (const std::string& cidr : listener.trusted_proxies) {
    std::string ignored;  // validated by the loader
    trusted.add(cidr, &ignored);
  }
  // This listener's routes only, in order: no per-request listener check.
  auto chain = std::make_shared<FilterChainFactory>(
      std::move(factories), router::RouteTable::for_listener(std::move(routes), listener.name),
      trusted);
  chain->names_ = std::move(names);
  chain->echo_request_id_ = listener.request_id.echo;
  return chain;
}

std::vector<FilterPtr> FilterChainFactory::create(WorkerServices& services) const {
  std::vector<FilterPtr> filters;
  filters.reserve(factories_.size());
  for (const auto& f : factories_) filters.push_back(f->create(services));
  return filters;
}

}  // namespace sluice
