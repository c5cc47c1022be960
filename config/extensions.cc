#include "config/extensions.h"

namespace sluice::config {
namespace {
std::vector<FilterSchema>& schemas() {
  static std::vector<FilterSchema> all;
  return all;
}
}  // namespace

void FilterSchemas::add(FilterSchema schema) {
  for (auto& s : schemas()) {
    if (s.name == schema.name) {
      s = std::move(schema);
      return;
    }
  }
  schemas().push_back(std::move(schema));
}

const std::vector<FilterSchema>& FilterSchemas::all() { return schemas(); }

const FilterSchema* FilterSchemas::find(std::string_view name) {
  for (const auto& s : schemas()) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

}  // namespace sluice::config
