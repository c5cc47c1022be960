#include "upstream/lb/host_table.h"

#include <algorithm>
#include <random>

namespace sluice::upstream::lb {

uint64_t random_seed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

HostTable::HostTable(HostSetPtr hosts_in) : set(std::move(hosts_in)) {
  if (!set) return;
  hosts.reserve(set->size());
  weights.reserve(set->size());
  cumulative.reserve(set->size());
  for (const HostPtr& h : set->hosts) {
    hosts.push_back(h.get());
    uint32_t w = h->weight();
    weights.push_back(w);
    total_weight += w;
    cumulative.push_back(total_weight);
    equal_weights = equal_weights && w == weights.front();
  }
  if (!equal_weights) build_alias();
}

void HostTable::build_alias() {
  // Vose: each column's share of 1 / n is filled by its host up to the host's weight, the
  // rest by a host with more than 1 / n left. Shares are exact integers (weights x n against
  // the total weight), rounded once to 32 bits for the threshold.
  const size_t n = hosts.size();
  const uint128 full = total_weight;  // one column's worth, scaled by n
  std::vector<uint128> left(n);
  std::vector<uint32_t> small, large;
  for (size_t i = 0; i < n; ++i) {
    left[i] = uint128{weights[i]} * n;
    (left[i] < full ? small : large).push_back(static_cast<uint32_t>(i));
  }
  alias.assign(n, Column{uint64_t{1} << 32, 0});
  for (size_t i = 0; i < n; ++i) alias[i].other = static_cast<uint32_t>(i);
  while (!small.empty() && !large.empty()) {
    uint32_t s = small.back();
    uint32_t l = large.back();
    small.pop_back();
    alias[s].threshold = static_cast<uint64_t>((left[s] << 32) / full);
    alias[s].other = l;
    left[l] -= full - left[s];
    if (left[l] < full) {
      large.pop_back();
      small.push_back(l);
    }
  }
  // What is left is exactly a full column each: its own host always.
}

uint32_t HostTable::index_of(uint64_t r) const {
  return static_cast<uint32_t>(std::upper_bound(cumulative.begin(), cumulative.end(), r) -
                               cumulative.begin());
}

Host* HostTable::scan_weighted(Rng& rng, const PickContext& ctx) const {
  uint64_t sum = 0;
  for (size_t i = 0; i < hosts.size(); ++i) {
    if (usable(hosts[i], ctx)) sum += weights[i];
  }
  if (sum != 0) {
    uint64_t r = rng.below(sum);
    Host* last = nullptr;
    for (size_t i = 0; i < hosts.size(); ++i) {
      if (!usable(hosts[i], ctx)) continue;
      last = hosts[i];
      if (r < weights[i]) return last;
      r -= weights[i];
    }
    // A host went down between the two passes.
    if (last) return last;
  }
  return last_resort(ctx);
}

Host* HostTable::scan_from(uint64_t start, const PickContext& ctx) const {
  const size_t n = hosts.size();
  if (n == 0) return nullptr;
  for (size_t k = 0, i = start % n; k < n; ++k, i = i + 1 == n ? 0 : i + 1) {
    if (usable(hosts[i], ctx)) return hosts[i];
  }
  return last_resort(ctx);
}

Host* HostTable::scan_least(uint64_t start, const PickContext& ctx) const {
  const size_t n = hosts.size();
  if (n == 0) return nullptr;
  Host* best = nullptr;
  uint64_t best_active = 0;
  uint64_t best_weight = 1;
  for (size_t k = 0, i = start % n; k < n; ++k, i = i + 1 == n ? 0 : i + 1) {
    if (!usable(hosts[i], ctx)) continue;
    uint64_t active = hosts[i]->active_requests();
    // active / weight < best_active / best_weight, without division.
    if (!best || active * best_weight < best_active * weights[i]) {
      best = hosts[i];
      best_active = active;
      best_weight = weights[i];
    }
  }
  return best ? best : last_resort(ctx);
}

Host* HostTable::last_resort(const PickContext& ctx) const {
  if (!ctx.avoid || !(ctx.ignore_health ? !ctx.avoid->disabled() : ctx.avoid->available())) {
    return nullptr;
  }
  for (Host* h : hosts) {
    if (h == ctx.avoid) return h;
  }
  return nullptr;
}

}  // namespace sluice::upstream::lb
