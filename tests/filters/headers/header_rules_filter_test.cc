// The header_rules filter on its own (fake stream callbacks): remove, set, add in that order,
// listener rules before route rules, variables expanded, and response rules on answers the
// filter's request phase never saw.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/runtime_state.h"
#include "core/stats.h"
#include "filters/headers/header_rules_filter.h"
#include "filters/registry.h"
#include "filters/worker_services.h"
#include "tests/filters/fake_callbacks.h"

namespace sluice::header_rules {
namespace {

using test::FakeCallbacks;
using ::testing::ElementsAre;
using ::testing::Pair;

std::vector<std::pair<std::string, std::string>> fields(const HeaderMap& h) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const Header& f : h) out.emplace_back(f.name, f.value);
  return out;
}

class HeaderRulesFilterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { register_builtin_filters(); }

  void load(const std::string& listener_keys, const std::string& routes) {
    config::LoadResult r = config::load_string(
        "clusters: [{ name: api, endpoints: [127.0.0.1:9000] }]\n"
        "listeners:\n"
        "  - name: public\n"
        "    address: 127.0.0.1:8080\n" +
            listener_keys + "routes:\n" + routes,
        "t.yaml");
    for (const auto& e : r.errors) ADD_FAILURE() << e.str();
    ASSERT_TRUE(r.config);
    config_ = r.config;
    routes_ = router::RouteTable::build(*config_);
    const auto* reg = FilterRegistry::find("header_rules");
    ASSERT_TRUE(reg);
    RuntimeState runtime;
    FactoryContext ctx{*config_, config_->listeners.at(0), runtime};
    factory_ = reg->make_factory(*config_->filter_config("header_rules"), ctx, nullptr);
    ASSERT_TRUE(factory_);
  }

  std::unique_ptr<FakeCallbacks> stream(std::string target,
                                        std::vector<std::pair<std::string, std::string>> h = {}) {
    auto cb = std::make_unique<FakeCallbacks>(ioc_, *routes_, stats_, services_);
    cb->request_.method = "GET";
    cb->request_.target = std::move(target);
    cb->request_.authority = "shop.example";
    for (auto& [n, v] : h) cb->request_.headers.add(n, v);
    cb->info_.client_ip = boost::asio::ip::make_address("203.0.113.7");
    cb->info_.request_id = "0123456789abcdef0123456789abcdef";
    return cb;
  }
  FilterPtr filter_for(FakeCallbacks& cb) {
    FilterPtr f = factory_->create(services_);
    f->set_callbacks(cb);
    return f;
  }

  boost::asio::io_context ioc_;
  WorkerStats stats_;
  WorkerServices services_{ioc_.get_executor(), 0};
  config::ConfigPtr config_;
  std::shared_ptr<const router::RouteTable> routes_;
  FilterFactoryPtr factory_;
};

constexpr const char* kRoutes =
    "  - name: app\n"
    "    match: { path: { prefix: /app } }\n"
    "    cluster: api\n"
    "    request_headers:\n"
    "      set: { x-tier: route, host: backend.internal }\n"
    "      add: { x-trace: \"route %{request_id}\" }\n"
    "    response_headers: { set: { cache-control: no-store }, remove: [x-debug] }\n"
    "  - { name: rest, match: { path: { prefix: / } }, cluster: api }\n";

TEST_F(HeaderRulesFilterTest, RemoveThenSetThenAdd) {
  load(
      "    request_headers:\n"
      "      add: { x-a: added }\n"
      "      set: { x-a: set }\n"
      "      remove: [x-a, x-gone]\n",
      kRoutes);
  auto cb = stream("/", {{"X-A", "1"}, {"x-gone", "2"}, {"x-a", "3"}, {"accept", "*/*"}});
  FilterPtr f = filter_for(*cb);
  EXPECT_EQ(f->on_request_headers(cb->request_, true), FilterStatus::Continue);
  EXPECT_THAT(fields(cb->request_.headers),
              ElementsAre(Pair("accept", "*/*"), Pair("x-a", "set"), Pair("x-a", "added")));
}

TEST_F(HeaderRulesFilterTest, ListenerThenRouteRouteWinsForSet) {
  load(
      "    request_headers: { set: { x-tier: listener, x-client: \"%{client_ip}\" } }\n"
      "    response_headers: { set: { cache-control: public, x-served-for: \"%{host}\" } }\n",
      kRoutes);
  auto cb = stream("/app/x", {{"host", "shop.example"}, {"X-Tier", "client"}});
  FilterPtr f = filter_for(*cb);
  f->on_request_headers(cb->request_, true);
  EXPECT_THAT(fields(cb->request_.headers),
              ElementsAre(Pair("x-client", "203.0.113.7"), Pair("x-tier", "route"),
                          Pair("host", "backend.internal"),
                          Pair("x-trace", "route 0123456789abcdef0123456789abcdef")));
  // The authority stays the client's: routing, %{host} and X-Forwarded-Host use it.
  EXPECT_EQ(cb->request_.authority, "shop.example");

  ResponseHead resp;
  resp.headers.add("Cache-Control", "max-age=60");
  resp.headers.add("X-Debug", "1");
  f->on_response_headers(resp, false);
  EXPECT_THAT(fields(resp.headers),
              ElementsAre(Pair("x-served-for", "shop.example"), Pair("cache-control", "no-store")));
}

TEST_F(HeaderRulesFilterTest, OtherRoutesGetListenerRulesOnly) {
  load("    response_headers: { add: { x-l: \"1\" } }\n", kRoutes);
  auto cb = stream("/other", {{"x-tier", "client"}});
  FilterPtr f = filter_for(*cb);
  f->on_request_headers(cb->request_, true);
  EXPECT_THAT(fields(cb->request_.headers), ElementsAre(Pair("x-tier", "client")));
  ResponseHead resp;
  resp.headers.add("x-debug", "1");
  f->on_response_headers(resp, true);
  EXPECT_THAT(fields(resp.headers), ElementsAre(Pair("x-debug", "1"), Pair("x-l", "1")));
}

TEST_F(HeaderRulesFilterTest, AnAnswerBeforeTheRequestPhaseStillGetsBothRules) {
  // A filter earlier in the chain answered (a 429, say): only the response phase runs.
  load("    response_headers: { set: { strict-transport-security: max-age=1 } }\n", kRoutes);
  auto cb = stream("/app/x");
  FilterPtr f = filter_for(*cb);
  ResponseHead resp;
  resp.status = 429;
  resp.headers.add("x-debug", "1");
  f->on_response_headers(resp, true);
  EXPECT_THAT(fields(resp.headers), ElementsAre(Pair("strict-transport-security", "max-age=1"),
                                                Pair("cache-control", "no-store")));
}

TEST_F(HeaderRulesFilterTest, RouteOnlyRulesOnAnUnmatchedRequest) {
  load("", kRoutes);
  auto cb = stream("/app");
  cb->request_.target = "/nothing";  // matches `rest`, which has no rules
  FilterPtr f = filter_for(*cb);
  f->on_request_headers(cb->request_, true);
  ResponseHead resp;
  f->on_response_headers(resp, true);
  EXPECT_TRUE(resp.headers.empty());
}

TEST(ApplyRules, EmptyValueAndRepeatedAdds) {
  Rules r;
  ValueTemplate empty;
  ASSERT_TRUE(compile_value("", empty, nullptr));
  r.set.push_back({"x-empty", empty});
  ValueTemplate one;
  ASSERT_TRUE(compile_value("%{host}:%{host}", one, nullptr));
  r.add.push_back({"x-h", one});
  HeaderMap h;
  h.add("x-h", "0");
  StreamInfo info;
  std::string scratch;
  apply_rules(r, h, info, "a.b", scratch);
  EXPECT_THAT(fields(h),
              ElementsAre(Pair("x-h", "0"), Pair("x-empty", ""), Pair("x-h", "a.b:a.b")));
}

}  // namespace
}  // namespace sluice::header_rules
