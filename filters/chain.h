#pragma once
// The filter chain of a listener: factories built once per snapshot from `filters:` (in order),
// with the router always last. Immutable; shared by every worker.
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "filters/filter.h"

namespace sluice {
namespace router {
class RouteTable;
}

class FilterChainFactory {
 public:
  // A chain of exactly these factories, in order; the caller puts the terminal filter last.
  explicit FilterChainFactory(std::vector<FilterFactoryPtr> factories)
      : factories_(std::move(factories)) {}

  // Null with `error` set when a filter name is unknown (the config loader rejects those
  // first, so this is a second line of defence).
  static std::shared_ptr<const FilterChainFactory> build(
      const config::Listener& listener, std::shared_ptr<const router::RouteTable> routes,
      std::string* error);

  // One instance of every filter for a new stream, router last.
  std::vector<FilterPtr> create() const;

 private:
  std::vector<FilterFactoryPtr> factories_;
};

using FilterChainFactoryPtr = std::shared_ptr<const FilterChainFactory>;

}  // namespace sluice
