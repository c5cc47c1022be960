#include "upstream/lb/random.h"

#include <gtest/gtest.h>

#include "tests/upstream/lb/test_hosts.h"

namespace sluice::upstream::lb {
namespace {

using testing::count_picks;
using testing::make_set;

TEST(Random, EmptySetPicksNothing) {
  RandomFactory factory(make_set(std::vector<uint32_t>{}));
  PickContext panic;
  panic.ignore_health = true;
  EXPECT_EQ(factory.create(0, 1)->pick({}), nullptr);
  EXPECT_EQ(factory.create(0, 1)->pick(panic), nullptr);
}

TEST(Random, WeightsAreRespected) {
  auto set = make_set({1, 2, 7});
  auto lb = RandomFactory(set, 42).create(0, 1);
  auto counts = count_picks(*lb, 100000);
  // Binomial standard deviations are under 150: 1,000 is over 6 of them.
  EXPECT_NEAR(counts[set->hosts[0].get()], 10000, 1000);
  EXPECT_NEAR(counts[set->hosts[1].get()], 20000, 1000);
  EXPECT_NEAR(counts[set->hosts[2].get()], 70000, 1000);
}

TEST(Random, WorkersDrawDifferentSequences) {
  auto set = make_set(std::vector<uint32_t>(100, 1));
  RandomFactory factory(set, 7);
  auto a = factory.create(0, 2);
  auto b = factory.create(1, 2);
  int same = 0;
  for (int i = 0; i < 100; ++i) same += a->pick({}) == b->pick({}) ? 1 : 0;
  EXPECT_LT(same, 10);
}

TEST(Random, SkipsUnavailableHostsKeepingWeightsOfOthers) {
  auto set = make_set({1, 100, 3, 1});
  set->hosts[1]->set_healthy(false);
  set->hosts[3]->set_ejected(true);
  auto lb = RandomFactory(set, 3).create(0, 1);
  auto counts = count_picks(*lb, 40000);
  EXPECT_EQ(counts[set->hosts[1].get()], 0);
  EXPECT_EQ(counts[set->hosts[3].get()], 0);
  EXPECT_NEAR(counts[set->hosts[0].get()], 10000, 600);
  EXPECT_NEAR(counts[set->hosts[2].get()], 30000, 600);
}

TEST(Random, NoAvailableHostPicksNothingUnlessHealthIsIgnored) {
  auto set = make_set({1, 1});
  set->hosts[0]->set_healthy(false);
  set->hosts[1]->set_ejected(true);
  auto lb = RandomFactory(set).create(0, 1);
  EXPECT_EQ(lb->pick({}), nullptr);
  PickContext panic;
  panic.ignore_health = true;
  auto counts = count_picks(*lb, 1000, panic);
  EXPECT_GT(counts[set->hosts[0].get()], 300);
  EXPECT_GT(counts[set->hosts[1].get()], 300);
}

TEST(Random, AvoidsTheHostToAvoidWhileAnotherIsAvailable) {
  auto set = make_set({1, 1000});
  auto lb = RandomFactory(set).create(0, 1);
  PickContext ctx;
  ctx.avoid = set->hosts[1].get();
  for (int i = 0; i < 100; ++i) EXPECT_EQ(lb->pick(ctx), set->hosts[0].get());
  set->hosts[0]->set_healthy(false);
  EXPECT_EQ(lb->pick(ctx), set->hosts[1].get());
  set->hosts[1]->set_healthy(false);
  EXPECT_EQ(lb->pick(ctx), nullptr);
  ctx.ignore_health = true;
  EXPECT_EQ(lb->pick(ctx), set->hosts[0].get());
}

TEST(Random, AHostToAvoidFromAnotherSetIsNeverPicked) {
  auto set = make_set({1});
  auto other = make_set({1});
  set->hosts[0]->set_healthy(false);
  PickContext ctx;
  ctx.avoid = other->hosts[0].get();
  EXPECT_EQ(RandomFactory(set).create(0, 1)->pick(ctx), nullptr);
}

}  // namespace
}  // namespace sluice::upstream::lb
