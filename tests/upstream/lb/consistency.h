#pragma once
// What the ring_hash and maglev tests share: which host each key maps to, and how many keys a
// change of host set moves.
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/upstream/lb/test_hosts.h"
#include "upstream/lb/hash.h"
#include "upstream/load_balancer.h"

namespace sluice::upstream::lb::testing {

inline PickContext with_hash(uint64_t hash) {
  PickContext ctx;
  ctx.hash = hash;
  return ctx;
}

// `count` keys' hashes, from a seed (a generated vector of thousands of keys would make
// RapidCheck's shrinking slow without finding more).
inline std::vector<uint64_t> make_keys(uint64_t seed, size_t count) {
  std::vector<uint64_t> keys;
  for (size_t i = 0; i < count; ++i) keys.push_back(xxhash64(std::to_string(i), seed));
  return keys;
}

// The host each key's pick lands on, all hosts available.
inline std::vector<const Host*> owners(const LoadBalancerFactory& factory,
                                       const std::vector<uint64_t>& keys) {
  auto lb = factory.create(0, 1);
  std::vector<const Host*> out;
  out.reserve(keys.size());
  for (uint64_t key : keys) {
    PickContext ctx;
    ctx.hash = key;
    out.push_back(lb->pick(ctx));
  }
  return out;
}

// Hosts named from a salt, so that each run places them differently.
inline std::vector<HostPtr> named_hosts(size_t n, uint64_t salt) {
  std::vector<HostPtr> hosts;
  for (size_t i = 0; i < n; ++i) {
    hosts.push_back(
        std::make_shared<Host>("h" + std::to_string(salt) + "-" + std::to_string(i) + ":80", 1));
  }
  return hosts;
}

// A retry's pick (ctx.avoid = the key's host) lands elsewhere while another host is
// available, and on the avoided host when it is the only one left. `set` has 3 equal hosts.
inline void expect_avoids_the_host_to_avoid(const LoadBalancerFactory& factory,
                                            const HostSet& set) {
  auto lb = factory.create(0, 1);
  auto keys = make_keys(5, 100);
  auto home = owners(factory, keys);
  for (size_t i = 0; i < keys.size(); ++i) {
    PickContext ctx = with_hash(keys[i]);
    ctx.avoid = home[i];
    const Host* retry = lb->pick(ctx);
    EXPECT_NE(retry, home[i]);
    EXPECT_NE(retry, nullptr);
  }
  set.hosts[0]->set_healthy(false);
  set.hosts[1]->set_healthy(false);
  PickContext ctx = with_hash(keys[0]);
  ctx.avoid = set.hosts[2].get();
  EXPECT_EQ(lb->pick(ctx), set.hosts[2].get());
}

}  // namespace sluice::upstream::lb::testing
