#include "upstream/lb/least_request.h"

#include <gtest/gtest.h>

#include "tests/upstream/lb/test_hosts.h"

namespace sluice::upstream::lb {
namespace {

using testing::count_picks;
using testing::make_set;

void start_requests(Host& host, int n) {
  for (int i = 0; i < n; ++i) host.request_started();
}

TEST(LeastRequest, EmptySetPicksNothing) {
  LeastRequestFactory factory(make_set(std::vector<uint32_t>{}));
  PickContext panic;
  panic.ignore_health = true;
  EXPECT_EQ(factory.create(0, 1)->pick({}), nullptr);
  EXPECT_EQ(factory.create(0, 1)->pick(panic), nullptr);
}

TEST(LeastRequest, OfTwoHostsAlwaysPicksTheLessBusy) {
  auto set = make_set({1, 1});
  start_requests(*set->hosts[0], 10);
  start_requests(*set->hosts[1], 3);
  auto lb = LeastRequestFactory(set).create(0, 1);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(lb->pick({}), set->hosts[1].get());
}

TEST(LeastRequest, ComparesActiveRequestsPerWeight) {
  auto set = make_set({2, 1});
  start_requests(*set->hosts[0], 4);  // 2 per unit of weight
  start_requests(*set->hosts[1], 3);  // 3 per unit
  auto lb = LeastRequestFactory(set).create(0, 1);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(lb->pick({}), set->hosts[0].get());
}

TEST(LeastRequest, AnIdleHostAmongBusyOnesGetsTwiceItsShare) {
  // It wins whenever it is one of the two drawn: probability 2 / n instead of 1 / n.
  auto set = make_set(std::vector<uint32_t>(10, 1));
  for (size_t i = 1; i < set->size(); ++i) start_requests(*set->hosts[i], 5);
  auto lb = LeastRequestFactory(set, 11).create(0, 1);
  auto counts = count_picks(*lb, 20000);
  EXPECT_NEAR(counts[set->hosts[0].get()], 4000, 400);
}

TEST(LeastRequest, WithEqualLoadWeightsAreRespected) {
  auto set = make_set({1, 3});
  auto lb = LeastRequestFactory(set, 5).create(0, 1);
  auto counts = count_picks(*lb, 40000);
  EXPECT_NEAR(counts[set->hosts[0].get()], 10000, 600);
  EXPECT_NEAR(counts[set->hosts[1].get()], 30000, 600);
}

TEST(LeastRequest, SkipsUnavailableHosts) {
  auto set = make_set(std::vector<uint32_t>(8, 1));
  for (size_t i = 0; i < 6; ++i) set->hosts[i]->set_healthy(false);
  start_requests(*set->hosts[7], 1);
  auto lb = LeastRequestFactory(set, 9).create(0, 1);
  auto counts = count_picks(*lb, 1000);
  // Host 6 is idle: picked whenever both draws find usable hosts, and by the scan otherwise.
  EXPECT_EQ(counts[set->hosts[6].get()], 1000);
}

TEST(LeastRequest, NoAvailableHostPicksNothingUnlessHealthIsIgnored) {
  auto set = make_set({1, 1, 1});
  for (const HostPtr& h : set->hosts) h->set_ejected(true);
  start_requests(*set->hosts[0], 2);
  start_requests(*set->hosts[2], 2);
  auto lb = LeastRequestFactory(set).create(0, 1);
  EXPECT_EQ(lb->pick({}), nullptr);
  PickContext panic;
  panic.ignore_health = true;
  auto counts = count_picks(*lb, 300, panic);
  EXPECT_EQ(counts[nullptr], 0);
  EXPECT_GT(counts[set->hosts[1].get()], 150);
}

TEST(LeastRequest, AvoidsTheHostToAvoidWhileAnotherIsAvailable) {
  auto set = make_set({1, 1, 1});
  start_requests(*set->hosts[1], 5);
  start_requests(*set->hosts[2], 5);
  auto lb = LeastRequestFactory(set).create(0, 1);
  PickContext ctx;
  ctx.avoid = set->hosts[0].get();  // the idle one
  for (int i = 0; i < 50; ++i) EXPECT_NE(lb->pick(ctx), set->hosts[0].get());
  set->hosts[1]->set_healthy(false);
  set->hosts[2]->set_healthy(false);
  EXPECT_EQ(lb->pick(ctx), set->hosts[0].get());
}

TEST(LeastRequest, SingleHost) {
  auto set = make_set({4});
  auto lb = LeastRequestFactory(set).create(0, 1);
  EXPECT_EQ(lb->pick({}), set->hosts[0].get());
  set->hosts[0]->set_healthy(false);
  EXPECT_EQ(lb->pick({}), nullptr);
}

}  // namespace
}  // namespace sluice::upstream::lb
