#include "upstream/health/health_checker.h"

#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>

#include "tests/upstream/health/health_test_util.h"
#include "tests/upstream/loopback_server.h"

namespace sluice::upstream::health {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using std::chrono::milliseconds;
using test::fast_check;
using test::make_set;
using test::run_for;
using test::run_until;
using test::status_of;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Generous: the machine is shared and noisy. Assertions count probes, never time them.
constexpr milliseconds kLimit{15000};

// A health endpoint on 127.0.0.1:<ephemeral>, on the test's io_context. Its mode is read when a
// connection is accepted (close) or when a request head has arrived (respond, hang).
class HealthServer {
 public:
  explicit HealthServer(asio::io_context& ioc)
      : acceptor_(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    accept();
  }
  ~HealthServer() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (auto& c : conns_) c->socket.close(ignored);
  }

  std::string name() const {
    return "127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }
  void respond(unsigned status) {
    mode_ = Mode::respond;
    status_ = status;
  }
  void close_at_once() { mode_ = Mode::close; }  // accept, then close without reading
  void hang() { mode_ = Mode::hang; }            // read the request, never answer

  int accepted() const { return accepted_; }
  int requests() const { return requests_; }
  const std::string& last_request() const { return last_request_; }

 private:
  enum class Mode { respond, close, hang };
  struct Conn {
    explicit Conn(tcp::socket s) : socket(std::move(s)) {}
    tcp::socket socket;
    std::string in;
    std::string out;
  };

  void accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket s) {
      if (ec) return;
      ++accepted_;
      auto c = std::make_shared<Conn>(std::move(s));
      conns_.push_back(c);
      if (mode_ == Mode::close) {
        boost::system::error_code ignored;
        c->socket.close(ignored);
      } else {
        read(c);
      }
      accept();
    });
  }
  void read(const std::shared_ptr<Conn>& c) {
    asio::async_read_until(c->socket, asio::dynamic_buffer(c->in), "\r\n\r\n",
                           [this, c](const boost::system::error_code& ec, size_t n) {
                             if (ec) return;
                             ++requests_;
                             last_request_ = c->in.substr(0, n);
                             if (mode_ != Mode::respond) return;
                             c->out = "HTTP/1.1 " + std::to_string(status_) +
                                      " Test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
                             asio::async_write(c->socket, asio::buffer(c->out),
                                               [c](const boost::system::error_code&, size_t) {
                                                 boost::system::error_code ignored;
                                                 c->socket.shutdown(tcp::socket::shutdown_send,
                                                                    ignored);
                                                 c->socket.close(ignored);
                                               });
                           });
  }

  tcp::acceptor acceptor_;
  Mode mode_ = Mode::respond;
  unsigned status_ = 200;
  int accepted_ = 0;
  int requests_ = 0;
  std::string last_request_;
  std::vector<std::shared_ptr<Conn>> conns_;
};

// A loopback port nothing listens on (bound, then released).
std::string refused_name(asio::io_context& ioc) {
  tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return "127.0.0.1:" + std::to_string(a.local_endpoint().port());
}

// A transition as seen by the test, with the server's request count when it was reported.
struct Seen {
  HostPtr host;
  bool healthy;
  std::string reason;
  int server_requests;
};

TEST(HealthChecker, FailingStatusMakesHostUnhealthyAfterThresholdAndPassesRecoverIt) {
  asio::io_context ioc;
  HealthServer good(ioc);
  HealthServer bad(ioc);
  bad.respond(503);
  auto good_host = std::make_shared<Host>(good.name(), 1);
  auto bad_host = std::make_shared<Host>(bad.name(), 1);
  auto set = make_set({good_host, bad_host});
  ASSERT_EQ(set->available_count(), 2u);

  std::vector<Seen> seen;
  auto checker = std::make_shared<HealthChecker>(
      ioc, "backend", fast_check(2, 3), set, [&](const HealthChecker::Transition& t) {
        seen.push_back({t.host, t.healthy, t.reason, bad.requests()});
        // From the next probe on, the host passes: no race with the test's loop.
        if (!t.healthy) bad.respond(200);
      });
  checker->start();

  ASSERT_TRUE(run_until(
      ioc, [&] { return !seen.empty(); }, kLimit));
  EXPECT_EQ(seen[0].host, bad_host);
  EXPECT_FALSE(seen[0].healthy);
  EXPECT_EQ(seen[0].reason, "status 503");
  EXPECT_EQ(seen[0].server_requests, 3);
  EXPECT_FALSE(bad_host->healthy());
  EXPECT_FALSE(bad_host->available());
  EXPECT_TRUE(good_host->available());
  EXPECT_EQ(set->available_count(), 1u);
  const auto failed = status_of(*checker, bad_host);
  EXPECT_EQ(failed.consecutive_failures, 3u);
  EXPECT_EQ(failed.probes, 3u);
  EXPECT_EQ(failed.last_result, "status 503");
  EXPECT_EQ(bad_host->last_check(), "status 503");  // what the admin API shows

  ASSERT_TRUE(run_until(
      ioc, [&] { return seen.size() >= 2; }, kLimit));
  EXPECT_EQ(seen[1].host, bad_host);
  EXPECT_TRUE(seen[1].healthy);
  EXPECT_EQ(seen[1].reason, "status 200");
  EXPECT_EQ(seen[1].server_requests, 3 + 2);
  EXPECT_TRUE(bad_host->available());
  EXPECT_EQ(set->available_count(), 2u);
  EXPECT_EQ(status_of(*checker, bad_host).consecutive_successes, 2u);

  EXPECT_GE(good.requests(), 1);
  EXPECT_EQ(status_of(*checker, good_host).consecutive_failures, 0u);
  checker->stop();
}

TEST(HealthChecker, ExpectedStatusRangesAreHonoured) {
  asio::io_context ioc;
  HealthServer in_range(ioc);  // 404 is listed
  HealthServer out_of_range(ioc);
  in_range.respond(404);
  out_of_range.respond(204);
  auto in_host = std::make_shared<Host>(in_range.name(), 1);
  auto out_host = std::make_shared<Host>(out_of_range.name(), 1);
  auto set = make_set({in_host, out_host});
  auto settings = fast_check(2, 2);
  settings.expected_statuses = {{200, 200}, {400, 404}};

  std::vector<Seen> seen;
  auto checker = std::make_shared<HealthChecker>(
      ioc, "c", settings, set, [&](const HealthChecker::Transition& t) {
        seen.push_back({t.host, t.healthy, t.reason, out_of_range.requests()});
      });
  checker->start();
  ASSERT_TRUE(run_until(
      ioc, [&] { return !seen.empty() && status_of(*checker, in_host).probes >= 4; }, kLimit));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].host, out_host);
  EXPECT_EQ(seen[0].reason, "status 204");
  EXPECT_EQ(seen[0].server_requests, 2);
  EXPECT_TRUE(in_host->healthy());
  EXPECT_EQ(status_of(*checker, in_host).last_result, "status 404");
  EXPECT_EQ(set->available_count(), 1u);
}

TEST(HealthChecker, ServerThatNeverAnswersFailsByTimeout) {
  asio::io_context ioc;
  HealthServer server(ioc);
  server.hang();
  auto host = std::make_shared<Host>(server.name(), 1);
  auto set = make_set({host});
  auto settings = fast_check(2, 2);
  settings.timeout = milliseconds(100);

  std::vector<Seen> seen;
  auto checker = std::make_shared<HealthChecker>(
      ioc, "c", settings, set, [&](const HealthChecker::Transition& t) {
        seen.push_back({t.host, t.healthy, t.reason, server.requests()});
      });
  checker->start();
  ASSERT_TRUE(run_until(
      ioc, [&] { return !seen.empty(); }, kLimit));
  EXPECT_FALSE(seen[0].healthy);
  EXPECT_THAT(seen[0].reason, StartsWith("timeout after 100ms"));
  EXPECT_EQ(status_of(*checker, host).probes, 2u);
  // The requests were sent; no answer came.
  ASSERT_TRUE(run_until(
      ioc, [&] { return server.requests() >= 2; }, kLimit));
  EXPECT_EQ(set->available_count(), 0u);
}

TEST(HealthChecker, RefusedConnectFails) {
  asio::io_context ioc;
  auto host = std::make_shared<Host>(refused_name(ioc), 1);
  auto set = make_set({host});
  std::vector<HealthChecker::Transition> seen;
  auto checker = std::make_shared<HealthChecker>(
      ioc, "c", fast_check(2, 2), set,
      [&](const HealthChecker::Transition& t) { seen.push_back(t); });
  checker->start();
  ASSERT_TRUE(run_until(
      ioc, [&] { return !seen.empty(); }, kLimit));
  EXPECT_FALSE(seen[0].healthy);
  EXPECT_THAT(seen[0].reason, StartsWith("connect: "));
  EXPECT_THAT(seen[0].reason, HasSubstr("refused"));
  EXPECT_EQ(status_of(*checker, host).probes, 2u);
  EXPECT_FALSE(host->available());
}

TEST(HealthChecker, ConnectionClosedWithoutResponseFails) {
  asio::io_context ioc;
  HealthServer server(ioc);
  server.close_at_once();
  auto host = std::make_shared<Host>(server.name(), 1);
  std::vector<HealthChecker::Transition> seen;
  auto checker = std::make_shared<HealthChecker>(
      ioc, "c", fast_check(2, 2), make_set({host}),
      [&](const HealthChecker::Transition& t) { seen.push_back(t); });
  checker->start();
  ASSERT_TRUE(run_until(
      ioc, [&] { return !seen.empty(); }, kLimit));
  EXPECT_FALSE(seen[0].healthy);
  // A close before the request arrives may also surface as a reset or a broken pipe.
  EXPECT_FALSE(seen[0].reason.empty());
  EXPECT_EQ(server.accepted(), 2);
}

TEST(HealthChecker, TcpCheckPassesOnConnectWithoutSendingAnything) {
  asio::io_context ioc;
  HealthServer server(ioc);
  server.hang();
  auto host = std::make_shared<Host>(server.name(), 1);
  host->set_healthy(false);
  auto set = make_set({host});
  ASSERT_EQ(set->available_count(), 0u);
  auto settings = fast_check(3, 2);
  settings.type = config::HealthCheck::Type::tcp;

  std::vector<HealthChecker::Transition> seen;
  uint64_t probes_at_transition = 0;
  std::shared_ptr<HealthChecker> checker;
  checker = std::make_shared<HealthChecker>(
      ioc, "c", settings, set, [&](const HealthChecker::Transition& t) {
        seen.push_back(t);
        probes_at_transition = status_of(*checker, host).probes;
      });
  checker->start();
  ASSERT_TRUE(run_until(
      ioc, [&] { return !seen.empty(); }, kLimit));
  EXPECT_TRUE(seen[0].healthy);
  EXPECT_EQ(seen[0].reason, "connected");
  EXPECT_EQ(probes_at_transition, 3u);
  // The server's accept handler may run after the checker saw its connect complete.
  ASSERT_TRUE(run_until(
      ioc, [&] { return server.accepted() >= 3; }, kLimit));
  EXPECT_EQ(server.requests(), 0);
  EXPECT_EQ(set->available_count(), 1u);
}

TEST(HealthChecker, TcpCheckFailsOnRefusedConnect) {
  asio::io_context ioc;
  auto host = std::make_shared<Host>(refused_name(ioc), 1);
  auto settings = fast_check(2, 1);
  settings.type = config::HealthCheck::Type::tcp;
  std::vector<HealthChecker::Transition> seen;
  auto checker = std::make_shared<HealthChecker>(
      ioc, "c", settings, make_set({host}),
      [&](const HealthChecker::Transition& t) { seen.push_back(t); });
  checker->start();
  ASSERT_TRUE(run_until(
      ioc, [&] { return !seen.empty(); }, kLimit));
  EXPECT_FALSE(seen[0].healthy);
  EXPECT_THAT(seen[0].reason, HasSubstr("refused"));
}

TEST(HealthChecker, SendsAWellFormedRequest) {
  asio::io_context ioc;
  HealthServer server(ioc);
  HealthServer named(ioc);
  auto settings = fast_check(2, 3);
  settings.path = "/ready?full=1";
  auto checker = std::make_shared<HealthChecker>(
      ioc, "c", settings, make_set({std::make_shared<Host>(server.name(), 1)}), nullptr);
  settings.host = "svc.internal";
  auto named_checker = std::make_shared<HealthChecker>(
      ioc, "c", settings, make_set({std::make_shared<Host>(named.name(), 1)}), nullptr);
  checker->start();
  named_checker->start();
  ASSERT_TRUE(run_until(
      ioc, [&] { return server.requests() >= 1 && named.requests() >= 1; }, kLimit));
  EXPECT_EQ(server.last_request(),
            "GET /ready?full=1 HTTP/1.1\r\nHost: " + server.name() +
                "\r\nUser-Agent: sluice-health-check\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(named.last_request(), HasSubstr("\r\nHost: svc.internal\r\n"));
}

TEST(HealthChecker, UpdateHostsKeepsStateOfRemainingHostsAndProbesNewOnes) {
  asio::io_context ioc;
  HealthServer a(ioc);
  HealthServer b(ioc);
  HealthServer c(ioc);
  a.respond(503);
  auto host_a = std::make_shared<Host>(a.name(), 1);
  auto host_b = std::make_shared<Host>(b.name(), 1);
  auto host_c = std::make_shared<Host>(c.name(), 1);

  std::vector<Seen> seen;
  auto checker =
      std::make_shared<HealthChecker>(ioc, "c", fast_check(2, 3), make_set({host_a, host_b}),
                                      [&](const HealthChecker::Transition& t) {
                                        seen.push_back({t.host, t.healthy, t.reason, a.requests()});
                                      });
  checker->start();
  ASSERT_TRUE(run_until(
      ioc, [&] { return status_of(*checker, host_a).consecutive_failures >= 1; }, kLimit));
  ASSERT_TRUE(seen.empty());  // 1 or 2 failures so far, under the threshold of 3
  const int b_before = b.requests();

  auto next = make_set({host_a, host_c});
  checker->update_hosts(next);
  EXPECT_EQ(checker->hosts(), next);
  ASSERT_EQ(checker->status().size(), 2u);
  EXPECT_EQ(checker->status()[0].host, host_a);
  EXPECT_EQ(checker->status()[1].host, host_c);

  ASSERT_TRUE(run_until(
      ioc, [&] { return !seen.empty(); }, kLimit));
  EXPECT_EQ(seen[0].host, host_a);
  // Counting went on from before the update: reset counters would need 3 more.
  EXPECT_EQ(seen[0].server_requests, 3);
  EXPECT_EQ(next->available_count(), 1u);

  ASSERT_TRUE(run_until(
      ioc, [&] { return c.requests() >= 3; }, kLimit));
  // b left the set: at most the probe that was in flight at the update reached it.
  EXPECT_LE(b.requests(), b_before + 1);
  EXPECT_GE(status_of(*checker, host_c).probes, 2u);
}

TEST(HealthChecker, AHostListedTwiceIsProbedOnce) {
  asio::io_context ioc;
  HealthServer server(ioc);
  auto host = std::make_shared<Host>(server.name(), 1);
  auto checker =
      std::make_shared<HealthChecker>(ioc, "c", fast_check(2, 3), make_set({host, host}), nullptr);
  ASSERT_EQ(checker->status().size(), 1u);
  checker->start();
  ASSERT_TRUE(run_until(
      ioc, [&] { return status_of(*checker, host).probes >= 3; }, kLimit));
  // One probe at a time for the host: as many requests as finished probes, or one more.
  EXPECT_LE(server.requests(), 4);
}

TEST(HealthChecker, StopWithProbesInFlightIsCleanAndSilent) {
  asio::io_context ioc;
  std::vector<std::unique_ptr<HealthServer>> servers;
  std::vector<HostPtr> hosts;
  for (int i = 0; i < 5; ++i) {
    servers.push_back(std::make_unique<HealthServer>(ioc));
    servers.back()->hang();
    hosts.push_back(std::make_shared<Host>(servers.back()->name(), 1));
  }
  auto settings = fast_check(1, 1);
  settings.timeout = milliseconds(60000);
  int callbacks = 0;
  auto checker = std::make_shared<HealthChecker>(ioc, "c", settings, make_set(hosts),
                                                 [&](const auto&) { ++callbacks; });
  checker->start();
  ASSERT_TRUE(run_until(
      ioc,
      [&] {
        for (auto& s : servers) {
          if (s->requests() < 1) return false;
        }
        return true;
      },
      kLimit));
  // Every host has a probe waiting for its response.
  checker->stop();
  EXPECT_FALSE(checker->running());
  for (auto& s : servers) s->respond(500);
  run_for(ioc, milliseconds(300));
  EXPECT_EQ(callbacks, 0);
  for (auto& s : servers) EXPECT_EQ(s->requests(), 1);
  for (auto& s : checker->status()) EXPECT_EQ(s.probes, 0u);
  for (auto& h : hosts) EXPECT_TRUE(h->healthy());

  // It can start again.
  checker->start();
  ASSERT_TRUE(run_until(
      ioc, [&] { return callbacks == 5; }, kLimit));
  checker.reset();  // destroyed while the next probes may be in flight
  run_for(ioc, milliseconds(200));
  EXPECT_EQ(callbacks, 5);
}

TEST(HealthChecker, DestroyedWhileConnectingIsClean) {
  asio::io_context ioc;
  HealthServer server(ioc);
  server.hang();
  auto settings = fast_check(1, 1);
  settings.interval = milliseconds(1);
  int callbacks = 0;
  auto checker =
      std::make_shared<HealthChecker>(ioc, "c", settings,
                                      make_set({std::make_shared<Host>(server.name(), 1),
                                                std::make_shared<Host>(refused_name(ioc), 1)}),
                                      [&](const auto&) { ++callbacks; });
  checker->start();
  ASSERT_TRUE(run_until(
      ioc, [&] { return server.accepted() >= 1; }, kLimit));
  checker.reset();
  const int accepted = server.accepted();
  run_for(ioc, milliseconds(100));
  EXPECT_LE(server.accepted(), accepted + 1);
}

TEST(HealthChecker, StopFromTheTransitionCallbackEndsProbing) {
  asio::io_context ioc;
  HealthServer server(ioc);
  server.respond(500);
  std::shared_ptr<HealthChecker> checker;
  int callbacks = 0;
  checker = std::make_shared<HealthChecker>(ioc, "c", fast_check(1, 1),
                                            make_set({std::make_shared<Host>(server.name(), 1)}),
                                            [&](const auto&) {
                                              ++callbacks;
                                              checker->stop();
                                            });
  checker->start();
  ASSERT_TRUE(run_until(
      ioc, [&] { return callbacks == 1; }, kLimit));
  run_for(ioc, milliseconds(200));
  EXPECT_EQ(server.requests(), 1);
  EXPECT_EQ(callbacks, 1);
}

TEST(ParseHostEndpoint, RejectsWhatIsNotAnAddressAndPort) {
  for (const char* name : {"localhost:80", "1.2.3.4", "::1:80", "[::1]", "[::1]:", "1.2.3.4:0",
                           "1.2.3.4:65536", ":80", "1.2.3.4:8o", "[1.2.3.4]:80", ""}) {
    EXPECT_FALSE(parse_host_endpoint(name).has_value()) << name;
  }
  EXPECT_EQ(parse_host_endpoint("[::1]:8080"), tcp::endpoint(asio::ip::make_address("::1"), 8080));
}

RC_GTEST_PROP(ParseHostEndpoint, RoundTripsEveryAddressAndPort, ()) {
  const auto port = *rc::gen::inRange<uint32_t>(1, 65536);
  asio::ip::address address;
  if (*rc::gen::arbitrary<bool>()) {
    address = asio::ip::address_v4(*rc::gen::arbitrary<uint32_t>());
  } else {
    asio::ip::address_v6::bytes_type bytes;
    for (auto& b : bytes) b = *rc::gen::arbitrary<unsigned char>();
    address = asio::ip::address_v6(bytes);
  }
  const tcp::endpoint endpoint(address, static_cast<uint16_t>(port));
  const std::string text = address.is_v6() ? "[" + address.to_string() + "]:" + std::to_string(port)
                                           : address.to_string() + ":" + std::to_string(port);
  RC_ASSERT(parse_host_endpoint(text) == std::optional<tcp::endpoint>(endpoint));
}

}  // namespace
}  // namespace sluice::upstream::health
