// The filter registry: the loader learns filters' sections from it, and the chain builder picks
// each listener's filters from it (listed ones in order, then those whose config applies).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/runtime_state.h"
#include "filters/chain.h"
#include "filters/registry.h"
#include "filters/router/route_table.h"

namespace sluice {
namespace {

using ::testing::ElementsAre;

class RegistryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { register_builtin_filters(); }

  std::vector<std::vector<std::string>> chains(const std::string& yaml) {
    config::LoadResult r = config::load_string(yaml, "t.yaml");
    for (const auto& e : r.errors) ADD_FAILURE() << e.str();
    std::vector<std::vector<std::string>> out;
    if (!r.config) return out;
    auto routes = router::RouteTable::build(*r.config);
    for (const auto& l : r.config->listeners) {
      std::string error;
      auto chain = FilterChainFactory::build(*r.config, l, routes, runtime_, &error);
      EXPECT_TRUE(chain) << error;
      if (chain) out.push_back(chain->names());
    }
    return out;
  }

  RuntimeState runtime_;
};

TEST_F(RegistryTest, ShippedExamplesAreValid) {
  for (const char* name : {"quickstart.yaml"}) {
    const config::LoadResult r =
        config::load_file(SLUICE_SOURCE_DIR "/config/examples/" + std::string(name));
    EXPECT_TRUE(r.config) << name << "\n" << (r.errors.empty() ? "" : r.errors.front().str());
    EXPECT_TRUE(r.warnings.empty()) << name << ": " << r.warnings.front().str();
  }
}

TEST_F(RegistryTest, EveryFilterIsFoundByName) {
  ASSERT_NE(FilterRegistry::find("rate_limit"), nullptr);
  EXPECT_NE(config::FilterSchemas::find("rate_limit"), nullptr);
  EXPECT_TRUE(FilterRegistry::find("router")->schema.terminal);  // implicit, always last
}

TEST_F(RegistryTest, TheRouterIsImplicitAndCannotBeListed) {
  const config::LoadResult r = config::load_string(
      "listeners: [{ name: a, address: 127.0.0.1:8080, filters: [router, rate_limt] }]\n",
      "t.yaml");
  std::vector<std::string> errors;
  for (const auto& e : r.errors) errors.push_back(e.str());
  EXPECT_THAT(
      errors,
      ElementsAre("t.yaml:1:59: filter 'router' is implicit: it always runs last; remove it",
                  "t.yaml:1:67: unknown filter 'rate_limt' (did you mean 'rate_limit'?)"));
  ASSERT_NE(FilterRegistry::terminal(), nullptr);
  EXPECT_EQ(FilterRegistry::terminal()->schema.name, "router");
}

TEST_F(RegistryTest, SanitizeAndRouterWithoutFilterConfig) {
  // sanitize is on by default, first; the router always last.
  EXPECT_THAT(chains("listeners: [{ name: a, address: 127.0.0.1:8080 }]\n"),
              ElementsAre(ElementsAre("sanitize", "router")));
  EXPECT_THAT(chains("listeners: [{ name: a, address: 127.0.0.1:8080 }]\n"
                     "sanitize: { enabled: false }\n"),
              ElementsAre(ElementsAre("router")));
}

TEST_F(RegistryTest, RateLimitRunsWhereItsRulesApply) {
  // Listener rules: only on that listener.
  EXPECT_THAT(chains("listeners:\n"
                     "  - { name: a, address: 127.0.0.1:8080, rate_limits: [r] }\n"
                     "  - { name: b, address: 127.0.0.1:8081 }\n"
                     "rate_limits: [{ name: r, key: [client_ip], rate: 1/s }]\n"),
              ElementsAre(ElementsAre("sanitize", "rate_limit", "router"),
                          ElementsAre("sanitize", "router")));
  // Route rules: on every listener, since any listener may serve the route.
  EXPECT_THAT(chains("listeners:\n"
                     "  - { name: a, address: 127.0.0.1:8080 }\n"
                     "  - { name: b, address: 127.0.0.1:8081 }\n"
                     "routes: [{ name: x, respond: { status: 200 }, rate_limits: [r] }]\n"
                     "rate_limits: [{ name: r, key: [client_ip], rate: 1/s }]\n"),
              ElementsAre(ElementsAre("sanitize", "rate_limit", "router"),
                          ElementsAre("sanitize", "rate_limit", "router")));
  // Listed explicitly: runs even without rules of its own, once.
  EXPECT_THAT(chains("listeners:\n"
                     "  - { name: a, address: 127.0.0.1:8080, filters: [rate_limit], "
                     "rate_limits: [r] }\n"
                     "  - { name: b, address: 127.0.0.1:8081, filters: [rate_limit] }\n"
                     "rate_limits: [{ name: r, key: [client_ip], rate: 1/s }]\n"),
              ElementsAre(ElementsAre("sanitize", "rate_limit", "router"),
                          ElementsAre("sanitize", "rate_limit", "router")));
}

TEST_F(RegistryTest, EachChainMatchesOnlyItsListenersRoutes) {
  config::LoadResult r = config::load_string(
      "listeners:\n"
      "  - { name: plain, address: 127.0.0.1:8080 }\n"
      "  - { name: secure, address: 127.0.0.1:8443 }\n"
      "routes:\n"
      "  - { name: to-https, match: { listeners: [plain] }, redirect: { scheme: https } }\n"
      "  - { name: site, respond: {} }\n",
      "t.yaml");
  ASSERT_TRUE(r.config);
  auto routes = router::RouteTable::build(*r.config);
  std::vector<std::vector<std::string>> names;
  for (const auto& l : r.config->listeners) {
    std::string error;
    auto chain = FilterChainFactory::build(*r.config, l, routes, runtime_, &error);
    ASSERT_TRUE(chain) << error;
    names.emplace_back();
    for (const auto& route : chain->routes()->routes()) names.back().push_back(route.route->name);
  }
  EXPECT_THAT(names, ElementsAre(ElementsAre("to-https", "site"), ElementsAre("site")));
}

TEST_F(RegistryTest, TrustedProxiesAreCompiledIntoTheChain) {
  config::LoadResult r = config::load_string(
      "listeners: [{ name: a, address: 127.0.0.1:8080, trusted_proxies: [10.0.0.0/8] }]\n",
      "t.yaml");
  ASSERT_TRUE(r.config);
  std::string error;
  auto chain =
      FilterChainFactory::build(*r.config, r.config->listeners[0], nullptr, runtime_, &error);
  ASSERT_TRUE(chain) << error;
  EXPECT_TRUE(chain->trusted_proxies().contains(boost::asio::ip::make_address("10.2.3.4")));
  EXPECT_FALSE(chain->trusted_proxies().contains(boost::asio::ip::make_address("11.2.3.4")));
}

}  // namespace
}  // namespace sluice
