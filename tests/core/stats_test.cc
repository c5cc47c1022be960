// core/stats.h: histogram buckets, status counters and the per-worker scopes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/stats.h"

namespace sluice {
namespace {

size_t bucket_of(double seconds) {
  Histogram h;
  h.observe(seconds);
  for (size_t i = 0; i <= Histogram::kBounds.size(); ++i) {
    if (h.bucket(i) == 1) return i;
  }
  return SIZE_MAX;
}

TEST(Histogram, BoundsAreSortedAscending) {
  for (size_t i = 1; i < Histogram::kBounds.size(); ++i) {
    EXPECT_LT(Histogram::kBounds[i - 1], Histogram::kBounds[i]);
  }
}

TEST(Histogram, ValueOnABoundGoesInThatBucket) {
  // Prometheus buckets are "less than or equal".
  for (size_t i = 0; i < Histogram::kBounds.size(); ++i) {
    EXPECT_EQ(bucket_of(Histogram::kBounds[i]), i) << Histogram::kBounds[i];
  }
}

TEST(Histogram, ValueJustAboveABoundGoesInTheNext) {
  for (size_t i = 0; i < Histogram::kBounds.size(); ++i) {
    EXPECT_EQ(bucket_of(Histogram::kBounds[i] * 1.001), i + 1) << Histogram::kBounds[i];
  }
}

TEST(Histogram, ExtremesLandInFirstAndInfBuckets) {
  EXPECT_EQ(bucket_of(0), 0u);
  EXPECT_EQ(bucket_of(0.0001), 0u);
  EXPECT_EQ(bucket_of(-1), 0u);
  EXPECT_EQ(bucket_of(10.5), Histogram::kBounds.size());
  EXPECT_EQ(bucket_of(3600), Histogram::kBounds.size());
}

TEST(Histogram, CountAndSum) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_DOUBLE_EQ(h.sum(), 0.0);
  h.observe(0.25);
  h.observe(1.5);
  h.observe(0.000001);
  h.observe(-2);  // clock step backwards: counted, adds nothing to the sum
  EXPECT_EQ(h.count(), 4u);
  EXPECT_NEAR(h.sum(), 1.75, 2e-6);
  uint64_t total = 0;
  for (size_t i = 0; i <= Histogram::kBounds.size(); ++i) total += h.bucket(i);
  EXPECT_EQ(total, h.count());
  EXPECT_EQ(h.bucket(8), 1u);   // 0.25
  EXPECT_EQ(h.bucket(11), 1u);  // 1.5 ≤ 2.5
  EXPECT_EQ(h.bucket(0), 2u);
}

TEST(StatusCounters, ByClass) {
  StatusCounters c;
  for (unsigned s : {100u, 101u, 200u, 204u, 299u, 301u, 304u, 400u, 404u, 499u, 500u, 503u}) {
    c.add(s);
  }
  EXPECT_EQ(c.by_class[0].value(), 2u);
  EXPECT_EQ(c.by_class[1].value(), 3u);
  EXPECT_EQ(c.by_class[2].value(), 2u);
  EXPECT_EQ(c.by_class[3].value(), 3u);
  EXPECT_EQ(c.by_class[4].value(), 2u);
}

TEST(StatusCounters, OutOfRangeCountsAsServerError) {
  StatusCounters c;
  c.add(0);
  c.add(99);
  c.add(600);
  c.add(1000);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(c.by_class[i].value(), 0u) << i;
  EXPECT_EQ(c.by_class[4].value(), 4u);
}

TEST(RouteStats, ObserveGoesToTheStatusClassHistogram) {
  RouteStats r;
  r.observe(200, 0.001);
  r.observe(204, 0.002);
  r.observe(302, 0.001);
  r.observe(503, 0.5);
  r.observe(0, 0.5);  // out of range: 5xx, like StatusCounters
  EXPECT_EQ(r.duration[0].count(), 0u);
  EXPECT_EQ(r.duration[1].count(), 2u);
  EXPECT_EQ(r.duration[2].count(), 1u);
  EXPECT_EQ(r.duration[3].count(), 0u);
  EXPECT_EQ(r.duration[4].count(), 2u);
  EXPECT_EQ(status_class_index(100), 0u);
  EXPECT_EQ(status_class_index(599), 4u);
  EXPECT_EQ(status_class_index(600), 4u);
}

TEST(CounterGauge, AddAndValue) {
  Counter c;
  c.add();
  c.add(41);
  EXPECT_EQ(c.value(), 42u);
  Gauge g;
  g.add(3);
  g.add(-5);
  EXPECT_EQ(g.value(), -2);
}

TEST(WorkerStats, SameNameSameScope) {
  WorkerStats s;
  EXPECT_EQ(&s.listener("public"), &s.listener("public"));
  EXPECT_EQ(&s.cluster("api"), &s.cluster("api"));
  EXPECT_EQ(&s.route("r"), &s.route("r"));
  EXPECT_NE(&s.cluster("api"), &s.cluster("web"));
}

TEST(WorkerStats, ScopeAddressesStayStableAsScopesAreAdded) {
  WorkerStats s;
  ClusterStats* first = &s.cluster("first");
  ListenerStats* listener = &s.listener("l");
  RouteStats* route = &s.route("r");
  first->connect_failures.add(7);
  for (int i = 0; i < 1000; ++i) {
    s.cluster("c" + std::to_string(i));
    s.listener("l" + std::to_string(i));
    s.route("r" + std::to_string(i));
  }
  EXPECT_EQ(&s.cluster("first"), first);
  EXPECT_EQ(&s.listener("l"), listener);
  EXPECT_EQ(&s.route("r"), route);
  EXPECT_EQ(first->connect_failures.value(), 7u);
}

TEST(WorkerStats, VisitSeesEveryScope) {
  WorkerStats s;
  s.listener("a").requests.add(200);
  s.cluster("b").timeouts.add();
  s.route("c").observe(404, 0.1);
  size_t listeners = 0, clusters = 0, routes = 0;
  s.visit([&](const auto& l, const auto& c, const auto& r) {
    listeners = l.size();
    clusters = c.size();
    routes = r.size();
    EXPECT_EQ(l.at("a").requests.by_class[1].value(), 1u);
    EXPECT_EQ(c.at("b").timeouts.value(), 1u);
    EXPECT_EQ(r.at("c").duration[3].count(), 1u);  // 4xx
  });
  EXPECT_EQ(listeners, 1u);
  EXPECT_EQ(clusters, 1u);
  EXPECT_EQ(routes, 1u);
}

}  // namespace
}  // namespace sluice
