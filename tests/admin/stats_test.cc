#include "admin/stats.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "admin/admin_context.h"
#include "admin/totals.h"
#include "core/runtime_state.h"
#include "core/stats.h"

namespace sluice::admin {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

constexpr auto& kBounds = Histogram::kBounds;

std::array<uint64_t, kBuckets> buckets(std::initializer_list<std::pair<size_t, uint64_t>> counts) {
  std::array<uint64_t, kBuckets> b{};
  for (auto [i, n] : counts) b[i] = n;
  return b;
}

TEST(HistogramQuantile, EmptyIsNaN) {
  EXPECT_TRUE(std::isnan(histogram_quantile(0.5, buckets({}), kBounds)));
}

TEST(HistogramQuantile, FirstBucketStartsAtZero) {
  // 10 observations in (0, 0.0005]: the median is half way.
  EXPECT_DOUBLE_EQ(histogram_quantile(0.5, buckets({{0, 10}}), kBounds), 0.00025);
}

TEST(HistogramQuantile, InterpolatesInsideTheBucketThatHoldsTheRank) {
  // 50 in (0.001, 0.0025] (index 2), 50 in (0.025, 0.05] (index 6).
  auto b = buckets({{2, 50}, {6, 50}});
  EXPECT_DOUBLE_EQ(histogram_quantile(0.5, b, kBounds), 0.0025);  // rank 50: top of bucket 2
  EXPECT_DOUBLE_EQ(histogram_quantile(0.25, b, kBounds), 0.001 + 0.0015 * 0.5);
  EXPECT_DOUBLE_EQ(histogram_quantile(0.99, b, kBounds), 0.025 + 0.025 * (49.0 / 50));
  // Empty buckets in between never hold the rank.
  EXPECT_DOUBLE_EQ(histogram_quantile(0.51, b, kBounds), 0.025 + 0.025 * (1.0 / 50));
}

TEST(HistogramQuantile, ZeroIsTheBottomOfTheFirstNonEmptyBucket) {
  EXPECT_DOUBLE_EQ(histogram_quantile(0, buckets({{4, 3}}), kBounds), 0.005);
}

TEST(HistogramQuantile, InfBucketGivesTheHighestBound) {
  auto b = buckets({{0, 1}, {kBuckets - 1, 99}});
  EXPECT_DOUBLE_EQ(histogram_quantile(0.99, b, kBounds), kBounds.back());
  EXPECT_DOUBLE_EQ(histogram_quantile(1, b, kBounds), kBounds.back());
}

TEST(HistogramQuantile, MatchesPrometheusOnASpreadHistogram) {
  // What histogram_quantile(0.7, ...) gives for these buckets: rank 70 of 100 lies 20 into the
  // 40 of (0.1, 0.25], so 0.1 + 0.15 * 20/40; rank 90 is the top of that bucket.
  auto b = buckets({{5, 30}, {6, 20}, {7, 0}, {8, 40}, {9, 10}});
  EXPECT_DOUBLE_EQ(histogram_quantile(0.7, b, kBounds), 0.1 + 0.15 * (20.0 / 40));
  EXPECT_DOUBLE_EQ(histogram_quantile(0.9, b, kBounds), 0.25);
}

SampleCounts counts(uint64_t requests, uint64_t errors, std::array<uint64_t, kBuckets> latency) {
  SampleCounts c;
  c.requests = requests;
  c.errors = errors;
  c.latency = latency;
  return c;
}

TEST(StatsSeries, FirstSampleIsOnlyTheBaseline) {
  StatsSeries series;
  auto t0 = std::chrono::steady_clock::time_point{} + 100s;
  series.add(t0, 1000, counts(500, 5, buckets({{3, 500}})));
  EXPECT_EQ(series.size(), 0u);

  series.add(t0 + 1s, 2000, counts(600, 7, buckets({{3, 550}, {9, 50}})));
  ASSERT_EQ(series.size(), 1u);
  const SeriesPoint& p = series.at(0);
  EXPECT_EQ(p.time_ms, 2000);
  EXPECT_DOUBLE_EQ(p.requests_per_second, 100);
  EXPECT_DOUBLE_EQ(p.errors_per_second, 2);
  // Of the 100 in this second, 50 in (0.0025, 0.005] and 50 in (0.25, 0.5]: the lifetime
  // histogram (550 fast, 50 slow) would say p99 = 0.5 * ..., the delta says the slow half.
  EXPECT_DOUBLE_EQ(p.p50_seconds, 0.005);
  EXPECT_DOUBLE_EQ(p.p99_seconds, 0.25 + 0.25 * (49.0 / 50));
}

TEST(StatsSeries, RatesArePerElapsedSecond) {
  StatsSeries series;
  auto t0 = std::chrono::steady_clock::time_point{} + 100s;
  series.add(t0, 0, counts(0, 0, {}));
  series.add(t0 + 2500ms, 2500, counts(50, 0, {}));
  ASSERT_EQ(series.size(), 1u);
  EXPECT_DOUBLE_EQ(series.at(0).requests_per_second, 20);
  // No request finished: no latency, rather than a zero that looks like a fast one.
  EXPECT_TRUE(std::isnan(series.at(0).p50_seconds));
  EXPECT_TRUE(std::isnan(series.at(0).p99_seconds));
}

TEST(StatsSeries, CounterGoingBackwardsCountsAsZero) {
  StatsSeries series;
  auto t0 = std::chrono::steady_clock::time_point{} + 100s;
  series.add(t0, 0, counts(100, 10, buckets({{1, 100}})));
  series.add(t0 + 1s, 1000, counts(40, 2, buckets({{1, 40}})));
  ASSERT_EQ(series.size(), 1u);
  EXPECT_DOUBLE_EQ(series.at(0).requests_per_second, 0);
  EXPECT_DOUBLE_EQ(series.at(0).errors_per_second, 0);
  EXPECT_TRUE(std::isnan(series.at(0).p50_seconds));
  // And the next interval counts from the new value.
  series.add(t0 + 2s, 2000, counts(45, 2, buckets({{1, 45}})));
  EXPECT_DOUBLE_EQ(series.at(1).requests_per_second, 5);
}

TEST(StatsSeries, RingKeepsTheNewestInOrderAfterWrapping) {
  StatsSeries series;
  auto t0 = std::chrono::steady_clock::time_point{} + 100s;
  const size_t extra = 37;
  const size_t samples = StatsSeries::kCapacity + extra + 1;  // + the baseline
  for (size_t i = 0; i < samples; ++i) {
    // i requests in second i: the rate tells which interval a point is.
    uint64_t total = i * (i + 1) / 2;
    series.add(t0 + std::chrono::seconds(i), static_cast<int64_t>(i) * 1000, counts(total, 0, {}));
  }
  ASSERT_EQ(series.size(), StatsSeries::kCapacity);
  for (size_t k = 0; k < series.size(); ++k) {
    const size_t i = extra + 1 + k;
    EXPECT_EQ(series.at(k).time_ms, static_cast<int64_t>(i) * 1000) << k;
    EXPECT_DOUBLE_EQ(series.at(k).requests_per_second, static_cast<double>(i)) << k;
  }
}

TEST(StatsSeries, SameInstantAddsNoPoint) {
  StatsSeries series;
  auto t0 = std::chrono::steady_clock::time_point{} + 100s;
  series.add(t0, 0, counts(0, 0, {}));
  series.add(t0, 0, counts(10, 0, {}));
  EXPECT_EQ(series.size(), 0u);
}

class Context : public AdminContext {
 public:
  Context() {
    for (int i = 0; i < 2; ++i) workers_.push_back(std::make_unique<WorkerStats>());
    auto cfg = std::make_shared<config::Config>();
    cfg->listeners.emplace_back().name = "public";
    cfg->routes.emplace_back().name = "idle";
    config_ = cfg;
  }
  bool ready() const override { return true; }
  config::ConfigPtr config() const override { return config_; }
  std::vector<const WorkerStats*> worker_stats() const override {
    return {workers_[0].get(), workers_[1].get()};
  }
  uint64_t reloads_succeeded() const override { return 3; }
  uint64_t reloads_failed() const override { return 1; }
  std::vector<ReloadRecord> recent_reloads() const override { return reloads_; }
  RuntimeState& runtime() const override { return runtime_; }

  WorkerStats& worker(size_t i) { return *workers_[i]; }
  mutable RuntimeState runtime_;
  config::ConfigPtr config_;
  std::vector<ReloadRecord> reloads_;

 private:
  std::vector<std::unique_ptr<WorkerStats>> workers_;
};

std::string stats(const Context& ctx, const StatsSeries& series, StatsOptions options = {}) {
  return stats_json(ctx, sum_stats(ctx, ctx.worker_stats()), series, 1234, options);
}

TEST(StatsJson, TotalsAreSummedOverWorkers) {
  Context ctx;
  for (int i = 0; i < 3; ++i) ctx.worker(0).listener("public").requests.add(200);
  ctx.worker(1).listener("public").requests.add(503);
  ctx.worker(1).listener("public").requests.add(404);
  ctx.worker(0).listener("public").connections_active.add(2);
  ctx.worker(0).route("api").observe(200, 0.01);
  ctx.worker(1).route("api").observe(200, 0.01);
  ctx.worker(1).route("api").observe(503, 0.2);
  ctx.worker(0).rate_limit("per_ip").allowed.add(7);
  ctx.worker(1).rate_limit("per_ip").limited.add(2);
  StatsSeries series;
  std::string json = stats(ctx, series);
  EXPECT_THAT(json, HasSubstr("\"time_ms\": 1234"));
  EXPECT_THAT(json, HasSubstr("\"workers\": 2"));
  EXPECT_THAT(json, HasSubstr("\"requests\": {\"total\": 5, \"by_class\": [0,3,0,1,1]}"));
  EXPECT_THAT(json, HasSubstr("\"connections_active\": 2"));
  EXPECT_THAT(json, HasSubstr("{\"name\": \"public\", \"requests\": [0,3,0,1,1]"));
  EXPECT_THAT(json, HasSubstr("{\"name\": \"api\", \"requests\": [0,2,0,0,1]}"));
  // A configured route is there before its first request.
  EXPECT_THAT(json, HasSubstr("{\"name\": \"idle\", \"requests\": [0,0,0,0,0]}"));
  EXPECT_THAT(json, HasSubstr("{\"name\": \"per_ip\", \"allowed\": 7, \"limited\": 2, "
                              "\"would_limit\": 0, \"skipped\": 0, \"error\": 0}"));
  EXPECT_THAT(json, HasSubstr("\"reloads\": {\"succeeded\": 3, \"failed\": 1, \"recent\": []}"));
  EXPECT_THAT(json, HasSubstr("\"clusters\": []"));
  EXPECT_THAT(json, HasSubstr("\"points\": []"));
  EXPECT_THAT(json, HasSubstr("\"routes_omitted\": 0"));
}

TEST(StatsJson, ReloadsNewestFirstWithErrors) {
  Context ctx;
  ReloadRecord ok;
  ok.time = std::chrono::system_clock::time_point{} + 1700000000s;
  ok.trigger = "signal";
  ok.ok = true;
  ReloadRecord bad;
  bad.time = ok.time + 60s;
  bad.trigger = "api";
  bad.error_count = 5;
  bad.errors = {"sluice.yaml:3:7: unknown key \"x\""};
  ctx.reloads_ = {ok, bad};
  StatsSeries series;
  std::string json = stats(ctx, series);
  const size_t first = json.find("\"trigger\": \"api\"");
  const size_t second = json.find("\"trigger\": \"signal\"");
  ASSERT_NE(first, std::string::npos);
  ASSERT_NE(second, std::string::npos);
  EXPECT_LT(first, second);
  EXPECT_THAT(json, HasSubstr("\"time_ms\": 1700000060000, \"time\": \"2023-11-14T22:14:20Z\""));
  EXPECT_THAT(json, HasSubstr("\"result\": \"failed\", \"duration_ms\": 0, \"error_count\": 5, "
                              "\"errors\": [\"sluice.yaml:3:7: unknown key \\\"x\\\"\"]"));
  EXPECT_THAT(json, HasSubstr("\"result\": \"ok\""));
}

TEST(StatsJson, SeriesSinceOnlyNewerPointsAndNullWithoutLatency) {
  Context ctx;
  StatsSeries series;
  auto t0 = std::chrono::steady_clock::time_point{} + 100s;
  series.add(t0, 1000, counts(0, 0, {}));
  series.add(t0 + 1s, 2000, counts(10, 1, buckets({{5, 10}})));
  series.add(t0 + 2s, 3000, counts(10, 1, buckets({{5, 10}})));
  std::string all = stats(ctx, series);
  EXPECT_THAT(all, HasSubstr("[2000,10,1,17.5,24.85]"));
  EXPECT_THAT(all, HasSubstr("[3000,0,0,null,null]"));
  StatsOptions since;
  since.since_ms = 2000;
  std::string newer = stats(ctx, series, since);
  EXPECT_THAT(newer, Not(HasSubstr("[2000,")));
  EXPECT_THAT(newer, HasSubstr("[3000,0,0,null,null]"));
}

TEST(StatsJson, ManyRoutesListTheBusiestAndCountTheRest) {
  Context ctx;
  for (int r = 0; r < 300; ++r) {
    RouteStats& route = ctx.worker(r % 2).route("route-" + std::to_string(r));
    for (int i = 0; i < r % 7; ++i) route.observe(200, 0.001);
  }
  ctx.worker(0).route("zz-busy").observe(200, 0.001);
  for (int i = 0; i < 50; ++i) ctx.worker(0).route("zz-busy").observe(200, 0.001);
  StatsSeries series;
  StatsOptions options;
  options.max_routes = 100;
  std::string json = stats(ctx, series, options);
  EXPECT_THAT(json, HasSubstr("\"routes_omitted\": 202"));  // 300 + idle + zz-busy - 100
  EXPECT_THAT(json, HasSubstr("\"zz-busy\""));
  EXPECT_THAT(json, Not(HasSubstr("\"idle\"")));  // no requests: among the omitted
  // Bounded: about a hundred short rows, not three hundred.
  EXPECT_LT(json.size(), 8000u);
}

}  // namespace
}  // namespace sluice::admin
