#pragma once
#include <cstdint>
#include <memory>

#include "upstream/lb/host_table.h"
#include "upstream/load_balancer.h"

namespace sluice::upstream::lb {

// Weighted random: no state shared between picks or workers, so it needs no coordination and
// is the baseline the other policies are measured against; hosts get requests in proportion
// to their weight on average, with no guarantee over short runs.
class RandomFactory : public LoadBalancerFactory {
 public:
  // Reads each host's weight() now. `seed` seeds the workers' random sources.
  explicit RandomFactory(HostSetPtr hosts, uint64_t seed = random_seed());

  // Control thread; the balancer is then used by worker `worker` of `workers` alone.
  LoadBalancerPtr create(uint32_t worker, uint32_t workers) const override;

  struct State;

 private:
  std::shared_ptr<const State> state_;
};

}  // namespace sluice::upstream::lb
