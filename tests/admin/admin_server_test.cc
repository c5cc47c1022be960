#include "admin/admin_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "admin/admin_context.h"
#include "admin/dashboard.h"
#include "core/runtime_state.h"
#include "core/stats.h"

namespace sluice::admin {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr auto kClientTimeout = 5s;

// The ready flag changes while the admin thread reads it; config_ only before start().
class TestContext : public AdminContext {
 public:
  TestContext() {
    for (int i = 0; i < 2; ++i) workers_.push_back(std::make_unique<WorkerStats>());
    auto cfg = std::make_shared<config::Config>();
    cfg->source = "test.yaml";
    cfg->workers = 2;
    cfg->listeners.emplace_back().name = "public";
    cfg->listeners.back().address = {"127.0.0.1", 8080};
    cfg->clusters.emplace_back().name = "api";
    config_ = cfg;
  }
  bool ready() const override { return ready_.load(); }
  config::ConfigPtr config() const override { return config_; }
  std::vector<const WorkerStats*> worker_stats() const override {
    return {workers_[0].get(), workers_[1].get()};
  }
  uint64_t reloads_succeeded() const override { return 4; }
  uint64_t reloads_failed() const override { return 2; }
  RuntimeState& runtime() const override { return runtime_; }
  mutable RuntimeState runtime_;

  // Actions: recorded as "reload", "drain on|off", "disable|enable CLUSTER HOST"; answered
  // with `action_result_`. Actions thread only, read by the test after the reply.
  ActionResult reload_config() override { return act("reload"); }
  ActionResult set_draining(bool draining) override {
    return act(draining ? "drain on" : "drain off");
  }
  ActionResult set_host_disabled(std::string_view cluster, std::string_view host,
                                 bool disabled) override {
    return act(std::string(disabled ? "disable " : "enable ") + std::string(cluster) + " " +
               std::string(host));
  }
  ActionResult act(std::string what) {
    // A reload that takes a while: the test releases it.
    if (hold_actions_) hold_actions_->wait();
    actions_.push_back(std::move(what));
    return action_result_;
  }
  std::optional<std::shared_future<void>> hold_actions_;
  std::vector<std::string> actions_;
  ActionResult action_result_{200, "{\"result\": \"ok\"}\n", "ok"};

  // A config whose admin section has `token`.
  void require_token(std::string token) {
    auto cfg = std::make_shared<config::Config>(*config_);
    cfg->admin.token_file = "/run/secrets/admin-token";
    cfg->admin.token = std::move(token);
    config_ = cfg;
  }

  WorkerStats& worker(size_t i) { return *workers_[i]; }

  std::atomic<bool> ready_{false};
  config::ConfigPtr config_;

 private:
  std::vector<std::unique_ptr<WorkerStats>> workers_;
};

// A blocking HTTP/1.1 client whose every operation is bounded by kClientTimeout.
class Client {
 public:
  explicit Client(uint16_t port) : stream_(io_) {
    stream_.expires_after(kClientTimeout);
    run([&](auto done) {
      stream_.async_connect(tcp::endpoint(asio::ip::address_v4::loopback(), port), done);
    });
  }

  error_code send(http::verb method, const std::string& target, bool keep_alive = true) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "localhost");
    req.keep_alive(keep_alive);
    stream_.expires_after(kClientTimeout);
    return run([&](auto done) { http::async_write(stream_, req, done); });
  }

  error_code send_raw(const std::string& bytes) {
    stream_.expires_after(kClientTimeout);
    return run([&](auto done) { asio::async_write(stream_, asio::buffer(bytes), done); });
  }

  // Reads one response; for HEAD, pass head = true so the parser expects no body.
  error_code receive(http::response<http::string_body>* res, bool head = false,
                     std::chrono::milliseconds timeout = kClientTimeout) {
    http::response_parser<http::string_body> parser;
    parser.skip(head);
    stream_.expires_after(timeout);
    error_code ec = run([&](auto done) { http::async_read(stream_, buffer_, parser, done); });
    if (!ec) *res = parser.release();
    return ec;
  }

  // One request with an Authorization header (none when empty).
  http::response<http::string_body> request_with_auth(http::verb method, const std::string& target,
                                                      const std::string& authorization) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "localhost");
    if (!authorization.empty()) req.set(http::field::authorization, authorization);
    req.prepare_payload();
    stream_.expires_after(kClientTimeout);
    EXPECT_FALSE(run([&](auto done) { http::async_write(stream_, req, done); })) << target;
    http::response<http::string_body> res;
    EXPECT_FALSE(receive(&res, method == http::verb::head)) << target;
    return res;
  }

  http::response<http::string_body> request(http::verb method, const std::string& target) {
    http::response<http::string_body> res;
    EXPECT_FALSE(send(method, target)) << target;
    EXPECT_FALSE(receive(&res, method == http::verb::head)) << target;
    return res;
  }

  // Waits for the server to close: true on EOF within `timeout`.
  bool closed_by_peer(std::chrono::milliseconds timeout) {
    stream_.expires_after(timeout);
    char byte;
    error_code ec = run([&](auto done) { stream_.async_read_some(asio::buffer(&byte, 1), done); });
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }

  void close() { stream_.close(); }

 private:
  template <typename Start>
  error_code run(Start start) {
    error_code result;
    start([&](error_code ec, auto&&...) { result = ec; });
    io_.restart();
    io_.run();
    return result;
  }

  asio::io_context io_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

http::response<http::string_body> fetch(uint16_t port, http::verb method,
                                        const std::string& target) {
  return Client(port).request(method, target);
}

int promtool_check(const std::string& text, std::string* output) {
  char path[] = "/tmp/sluice_admin_metrics_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return -1;
  ::close(fd);
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

class AdminServerTest : public ::testing::Test {
 protected:
  void start(AdminServerOptions options = {}) {
    server_ = std::make_unique<AdminServer>(ctx_, config::SocketAddress{"127.0.0.1", 0}, options);
    std::string error;
    ASSERT_TRUE(server_->start(&error)) << error;
    ASSERT_NE(server_->port(), 0);
  }
  uint16_t port() const { return server_->port(); }

  TestContext ctx_;
  std::unique_ptr<AdminServer> server_;
};

TEST_F(AdminServerTest, Healthz) {
  start();
  auto res = fetch(port(), http::verb::get, "/healthz");
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res.body(), "ok\n");
  EXPECT_EQ(res[http::field::content_type], "text/plain; charset=utf-8");
  EXPECT_EQ(res[http::field::cache_control], "no-store");
}

TEST_F(AdminServerTest, ReadyFollowsContext) {
  start();
  auto res = fetch(port(), http::verb::get, "/ready");
  EXPECT_EQ(res.result(), http::status::service_unavailable);
  EXPECT_EQ(res.body(), "not ready\n");

  ctx_.ready_ = true;
  res = fetch(port(), http::verb::get, "/ready");
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res.body(), "ready\n");

  ctx_.ready_ = false;  // draining
  EXPECT_EQ(fetch(port(), http::verb::get, "/ready").result(), http::status::service_unavailable);
}

TEST_F(AdminServerTest, MetricsAreSummedAndValid) {
  for (int i = 0; i < 3; ++i) ctx_.worker(0).listener("public").requests.add(200);
  for (int i = 0; i < 4; ++i) ctx_.worker(1).listener("public").requests.add(201);
  ctx_.worker(0).listener("public").connections_active.add(2);
  ctx_.worker(1).listener("public").connections_active.add(5);
  ctx_.worker(1).cluster("api").connect_failures.add(3);
  ctx_.worker(0).route("r").observe(200, 0.004);
  ctx_.worker(1).route("r").observe(201, 0.004);
  start();

  auto res = fetch(port(), http::verb::get, "/metrics");
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res[http::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
  const std::string& text = res.body();
  EXPECT_THAT(text,
              HasSubstr("sluice_downstream_requests_total{listener=\"public\",code=\"2xx\"} 7\n"));
  EXPECT_THAT(text, HasSubstr("sluice_downstream_connections_active{listener=\"public\"} 7\n"));
  EXPECT_THAT(text, HasSubstr("sluice_upstream_connect_failures_total{cluster=\"api\"} 3\n"));
  EXPECT_THAT(
      text,
      HasSubstr(
          "sluice_request_duration_seconds_bucket{route=\"r\",code=\"2xx\",le=\"0.005\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("sluice_workers 2\n"));
  EXPECT_THAT(text, HasSubstr("sluice_config_reloads_total{result=\"success\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("sluice_config_reloads_total{result=\"failure\"} 2\n"));

  std::string output;
  EXPECT_EQ(promtool_check(text, &output), 0) << output;
  EXPECT_EQ(output, "");

  // Values are read at scrape time, not cached.
  ctx_.worker(0).listener("public").requests.add(200);
  EXPECT_THAT(fetch(port(), http::verb::get, "/metrics").body(),
              HasSubstr("sluice_downstream_requests_total{listener=\"public\",code=\"2xx\"} 8\n"));
}

TEST_F(AdminServerTest, MetricsIgnoresQueryString) {
  start();
  auto res = fetch(port(), http::verb::get, "/metrics?name[]=sluice_workers");
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_THAT(res.body(), HasSubstr("sluice_workers 2\n"));
}

TEST_F(AdminServerTest, ConfigAsJson) {
  start();
  auto res = fetch(port(), http::verb::get, "/config");
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res[http::field::content_type], "application/json");
  std::string expected = ctx_.config()->to_json();
  if (expected.empty() || expected.back() != '\n') expected += '\n';
  EXPECT_EQ(res.body(), expected);
  EXPECT_THAT(res.body(), HasSubstr("\"public\""));
}

TEST_F(AdminServerTest, ConfigWithoutSnapshotIs503) {
  ctx_.config_ = nullptr;
  start();
  EXPECT_EQ(fetch(port(), http::verb::get, "/config").result(), http::status::service_unavailable);
}

TEST_F(AdminServerTest, HeadHasLengthButNoBody) {
  start();
  // Not /metrics: its process_* values (CPU, memory) may change between the two requests.
  auto get = fetch(port(), http::verb::get, "/clusters");
  auto head = fetch(port(), http::verb::head, "/clusters");
  ASSERT_EQ(get.result(), http::status::ok);
  ASSERT_FALSE(get.body().empty());
  EXPECT_EQ(head.result(), http::status::ok);
  EXPECT_EQ(head.body(), "");
  EXPECT_EQ(head[http::field::content_length], std::to_string(get.body().size()));
  EXPECT_EQ(head[http::field::content_type], get[http::field::content_type]);

  auto ready = fetch(port(), http::verb::head, "/ready");
  EXPECT_EQ(ready.result(), http::status::service_unavailable);
  EXPECT_EQ(ready[http::field::content_length], "10");
}

TEST_F(AdminServerTest, UnknownPathIs404) {
  start();
  EXPECT_EQ(fetch(port(), http::verb::get, "/nope").result(), http::status::not_found);
  EXPECT_EQ(fetch(port(), http::verb::get, "/healthz/extra").result(), http::status::not_found);
  EXPECT_EQ(fetch(port(), http::verb::post, "/nope").result(), http::status::not_found);
}

TEST_F(AdminServerTest, OtherMethodsAre405WithAllow) {
  start();
  for (http::verb method : {http::verb::post, http::verb::put, http::verb::delete_}) {
    auto res = fetch(port(), method, "/metrics");
    EXPECT_EQ(res.result(), http::status::method_not_allowed);
    EXPECT_EQ(res[http::field::allow], "GET, HEAD");
  }
}

TEST_F(AdminServerTest, KeepAliveServesSeveralRequests) {
  start();
  Client client(port());
  for (const char* target : {"/healthz", "/metrics", "/nope", "/ready"}) {
    auto res = client.request(http::verb::get, target);
    EXPECT_TRUE(res.keep_alive()) << target;
  }
  EXPECT_EQ(client.request(http::verb::get, "/healthz").body(), "ok\n");
}

TEST_F(AdminServerTest, PipelinedRequestsAreAnsweredInOrder) {
  start();
  Client client(port());
  ASSERT_FALSE(client.send_raw(
      "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /ready HTTP/1.1\r\nHost: a\r\n\r\n"));
  http::response<http::string_body> first, second;
  ASSERT_FALSE(client.receive(&first));
  ASSERT_FALSE(client.receive(&second));
  EXPECT_EQ(first.body(), "ok\n");
  EXPECT_EQ(second.body(), "not ready\n");
}

TEST_F(AdminServerTest, ConnectionCloseIsHonoured) {
  start();
  Client client(port());
  ASSERT_FALSE(client.send(http::verb::get, "/healthz", /*keep_alive=*/false));
  http::response<http::string_body> res;
  ASSERT_FALSE(client.receive(&res));
  EXPECT_FALSE(res.keep_alive());
  EXPECT_TRUE(client.closed_by_peer(kClientTimeout));
}

TEST_F(AdminServerTest, OversizedRequestHeaderIs431) {
  start();
  Client client(port());
  ASSERT_FALSE(client.send_raw(
      "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n"));
  http::response<http::string_body> res;
  ASSERT_FALSE(client.receive(&res));
  EXPECT_EQ(res.result(), http::status::request_header_fields_too_large);
  EXPECT_TRUE(client.closed_by_peer(kClientTimeout));
}

TEST_F(AdminServerTest, OversizedBodyIs413) {
  start();
  Client client(port());
  ASSERT_FALSE(
      client.send_raw("POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" +
                      std::string(100000, 'a')));
  http::response<http::string_body> res;
  ASSERT_FALSE(client.receive(&res));
  EXPECT_EQ(res.result(), http::status::payload_too_large);
}

TEST_F(AdminServerTest, MalformedRequestIs400) {
  start();
  Client client(port());
  ASSERT_FALSE(client.send_raw("GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n"));
  http::response<http::string_body> res;
  ASSERT_FALSE(client.receive(&res));
  EXPECT_EQ(res.result(), http::status::bad_request);
  EXPECT_TRUE(client.closed_by_peer(kClientTimeout));
}

TEST_F(AdminServerTest, IdleConnectionIsClosedAfterReadTimeout) {
  AdminServerOptions options;
  options.read_timeout = 200ms;
  start(options);
  Client client(port());
  // No request at all: the server gives up after read_timeout, long before the client does.
  EXPECT_TRUE(client.closed_by_peer(kClientTimeout));

  // Same after a served request on a keep-alive connection.
  Client kept(port());
  EXPECT_EQ(kept.request(http::verb::get, "/healthz").result(), http::status::ok);
  EXPECT_TRUE(kept.closed_by_peer(kClientTimeout));
}

TEST_F(AdminServerTest, ConnectionLimitQueuesUntilASlotFrees) {
  AdminServerOptions options;
  options.max_connections = 1;
  start(options);
  Client first(port());
  EXPECT_EQ(first.request(http::verb::get, "/healthz").result(), http::status::ok);

  // The second connection waits in the backlog while the first holds the only slot.
  Client second(port());
  ASSERT_FALSE(second.send(http::verb::get, "/healthz"));
  http::response<http::string_body> res;
  EXPECT_EQ(second.receive(&res, false, 300ms), beast::error::timeout);

  // receive() timed out and closed `second`; a new client is served once `first` leaves.
  first.close();
  EXPECT_EQ(fetch(port(), http::verb::get, "/healthz").result(), http::status::ok);
}

TEST_F(AdminServerTest, PortInUseFailsWithMessage) {
  start();
  AdminServer other(ctx_, config::SocketAddress{"127.0.0.1", port()});
  std::string error;
  EXPECT_FALSE(other.start(&error));
  EXPECT_THAT(error, HasSubstr("127.0.0.1:" + std::to_string(port())));
  EXPECT_THAT(error, HasSubstr("in use"));
  EXPECT_EQ(other.port(), 0);
  // The running server is unaffected.
  EXPECT_EQ(fetch(port(), http::verb::get, "/healthz").result(), http::status::ok);
}

TEST_F(AdminServerTest, AddressNotOnThisHostFailsWithMessage) {
  AdminServer server(ctx_, config::SocketAddress{"192.0.2.1", 9901});  // TEST-NET-1
  std::string error;
  EXPECT_FALSE(server.start(&error));
  EXPECT_THAT(error, HasSubstr("cannot bind 192.0.2.1:9901"));
}

TEST_F(AdminServerTest, HostnameAndIpv6Bind) {
  AdminServer by_name(ctx_, config::SocketAddress{"localhost", 0});
  std::string error;
  ASSERT_TRUE(by_name.start(&error)) << error;
  EXPECT_NE(by_name.port(), 0);
  by_name.stop();

  AdminServer v6(ctx_, config::SocketAddress{"::1", 0});
  if (!v6.start(&error)) GTEST_SKIP() << "no IPv6 loopback: " << error;
  asio::io_context io;
  tcp::socket socket(io);
  error_code ec;
  socket.connect(tcp::endpoint(asio::ip::address_v6::loopback(), v6.port()), ec);
  EXPECT_FALSE(ec) << ec.message();
}

TEST_F(AdminServerTest, StopClosesOpenConnectionsAndReturns) {
  start();
  Client idle(port());
  Client busy(port());
  EXPECT_EQ(busy.request(http::verb::get, "/healthz").result(), http::status::ok);
  const uint16_t old_port = port();

  auto stopped = std::async(std::launch::async, [&] { server_->stop(); });
  ASSERT_EQ(stopped.wait_for(kClientTimeout), std::future_status::ready);
  EXPECT_EQ(server_->port(), 0);
  EXPECT_TRUE(idle.closed_by_peer(kClientTimeout));
  EXPECT_TRUE(busy.closed_by_peer(kClientTimeout));

  // The port is free again.
  AdminServer again(ctx_, config::SocketAddress{"127.0.0.1", old_port});
  std::string error;
  EXPECT_TRUE(again.start(&error)) << error;
  server_->stop();  // idempotent
}

TEST_F(AdminServerTest, TokenIsRequiredEverywhereButTheProbes) {
  ctx_.require_token("t0ken");
  ctx_.ready_ = true;
  AdminServerOptions options;
  options.max_token_failures = 1000;  // this test guesses a lot on purpose
  start(options);
  Client client(port());
  for (const char* target : {"/healthz", "/ready"}) {
    EXPECT_EQ(client.request_with_auth(http::verb::get, target, "").result(), http::status::ok)
        << target;
  }
  for (const char* target :
       {"/metrics", "/config", "/clusters", "/ratelimits", "/stats", "/nope"}) {
    for (const char* auth : {"", "Bearer", "Bearer ", "Bearer t0ke", "Bearer t0kenn",
                             "Bearer T0KEN", "Basic t0ken", "Bearert0ken"}) {
      auto res = client.request_with_auth(http::verb::get, target, auth);
      EXPECT_EQ(res.result(), http::status::unauthorized) << target << " " << auth;
      EXPECT_EQ(res[http::field::www_authenticate], "Bearer realm=\"sluice-admin\"");
      EXPECT_TRUE(res.keep_alive());
    }
  }
  for (const char* auth : {"Bearer t0ken", "bearer t0ken", "BEARER   t0ken  "}) {
    EXPECT_EQ(client.request_with_auth(http::verb::get, "/metrics", auth).result(),
              http::status::ok)
        << auth;
  }
  EXPECT_EQ(client.request_with_auth(http::verb::get, "/nope", "Bearer t0ken").result(),
            http::status::not_found);
  // /config names the file, never the token.
  auto config = client.request_with_auth(http::verb::get, "/config", "Bearer t0ken");
  EXPECT_THAT(config.body(), HasSubstr("/run/secrets/admin-token"));
  EXPECT_THAT(config.body(), ::testing::Not(HasSubstr("t0ken\"")));
}

TEST_F(AdminServerTest, DashboardPageNeedsNoTokenAndCarriesItsPolicy) {
  ctx_.require_token("t0ken");
  start();
  Client client(port());
  auto page = client.request_with_auth(http::verb::get, "/", "");
  EXPECT_EQ(page.result(), http::status::ok);
  EXPECT_EQ(page[http::field::content_type], "text/html; charset=utf-8");
  EXPECT_EQ(page[http::field::cache_control], "no-store");
  EXPECT_EQ(page["X-Content-Type-Options"], "nosniff");
  EXPECT_EQ(page["Content-Security-Policy"], dashboard_csp());
  EXPECT_EQ(page.body(), std::string(dashboard_html()));
  // The data it polls does need the token.
  EXPECT_EQ(client.request_with_auth(http::verb::get, "/stats", "").result(),
            http::status::unauthorized);
  // Only the page: other responses carry no policy of a page.
  auto metrics = client.request_with_auth(http::verb::get, "/metrics", "Bearer t0ken");
  EXPECT_EQ(metrics["Content-Security-Policy"], "");
  EXPECT_EQ(metrics["X-Content-Type-Options"], "nosniff");
}

TEST_F(AdminServerTest, StatsSamplesTheCountersEverySecond) {
  ctx_.require_token("t0ken");
  start();
  Client client(port());
  auto first = client.request_with_auth(http::verb::get, "/stats", "Bearer t0ken");
  EXPECT_EQ(first.result(), http::status::ok);
  EXPECT_EQ(first[http::field::content_type], "application/json");
  EXPECT_EQ(first[http::field::cache_control], "no-store");
  EXPECT_THAT(first.body(), HasSubstr("\"reloads\": {\"succeeded\": 4, \"failed\": 2"));
  // 7 responses between samples: a point of 7/s arrives within a few seconds (bounded).
  for (int i = 0; i < 7; ++i) ctx_.worker(i % 2).listener("public").requests.add(200);
  const std::regex point(R"(\[[0-9]{13},(7|6\.9[0-9]*|7\.0[0-9]*),0,null,null\])");
  std::string body;
  const auto give_up = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < give_up) {
    body = client.request_with_auth(http::verb::get, "/stats", "Bearer t0ken").body();
    if (std::regex_search(body, point)) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_THAT(body, HasSubstr("\"requests\": {\"total\": 7,"));
  EXPECT_TRUE(std::regex_search(body, point)) << body;
  // ?since= a point's time leaves that point out.
  auto at = body.rfind("\n  [");
  ASSERT_NE(at, std::string::npos);
  std::string last_time = body.substr(at + 4, 13);
  auto newer =
      client.request_with_auth(http::verb::get, "/stats?since=" + last_time, "Bearer t0ken");
  EXPECT_THAT(newer.body(), ::testing::Not(HasSubstr("[" + last_time + ",")));
}

TEST_F(AdminServerTest, ActionsNeedTheTokenAndDoNothingWithoutIt) {
  ctx_.require_token("t0ken");
  start();
  Client client(port());
  for (const char* target : {"/reload", "/drain", "/clusters/api/hosts/127.0.0.1:80/disable"}) {
    EXPECT_EQ(client.request_with_auth(http::verb::post, target, "").result(),
              http::status::unauthorized);
    EXPECT_EQ(client.request_with_auth(http::verb::post, target, "Bearer x").result(),
              http::status::unauthorized);
  }
  EXPECT_THAT(ctx_.actions_, ::testing::IsEmpty());
  EXPECT_EQ(client.request_with_auth(http::verb::post, "/reload", "Bearer t0ken").result(),
            http::status::ok);
  EXPECT_THAT(ctx_.actions_, ::testing::ElementsAre("reload"));
}

TEST_F(AdminServerTest, ReadsAreAnsweredWhileAnActionWaits) {
  std::promise<void> release;
  ctx_.hold_actions_ = release.get_future().share();
  start();
  auto reload = std::async(std::launch::async,
                           [&] { return Client(port()).request(http::verb::post, "/reload"); });
  // Answered while the reload is held (before the fix they queued behind it until it ended).
  EXPECT_EQ(fetch(port(), http::verb::get, "/healthz").result(), http::status::ok);
  EXPECT_EQ(fetch(port(), http::verb::get, "/metrics").result(), http::status::ok);
  EXPECT_EQ(fetch(port(), http::verb::get, "/stats").result(), http::status::ok);
  EXPECT_EQ(reload.wait_for(0s), std::future_status::timeout);
  release.set_value();
  EXPECT_EQ(reload.get().result(), http::status::ok);
  EXPECT_THAT(ctx_.actions_, ::testing::ElementsAre("reload"));
}

TEST_F(AdminServerTest, AnAddressThatKeepsGuessingTheTokenIsRefusedForAWhile) {
  ctx_.require_token("t0ken");
  start();
  Client client(port());
  // No token at all is not a guess: a scrape without credentials stays a 401.
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(client.request_with_auth(http::verb::get, "/metrics", "").result(),
              http::status::unauthorized);
  }
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(client.request_with_auth(http::verb::get, "/metrics", "Bearer guess").result(),
              http::status::unauthorized);
  }
  // Now even the right token is not checked, and actions are not taken.
  auto res = client.request_with_auth(http::verb::post, "/reload", "Bearer t0ken");
  EXPECT_EQ(res.result(), http::status::too_many_requests);
  const int retry_after = std::stoi(std::string(res[http::field::retry_after]));
  EXPECT_GT(retry_after, 0);
  EXPECT_LE(retry_after, 60);
  EXPECT_THAT(ctx_.actions_, ::testing::IsEmpty());
  // Probes never need the token, so they are never refused.
  EXPECT_EQ(client.request_with_auth(http::verb::get, "/healthz", "Bearer guess").result(),
            http::status::ok);
}

TEST_F(AdminServerTest, ActionsCallTheContextAndAnswerItsResult) {
  start();
  Client client(port());
  auto res = client.request(http::verb::post, "/reload");
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res[http::field::content_type], "application/json");
  EXPECT_EQ(res.body(), "{\"result\": \"ok\"}\n");
  ctx_.action_result_ = {422, "{\"result\": \"failed\"}\n", "failed"};
  res = client.request(http::verb::post, "/reload");
  EXPECT_EQ(res.result(), http::status::unprocessable_entity);
  EXPECT_EQ(res.body(), "{\"result\": \"failed\"}\n");
  ctx_.action_result_ = {200, "{}\n", "ok"};
  client.request(http::verb::post, "/drain");
  client.request(http::verb::post, "/drain?cancel");
  client.request(http::verb::post, "/drain?x=1&cancel=yes");
  client.request(http::verb::post, "/clusters/api/hosts/127.0.0.1:80/disable");
  client.request(http::verb::post, "/clusters/api/hosts/%5B%3A%3A1%5D%3A80/enable");
  EXPECT_THAT(ctx_.actions_,
              ::testing::ElementsAre("reload", "reload", "drain on", "drain off", "drain off",
                                     "disable api 127.0.0.1:80", "enable api [::1]:80"));
}

TEST_F(AdminServerTest, ActionsAnswerOtherMethodsWith405AllowPost) {
  start();
  Client client(port());
  for (const char* target : {"/reload", "/drain", "/clusters/api/hosts/127.0.0.1:80/disable",
                             "/clusters/api/hosts/127.0.0.1:80/enable"}) {
    for (http::verb method : {http::verb::get, http::verb::head, http::verb::put}) {
      auto res = client.request(method, target);
      EXPECT_EQ(res.result(), http::status::method_not_allowed) << target;
      EXPECT_EQ(res[http::field::allow], "POST") << target;
    }
  }
  EXPECT_THAT(ctx_.actions_, ::testing::IsEmpty());
}

TEST_F(AdminServerTest, MalformedHostActionPathsAre404) {
  start();
  Client client(port());
  for (const char* target :
       {"/clusters/api/hosts/127.0.0.1:80", "/clusters/api/hosts//disable",
        "/clusters//hosts/a/disable", "/clusters/api/host/a/disable", "/clusters/api/hosts/a/drain",
        "/clusters/api/hosts/a%2Fb/disable", "/clusters/api/hosts/a%zz/disable",
        "/clusters/api/hosts/a%2/disable", "/clusters/api/hosts/a/disable/"}) {
    EXPECT_EQ(client.request(http::verb::post, target).result(), http::status::not_found) << target;
  }
  EXPECT_THAT(ctx_.actions_, ::testing::IsEmpty());
}

TEST_F(AdminServerTest, DefaultContextSaysActionsAreNotSupported) {
  struct Minimal : TestContext {
    ActionResult reload_config() override { return AdminContext::reload_config(); }
  } minimal;
  AdminServer server(minimal, config::SocketAddress{"127.0.0.1", 0});
  std::string error;
  ASSERT_TRUE(server.start(&error)) << error;
  EXPECT_EQ(fetch(server.port(), http::verb::post, "/reload").result(),
            http::status::not_implemented);
}

}  // namespace
}  // namespace sluice::admin
