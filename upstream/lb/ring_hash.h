#pragma once
#include <cstdint>
#include <memory>

#include "upstream/lb/host_table.h"
#include "upstream/load_balancer.h"

namespace sluice::upstream::lb {

// Consistent hashing on a ring (ketama): each host owns points on a 64-bit circle, a key goes
// to the owner of the first point at or after its hash. A host's points depend only on its
// name and weight, so removing a host moves only its own keys and adding one takes about 1/N
// of them: caches behind the cluster keep their contents across membership changes. The ring
// is built once per host set and shared by every worker.
//
// Each host gets kPointsPerHost points per unit of the smallest weight (shares of equal hosts
// then spread by about 3 %, 1 / sqrt(1024)), all hosts together at most kMaxPoints: 13 bytes a
// point with the bucket index, so 13 MB and about 70 ms to build from 1,024 hosts on, where
// the points per host shrink and the spread grows. A host keeps its point count, hence the
// laws above hold exactly, while the smallest weight stays the same and the cap is not reached.
class RingHashFactory : public LoadBalancerFactory {
 public:
  static constexpr uint64_t kPointsPerHost = 1024;
  static constexpr uint64_t kMaxPoints = uint64_t{1} << 20;

  // Reads each host's weight() now. `seed` drives picks without a hash (random points).
  explicit RingHashFactory(HostSetPtr hosts, uint64_t seed = random_seed());

  // Control thread; the balancer is then used by worker `worker` of `workers` alone.
  LoadBalancerPtr create(uint32_t worker, uint32_t workers) const override;

  size_t ring_size() const;

  struct State;

 private:
  std::shared_ptr<const State> state_;
};

}  // namespace sluice::upstream::lb
