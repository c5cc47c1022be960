// upstream/shared_clusters: outlier ejection decided on the control thread, its growing
// duration and its decay, and hosts kept across updates.
#include "upstream/shared_clusters.h"

#include <gtest/gtest.h>

#include <thread>

#include "config/config.h"
#include "tests/upstream/loopback_server.h"

namespace sluice::upstream {
namespace {

using namespace std::chrono_literals;
using test::run_until;
namespace asio = boost::asio;

config::Config one_cluster(std::chrono::milliseconds base_ejection) {
  config::Config cfg;
  config::Cluster c;
  c.name = "c";
  c.endpoints.push_back(config::Endpoint{config::SocketAddress{"127.0.0.1", 1}, 1});
  c.endpoints.push_back(config::Endpoint{config::SocketAddress{"127.0.0.1", 2}, 1});
  config::OutlierDetection od;
  od.consecutive_failures = 1;
  od.base_ejection_time = base_ejection;
  od.max_ejection_time = 10s;
  c.outlier_detection = od;
  cfg.clusters.push_back(c);
  return cfg;
}

class SharedClustersTest : public ::testing::Test {
 protected:
  HostPtr eject_and_wait(const SharedClusterPtr& cluster, const HostPtr& host) {
    cluster->record_failure(host);
    EXPECT_TRUE(run_until(ioc_, [&] { return host->ejected(); }));
    return host;
  }
  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_ = asio::make_work_guard(ioc_);
  SharedClusters shared_{ioc_, [](const std::string&) {}};
};

TEST_F(SharedClustersTest, EjectionsGrowAndRecentGoodBehaviourForgivesThem) {
  auto clusters = shared_.update(one_cluster(300ms));
  SharedClusterPtr c = clusters.at("c");
  HostPtr host = c->membership().hosts->hosts[0];
  eject_and_wait(c, host);
  EXPECT_EQ(host->ejection_count, 1u);
  EXPECT_EQ(c->membership().hosts->available_count(), 1u);
  ASSERT_TRUE(run_until(ioc_, [&] { return !host->ejected(); }));
  EXPECT_EQ(c->membership().hosts->available_count(), 2u);
  // Failing again at once: the second ejection counts double.
  eject_and_wait(c, host);
  EXPECT_EQ(host->ejection_count, 2u);
  ASSERT_TRUE(run_until(ioc_, [&] { return !host->ejected(); }));
  // Two base ejection times in rotation forgive both: the next ejection is a first one again.
  std::this_thread::sleep_for(700ms);
  eject_and_wait(c, host);
  EXPECT_EQ(host->ejection_count, 1u);
  EXPECT_EQ(c->ejections_total.load(), 3u);
}

TEST_F(SharedClustersTest, AnUpdateKeepsHostsAndTheirState) {
  auto first = shared_.update(one_cluster(10s));
  SharedClusterPtr c = first.at("c");
  HostPtr host = c->membership().hosts->hosts[0];
  eject_and_wait(c, host);
  const uint64_t version = c->version();
  config::Config cfg = one_cluster(10s);
  cfg.clusters[0].endpoints.push_back(config::Endpoint{config::SocketAddress{"127.0.0.1", 3}, 1});
  auto second = shared_.update(cfg);
  EXPECT_EQ(second.at("c"), c) << "the same shared cluster";
  EXPECT_GT(c->version(), version) << "workers see a new membership";
  auto hosts = c->membership().hosts;
  ASSERT_EQ(hosts->size(), 3u);
  EXPECT_EQ(hosts->hosts[0], host);
  EXPECT_TRUE(hosts->hosts[0]->ejected());
  EXPECT_EQ(hosts->available_count(), 2u);
  EXPECT_EQ(shared_.update(config::Config{}).size(), 0u);
  EXPECT_EQ(shared_.find("c"), nullptr);
}

}  // namespace
}  // namespace sluice::upstream
