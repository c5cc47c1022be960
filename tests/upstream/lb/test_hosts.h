#pragma once
// Host sets for the load-balancing tests.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "upstream/host.h"
#include "upstream/load_balancer.h"

namespace sluice::upstream::lb::testing {

inline std::string host_name(size_t i) {
  return "10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1) + ":8080";
}

inline std::vector<HostPtr> make_hosts(const std::vector<uint32_t>& weights) {
  std::vector<HostPtr> hosts;
  for (size_t i = 0; i < weights.size(); ++i) {
    hosts.push_back(std::make_shared<Host>(host_name(i), weights[i]));
  }
  return hosts;
}

inline HostSetPtr set_of(std::vector<HostPtr> hosts) {
  auto set = std::make_shared<HostSet>();
  set->hosts = std::move(hosts);
  set->refresh_available();
  return set;
}

inline HostSetPtr make_set(const std::vector<uint32_t>& weights) {
  return set_of(make_hosts(weights));
}

// How many of `picks` picks went to each host (null picks under nullptr).
inline std::map<const Host*, int> count_picks(LoadBalancer& lb, int picks,
                                              const PickContext& ctx = {}) {
  std::map<const Host*, int> counts;
  for (int i = 0; i < picks; ++i) ++counts[lb.pick(ctx)];
  return counts;
}

}  // namespace sluice::upstream::lb::testing
