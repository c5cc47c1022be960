// The sanitize filter on its own (fake stream callbacks): what it does to the request the rest
// of the chain sees, what it refuses and how each refusal is counted.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/stats.h"
#include "filters/registry.h"
#include "filters/sanitize/sanitize_filter.h"
#include "filters/worker_services.h"
#include "tests/filters/fake_callbacks.h"

namespace sluice::sanitize {
namespace {

using test::FakeCallbacks;
using ::testing::HasSubstr;

struct Outcome {
  FilterStatus status;
  unsigned reply_status = 0;
  std::string reply_body;
  RequestHead request;  // as the filters after sanitize see it
  int route_cache_clears = 0;
  std::string error;
  std::string route;  // the route matched after the filter ran; "" if none
};

class SanitizeFilterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { register_builtin_filters(); }

  void load(const std::string& sanitize) {
    config::LoadResult r = config::load_string(
        "clusters: [{ name: api, endpoints: [127.0.0.1:9000] }]\n"
        "listeners: [{ name: public, address: 127.0.0.1:8080 }]\n"
        "routes:\n"
        "  - { name: admin, match: { path: { prefix: /admin } }, respond: { status: 403 } }\n"
        "  - { name: api, match: { path: { prefix: /api/ } }, cluster: api }\n"
        "  - { name: rest, match: { path: { prefix: / } }, cluster: api }\n" +
            sanitize,
        "t.yaml");
    for (const auto& e : r.errors) ADD_FAILURE() << e.str();
    ASSERT_TRUE(r.config);
    config_ = r.config;
    routes_ = router::RouteTable::build(*config_);
    const auto& cfg = static_cast<const SanitizeConfig&>(*config_->filter_config("sanitize"));
    factory_ = std::make_unique<SanitizeFactory>(cfg.for_listener("public"), "public");
  }

  Outcome send(std::string target, std::vector<std::pair<std::string, std::string>> headers = {},
               std::string method = "GET") {
    FakeCallbacks cb(ioc_, *routes_, stats_, services_);
    cb.request_.method = std::move(method);
    cb.request_.target = std::move(target);
    for (auto& [n, v] : headers) cb.request_.headers.add(n, v);
    FilterPtr filter = factory_->create(services_);
    filter->set_callbacks(cb);
    Outcome out;
    out.status = filter->on_request_headers(cb.request_, true);
    out.reply_status = cb.reply_status;
    out.reply_body = cb.reply_body;
    out.request = cb.request_;
    out.route_cache_clears = cb.route_cache_clears;
    out.error = cb.info_.error;
    if (const router::CompiledRoute* r = cb.route()) out.route = r->route->name;
    return out;
  }

  uint64_t rejections(const std::string& reason) {
    return stats_.sanitize_rejection("public", reason).value();
  }

  boost::asio::io_context ioc_;
  WorkerStats stats_;
  WorkerServices services_{ioc_.get_executor(), 0};
  config::ConfigPtr config_;
  std::shared_ptr<const router::RouteTable> routes_;
  std::unique_ptr<SanitizeFactory> factory_;
};

TEST_F(SanitizeFilterTest, PlainRequestsPassUntouched) {
  load("");
  for (const char* target :
       {"/", "/api/v1/users?id=7&x=%2F..%2F", "/caf%C3%A9", "/a;x=1/b", "/search?q=a+b#"}) {
    if (std::string_view(target).find('#') != std::string_view::npos) continue;
    Outcome o = send(target);
    EXPECT_EQ(o.status, FilterStatus::Continue) << target;
    EXPECT_EQ(o.request.target, target);
    EXPECT_EQ(o.route_cache_clears, 0) << target;
  }
}

TEST_F(SanitizeFilterTest, RoutesOnTheCanonicalPathAndKeepsTheQuery) {
  load("");
  Outcome o = send("/api/../admin/users?next=/a/../b&x=%2F");
  EXPECT_EQ(o.status, FilterStatus::Continue);
  EXPECT_EQ(o.request.target, "/admin/users?next=/a/../b&x=%2F");
  EXPECT_EQ(o.route, "admin");  // not "api": the prefix route is not walked around
  EXPECT_EQ(o.route_cache_clears, 1);

  EXPECT_EQ(send("/py/a/../../../etc/passwd").request.target, "/etc/passwd");
  EXPECT_EQ(send("//api//v1/%2e%2e/x").request.target, "/api/x");
  EXPECT_EQ(send("/api/..;/admin").route, "admin");
  EXPECT_EQ(send("/%61pi/v1").request.target, "/api/v1");
}

TEST_F(SanitizeFilterTest, RefusesEscapesABackendWouldDecodeAgain) {
  load("");
  Outcome o = send("/api/..%2Fadmin");
  EXPECT_EQ(o.status, FilterStatus::Stop);
  EXPECT_EQ(o.reply_status, 400u);
  EXPECT_THAT(o.reply_body, HasSubstr("%2F"));
  EXPECT_THAT(o.error, HasSubstr("encoded_character"));
  for (const char* target : {"/a%5cb", "/a%00", "/%252e%252e/admin", "/a%3bb", "/a%3F", "/a%23"}) {
    EXPECT_EQ(send(target).reply_status, 400u) << target;
  }
  EXPECT_EQ(rejections("encoded_character"), 7u);
  EXPECT_EQ(send("/a%zz").reply_status, 400u);
  EXPECT_EQ(rejections("bad_escape"), 1u);
  EXPECT_EQ(send("/a?b#frag").reply_status, 400u);
  EXPECT_EQ(rejections("fragment"), 1u);
}

TEST_F(SanitizeFilterTest, EscapedSlashesWhenAllowed) {
  load("sanitize: { escaped_slashes: keep }\n");
  EXPECT_EQ(send("/files/a%2fb").request.target, "/files/a%2Fb");
  load("sanitize: { escaped_slashes: decode }\n");
  Outcome o = send("/api/..%2Fadmin");
  EXPECT_EQ(o.request.target, "/admin");
  EXPECT_EQ(o.route, "admin");
}

TEST_F(SanitizeFilterTest, NormalizationCanBeTurnedOff) {
  load("sanitize: { normalize_path: false, merge_slashes: false }\n");
  Outcome o = send("/api//../x");
  EXPECT_EQ(o.status, FilterStatus::Continue);
  EXPECT_EQ(o.request.target, "/api//../x");
  EXPECT_EQ(send("/a%2Fb").reply_status, 400u);  // the escapes are still refused
}

TEST_F(SanitizeFilterTest, UnderscoreHeaders) {
  load("");
  Outcome o = send("/", {{"X_Forwarded_For", "6.6.6.6"}, {"x-ok", "1"}, {"a_b", "2"}});
  EXPECT_EQ(o.status, FilterStatus::Continue);
  EXPECT_FALSE(o.request.headers.contains("x_forwarded_for"));
  EXPECT_FALSE(o.request.headers.contains("a_b"));
  EXPECT_EQ(o.request.headers.get("x-ok"), "1");

  load("sanitize: { underscores_in_headers: reject }\n");
  EXPECT_EQ(send("/", {{"x_a", "1"}}).reply_status, 400u);
  EXPECT_EQ(rejections("underscore_header"), 1u);

  load("sanitize: { underscores_in_headers: allow }\n");
  EXPECT_TRUE(send("/", {{"x_a", "1"}}).request.headers.contains("x_a"));
}

TEST_F(SanitizeFilterTest, DenyRules) {
  load(
      "sanitize:\n"
      "  deny:\n"
      "    - { name: sqli, query_regex: '(?i)union\\s+select', status: 403 }\n"
      "    - { name: admin_writes, path_regex: '^/admin', method: [POST, DELETE], body: nope }\n"
      "    - { name: scanner, header: user-agent, regex: '(?i)sqlmap', status: 429 }\n");
  Outcome o = send("/search?q=1%20UNION%20SELECT%20pw");
  EXPECT_EQ(o.reply_status, 403u);
  EXPECT_EQ(o.reply_body, "Forbidden\n");
  EXPECT_EQ(send("/search?q=1+union+select+pw").reply_status, 403u);
  EXPECT_EQ(send("/search?q=union").reply_status, 0u);
  // Matched on the canonical path: an encoded or dotted form does not get past the rule.
  Outcome a = send("/api/../%61dmin/x", {}, "POST");
  EXPECT_EQ(a.reply_status, 403u);
  EXPECT_EQ(a.reply_body, "nope");
  EXPECT_EQ(send("/admin/x", {}, "GET").reply_status, 0u);
  EXPECT_EQ(send("/", {{"User-Agent", "sqlmap/1.7"}}).reply_status, 429u);
  EXPECT_EQ(rejections("deny:sqli"), 2u);
  EXPECT_EQ(rejections("deny:admin_writes"), 1u);
  EXPECT_EQ(rejections("deny:scanner"), 1u);
}

}  // namespace
}  // namespace sluice::sanitize
