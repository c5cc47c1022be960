#pragma once
#include <cstdint>
#include <memory>

#include "upstream/lb/host_table.h"
#include "upstream/load_balancer.h"

namespace sluice::upstream::lb {

// Power of two choices: two distinct hosts drawn by weight, the one with fewer active requests
// per unit of weight wins. Two samples avoid both the herd that "global least" causes (every
// worker sending to the same idle host at once, from a count that lags) and a full scan per
// request, while still steering away from slow hosts (Mitzenmacher; Envoy's default).
class LeastRequestFactory : public LoadBalancerFactory {
 public:
  // Reads each host's weight() now. `seed` seeds the workers' random sources.
  explicit LeastRequestFactory(HostSetPtr hosts, uint64_t seed = random_seed());

  // Control thread; the balancer is then used by worker `worker` of `workers` alone.
  LoadBalancerPtr create(uint32_t worker, uint32_t workers) const override;

  struct State;

 private:
  std::shared_ptr<const State> state_;
};

}  // namespace sluice::upstream::lb
