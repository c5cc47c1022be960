#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "upstream/lb/host_table.h"
#include "upstream/load_balancer.h"

namespace sluice::upstream::lb {

// Smooth weighted round robin (nginx's): a host of weight 3 among hosts of weight 1 gets every
// other request or so, not three in a row, so a heavy host never takes a burst. The sequence of
// one period is computed here once, over host indexes rather than copies of hosts, and shared:
// a balancer is only a cursor into it, and worker w of W starts at w/W of the period, so fresh
// requests spread over several workers interleave hosts as one balancer would.
//
// The period is the sum of the weights divided by their greatest common divisor. Above
// kMaxSequence (large coprime weights) the weights are scaled down to fit, each keeping at least
// 1: each weight then loses less than total / kMaxSequence to rounding, in exchange for a
// bounded table (4 bytes an entry). The order is nginx's exactly while entries x hosts stay
// under 2^24 (about 10 ms to build); beyond, stride scheduling's (earliest virtual deadline),
// as even per host, with the same counts per period, built in O(entries log hosts).
class RoundRobinFactory : public LoadBalancerFactory {
 public:
  static constexpr uint64_t kMaxSequence = 65536;

  // Reads each host's weight() now: a change of weight takes effect with the next factory.
  // `seed` only drives the slow path's random choice when the walk finds no usable host.
  explicit RoundRobinFactory(HostSetPtr hosts, uint64_t seed = random_seed());

  // Control thread; the balancer is then used by worker `worker` of `workers` alone.
  LoadBalancerPtr create(uint32_t worker, uint32_t workers) const override;

  // One period: host indexes in the HostSet's order.
  const std::vector<uint32_t>& sequence() const;

  struct State;

 private:
  std::shared_ptr<const State> state_;
};

}  // namespace sluice::upstream::lb
