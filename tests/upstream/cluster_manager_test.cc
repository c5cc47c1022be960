// upstream/cluster_manager: HostPool connecting, reusing and discarding connections against a
// real loopback server, and ClusterManager keeping pools across updates and balancing by weight.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/stats.h"
#include "tests/upstream/loopback_server.h"
#include "upstream/cluster_manager.h"

namespace sluice::upstream {
namespace {

using namespace std::chrono_literals;
using test::PeerPtr;
using test::run_for;
using test::run_until;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// Completes every exchange it is given; enough to get connections back into the pool.
struct SimpleHandler : ResponseHandler {
  void on_upstream_1xx(ResponseHead&) override {}
  void on_upstream_head(ResponseHead& h, bool end_stream) override {
    status = h.status;
    done = done || end_stream;
  }
  void on_upstream_data(std::string&, bool end_stream) override { done = done || end_stream; }
  void on_upstream_trailers(HeaderMap&) override { done = true; }
  void on_upstream_error(const Error& e, bool) override { error = e; }
  void on_upstream_writable() override {}
  unsigned status = 0;
  bool done = false;
  std::optional<Error> error;
};

struct AcquireResult {
  bool called = false;
  Http1ClientConnectionPtr conn;
  std::optional<Error> error;
};

RequestHead get_request() {
  RequestHead h;
  h.method = "GET";
  h.target = "/";
  h.headers.add("Host", "backend");
  return h;
}

class HostPoolTest : public ::testing::Test {
 protected:
  ~HostPoolTest() override {
    if (pool_) pool_->close_idle();
  }

  std::shared_ptr<AcquireResult> acquire_async(HostPool& pool,
                                               std::chrono::milliseconds timeout = 2s,
                                               bool probe_idle = true) {
    auto r = std::make_shared<AcquireResult>();
    pool.acquire(
        timeout,
        [r](UpstreamRequestPtr c, const Error* e) {
          r->called = true;
          r->conn = std::static_pointer_cast<Http1ClientConnection>(c);
          if (e) r->error = *e;
        },
        probe_idle);
    return r;
  }
  Http1ClientConnectionPtr acquire(HostPool& pool) {
    auto r = acquire_async(pool);
    EXPECT_TRUE(run_until(ioc_, [&] { return r->called; }));
    EXPECT_FALSE(r->error) << r->error->detail;
    return r->conn;
  }
  // One GET on `conn` answered by `peer` with a keep-alive 200.
  void exchange(const Http1ClientConnectionPtr& conn, const PeerPtr& peer) {
    SimpleHandler h;
    const size_t heads = peer->heads();
    conn->start_request(h, get_request(), BodyFraming::none, false);
    ASSERT_TRUE(run_until(ioc_, [&] { return peer->heads() == heads + 1; }));
    peer->send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    ASSERT_TRUE(run_until(ioc_, [&] { return h.done || h.error; }));
    ASSERT_FALSE(h.error) << h.error->detail;
    EXPECT_EQ(h.status, 200u);
  }
  PeerPtr peer(size_t i) {
    EXPECT_TRUE(run_until(ioc_, [&] { return server_.accepted() > i; }));
    return server_.accepted() > i ? server_.peers[i] : nullptr;
  }

  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_ = asio::make_work_guard(ioc_);
  WorkerStats stats_;
  ClusterStats& cluster_stats_ = stats_.cluster("c");
  test::LoopbackServer server_{ioc_};
  HostPoolPtr pool_ = std::make_shared<HostPool>(ioc_, server_.address(), cluster_stats_);
};

TEST_F(HostPoolTest, NameIsTheAddress) {
  EXPECT_EQ(pool_->name(), "127.0.0.1:" + std::to_string(server_.port()));
}

TEST_F(HostPoolTest, AcquireConnectsANewConnectionWithoutCallingBackInline) {
  auto r = acquire_async(*pool_);
  EXPECT_FALSE(r->called);
  ASSERT_TRUE(run_until(ioc_, [&] { return r->called; }));
  ASSERT_TRUE(r->conn);
  EXPECT_FALSE(r->error);
  EXPECT_TRUE(r->conn->is_open());
  EXPECT_FALSE(r->conn->reused());
  ASSERT_TRUE(run_until(ioc_, [&] { return server_.accepted() == 1; }));
  EXPECT_EQ(cluster_stats_.connections_created.value(), 1u);
  EXPECT_EQ(cluster_stats_.connect_failures.value(), 0u);
}

TEST_F(HostPoolTest, KeepAliveConnectionIsHandedOutAgain) {
  auto conn = acquire(*pool_);
  ASSERT_TRUE(conn);
  auto p = peer(0);
  exchange(conn, p);
  EXPECT_EQ(pool_->idle_count(), 1u);

  auto r = acquire_async(*pool_);
  EXPECT_FALSE(r->called) << "a pooled connection is handed over later too, never inline";
  ASSERT_TRUE(run_until(ioc_, [&] { return r->called; }));
  EXPECT_EQ(r->conn, conn);
  EXPECT_TRUE(r->conn->reused());
  EXPECT_EQ(pool_->idle_count(), 0u);
  exchange(r->conn, p);
  run_for(ioc_, 20ms);
  EXPECT_EQ(server_.accepted(), 1u);
  EXPECT_EQ(p->heads(), 2u);
  EXPECT_EQ(cluster_stats_.connections_created.value(), 1u);
}

TEST_F(HostPoolTest, IdleConnectionClosedByServerIsRemovedByTheWatch) {
  auto conn = acquire(*pool_);
  ASSERT_TRUE(conn);
  auto p = peer(0);
  exchange(conn, p);
  ASSERT_EQ(pool_->idle_count(), 1u);
  p->close();
  ASSERT_TRUE(run_until(ioc_, [&] { return pool_->idle_count() == 0; }));
  EXPECT_FALSE(conn->is_open());

  auto fresh = acquire(*pool_);
  ASSERT_TRUE(fresh);
  EXPECT_NE(fresh, conn);
  EXPECT_FALSE(fresh->reused());
  ASSERT_TRUE(run_until(ioc_, [&] { return server_.accepted() == 2; }));
  exchange(fresh, server_.peers[1]);
}

TEST_F(HostPoolTest, IdleConnectionClosedByServerIsNotHandedOutBeforeTheWatchRuns) {
  auto conn = acquire(*pool_);
  ASSERT_TRUE(conn);
  auto p = peer(0);
  exchange(conn, p);
  ASSERT_EQ(pool_->idle_count(), 1u);
  // The FIN arrives while the loop is not running, so only the peek in acquire() can see it.
  p->close();
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(conn->idle_socket_usable());
  auto r = acquire_async(*pool_);
  EXPECT_EQ(pool_->idle_count(), 0u);
  ASSERT_TRUE(run_until(ioc_, [&] { return r->called; }));
  ASSERT_TRUE(r->conn);
  EXPECT_NE(r->conn, conn);
  ASSERT_TRUE(run_until(ioc_, [&] { return server_.accepted() == 2; }));
}

// Without the peek (a GET that can be resent), an idle connection can be handed out in the
// moment between the server's FIN and the idle watch seeing it; the watch then closes it. Its
// request must fail (and be resent), not wait for the route timeout.
TEST_F(HostPoolTest, AReusedConnectionClosedBeforeItsRequestReportsAnError) {
  auto conn = acquire(*pool_);
  ASSERT_TRUE(conn);
  auto p = peer(0);
  exchange(conn, p);
  p->close();
  std::this_thread::sleep_for(20ms);
  auto r = acquire_async(*pool_, 2s, /*probe_idle=*/false);
  ASSERT_TRUE(run_until(ioc_, [&] { return r->called; }));
  ASSERT_EQ(r->conn, conn);
  ASSERT_TRUE(run_until(ioc_, [&] { return !conn->is_open(); }));
  SimpleHandler h;
  conn->start_request(h, get_request(), BodyFraming::none, false);
  EXPECT_FALSE(h.error) << "reported later, never inside start_request";
  ASSERT_TRUE(run_until(ioc_, [&] { return h.error.has_value(); }));
  EXPECT_EQ(h.error->kind, ErrorKind::upstream_reset);
  EXPECT_TRUE(conn->reused());
}

TEST_F(HostPoolTest, IdleConnectionResetByServerIsNotHandedOut) {
  auto conn = acquire(*pool_);
  ASSERT_TRUE(conn);
  auto p = peer(0);
  exchange(conn, p);
  ASSERT_EQ(pool_->idle_count(), 1u);
  p->reset();
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(conn->idle_socket_usable());
  auto r = acquire_async(*pool_);
  ASSERT_TRUE(run_until(ioc_, [&] { return r->called; }));
  ASSERT_TRUE(r->conn);
  EXPECT_NE(r->conn, conn);
}

TEST_F(HostPoolTest, IdleConnectionWithUnsolicitedBytesIsNotHandedOut) {
  auto conn = acquire(*pool_);
  ASSERT_TRUE(conn);
  auto p = peer(0);
  exchange(conn, p);
  ASSERT_EQ(pool_->idle_count(), 1u);
  EXPECT_TRUE(conn->idle_socket_usable());
  // A backend timing out an idle connection may send a 408 first: out of sync, not reusable.
  p->send("HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n");
  std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(conn->idle_socket_usable());
  auto r = acquire_async(*pool_);
  ASSERT_TRUE(run_until(ioc_, [&] { return r->called; }));
  ASSERT_TRUE(r->conn);
  EXPECT_NE(r->conn, conn);
  EXPECT_FALSE(conn->is_open());
}

TEST_F(HostPoolTest, ConnectionRefusedIsConnectFailed) {
  uint16_t port;
  {
    // A port nobody listens on: bind one, remember it, close it.
    tcp::acceptor probe(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = probe.local_endpoint().port();
  }
  auto pool =
      std::make_shared<HostPool>(ioc_, config::SocketAddress{"127.0.0.1", port}, cluster_stats_);
  auto r = acquire_async(*pool);
  EXPECT_FALSE(r->called);
  ASSERT_TRUE(run_until(ioc_, [&] { return r->called; }));
  EXPECT_FALSE(r->conn);
  ASSERT_TRUE(r->error);
  EXPECT_EQ(r->error->kind, ErrorKind::connect_failed);
  EXPECT_EQ(r->error->source, ErrorSource::upstream);
  EXPECT_TRUE(r->error->retry_safe);
  EXPECT_EQ(cluster_stats_.connect_failures.value(), 1u);
}

// A listener whose accept queue is full: Linux drops further SYNs, so connects hang.
class FullBacklogListener {
 public:
  FullBacklogListener() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(listen_fd_, 0) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
    // Fill the queue until a connect no longer completes.
    for (int i = 0; i < 16 && !full_; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      clients_.push_back(fd);
      int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
      if (rc != 0 && errno != EINPROGRESS) return;
      pollfd pfd{fd, POLLOUT, 0};
      if (rc != 0 && ::poll(&pfd, 1, 200) == 0) full_ = true;
    }
  }
  ~FullBacklogListener() {
    for (int fd : clients_) ::close(fd);
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }
  bool full() const { return full_; }
  uint16_t port() const { return port_; }

 private:
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  bool full_ = false;
  std::vector<int> clients_;
};

TEST_F(HostPoolTest, ConnectTimeoutIsConnectFailedWithinTheTimeout) {
  FullBacklogListener listener;
  if (!listener.full()) GTEST_SKIP() << "the kernel accepted every connect; cannot provoke a hang";
  auto pool = std::make_shared<HostPool>(ioc_, config::SocketAddress{"127.0.0.1", listener.port()},
                                         cluster_stats_);
  const auto start = std::chrono::steady_clock::now();
  auto r = acquire_async(*pool, 300ms);
  ASSERT_TRUE(run_until(
      ioc_, [&] { return r->called; }, 5s));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(r->conn);
  ASSERT_TRUE(r->error);
  EXPECT_EQ(r->error->kind, ErrorKind::connect_failed);
  EXPECT_TRUE(r->error->retry_safe);
  EXPECT_THAT(r->error->detail, HasSubstr("timed out"));
  EXPECT_GE(elapsed, 280ms);
  EXPECT_LT(elapsed, 2s);
  EXPECT_EQ(cluster_stats_.connect_failures.value(), 1u);
}

TEST_F(HostPoolTest, MaxIdleConnectionsRespected) {
  pool_->set_limits(1, 60s);
  auto r1 = acquire_async(*pool_);
  auto r2 = acquire_async(*pool_);
  ASSERT_TRUE(run_until(ioc_, [&] { return r1->called && r2->called; }));
  ASSERT_TRUE(r1->conn && r2->conn);
  ASSERT_NE(r1->conn, r2->conn);
  ASSERT_TRUE(run_until(ioc_, [&] { return server_.accepted() == 2; }));
  // Which peer belongs to which connection: the server sees the request on it.
  SimpleHandler h1, h2;
  r1->conn->start_request(h1, get_request(), BodyFraming::none, false);
  ASSERT_TRUE(
      run_until(ioc_, [&] { return server_.peers[0]->heads() + server_.peers[1]->heads() == 1; }));
  PeerPtr p1 = server_.peers[0]->heads() == 1 ? server_.peers[0] : server_.peers[1];
  PeerPtr p2 = p1 == server_.peers[0] ? server_.peers[1] : server_.peers[0];
  r2->conn->start_request(h2, get_request(), BodyFraming::none, false);
  ASSERT_TRUE(run_until(ioc_, [&] { return p2->heads() == 1; }));
  p1->send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h1.done; }));
  p2->send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h2.done; }));

  EXPECT_EQ(pool_->idle_count(), 1u);
  EXPECT_TRUE(r1->conn->is_open());
  EXPECT_FALSE(r2->conn->is_open());
  EXPECT_TRUE(run_until(ioc_, [&] { return p2->eof; }));
  EXPECT_FALSE(p1->eof);
  EXPECT_EQ(acquire(*pool_), r1->conn);
}

TEST_F(HostPoolTest, ZeroMaxIdleClosesEveryReleasedConnection) {
  pool_->set_limits(0, 60s);
  auto conn = acquire(*pool_);
  ASSERT_TRUE(conn);
  auto p = peer(0);
  exchange(conn, p);
  EXPECT_EQ(pool_->idle_count(), 0u);
  EXPECT_TRUE(run_until(ioc_, [&] { return p->eof; }));
}

TEST_F(HostPoolTest, IdleTimeoutExpiresPooledConnections) {
  pool_->set_limits(64, 50ms);
  auto conn = acquire(*pool_);
  ASSERT_TRUE(conn);
  auto p = peer(0);
  exchange(conn, p);
  ASSERT_EQ(pool_->idle_count(), 1u);
  run_for(ioc_, 120ms);
  auto fresh = acquire(*pool_);
  ASSERT_TRUE(fresh);
  EXPECT_NE(fresh, conn);
  EXPECT_FALSE(conn->is_open());
  EXPECT_TRUE(run_until(ioc_, [&] { return p->eof; }));
  EXPECT_TRUE(run_until(ioc_, [&] { return server_.accepted() == 2; }));
}

TEST_F(HostPoolTest, IdleWithinTimeoutIsReused) {
  pool_->set_limits(64, 10s);
  auto conn = acquire(*pool_);
  ASSERT_TRUE(conn);
  exchange(conn, peer(0));
  run_for(ioc_, 50ms);
  EXPECT_EQ(acquire(*pool_), conn);
}

TEST_F(HostPoolTest, MostRecentlyUsedIdleConnectionFirst) {
  auto r1 = acquire_async(*pool_);
  auto r2 = acquire_async(*pool_);
  ASSERT_TRUE(run_until(ioc_, [&] { return r1->called && r2->called && server_.accepted() == 2; }));
  ASSERT_TRUE(r1->conn && r2->conn);
  SimpleHandler h1, h2;
  r1->conn->start_request(h1, get_request(), BodyFraming::none, false);
  ASSERT_TRUE(
      run_until(ioc_, [&] { return server_.peers[0]->heads() + server_.peers[1]->heads() == 1; }));
  PeerPtr p1 = server_.peers[0]->heads() == 1 ? server_.peers[0] : server_.peers[1];
  PeerPtr p2 = p1 == server_.peers[0] ? server_.peers[1] : server_.peers[0];
  r2->conn->start_request(h2, get_request(), BodyFraming::none, false);
  ASSERT_TRUE(run_until(ioc_, [&] { return p2->heads() == 1; }));
  // r1 finishes first, r2 last: r2 is the one least likely to have been closed by the backend.
  p1->send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h1.done; }));
  p2->send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h2.done; }));
  ASSERT_EQ(pool_->idle_count(), 2u);
  EXPECT_EQ(acquire(*pool_), r2->conn);
  EXPECT_EQ(acquire(*pool_), r1->conn);
}

TEST_F(HostPoolTest, DestroyingThePoolClosesIdleConnections) {
  auto conn = acquire(*pool_);
  ASSERT_TRUE(conn);
  auto p = peer(0);
  exchange(conn, p);
  ASSERT_EQ(pool_->idle_count(), 1u);
  pool_->close_idle();
  EXPECT_EQ(pool_->idle_count(), 0u);
  EXPECT_TRUE(run_until(ioc_, [&] { return p->eof; }));
}

// ClusterManager

config::Cluster make_cluster(std::string name,
                             std::vector<std::pair<std::string, uint32_t>> endpoints) {
  config::Cluster c;
  c.name = std::move(name);
  for (auto& [addr, weight] : endpoints) {
    auto a = config::parse_address(addr);
    EXPECT_TRUE(a) << addr;
    c.endpoints.push_back(config::Endpoint{a.value_or(config::SocketAddress{}), weight});
  }
  return c;
}

class ClusterManagerTest : public ::testing::Test {
 protected:
  // As a reload does: the control thread's shared clusters first, then the worker's view.
  void update(const config::Config& cfg) { cm_.update(cfg, shared_.update(cfg)); }

  HostPool& pick(const std::string& cluster) {
    ClusterStatePtr s = cm_.find(cluster);
    EXPECT_TRUE(s);
    ClusterState::Pick p = s->pick({});
    EXPECT_TRUE(p.host && p.pool);
    return *p.pool;
  }

  // One keep-alive GET through `pool` to `server`, whose connections are all served here.
  Http1ClientConnectionPtr exchange(HostPool& pool, test::LoopbackServer& server) {
    Http1ClientConnectionPtr conn;
    bool called = false;
    pool.acquire(2s, [&](UpstreamRequestPtr c, const Error*) {
      called = true;
      conn = std::static_pointer_cast<Http1ClientConnection>(c);
    });
    EXPECT_TRUE(run_until(ioc_, [&] { return called && server.accepted() > 0; }));
    if (!conn) return nullptr;
    auto p = server.peers.back();
    const size_t heads = p->heads();
    SimpleHandler h;
    conn->start_request(h, get_request(), BodyFraming::none, false);
    EXPECT_TRUE(run_until(ioc_, [&] { return p->heads() == heads + 1; }));
    p->send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    EXPECT_TRUE(run_until(ioc_, [&] { return h.done || h.error; }));
    EXPECT_FALSE(h.error);
    return conn;
  }

  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_ = asio::make_work_guard(ioc_);
  WorkerStats stats_;
  SharedClusters shared_{ioc_, [](const std::string&) {}};
  ClusterManager cm_{ioc_, stats_};
};

TEST_F(ClusterManagerTest, EmptyConfigHasNoClusters) {
  config::Config cfg;
  update(cfg);
  EXPECT_EQ(cm_.find("anything"), nullptr);
  EXPECT_EQ(&cm_.io_context(), &ioc_);
}

TEST_F(ClusterManagerTest, WeightedRoundRobinSpreadsByWeight) {
  config::Config cfg;
  cfg.clusters.push_back(make_cluster("c", {{"127.0.0.1:1001", 3}, {"127.0.0.1:1002", 1}}));
  update(cfg);
  ClusterStatePtr s = cm_.find("c");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->config, &cfg.clusters[0]);
  EXPECT_EQ(s->stats, &stats_.cluster("c"));
  EXPECT_EQ(s->host_count(), 2u);
  std::map<std::string, int> picks;
  for (int i = 0; i < 8; ++i) ++picks[s->pick({}).host->name()];
  EXPECT_EQ(picks["127.0.0.1:1001"], 6);
  EXPECT_EQ(picks["127.0.0.1:1002"], 2);
}

TEST_F(ClusterManagerTest, UnavailableHostsAreSkippedAndNoneAvailableGivesNoHost) {
  config::Config cfg;
  cfg.clusters.push_back(make_cluster("c", {{"127.0.0.1:1", 1}, {"127.0.0.1:2", 1}}));
  cfg.clusters[0].panic_threshold_percent = 0;
  update(cfg);
  ClusterStatePtr s = cm_.find("c");
  auto hosts = shared_.find("c")->membership().hosts;
  hosts->hosts[0]->set_ejected(true);
  hosts->refresh_available();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(s->pick({}).host->name(), "127.0.0.1:2");
  hosts->hosts[1]->set_healthy(false);
  hosts->refresh_available();
  EXPECT_FALSE(s->pick({}).host) << "no host available, panic mode off";
}

TEST_F(ClusterManagerTest, PanicModeBalancesOverAllHosts) {
  config::Config cfg;
  cfg.clusters.push_back(make_cluster("c", {{"127.0.0.1:1", 1}, {"127.0.0.1:2", 1}}));
  update(cfg);  // panic_threshold 50%: one healthy host of two is not panic yet
  ClusterStatePtr s = cm_.find("c");
  auto hosts = shared_.find("c")->membership().hosts;
  hosts->hosts[0]->set_healthy(false);
  hosts->refresh_available();
  EXPECT_FALSE(s->pick({}).panic);
  hosts->hosts[1]->set_healthy(false);
  hosts->refresh_available();
  ClusterState::Pick p = s->pick({});
  EXPECT_TRUE(p.panic);
  EXPECT_TRUE(p.host) << "all unhealthy: every host is tried rather than none";
}

TEST_F(ClusterManagerTest, DisabledHostsStayOutAndDoNotCountTowardsPanic) {
  config::Config cfg;
  cfg.clusters.push_back(
      make_cluster("c", {{"127.0.0.1:1", 1}, {"127.0.0.1:2", 1}, {"127.0.0.1:3", 1}}));
  update(cfg);  // panic_threshold 50%
  ClusterStatePtr s = cm_.find("c");
  auto hosts = shared_.find("c")->membership().hosts;
  // Two of three disabled: one available of one eligible is no panic, and only it is picked.
  hosts->hosts[0]->set_disabled(true);
  hosts->hosts[1]->set_disabled(true);
  hosts->refresh_available();
  EXPECT_EQ(hosts->disabled_count(), 2u);
  for (int i = 0; i < 6; ++i) {
    ClusterState::Pick p = s->pick({});
    EXPECT_FALSE(p.panic);
    ASSERT_TRUE(p.host);
    EXPECT_EQ(p.host->name(), "127.0.0.1:3");
  }
  // The last one fails too: panic, but the disabled ones are still not picked.
  hosts->hosts[2]->set_healthy(false);
  hosts->refresh_available();
  ClusterState::Pick p = s->pick({});
  EXPECT_TRUE(p.panic);
  ASSERT_TRUE(p.host);
  EXPECT_EQ(p.host->name(), "127.0.0.1:3");
  // Every host disabled: nothing to pick (503 no healthy host), and not counted as panic.
  hosts->hosts[2]->set_disabled(true);
  hosts->refresh_available();
  p = s->pick({});
  EXPECT_FALSE(p.host);
  EXPECT_FALSE(p.panic);
}

TEST_F(ClusterManagerTest, UpdateKeepsPoolsAndHostStateOfUnchangedHosts) {
  auto cfg1 = std::make_unique<config::Config>();
  cfg1->clusters.push_back(make_cluster("c", {{"127.0.0.1:1", 1}}));
  cfg1->clusters.push_back(make_cluster("gone", {{"127.0.0.1:9", 1}}));
  update(*cfg1);
  HostPool* kept = &pick("c");
  HostPtr host = shared_.find("c")->membership().hosts->hosts[0];
  host->set_ejected(true);

  auto cfg2 = std::make_unique<config::Config>();
  cfg2->clusters.push_back(make_cluster("c", {{"127.0.0.1:1", 2}, {"127.0.0.1:3", 1}}));
  cfg2->clusters[0].panic_threshold_percent = 0;
  update(*cfg2);
  cfg1.reset();  // the manager must not need the old config any more
  ClusterStatePtr s2 = cm_.find("c");
  ASSERT_TRUE(s2);
  EXPECT_EQ(s2->config, &cfg2->clusters[0]);
  EXPECT_EQ(s2->host_count(), 2u);
  auto hosts = shared_.find("c")->membership().hosts;
  EXPECT_EQ(hosts->hosts[0], host) << "the same Host, its state kept";
  EXPECT_TRUE(hosts->hosts[0]->ejected());
  EXPECT_EQ(hosts->hosts[0]->weight(), 2u);
  EXPECT_EQ(s2->pick({}).host->name(), "127.0.0.1:3") << "the ejected host stays out";
  host->set_ejected(false);
  hosts->refresh_available();
  bool found = false;
  for (int i = 0; i < 3; ++i) {
    ClusterState::Pick p = s2->pick({});
    if (p.host == host) {
      EXPECT_EQ(p.pool.get(), kept) << "same pool object";
      found = true;
    }
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(cm_.find("gone"), nullptr);
}

TEST_F(ClusterManagerTest, StateHeldByARequestSurvivesAnUpdate) {
  auto cfg1 = std::make_unique<config::Config>();
  cfg1->clusters.push_back(make_cluster("c", {{"127.0.0.1:1", 1}}));
  update(*cfg1);
  ClusterStatePtr held = cm_.find("c");  // a request in flight
  ASSERT_TRUE(held->pick({}).host);
  config::Config cfg2;
  cfg2.clusters.push_back(make_cluster("c", {{"127.0.0.1:2", 1}}));
  update(cfg2);
  EXPECT_NE(cm_.find("c"), held);
  EXPECT_EQ(held->stats, &stats_.cluster("c"));
  // Still usable (ASan would report a use after free otherwise); it follows the new hosts.
  EXPECT_EQ(held->pick({}).host->name(), "127.0.0.1:2");
}

TEST_F(ClusterManagerTest, SameAddressInTwoClustersHasTwoPools) {
  config::Config cfg;
  cfg.clusters.push_back(make_cluster("a", {{"127.0.0.1:1", 1}}));
  cfg.clusters.push_back(make_cluster("b", {{"127.0.0.1:1", 1}}));
  update(cfg);
  EXPECT_NE(&pick("a"), &pick("b"));
}

TEST_F(ClusterManagerTest, DuplicateEndpointIsOneHost) {
  config::Config cfg;
  cfg.clusters.push_back(make_cluster("c", {{"127.0.0.1:1", 1}, {"127.0.0.1:1", 1}}));
  update(cfg);
  EXPECT_EQ(cm_.find("c")->host_count(), 1u);
}

TEST_F(ClusterManagerTest, KeptHostGetsTheNewLimits) {
  test::LoopbackServer server(ioc_);
  auto cfg1 = std::make_unique<config::Config>();
  cfg1->clusters.push_back(make_cluster("c", {{server.address().str(), 1}}));
  update(*cfg1);
  HostPool& pool = pick("c");
  auto conn = exchange(pool, server);
  ASSERT_TRUE(conn);
  EXPECT_EQ(pool.idle_count(), 1u);

  auto cfg2 = std::make_unique<config::Config>();
  cfg2->clusters.push_back(make_cluster("c", {{server.address().str(), 1}}));
  cfg2->clusters[0].max_idle_connections = 0;
  update(*cfg2);
  ASSERT_EQ(&pick("c"), &pool);
  EXPECT_EQ(pool.idle_count(), 1u) << "idle connections are kept across a reload";
  EXPECT_EQ(exchange(pool, server), conn);
  EXPECT_EQ(pool.idle_count(), 0u) << "the new limit applies on the next release";
  EXPECT_FALSE(conn->is_open());
  EXPECT_EQ(server.accepted(), 1u);
}

TEST_F(ClusterManagerTest, RemovedHostIdleConnectionsAreClosed) {
  test::LoopbackServer server(ioc_);
  auto cfg1 = std::make_unique<config::Config>();
  cfg1->clusters.push_back(make_cluster("c", {{server.address().str(), 1}}));
  update(*cfg1);
  auto conn = exchange(pick("c"), server);
  ASSERT_TRUE(conn);

  auto cfg2 = std::make_unique<config::Config>();
  cfg2->clusters.push_back(make_cluster("c", {{"127.0.0.1:1", 1}}));
  update(*cfg2);
  EXPECT_FALSE(conn->is_open());
  ASSERT_EQ(server.accepted(), 1u);
  EXPECT_TRUE(run_until(ioc_, [&] { return server.peers[0]->eof; }));
}

TEST_F(ClusterManagerTest, ConfigLimitsApplyToNewPools) {
  test::LoopbackServer server(ioc_);
  config::Config cfg;
  cfg.clusters.push_back(make_cluster("c", {{server.address().str(), 1}}));
  cfg.clusters[0].max_idle_connections = 0;
  update(cfg);
  HostPool& pool = pick("c");
  ASSERT_TRUE(exchange(pool, server));
  EXPECT_EQ(pool.idle_count(), 0u);
  ASSERT_EQ(server.accepted(), 1u);
  EXPECT_TRUE(run_until(ioc_, [&] { return server.peers[0]->eof; }));
}

TEST_F(ClusterManagerTest, MaxConnectionsBreakerRefusesANewConnection) {
  test::LoopbackServer server(ioc_);
  config::Config cfg;
  cfg.clusters.push_back(make_cluster("c", {{server.address().str(), 1}}));
  cfg.clusters[0].circuit_breakers.max_connections = 1;
  update(cfg);
  HostPool& pool = pick("c");
  Http1ClientConnectionPtr first;
  std::optional<Error> second_error;
  int called = 0;
  pool.acquire(2s, [&](UpstreamRequestPtr c, const Error*) {
    ++called;
    first = std::static_pointer_cast<Http1ClientConnection>(c);
  });
  ASSERT_TRUE(run_until(ioc_, [&] { return called == 1; }));
  ASSERT_TRUE(first);
  EXPECT_EQ(shared_.find("c")->open_connections.load(), 1);
  pool.acquire(2s, [&](UpstreamRequestPtr, const Error* e) {
    ++called;
    if (e) second_error = *e;
  });
  ASSERT_TRUE(run_until(ioc_, [&] { return called == 2; }));
  ASSERT_TRUE(second_error);
  EXPECT_EQ(second_error->kind, ErrorKind::overflow);
  EXPECT_EQ(status_for(*second_error), 503u);
  first->close();
  first.reset();
  EXPECT_EQ(shared_.find("c")->open_connections.load(), 0) << "the slot goes with the connection";
}

}  // namespace
}  // namespace sluice::upstream
