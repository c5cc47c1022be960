#include "upstream/load_balancer.h"

#include <gtest/gtest.h>

#include "tests/upstream/lb/test_hosts.h"
#include "upstream/lb/hash.h"

namespace sluice::upstream {
namespace {

TEST(HashKey, IsXxHash64WithSeedZero) {
  // The reference implementation's published values.
  EXPECT_EQ(hash_key(""), 0xEF46DB3751D8E999ULL);
  EXPECT_EQ(hash_key("a"), 0xD24EC4F1A98C6E5BULL);
  EXPECT_EQ(hash_key("abc"), 0x44BC2CF5AD770999ULL);
  EXPECT_EQ(hash_key("Nobody inspects the spammish repetition"), 0xFBCEA83C8A378BF1ULL);
}

TEST(HashKey, SeedChangesTheHash) {
  EXPECT_NE(lb::xxhash64("10.0.0.1:80", 0), lb::xxhash64("10.0.0.1:80", 1));
}

TEST(MakeLoadBalancerFactory, KnowsThePoliciesByName) {
  auto set = lb::testing::make_set({1, 2, 3});
  for (std::string_view name : {"round_robin", "least_request", "random", "ring_hash", "maglev"}) {
    auto factory = make_load_balancer_factory(name, set);
    ASSERT_NE(factory, nullptr) << name;
    PickContext ctx;
    ctx.hash = hash_key("client");
    EXPECT_NE(factory->create(0, 1)->pick(ctx), nullptr) << name;
  }
  EXPECT_EQ(make_load_balancer_factory("least_conn", set), nullptr);
  EXPECT_EQ(make_load_balancer_factory("", set), nullptr);
}

TEST(MakeLoadBalancerFactory, EveryPolicyPicksNothingFromAnEmptyOrDownSet) {
  auto empty = lb::testing::make_set(std::vector<uint32_t>{});
  auto down = lb::testing::make_set({1, 1});
  for (const HostPtr& h : down->hosts) h->set_healthy(false);
  for (std::string_view name : {"round_robin", "least_request", "random", "ring_hash", "maglev"}) {
    PickContext ctx;
    EXPECT_EQ(make_load_balancer_factory(name, empty)->create(0, 1)->pick(ctx), nullptr) << name;
    ctx.hash = 12345;
    EXPECT_EQ(make_load_balancer_factory(name, down)->create(0, 1)->pick(ctx), nullptr) << name;
    ctx.ignore_health = true;
    EXPECT_EQ(make_load_balancer_factory(name, empty)->create(0, 1)->pick(ctx), nullptr) << name;
    EXPECT_NE(make_load_balancer_factory(name, down)->create(0, 1)->pick(ctx), nullptr) << name;
  }
}

TEST(MakeLoadBalancerFactory, EveryPolicySkipsDisabledHostsEvenInPanicMode) {
  // Host 0 is disabled (the admin API), 1 unhealthy, 2 ejected: panic may pick 1 and 2, never
  // 0; with every host disabled nothing is picked.
  auto set = lb::testing::make_set({1, 1, 1});
  set->hosts[0]->set_disabled(true);
  set->hosts[1]->set_healthy(false);
  set->hosts[2]->set_ejected(true);
  auto off = lb::testing::make_set({1, 1});
  for (const HostPtr& h : off->hosts) h->set_disabled(true);
  for (std::string_view name : {"round_robin", "least_request", "random", "ring_hash", "maglev"}) {
    auto lb = make_load_balancer_factory(name, set)->create(0, 1);
    PickContext ctx;
    EXPECT_EQ(lb->pick(ctx), nullptr) << name;
    ctx.ignore_health = true;
    for (uint64_t i = 0; i < 200; ++i) {
      ctx.hash = i * 0x9E3779B97F4A7C15ull;
      const Host* h = lb->pick(ctx);
      ASSERT_NE(h, nullptr) << name;
      EXPECT_NE(h, set->hosts[0].get()) << name;
      // The host to avoid is taken only when nothing else can be: never when it is disabled.
      ctx.avoid = set->hosts[0].get();
      EXPECT_NE(lb->pick(ctx), set->hosts[0].get()) << name;
      ctx.avoid = nullptr;
    }
    auto none = make_load_balancer_factory(name, off)->create(0, 1);
    ctx.hash = 7;
    EXPECT_EQ(none->pick(ctx), nullptr) << name;
    ctx.avoid = off->hosts[1].get();
    EXPECT_EQ(none->pick(ctx), nullptr)
        << name << ": a disabled host to avoid is not a last resort";
  }
}

TEST(MakeLoadBalancerFactory, BalancersOutliveTheirFactory) {
  auto set = lb::testing::make_set({1, 1});
  for (std::string_view name : {"round_robin", "least_request", "random", "ring_hash", "maglev"}) {
    LoadBalancerPtr lb = make_load_balancer_factory(name, set)->create(0, 1);
    EXPECT_NE(lb->pick({}), nullptr) << name;
  }
}

}  // namespace
}  // namespace sluice::upstream
