#pragma once
// Load balancing: which host of a cluster's HostSet gets the next request.
//
// A LoadBalancerFactory is built once per host set on the control thread (it holds whatever
// is costly to compute, such as a hash ring or a Maglev table, immutable) and shared by the
// workers; each worker creates its own LoadBalancer from it (cursor, random state) and calls
// pick() on its own thread only. Host health is read from the hosts' atomics at pick time.
//
// No Asio, no config: this and upstream/lb/ depend only on upstream/host.h.
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "upstream/host.h"

namespace sluice::upstream {

struct PickContext {
  // The request's hash for ring_hash and maglev (of the client IP, a header, a cookie or the
  // path); unset: those policies pick as random does.
  std::optional<uint64_t> hash;
  // A host to avoid when another is available (a retry goes elsewhere).
  const Host* avoid = nullptr;
  // Panic mode: too few hosts are available, so unhealthy and ejected ones are picked too
  // (never a disabled one).
  bool ignore_health = false;
};

class LoadBalancer {
 public:
  virtual ~LoadBalancer() = default;
  // A host to send the request to; null only when no host can take it (none available and
  // ignore_health not set, every host disabled, or the set is empty).
  virtual Host* pick(const PickContext& ctx) = 0;
};
using LoadBalancerPtr = std::unique_ptr<LoadBalancer>;

class LoadBalancerFactory {
 public:
  virtual ~LoadBalancerFactory() = default;
  // `worker` in [0, workers): workers start at different points of a shared order, so fresh
  // requests spread over hosts as if one balancer served them all.
  virtual LoadBalancerPtr create(uint32_t worker, uint32_t workers) const = 0;
};
using LoadBalancerFactoryPtr = std::shared_ptr<const LoadBalancerFactory>;

// The policies by name: round_robin, least_request, random, ring_hash, maglev. Null for any
// other name. The factory and its balancers hold `hosts`.
LoadBalancerFactoryPtr make_load_balancer_factory(std::string_view policy,
                                                  std::shared_ptr<const HostSet> hosts);

// 64-bit hash of a key (client IP, header value, ...) for PickContext::hash; stable across
// processes and versions so a key keeps its host over restarts.
uint64_t hash_key(std::string_view key);

}  // namespace sluice::upstream
