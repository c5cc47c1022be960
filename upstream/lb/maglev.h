#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "upstream/lb/host_table.h"
#include "upstream/load_balancer.h"

namespace sluice::upstream::lb {

// Maglev hashing (Eisenbud et al., NSDI 2016, with Envoy's weighting): a table of kTableSize
// slots filled by the hosts in turn along per-host permutations, so a pick is one modulo and
// one load (a ring needs an index and a scan) and hosts' shares are within a fraction of a percent
// of their weights, at the price of more disruption than a ring when the set changes: keys of
// other hosts move too, usually well under 1 %, a few percent when two hosts' permutations
// happen to be correlated (tests/upstream/lb/maglev_test.cc has the measurements). Built once per
// host set, shared by every worker.
//
// A host's turn comes in proportion to its weight: one of the heaviest fills a slot every
// round, one of half that weight every other round.
class MaglevFactory : public LoadBalancerFactory {
 public:
  // Prime, so every skip visits every slot; 65537 keeps each of up to ~650 hosts within 1 % of
  // its share (the paper's rule: table size above 100 x hosts).
  static constexpr uint32_t kTableSize = 65537;

  // Reads each host's weight() now. `seed` drives picks without a hash (random slots).
  explicit MaglevFactory(HostSetPtr hosts, uint64_t seed = random_seed());

  // Control thread; the balancer is then used by worker `worker` of `workers` alone.
  LoadBalancerPtr create(uint32_t worker, uint32_t workers) const override;

  // Host indexes by slot; empty for an empty set.
  const std::vector<uint32_t>& table() const;

  struct State;

 private:
  std::shared_ptr<const State> state_;
};

}  // namespace sluice::upstream::lb
