#include "admin/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "admin/admin_context.h"
#include "core/runtime_state.h"
#include "core/stats.h"

namespace sluice::admin {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class StatsContext : public AdminContext {
 public:
  explicit StatsContext(size_t workers) {
    for (size_t i = 0; i < workers; ++i) workers_.push_back(std::make_unique<WorkerStats>());
  }
  bool ready() const override { return true; }
  config::ConfigPtr config() const override { return config_; }
  std::vector<const WorkerStats*> worker_stats() const override {
    std::vector<const WorkerStats*> out;
    for (const auto& w : workers_) out.push_back(w.get());
    return out;
  }
  uint64_t reloads_succeeded() const override { return reloads_ok_; }
  uint64_t reloads_failed() const override { return reloads_failed_; }
  RuntimeState& runtime() const override { return runtime_; }
  mutable RuntimeState runtime_;

  WorkerStats& worker(size_t i) { return *workers_[i]; }

  config::ConfigPtr config_;
  uint64_t reloads_ok_ = 0;
  uint64_t reloads_failed_ = 0;

 private:
  std::vector<std::unique_ptr<WorkerStats>> workers_;
};

// Fills two workers with overlapping and disjoint scopes so that sums are visible.
void fill(StatsContext& ctx) {
  WorkerStats& w0 = ctx.worker(0);
  WorkerStats& w1 = ctx.worker(1);
  for (int i = 0; i < 3; ++i) w0.listener("public").requests.add(200);
  for (int i = 0; i < 2; ++i) w1.listener("public").requests.add(204);
  w1.listener("public").requests.add(503);
  w0.listener("public").connections_active.add(4);
  w1.listener("public").connections_active.add(3);
  w0.listener("public").connections_total.add(10);
  w1.listener("public").connections_total.add(7);
  w1.listener("internal").requests.add(404);

  w0.cluster("api").requests.add(200);
  w1.cluster("api").requests.add(502);
  w0.cluster("api").connect_failures.add(2);
  w1.cluster("api").connect_failures.add(1);
  w1.cluster("api").timeouts.add(5);
  w0.cluster("api").connections_created.add(6);
  w1.cluster("api").connections_created.add(4);

  w0.route("api").observe(200, 0.0003);  // first bucket (le 0.0005)
  w1.route("api").observe(204, 0.003);   // le 0.005
  w1.route("api").observe(200, 0.2);     // le 0.25
  w0.route("api").observe(200, 30);      // +Inf only
  w1.route("api").observe(503, 1.5);     // another class: another histogram

  ctx.reloads_ok_ = 3;
  ctx.reloads_failed_ = 1;
}

// Runs `promtool check metrics` on `text`; returns its exit status and sets `output`.
int promtool_check(const std::string& text, std::string* output) {
  char path[] = "/tmp/sluice_metrics_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return -1;
  close(fd);
  std::ofstream(path) << text;
  std::string cmd = std::string("timeout 30 /usr/bin/promtool check metrics < ") + path + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) output->append(buf, n);
  int status = pclose(pipe);
  unlink(path);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(Metrics, SumsWorkersPerListener) {
  StatsContext ctx(2);
  fill(ctx);
  std::string text = render_metrics(ctx);
  EXPECT_THAT(text,
              HasSubstr("sluice_downstream_requests_total{listener=\"public\",code=\"2xx\"} 5\n"));
  EXPECT_THAT(text,
              HasSubstr("sluice_downstream_requests_total{listener=\"public\",code=\"5xx\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("sluice_downstream_requests_total{listener=\"public\",code=\"1xx\"} 0\n"));
  // A scope that only one worker has seen still appears.
  EXPECT_THAT(
      text, HasSubstr("sluice_downstream_requests_total{listener=\"internal\",code=\"4xx\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("sluice_downstream_connections_active{listener=\"public\"} 7\n"));
  EXPECT_THAT(text, HasSubstr("sluice_downstream_connections_total{listener=\"public\"} 17\n"));
}

TEST(Metrics, RejectedConnectionsAreSummedPerReason) {
  StatsContext ctx(2);
  ctx.worker(0).listener("public").connections_rejected_max_connections.add(2);
  ctx.worker(1).listener("public").connections_rejected_max_connections.add(3);
  ctx.worker(1).listener("public").connections_rejected_max_connections_per_ip.add(4);
  ctx.worker(0).listener("internal").requests.add(200);
  std::string text = render_metrics(ctx);
  EXPECT_THAT(text, HasSubstr("# TYPE sluice_downstream_connections_rejected_total counter\n"));
  EXPECT_THAT(text, HasSubstr("sluice_downstream_connections_rejected_total{listener=\"public\","
                              "reason=\"max_connections\"} 5\n"));
  EXPECT_THAT(text, HasSubstr("sluice_downstream_connections_rejected_total{listener=\"public\","
                              "reason=\"max_connections_per_ip\"} 4\n"));
  // Both series exist, at zero, for a listener that has refused nothing.
  EXPECT_THAT(text, HasSubstr("sluice_downstream_connections_rejected_total{listener="
                              "\"internal\",reason=\"max_connections_per_ip\"} 0\n"));
}

TEST(Metrics, SumsWorkersPerCluster) {
  StatsContext ctx(2);
  fill(ctx);
  std::string text = render_metrics(ctx);
  EXPECT_THAT(text, HasSubstr("sluice_upstream_requests_total{cluster=\"api\",code=\"2xx\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("sluice_upstream_requests_total{cluster=\"api\",code=\"5xx\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("sluice_upstream_connect_failures_total{cluster=\"api\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("sluice_upstream_timeouts_total{cluster=\"api\"} 5\n"));
  EXPECT_THAT(text, HasSubstr("sluice_upstream_connections_created_total{cluster=\"api\"} 10\n"));
}

TEST(Metrics, HistogramIsCumulativeAcrossWorkers) {
  StatsContext ctx(2);
  fill(ctx);
  std::string text = render_metrics(ctx);
  const std::string prefix =
      "sluice_request_duration_seconds_bucket{route=\"api\",code=\"2xx\",le=\"";
  EXPECT_THAT(text, HasSubstr(prefix + "0.0005\"} 1\n"));
  EXPECT_THAT(text, HasSubstr(prefix + "0.0025\"} 1\n"));
  EXPECT_THAT(text, HasSubstr(prefix + "0.005\"} 2\n"));
  EXPECT_THAT(text, HasSubstr(prefix + "0.1\"} 2\n"));
  EXPECT_THAT(text, HasSubstr(prefix + "0.25\"} 3\n"));
  EXPECT_THAT(text, HasSubstr(prefix + "10\"} 3\n"));
  EXPECT_THAT(text, HasSubstr(prefix + "+Inf\"} 4\n"));
  EXPECT_THAT(text,
              HasSubstr("sluice_request_duration_seconds_count{route=\"api\",code=\"2xx\"} 4\n"));
  EXPECT_THAT(
      text, HasSubstr("sluice_request_duration_seconds_sum{route=\"api\",code=\"2xx\"} 30.2033\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE sluice_request_duration_seconds histogram\n"));
}

TEST(Metrics, HistogramPerStatusClassOnlyOnceSeen) {
  StatsContext ctx(2);
  fill(ctx);
  std::string text = render_metrics(ctx);
  const std::string prefix =
      "sluice_request_duration_seconds_bucket{route=\"api\",code=\"5xx\",le=\"";
  EXPECT_THAT(text, HasSubstr(prefix + "1\"} 0\n"));
  EXPECT_THAT(text, HasSubstr(prefix + "2.5\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("sluice_request_duration_seconds_count{route=\"api\",code=\"5xx\"} 1\n"));
  // Classes without a response have no series.
  EXPECT_THAT(text, Not(HasSubstr("code=\"1xx\",le=")));
  EXPECT_THAT(text, Not(HasSubstr("code=\"3xx\",le=")));
  EXPECT_THAT(text, Not(HasSubstr("code=\"4xx\",le=")));

  // A status outside 100-599 counts as 5xx, as in the request counters.
  ctx.worker(0).route("api").observe(999, 0.001);
  EXPECT_THAT(render_metrics(ctx),
              HasSubstr("sluice_request_duration_seconds_count{route=\"api\",code=\"5xx\"} 2\n"));
}

TEST(Metrics, ProcessWideSeries) {
  StatsContext ctx(2);
  fill(ctx);
  std::string text = render_metrics(ctx);
  EXPECT_THAT(text, HasSubstr("sluice_workers 2\n"));
  EXPECT_THAT(text, HasSubstr("sluice_config_reloads_total{result=\"success\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("sluice_config_reloads_total{result=\"failure\"} 1\n"));
}

TEST(Metrics, EveryFamilyHasHelpAndType) {
  StatsContext ctx(2);
  fill(ctx);
  std::string text = render_metrics(ctx);
  for (const char* name :
       {"sluice_downstream_requests_total", "sluice_downstream_connections_active",
        "sluice_downstream_connections_total", "sluice_request_duration_seconds",
        "sluice_upstream_requests_total", "sluice_upstream_connect_failures_total",
        "sluice_upstream_timeouts_total", "sluice_upstream_connections_created_total",
        "sluice_config_reloads_total", "sluice_workers"}) {
    EXPECT_THAT(text, HasSubstr(std::string("# HELP ") + name + " ")) << name;
    EXPECT_THAT(text, HasSubstr(std::string("# TYPE ") + name + " ")) << name;
  }
  EXPECT_THAT(text, HasSubstr("# TYPE sluice_downstream_connections_active gauge\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE sluice_upstream_timeouts_total counter\n"));
}

TEST(Metrics, ConfiguredScopesAppearAtZero) {
  StatsContext ctx(1);
  auto cfg = std::make_shared<config::Config>();
  cfg->listeners.emplace_back().name = "edge";
  cfg->clusters.emplace_back().name = "backend";
  cfg->routes.emplace_back().name = "all";
  ctx.config_ = cfg;
  std::string text = render_metrics(ctx);
  EXPECT_THAT(text,
              HasSubstr("sluice_downstream_requests_total{listener=\"edge\",code=\"2xx\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("sluice_downstream_connections_active{listener=\"edge\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("sluice_upstream_timeouts_total{cluster=\"backend\"} 0\n"));
  // A configured route has its 2xx histogram from the start, and no other class.
  EXPECT_THAT(text,
              HasSubstr("sluice_request_duration_seconds_count{route=\"all\",code=\"2xx\"} 0\n"));
  EXPECT_THAT(text,
              Not(HasSubstr("sluice_request_duration_seconds_count{route=\"all\",code=\"5xx\"}")));
}

TEST(Metrics, EscapesLabelValues) {
  StatsContext ctx(1);
  ctx.worker(0).listener("we\"ird\\name").requests.add(200);
  std::string text = render_metrics(ctx);
  EXPECT_THAT(text, HasSubstr("listener=\"we\\\"ird\\\\name\",code=\"2xx\"} 1\n"));
  std::string output;
  EXPECT_EQ(promtool_check(text, &output), 0) << output << text;
}

TEST(Metrics, NoWorkersStillValid) {
  StatsContext ctx(0);
  std::string text = render_metrics(ctx);
  EXPECT_THAT(text, HasSubstr("sluice_workers 0\n"));
  EXPECT_THAT(text, Not(HasSubstr("listener=")));
  std::string output;
  EXPECT_EQ(promtool_check(text, &output), 0) << output << text;
  EXPECT_EQ(output, "");
}

TEST(Metrics, PassesPromtool) {
  StatsContext ctx(2);
  fill(ctx);
  std::string text = render_metrics(ctx);
  std::string output;
  EXPECT_EQ(promtool_check(text, &output), 0) << output << text;
  // promtool prints lint problems (e.g. a counter without _total) even when it exits 0.
  EXPECT_EQ(output, "") << text;
}

}  // namespace
}  // namespace sluice::admin
