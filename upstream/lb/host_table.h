#pragma once
// What the policies share: a per-worker random source, the hosts as a factory saw them (with
// their weights), and the slow paths a pick takes when its fast path found no usable host.
// A HostTable is built on the control thread and then only read, by any worker.
#include <cstdint>
#include <vector>

#include "upstream/host.h"
#include "upstream/lb/hash.h"
#include "upstream/load_balancer.h"

namespace sluice::upstream::lb {

__extension__ typedef unsigned __int128 uint128;

// splitmix64: one add and one mix per number, state in a register. Each worker owns one, so a
// pick neither locks nor shares a cache line; seeds are mixed so workers' streams don't overlap.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ULL;
    return mix64(state_);
  }
  // Uniform in [0, bound) for bound > 0 (Lemire's multiply-shift: no division, bias < 2^-64 *
  // bound).
  uint64_t below(uint64_t bound) {
    return static_cast<uint64_t>((static_cast<uint128>(next()) * bound) >> 64);
  }

 private:
  uint64_t state_;
};

// A seed that differs between processes (std::random_device, read once per factory), so that
// proxies started together do not send their requests in lockstep.
uint64_t random_seed();

// The seed of worker `worker`'s Rng in a factory seeded with `seed`.
inline uint64_t worker_seed(uint64_t seed, uint32_t worker) {
  return mix64(seed ^ mix64(static_cast<uint64_t>(worker) + 1));
}

// A host may take this pick: it is not the one to avoid, and it is available, or, when health
// is ignored (panic mode), not disabled: a host an operator took out of rotation stays out.
inline bool usable(const Host* host, const PickContext& ctx) {
  return host != ctx.avoid && (ctx.ignore_health ? !host->disabled() : host->available());
}

struct HostTable {
  // Reads each host's weight() once, here.
  explicit HostTable(HostSetPtr hosts);

  size_t size() const { return hosts.size(); }

  // A host index drawn with probability weight / total weight, usable or not: Walker's alias
  // method, one random number and two loads whatever the number of hosts.
  uint32_t draw(Rng& rng) const {
    const uint64_t x = rng.next();
    if (equal_weights) return static_cast<uint32_t>((uint128{x} * hosts.size()) >> 64);
    // The high half picks a column, the low half decides between its two hosts.
    const auto column = static_cast<uint32_t>(((x >> 32) * hosts.size()) >> 32);
    return (x & 0xFFFFFFFFu) < alias[column].threshold ? column : alias[column].other;
  }
  // The same over every host but `exclude`; needs size() >= 2.
  uint32_t draw_except(Rng& rng, uint32_t exclude) const {
    if (equal_weights) {
      auto i = static_cast<uint32_t>(rng.below(hosts.size() - 1));
      return i >= exclude ? i + 1 : i;
    }
    // Rejection keeps the proportions; a host that holds most of the weight would make it
    // loop, so a few tries, then the exact way by cumulative weights.
    for (int k = 0; k < 4; ++k) {
      uint32_t i = draw(rng);
      if (i != exclude) return i;
    }
    uint64_t r = rng.below(total_weight - weights[exclude]);
    uint64_t start = cumulative[exclude] - weights[exclude];
    return index_of(r >= start ? r + weights[exclude] : r);
  }

  // Slow paths, O(size()), for when draws or walks found nothing usable. Each ends with
  // last_resort().
  // A usable host drawn by weight among the usable ones.
  Host* scan_weighted(Rng& rng, const PickContext& ctx) const;
  // The first usable host at or after index `start` (wrapping): deterministic, for hash policies.
  Host* scan_from(uint64_t start, const PickContext& ctx) const;
  // The usable host with the fewest active requests per weight, ties to the first after `start`.
  Host* scan_least(uint64_t start, const PickContext& ctx) const;
  // Nothing else is usable: ctx.avoid itself, if it belongs to this set and may take requests;
  // otherwise null.
  Host* last_resort(const PickContext& ctx) const;

  HostSetPtr set;  // keeps the hosts alive
  std::vector<Host*> hosts;
  std::vector<uint32_t> weights;
  std::vector<uint64_t> cumulative;  // cumulative[i] = weights[0] + ... + weights[i]
  uint64_t total_weight = 0;
  bool equal_weights = true;
  // Walker's alias table (Vose's construction), for unequal weights: column i holds host i
  // with probability threshold / 2^32, else host `other`.
  struct Column {
    uint64_t threshold;
    uint32_t other;
  };
  std::vector<Column> alias;

 private:
  void build_alias();
  // The host whose weight range holds `r` in [0, total_weight).
  uint32_t index_of(uint64_t r) const;
};

}  // namespace sluice::upstream::lb
