#include "upstream/lb/round_robin.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <numeric>

#include "tests/upstream/lb/test_hosts.h"

namespace sluice::upstream::lb {
namespace {

using testing::count_picks;
using testing::make_set;

TEST(RoundRobin, EmptySetPicksNothing) {
  RoundRobinFactory factory(make_set(std::vector<uint32_t>{}));
  EXPECT_EQ(factory.create(0, 1)->pick({}), nullptr);
  PickContext panic;
  panic.ignore_health = true;
  EXPECT_EQ(factory.create(0, 1)->pick(panic), nullptr);
}

TEST(RoundRobin, EqualWeightsCycleInOrder) {
  auto set = make_set({1, 1, 1});
  auto lb = RoundRobinFactory(set).create(0, 1);
  for (int round = 0; round < 3; ++round) {
    for (const HostPtr& h : set->hosts) EXPECT_EQ(lb->pick({}), h.get());
  }
}

TEST(RoundRobin, SmoothSequenceIsNginxs) {
  // nginx's documented example: weights 5, 1, 1 give a a b a c a a, not a a a a a b c.
  RoundRobinFactory factory(make_set({5, 1, 1}));
  EXPECT_EQ(factory.sequence(), (std::vector<uint32_t>{0, 0, 1, 0, 2, 0, 0}));
}

TEST(RoundRobin, WeightsAreDividedByTheirGcd) {
  RoundRobinFactory factory(make_set({10, 20, 30}));
  EXPECT_EQ(factory.sequence().size(), 6u);
}

TEST(RoundRobin, TwoWorkersSpreadFreshRequests) {
  // Four requests over hosts a, b through two workers, however they are split: two each.
  auto set = make_set({1, 1});
  RoundRobinFactory factory(set);
  for (int first = 0; first <= 4; ++first) {
    auto w0 = factory.create(0, 2);
    auto w1 = factory.create(1, 2);
    std::map<const Host*, int> counts;
    for (int i = 0; i < first; ++i) ++counts[w0->pick({})];
    for (int i = first; i < 4; ++i) ++counts[w1->pick({})];
    EXPECT_EQ(counts[set->hosts[0].get()], 2) << first << " on worker 0";
    EXPECT_EQ(counts[set->hosts[1].get()], 2) << first << " on worker 0";
  }
}

TEST(RoundRobin, WeightsAreRespected) {
  auto set = make_set({3, 1, 6});
  auto lb = RoundRobinFactory(set).create(2, 3);
  auto counts = count_picks(*lb, 1000);
  EXPECT_EQ(counts[set->hosts[0].get()], 300);
  EXPECT_EQ(counts[set->hosts[1].get()], 100);
  EXPECT_EQ(counts[set->hosts[2].get()], 600);
}

TEST(RoundRobin, SkipsUnavailableHosts) {
  auto set = make_set({1, 1, 1});
  set->hosts[1]->set_healthy(false);
  auto lb = RoundRobinFactory(set).create(0, 1);
  auto counts = count_picks(*lb, 100);
  EXPECT_EQ(counts[set->hosts[1].get()], 0);
  EXPECT_EQ(counts[set->hosts[0].get()], 50);
  EXPECT_EQ(counts[set->hosts[2].get()], 50);
}

TEST(RoundRobin, SkipsUnavailableHeavyHostAndKeepsRatiosOfOthers) {
  // The down host fills most of the sequence: picks leave the walk for the weighted draw.
  auto set = make_set({1000, 1, 3});
  set->hosts[0]->set_ejected(true);
  auto lb = RoundRobinFactory(set, 1).create(0, 1);
  auto counts = count_picks(*lb, 40000);
  EXPECT_EQ(counts[set->hosts[0].get()], 0);
  EXPECT_NEAR(counts[set->hosts[1].get()], 10000, 600);
  EXPECT_NEAR(counts[set->hosts[2].get()], 30000, 600);
}

TEST(RoundRobin, NoAvailableHostPicksNothingUnlessHealthIsIgnored) {
  auto set = make_set({1, 2});
  set->hosts[0]->set_healthy(false);
  set->hosts[1]->set_ejected(true);
  auto lb = RoundRobinFactory(set).create(0, 1);
  EXPECT_EQ(lb->pick({}), nullptr);
  PickContext panic;
  panic.ignore_health = true;
  auto counts = count_picks(*lb, 30, panic);
  EXPECT_EQ(counts[set->hosts[0].get()], 10);
  EXPECT_EQ(counts[set->hosts[1].get()], 20);
}

TEST(RoundRobin, AvoidsTheHostToAvoidWhileAnotherIsAvailable) {
  auto set = make_set({1, 1, 1});
  auto lb = RoundRobinFactory(set).create(0, 1);
  PickContext ctx;
  ctx.avoid = set->hosts[0].get();
  for (int i = 0; i < 10; ++i) EXPECT_NE(lb->pick(ctx), set->hosts[0].get());
  set->hosts[1]->set_healthy(false);
  set->hosts[2]->set_healthy(false);
  EXPECT_EQ(lb->pick(ctx), set->hosts[0].get());
  set->hosts[0]->set_healthy(false);
  EXPECT_EQ(lb->pick(ctx), nullptr);
  ctx.ignore_health = true;
  for (int i = 0; i < 10; ++i) EXPECT_NE(lb->pick(ctx), set->hosts[0].get());
}

TEST(RoundRobin, HugeCoprimeWeightsAreScaledToABoundedSequence) {
  auto set = make_set({1'000'000, 999'999, 1});
  RoundRobinFactory factory(set);
  EXPECT_LE(factory.sequence().size(), RoundRobinFactory::kMaxSequence + 3);
  auto counts = count_picks(*factory.create(0, 1), static_cast<int>(factory.sequence().size()));
  EXPECT_NEAR(counts[set->hosts[0].get()], counts[set->hosts[1].get()], 2);
  EXPECT_EQ(counts[set->hosts[2].get()], 1);
}

TEST(RoundRobin, MoreHostsThanTheCapStillGetOneTurnEach) {
  std::vector<uint32_t> weights(70000, 1);
  weights[0] = 7;
  RoundRobinFactory factory(make_set(weights));
  EXPECT_GE(factory.sequence().size(), weights.size());
}

TEST(RoundRobin, LargeSetsOfUnequalWeightsKeepExactCountsPerPeriod) {
  // 5,000 hosts of weights 1 to 10: past nginx's build budget, stride scheduling's order.
  std::vector<uint32_t> weights;
  for (uint32_t i = 0; i < 5000; ++i) weights.push_back(i % 10 + 1);
  auto set = make_set(weights);
  RoundRobinFactory factory(set);
  const auto total = std::accumulate(weights.begin(), weights.end(), size_t{0});
  ASSERT_EQ(factory.sequence().size(), total);
  auto lb = factory.create(1, 3);
  std::map<const Host*, uint32_t> counts;
  for (size_t i = 0; i < total; ++i) ++counts[lb->pick({})];
  for (size_t i = 0; i < set->size(); ++i) EXPECT_EQ(counts[set->hosts[i].get()], weights[i]);
  // Smooth: the heaviest host's turns are spread over the period, never back to back.
  const std::vector<uint32_t>& seq = factory.sequence();
  for (size_t i = 0; i + 1 < seq.size(); ++i) ASSERT_FALSE(seq[i] == 9 && seq[i + 1] == 9) << i;
}

// Any weights, any worker: every window of sum(weights) consecutive picks gives each host
// exactly its weight.
RC_GTEST_PROP(RoundRobinProperty, EveryWindowOfTotalWeightGivesEachHostItsWeight, ()) {
  const auto weights = *rc::gen::container<std::vector<uint32_t>>(
      *rc::gen::inRange<size_t>(1, 21), rc::gen::inRange<uint32_t>(1, 1001));
  const auto workers = *rc::gen::inRange<uint32_t>(1, 9);
  const auto worker = *rc::gen::inRange<uint32_t>(0, workers);
  auto set = make_set(weights);
  auto lb = RoundRobinFactory(set).create(worker, workers);
  const auto total = std::accumulate(weights.begin(), weights.end(), size_t{0});
  std::map<const Host*, size_t> index;
  for (size_t i = 0; i < set->size(); ++i) index[set->hosts[i].get()] = i;
  std::vector<size_t> picks;
  for (size_t i = 0; i < 2 * total; ++i) picks.push_back(index.at(lb->pick({})));
  std::vector<uint32_t> window(weights.size(), 0);
  for (size_t i = 0; i < total; ++i) ++window[picks[i]];
  RC_ASSERT(window == weights);
  for (size_t start = 1; start + total <= picks.size(); ++start) {
    --window[picks[start - 1]];
    ++window[picks[start + total - 1]];
    RC_ASSERT(window == weights);
  }
}

}  // namespace
}  // namespace sluice::upstream::lb
