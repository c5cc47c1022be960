#include "upstream/load_balancer.h"

#include "upstream/lb/hash.h"
#include "upstream/lb/least_request.h"
#include "upstream/lb/maglev.h"
#include "upstream/lb/random.h"
#include "upstream/lb/ring_hash.h"
#include "upstream/lb/round_robin.h"

namespace sluice::upstream {

LoadBalancerFactoryPtr make_load_balancer_factory(std::string_view policy,
                                                  std::shared_ptr<const HostSet> hosts) {
  if (policy == "round_robin") return std::make_shared<lb::RoundRobinFactory>(std::move(hosts));
  if (policy == "least_request") {
    return std::make_shared<lb::LeastRequestFactory>(std::move(hosts));
  }
  if (policy == "random") return std::make_shared<lb::RandomFactory>(std::move(hosts));
  if (policy == "ring_hash") return std::make_shared<lb::RingHashFactory>(std::move(hosts));
  if (policy == "maglev") return std::make_shared<lb::MaglevFactory>(std::move(hosts));
  return nullptr;
}

// xxHash64 with seed 0: fast on long keys (cookies, paths), and a published algorithm, so the
// key-to-host mapping survives restarts and upgrades.
uint64_t hash_key(std::string_view key) { return lb::xxhash64(key, 0); }

}  // namespace sluice::upstream
