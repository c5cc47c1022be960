// The rate_limit filter on its own: fake stream callbacks, a real LocalLimiter and, for global
// rules, a real redis-server.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "core/runtime_state.h"
#include "core/stats.h"
#include "filters/rate_limit/rate_limit_filter.h"
#include "filters/router/route_table.h"
#include "filters/worker_services.h"
#include "tests/filters/fake_callbacks.h"
#include "tests/upstream/redis_server.h"

namespace sluice::rate_limit {
namespace {

using ::testing::HasSubstr;
namespace asio = boost::asio;
using test::FakeCallbacks;

struct Outcome {
  FilterStatus status;
  unsigned reply_status = 0;  // 0: none
  HeaderMap reply_headers;
  HeaderMap response_headers;  // what on_response_headers added to an allowed response
  int continued = 0;
};

class RateLimitFilterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { register_builtin_filters(); }

  void load(const std::string& yaml) {
    config::LoadResult r = config::load_string(yaml, "t.yaml");
    for (const auto& e : r.errors) ADD_FAILURE() << e.str();
    ASSERT_TRUE(r.config);
    config_ = r.config;
    routes_ = router::RouteTable::build(*config_);
    FactoryContext context{*config_, config_->listeners.at(0), runtime_};
    std::string error;
    factory_ = RateLimitFactory::build(
        static_cast<const RateLimitConfig&>(*config_->filter_config("rate_limit")), context,
        &error);
    ASSERT_TRUE(factory_) << error;
  }

  // One request through a fresh filter instance; async answers are waited for (bounded).
  Outcome send(const std::string& target = "/", const std::string& client = "192.0.2.1",
               std::vector<std::pair<std::string, std::string>> headers = {}) {
    FakeCallbacks cb(ioc_, *routes_, stats_, services_);
    cb.request_.method = "GET";
    cb.request_.target = target;
    cb.request_.authority = "example.com";
    for (auto& [n, v] : headers) cb.request_.headers.add(n, v);
    cb.info_.client_ip = asio::ip::make_address(client);
    FilterPtr filter = factory_->create(services_);
    filter->set_callbacks(cb);
    Outcome out;
    out.status = filter->on_request_headers(cb.request_, true);
    // Waiting for Redis: run handlers until the filter continues or answers (at most 2 s).
    for (int i = 0;
         i < 200 && out.status == FilterStatus::Stop && cb.continued == 0 && cb.reply_status == 0;
         ++i) {
      ioc_.restart();
      ioc_.run_one_for(std::chrono::milliseconds(10));
    }
    out.reply_status = cb.reply_status;
    out.reply_headers = cb.reply_headers;
    out.continued = cb.continued;
    if (cb.reply_status == 0) {
      ResponseHead head;
      filter->on_response_headers(head, true);
      out.response_headers = head.headers;
    }
    cb.destroy();
    filter->on_destroy();
    return out;
  }

  const RateLimitStats& rule_stats(const std::string& rule) { return stats_.rate_limit(rule); }

  asio::io_context ioc_;
  RuntimeState runtime_;
  WorkerStats stats_;
  WorkerServices services_{ioc_.get_executor(), 0};
  config::ConfigPtr config_;
  std::shared_ptr<const router::RouteTable> routes_;
  std::shared_ptr<const RateLimitFactory> factory_;
};

constexpr const char* kListener =
    "listeners: [{ name: public, address: 127.0.0.1:8080, rate_limits: [per_ip] }]\n";

TEST_F(RateLimitFilterTest, BurstThenRefusedWithRetryAfterAndRateLimitFields) {
  load(std::string(kListener) +
       "rate_limits: [{ name: per_ip, key: [client_ip], rate: 1/s, burst: 3 }]\n");
  for (int i = 0; i < 3; ++i) {
    Outcome ok = send();
    EXPECT_EQ(ok.status, FilterStatus::Continue);
    EXPECT_TRUE(ok.response_headers.empty());  // headers: false by default
  }
  Outcome limited = send();
  EXPECT_EQ(limited.status, FilterStatus::Stop);
  EXPECT_EQ(limited.reply_status, 429u);
  EXPECT_EQ(limited.reply_headers.get("retry-after"), "1");
  EXPECT_EQ(limited.reply_headers.get("ratelimit-policy"), "\"per_ip\";q=3;w=3");
  EXPECT_EQ(limited.reply_headers.get("ratelimit"), "\"per_ip\";r=0;t=1");
  // Another client is not affected.
  EXPECT_EQ(send("/", "192.0.2.2").status, FilterStatus::Continue);
  EXPECT_EQ(rule_stats("per_ip").allowed.value(), 4u);
  EXPECT_EQ(rule_stats("per_ip").limited.value(), 1u);
}

TEST_F(RateLimitFilterTest, AllowedResponsesCarryTheFieldsWhenAsked) {
  load(std::string(kListener) +
       "rate_limits: [{ name: per_ip, key: [client_ip], rate: 100/s, burst: 100, headers: true "
       "}]\n");
  Outcome first = send();
  EXPECT_EQ(first.response_headers.get("ratelimit-policy"), "\"per_ip\";q=100;w=1");
  EXPECT_EQ(first.response_headers.get("ratelimit"), "\"per_ip\";r=99;t=1");
  EXPECT_EQ(send().response_headers.get("ratelimit"), "\"per_ip\";r=98;t=1");
}

TEST_F(RateLimitFilterTest, AMissingKeyPartSkipsTheRule) {
  load(std::string(kListener) +
       "rate_limits: [{ name: per_ip, key: [header:x-api-key, query:v], rate: 1/h, burst: 1 "
       "}]\n");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(send("/?v=1").status, FilterStatus::Continue);
  EXPECT_EQ(rule_stats("per_ip").skipped.value(), 3u);
  EXPECT_EQ(send("/?v=1", "192.0.2.1", {{"X-Api-Key", "k"}}).status, FilterStatus::Continue);
  EXPECT_EQ(send("/?v=1", "192.0.2.9", {{"X-Api-Key", "k"}}).reply_status, 429u);
  // Another value of the query parameter is another key.
  EXPECT_EQ(send("/?a=b&v=2", "192.0.2.1", {{"X-Api-Key", "k"}}).status, FilterStatus::Continue);
}

TEST_F(RateLimitFilterTest, ShadowModeCountsButNeverBlocksOrShows) {
  load(std::string(kListener) +
       "rate_limits: [{ name: per_ip, key: [client_ip], rate: 1/h, burst: 1, mode: shadow, "
       "headers: true }]\n");
  for (int i = 0; i < 5; ++i) {
    Outcome o = send();
    EXPECT_EQ(o.status, FilterStatus::Continue);
    EXPECT_TRUE(o.response_headers.empty());
  }
  EXPECT_EQ(rule_stats("per_ip").allowed.value(), 1u);
  EXPECT_EQ(rule_stats("per_ip").would_limit.value(), 4u);
}

TEST_F(RateLimitFilterTest, RouteRulesApplyOnlyToTheirRoute) {
  load(
      "listeners: [{ name: public, address: 127.0.0.1:8080 }]\n"
      "routes:\n"
      "  - { name: api, match: { path: { prefix: /api/ } }, respond: { status: 200 }, "
      "rate_limits: [per_route] }\n"
      "  - { name: rest, respond: { status: 200 } }\n"
      "rate_limits: [{ name: per_route, key: [route, client_ip], rate: 1/h, burst: 1 }]\n");
  EXPECT_EQ(send("/api/a").status, FilterStatus::Continue);
  EXPECT_EQ(send("/api/b").reply_status, 429u);
  EXPECT_EQ(send("/other").status, FilterStatus::Continue);
  EXPECT_EQ(send("/other").status, FilterStatus::Continue);
}

TEST_F(RateLimitFilterTest, TheRuleClosestToItsLimitIsReported) {
  load(
      "listeners: [{ name: public, address: 127.0.0.1:8080, rate_limits: [wide, narrow] }]\n"
      "rate_limits:\n"
      "  - { name: wide, key: [client_ip], rate: 100/s, headers: true }\n"
      "  - { name: narrow, key: [client_ip], rate: 10/s, burst: 2, headers: true }\n");
  EXPECT_EQ(send().response_headers.get("ratelimit"), "\"narrow\";r=1;t=1");
  EXPECT_EQ(send().response_headers.get("ratelimit"), "\"narrow\";r=0;t=1");
  Outcome refused = send();
  EXPECT_EQ(refused.reply_status, 429u);
  EXPECT_EQ(refused.reply_headers.get("ratelimit-policy"), "\"narrow\";q=2;w=1");
}

TEST_F(RateLimitFilterTest, LimiterStateOutlivesAReloadOfTheSameRule) {
  const std::string yaml =
      std::string(kListener) +
      "rate_limits: [{ name: per_ip, key: [client_ip], rate: 1/h, burst: 2 }]\n";
  load(yaml);
  auto old_factory = factory_;  // the running snapshot
  send();
  send();
  load(yaml);  // a reload with the rule unchanged
  EXPECT_EQ(send().reply_status, 429u);
  load(std::string(kListener) +
       "rate_limits: [{ name: per_ip, key: [client_ip], rate: 2/h, burst: 2 }]\n");
  EXPECT_EQ(send().reply_status, 0u);  // changed settings: fresh counts
}

class GlobalRateLimitTest : public RateLimitFilterTest {
 protected:
  std::string config(const std::string& on_error, uint16_t port) {
    return std::string(kListener) +
           "rate_limits: [{ name: per_ip, key: [client_ip], rate: 1/h, burst: 2, scope: global, "
           "headers: true }]\n"
           "redis: { address: 127.0.0.1:" +
           std::to_string(port) + ", timeout: 50ms, on_error: " + on_error + " }\n";
  }
  test::RedisServer redis_;
};

TEST_F(GlobalRateLimitTest, RedisDecides) {
  ASSERT_TRUE(redis_.ok());
  load(config("allow", redis_.port()));
  Outcome first = send();
  EXPECT_EQ(first.status, FilterStatus::Stop);  // waits for Redis
  EXPECT_EQ(first.continued, 1);
  EXPECT_EQ(first.response_headers.get("ratelimit"), "\"per_ip\";r=1;t=3600");
  EXPECT_EQ(send().continued, 1);
  Outcome refused = send();
  EXPECT_EQ(refused.reply_status, 429u);
  EXPECT_EQ(refused.continued, 0);
  EXPECT_EQ(refused.reply_headers.get("retry-after"), "3600");
  EXPECT_EQ(refused.reply_headers.get("ratelimit"), "\"per_ip\";r=0;t=3600");
  EXPECT_EQ(rule_stats("per_ip").allowed.value(), 2u);
  EXPECT_EQ(rule_stats("per_ip").limited.value(), 1u);
}

TEST_F(GlobalRateLimitTest, RedisGoneFollowsOnError) {
  ASSERT_TRUE(redis_.ok());
  const uint16_t port = redis_.port();
  redis_.stop();
  load(config("allow", port));
  Outcome allowed = send();
  EXPECT_EQ(allowed.continued, 1);
  EXPECT_EQ(allowed.reply_status, 0u);
  load(config("deny", port));
  EXPECT_EQ(send().reply_status, 503u);
  EXPECT_EQ(rule_stats("per_ip").error.value(), 2u);
  EXPECT_GE(stats_.redis_errors.value(), 2u);
}

}  // namespace
}  // namespace sluice::rate_limit
