#pragma once
// The filter registry: every filter is registered once, by name, with its config schema (the
// sections it owns and their parser, see config/extensions.h) and the function that builds its
// factory for one listener's chain. The config loader and the chain builder ask the registry;
// nothing else lists filters.
//
// register_builtin_filters() must run before the first config load (main does it; so do the
// tests that load configs with filter sections). Registration is start-up only; lookups may
// then happen from any thread. The router is registered too, as the terminal filter: it is
// never listed in `filters:` and always ends every chain.
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/extensions.h"
#include "filters/filter.h"

namespace sluice {
class RuntimeState;
namespace router {
class RouteTable;
}

// What a factory builder gets, once per listener per snapshot, on the main thread.
struct FactoryContext {
  const config::Config& config;
  const config::Listener& listener;
  RuntimeState& runtime;  // state that outlives this snapshot (see core/runtime_state.h)
};

struct FilterRegistration {
  config::FilterSchema schema;
  // Whether the filter runs on `listener` although the listener does not list it in
  // `filters:` (because its config applies there). Null: only when listed.
  std::function<bool(const config::FilterConfig&, const config::Listener&)> applies_to;
  // When it runs although not listed: before the listed filters (sanitize, whose canonical
  // path the others must see) rather than after them.
  bool runs_first = false;
  // The factory for one listener's chain; null with `error` set if it cannot be built.
  std::function<FilterFactoryPtr(const config::FilterConfig&, FactoryContext&, std::string* error)>
      make_factory;
};

class FilterRegistry {
 public:
  // Start-up only. Registers the filter's config schema with the loader too.
  static void add(FilterRegistration registration);
  static const FilterRegistration* find(std::string_view name);
  static const std::vector<FilterRegistration>& all();
  // The terminal filter's registration, or null before register_builtin_filters().
  static const FilterRegistration* terminal();
};

// Registers every filter that ships with sluice. Idempotent.
void register_builtin_filters();

}  // namespace sluice
