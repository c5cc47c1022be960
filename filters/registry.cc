#include "filters/registry.h"

#include <mutex>

#include "filters/compression/compression_filter.h"
#include "filters/headers/header_rules_filter.h"
#include "filters/rate_limit/rate_limit_filter.h"
#include "filters/router/router_filter.h"
#include "filters/sanitize/sanitize_filter.h"

namespace sluice {
namespace {
std::vector<FilterRegistration>& registrations() {
  static std::vector<FilterRegistration> all;
  return all;
}
}  // namespace

void FilterRegistry::add(FilterRegistration registration) {
  config::FilterSchemas::add(registration.schema);
  for (auto& r : registrations()) {
    if (r.schema.name == registration.schema.name) {
      r = std::move(registration);
      return;
    }
  }
  registrations().push_back(std::move(registration));
}

const FilterRegistration* FilterRegistry::find(std::string_view name) {
  for (const auto& r : registrations()) {
    if (r.schema.name == name) return &r;
  }
  return nullptr;
}

const std::vector<FilterRegistration>& FilterRegistry::all() { return registrations(); }

const FilterRegistration* FilterRegistry::terminal() {
  for (const auto& r : registrations()) {
    if (r.schema.terminal) return &r;
  }
  return nullptr;
}

void register_builtin_filters() {
  static std::once_flag once;
  std::call_once(once, [] {
    FilterRegistry::add(sanitize::registration());
    FilterRegistry::add(rate_limit::registration());
    FilterRegistry::add(compression::registration());
    FilterRegistry::add(header_rules::registration());
    FilterRegistry::add(router::registration());
  });
}

}  // namespace sluice
