#pragma once
// Config sections owned by filters. The loader knows the core schema (listeners, routes,
// clusters); a filter brings its own keys (top-level sections, keys inside each listener and
// each route) and the parser that turns them into its typed config, with FILE:LINE:COL
// diagnostics like every other section. Filters add themselves here through the filter
// registry (filters/registry.h) at start-up, before any config is loaded; the loader asks this
// list, it never names a filter.
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace sluice::config {
namespace detail {
class Diagnostics;
struct Field;
}  // namespace detail

// What a filter's parser sees.
class SectionContext {
 public:
  virtual ~SectionContext() = default;
  virtual detail::Diagnostics& diag() = 0;
  // The core sections as parsed so far (listeners, routes and clusters are complete).
  virtual const Config& config() const = 0;
  // A top-level field, or null when absent.
  virtual const detail::Field* root(std::string_view key) const = 0;
  struct Owned {
    std::string owner;  // the listener's or route's name
    const detail::Field* field;
  };
  // That key of every listener (route) that has it, in file order.
  virtual std::vector<Owned> listener_fields(std::string_view key) const = 0;
  virtual std::vector<Owned> route_fields(std::string_view key) const = 0;
};

struct FilterSchema {
  std::string name;  // as listed in a listener's `filters:`
  // The filter that ends every chain (the router): implicit, never listed.
  bool terminal = false;
  std::vector<std::string> root_keys;
  std::vector<std::string> listener_keys;
  std::vector<std::string> route_keys;
  // Runs once per load after the core sections. Returns the filter's config (never null when
  // no error was reported); stored in Config::filter_configs under `name`.
  std::function<FilterConfigPtr(SectionContext&)> parse;
};

// The schemas of every registered filter. add() is for start-up only (not thread-safe against
// concurrent loads); all() may then be read from any thread.
class FilterSchemas {
 public:
  static void add(FilterSchema schema);
  static const std::vector<FilterSchema>& all();
  static const FilterSchema* find(std::string_view name);
};

}  // namespace sluice::config
