#include "upstream/lb/maglev.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cmath>

#include "tests/upstream/lb/consistency.h"

namespace sluice::upstream::lb {
namespace {

using testing::count_picks;
using testing::expect_avoids_the_host_to_avoid;
using testing::make_keys;
using testing::make_set;
using testing::owners;
using testing::with_hash;

std::map<uint32_t, size_t> slots_per_host(const MaglevFactory& factory) {
  std::map<uint32_t, size_t> counts;
  for (uint32_t h : factory.table()) ++counts[h];
  return counts;
}

TEST(Maglev, EmptySetPicksNothing) {
  MaglevFactory factory(make_set(std::vector<uint32_t>{}));
  EXPECT_TRUE(factory.table().empty());
  PickContext ctx = with_hash(1);
  ctx.ignore_health = true;
  EXPECT_EQ(factory.create(0, 1)->pick(ctx), nullptr);
  EXPECT_EQ(factory.create(0, 1)->pick({}), nullptr);
}

TEST(Maglev, EqualWeightsShareTheTableEvenly) {
  MaglevFactory factory(make_set(std::vector<uint32_t>(7, 1)));
  ASSERT_EQ(factory.table().size(), MaglevFactory::kTableSize);
  auto counts = slots_per_host(factory);
  ASSERT_EQ(counts.size(), 7u);
  // Turns alternate strictly: shares differ by at most one slot.
  for (const auto& [host, slots] : counts) EXPECT_NEAR(slots, 65537.0 / 7, 1) << host;
}

TEST(Maglev, WeightsSetTheShares) {
  MaglevFactory factory(make_set({1, 2, 5}));
  auto counts = slots_per_host(factory);
  EXPECT_NEAR(counts[0], 65537.0 / 8, 10);
  EXPECT_NEAR(counts[1], 65537.0 * 2 / 8, 10);
  EXPECT_NEAR(counts[2], 65537.0 * 5 / 8, 10);
}

TEST(Maglev, AKeyKeepsItsHostAcrossWorkersAndFactories) {
  auto set = make_set({1, 1, 1, 1, 1});
  MaglevFactory a(set);
  MaglevFactory b(set);
  auto keys = make_keys(1, 200);
  EXPECT_EQ(owners(a, keys), owners(b, keys));
  auto w0 = a.create(0, 2);
  auto w1 = a.create(1, 2);
  for (uint64_t key : keys) EXPECT_EQ(w0->pick(with_hash(key)), w1->pick(with_hash(key)));
}

TEST(Maglev, WithoutAHashPicksAtRandom) {
  auto set = make_set({1, 1, 1, 1});
  auto lb = MaglevFactory(set, 3).create(0, 1);
  auto counts = count_picks(*lb, 8000);
  for (const HostPtr& h : set->hosts) EXPECT_NEAR(counts[h.get()], 2000, 300);
}

TEST(Maglev, AnUnavailableHostsKeysGoElsewhereAndComeBack) {
  auto set = make_set(std::vector<uint32_t>(5, 1));
  MaglevFactory factory(set);
  auto keys = make_keys(3, 2000);
  auto before = owners(factory, keys);
  set->hosts[2]->set_ejected(true);
  auto during = owners(factory, keys);
  std::map<const Host*, int> moved;
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_NE(during[i], set->hosts[2].get());
    if (before[i] != set->hosts[2].get()) {
      EXPECT_EQ(during[i], before[i]);
    } else {
      ++moved[during[i]];
    }
  }
  EXPECT_GE(moved.size(), 3u);
  set->hosts[2]->set_ejected(false);
  EXPECT_EQ(owners(factory, keys), before);
}

TEST(Maglev, NoAvailableHostPicksNothingUnlessHealthIsIgnored) {
  auto set = make_set({1, 1, 1});
  MaglevFactory factory(set);
  auto lb = factory.create(0, 1);
  const Host* home = lb->pick(with_hash(9));
  for (const HostPtr& h : set->hosts) h->set_healthy(false);
  EXPECT_EQ(lb->pick(with_hash(9)), nullptr);
  EXPECT_EQ(lb->pick({}), nullptr);
  PickContext panic = with_hash(9);
  panic.ignore_health = true;
  EXPECT_EQ(lb->pick(panic), home);
}

TEST(Maglev, OneAvailableHostAmongManyTakesEveryKey) {
  auto set = make_set(std::vector<uint32_t>(300, 1));
  for (size_t i = 0; i + 1 < set->size(); ++i) set->hosts[i]->set_healthy(false);
  auto lb = MaglevFactory(set).create(0, 1);
  for (uint64_t key : make_keys(4, 200)) {
    EXPECT_EQ(lb->pick(with_hash(key)), set->hosts.back().get());
  }
}

TEST(Maglev, AvoidsTheHostToAvoidWhileAnotherIsAvailable) {
  auto set = make_set({1, 1, 1});
  expect_avoids_the_host_to_avoid(MaglevFactory(set), *set);
}

// Maglev moves more than a ring when the set changes: the table is rebuilt, and a slot that a
// host took late in its permutation can go to another host. Measured over 130,000 random sets
// of 2 to 51 equal hosts (whole tables compared, by a program not kept): the other hosts' slots
// that move average 0.34 % and stay under 1 point in 99.9 % of sets, but two hosts whose
// permutations are correlated (one's skip twice the other's, offsets aligned) swap many slots.
// Worst seen, removing one of N: 5.6 % (1.06 / (N-1)) and 1.24 / (N-1) (5.0 %); adding to N,
// beyond the new host's share: 7.8 points (0.86 / (N+1)) and 1.43 / (N+1) (3.7 points). The
// bounds below are those plus margin, so that a random seed does not make the test flaky;
// 4 standard deviations cover sampling 4,000 keys.
double sampling_noise(double share, size_t count) {
  return 4 * std::sqrt(share * (1 - share) / static_cast<double>(count));
}

// Removing one of N hosts moves its keys, and at most 1.5 / N + 2 points of the others'.
RC_GTEST_PROP(MaglevProperty, RemovingAHostMovesItsKeysAndFewOthers, ()) {
  const auto n = *rc::gen::inRange<size_t>(2, 51);
  const auto removed = *rc::gen::inRange<size_t>(0, n);
  const auto salt = *rc::gen::arbitrary<uint64_t>();
  auto hosts = testing::named_hosts(n, salt);
  auto fewer = hosts;
  fewer.erase(fewer.begin() + static_cast<ptrdiff_t>(removed));
  const size_t count = 4000;
  auto keys = make_keys(salt, count);
  auto before = owners(MaglevFactory(testing::set_of(hosts)), keys);
  auto after = owners(MaglevFactory(testing::set_of(fewer)), keys);
  size_t others_moved = 0;
  for (size_t i = 0; i < count; ++i) {
    RC_ASSERT(after[i] != hosts[removed].get());
    if (before[i] != hosts[removed].get() && after[i] != before[i]) ++others_moved;
  }
  const double share = 1.0 / static_cast<double>(n);
  RC_ASSERT(static_cast<double>(others_moved) / count <=
            1.5 * share + 0.02 + sampling_noise(share, count));
}

// Adding a host to N moves its share, 1 / (N+1), of the keys to it, and others between the
// other hosts: in all at most 2.5 / (N+1) + 2 points.
RC_GTEST_PROP(MaglevProperty, AddingAHostMovesAboutOneNthOfKeys, ()) {
  const auto n = *rc::gen::inRange<size_t>(2, 51);
  const auto salt = *rc::gen::arbitrary<uint64_t>();
  auto hosts = testing::named_hosts(n + 1, salt);
  auto fewer = hosts;
  fewer.pop_back();
  const size_t count = 4000;
  auto keys = make_keys(salt, count);
  auto before = owners(MaglevFactory(testing::set_of(fewer)), keys);
  auto after = owners(MaglevFactory(testing::set_of(hosts)), keys);
  size_t moved = 0;
  for (size_t i = 0; i < count; ++i) moved += after[i] != before[i] ? 1 : 0;
  const double share = 1.0 / static_cast<double>(n + 1);
  RC_ASSERT(static_cast<double>(moved) / count <=
            2.5 * share + 0.02 + sampling_noise(share, count));
}

}  // namespace
}  // namespace sluice::upstream::lb
