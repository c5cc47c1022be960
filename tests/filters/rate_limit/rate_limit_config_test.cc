// The rate_limit filter's config section: parsed through the registry by the normal loader,
// with FILE:LINE:COL errors and suggestions for every mistake.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "filters/rate_limit/rate_limit_config.h"
#include "filters/registry.h"

namespace sluice::rate_limit {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class RateLimitConfigTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { register_builtin_filters(); }

  static std::vector<std::string> errors_of(const std::string& yaml) {
    const config::LoadResult r = config::load_string(yaml, "t.yaml");
    std::vector<std::string> out;
    for (const auto& d : r.errors) out.push_back(d.str());
    EXPECT_EQ(r.config == nullptr, !r.errors.empty());
    return out;
  }
  static const RateLimitConfig& parsed(const std::string& yaml) {
    static config::ConfigPtr keep;
    const config::LoadResult r = config::load_string(yaml, "t.yaml");
    for (const auto& d : r.errors) ADD_FAILURE() << d.str();
    keep = r.config;
    return static_cast<const RateLimitConfig&>(*keep->filter_config("rate_limit"));
  }
};

constexpr const char* kBase =
    "clusters: [{ name: api, endpoints: [127.0.0.1:9000] }]\n"
    "listeners:\n"
    "  - { name: public, address: 127.0.0.1:8080, rate_limits: [per_ip] }\n"
    "routes:\n"
    "  - { name: api, match: { path: { prefix: /api/ } }, cluster: api, rate_limits: [per_key] }\n";

TEST_F(RateLimitConfigTest, TheShapeOfTheIssue) {
  const RateLimitConfig& c = parsed(std::string(kBase) +
                                    "rate_limits:\n"
                                    "  - name: per_key\n"
                                    "    key: [header:X-Api-Key]\n"
                                    "    rate: 100/s\n"
                                    "    burst: 100\n"
                                    "    scope: global\n"
                                    "    mode: shadow\n"
                                    "    status: 503\n"
                                    "    headers: true\n"
                                    "    max_keys: 1000\n"
                                    "  - { name: per_ip, key: [client_ip, method, query:page, "
                                    "route, host, path], rate: 6000/min }\n"
                                    "redis: { address: 127.0.0.1:6379, timeout: 20ms, on_error: "
                                    "deny }\n");
  ASSERT_EQ(c.rules.size(), 2u);
  const Rule& k = c.rules[0];
  EXPECT_EQ(k.name, "per_key");
  ASSERT_EQ(k.key.size(), 1u);
  EXPECT_EQ(k.key[0].kind, KeyPart::Kind::header);
  EXPECT_EQ(k.key[0].name, "x-api-key");  // header names are case-insensitive
  EXPECT_EQ(k.count, 100u);
  EXPECT_EQ(k.period, std::chrono::seconds(1));
  EXPECT_EQ(k.scope, Rule::Scope::global);
  EXPECT_EQ(k.mode, Rule::Mode::shadow);
  EXPECT_EQ(k.status, 503u);
  EXPECT_TRUE(k.headers);
  EXPECT_EQ(k.max_keys, 1000u);
  const Rule& ip = c.rules[1];
  EXPECT_EQ(ip.count, 6000u);
  EXPECT_EQ(ip.period, std::chrono::minutes(1));
  EXPECT_EQ(ip.burst, 6000u);  // default: N of the rate
  EXPECT_EQ(ip.scope, Rule::Scope::local);
  EXPECT_EQ(ip.mode, Rule::Mode::enforce);
  EXPECT_EQ(ip.status, 429u);
  EXPECT_FALSE(ip.headers);
  EXPECT_EQ(ip.max_keys, 100000u);
  EXPECT_EQ(ip.key.size(), 6u);
  EXPECT_EQ(ip.key[2].str(), "query:page");
  ASSERT_TRUE(c.redis);
  EXPECT_EQ(c.redis->address.str(), "127.0.0.1:6379");
  EXPECT_EQ(c.redis->timeout, std::chrono::milliseconds(20));
  EXPECT_FALSE(c.redis->allow_on_error);
  EXPECT_THAT(c.listener_rules.at("public"), ElementsAre(1u));
  EXPECT_THAT(c.route_rules.at("api"), ElementsAre(0u));
}

TEST_F(RateLimitConfigTest, RateSyntax) {
  EXPECT_EQ(parse_rate("5/h")->second, std::chrono::hours(1));
  EXPECT_EQ(parse_rate("1/min")->first, 1u);
  EXPECT_FALSE(parse_rate("0/s"));
  EXPECT_FALSE(parse_rate("100"));
  EXPECT_FALSE(parse_rate("100/sec"));
  EXPECT_FALSE(parse_rate("-1/s"));
  EXPECT_FALSE(parse_rate("1.5/s"));
}

TEST_F(RateLimitConfigTest, EveryMistakeWithItsPosition) {
  EXPECT_THAT(
      errors_of(std::string(kBase) +
                "rate_limits:\n"
                "  - { name: per_ip, key: [client_ip], rate: 100 per second }\n"
                "  - { name: per_key, key: [heder:x], rate: 10/s, burst: 0 }\n"
                "  - { name: other, key: [client_ipp, header:], rate: 1/s, scope: global, "
                "mode: dry }\n"),
      ElementsAre("t.yaml:7:45: rate: expected N/s, N/min or N/h with N from 1 to 1000000000 (e.g. "
                  "100/s or 6000/min), got '100 per second'",
                  "t.yaml:8:28: key: unknown key part 'heder:x' (did you mean 'header:x'?)",
                  "t.yaml:8:57: burst: must be at least 1 (a burst of 0 admits nothing)",
                  // Reported although the rule has other mistakes.
                  HasSubstr("t.yaml:9:5: scope: global needs a Redis server"),
                  "t.yaml:9:26: key: unknown key part 'client_ipp' (did you mean 'client_ip'?)",
                  // YAML reads "header:" in a flow list as a map.
                  "t.yaml:9:38: key: expected a string, got a map",
                  "t.yaml:9:80: mode: unknown value 'dry' (known: enforce, shadow)"));
}

TEST_F(RateLimitConfigTest, UnknownRuleNamesAreErrorsWithSuggestions) {
  EXPECT_THAT(
      errors_of(std::string(kBase) + "rate_limits:\n"
                                     "  - { name: per_ipp, key: [client_ip], rate: 1/s }\n"
                                     "  - { name: per_kye, key: [client_ip], rate: 1/s }\n"),
      ElementsAre("t.yaml:3:60: rate_limits: unknown rate limit 'per_ip' (did you mean "
                  "'per_ipp'?)",
                  "t.yaml:5:82: rate_limits: unknown rate limit 'per_key' (did you mean "
                  "'per_kye'?)"));
}

TEST_F(RateLimitConfigTest, GlobalScopeNeedsRedis) {
  EXPECT_THAT(errors_of(std::string(kBase) +
                        "rate_limits:\n"
                        "  - { name: per_ip, key: [client_ip], rate: 1/s }\n"
                        "  - { name: per_key, key: [client_ip], rate: 1/s, scope: global }\n"),
              ElementsAre(HasSubstr("t.yaml:8:5: scope: global needs a Redis server")));
}

TEST_F(RateLimitConfigTest, RedisMistakes) {
  EXPECT_THAT(errors_of("redis: { address: redis.internal:6379, timeout: 0ms, on_error: "
                        "ignore, db: 2 }\n"),
              ElementsAre("t.yaml:1:19: address: Redis is reached by IP address, not by name "
                          "(workers do not resolve names): got 'redis.internal'",
                          "t.yaml:1:49: timeout: must be greater than 0",
                          "t.yaml:1:64: on_error: unknown value 'ignore' (known: allow, deny)",
                          "t.yaml:1:72: unknown key 'db' in redis"));
}

TEST_F(RateLimitConfigTest, DuplicateRuleNames) {
  EXPECT_THAT(errors_of("rate_limits:\n"
                        "  - { name: a, key: [client_ip], rate: 1/s }\n"
                        "  - { name: a, key: [client_ip], rate: 2/s }\n"),
              ElementsAre("t.yaml:3:13: duplicate rate limit name 'a' (first defined at line 2)"));
}

TEST_F(RateLimitConfigTest, TrustedProxiesAreValidatedCidrs) {
  EXPECT_THAT(errors_of("listeners:\n"
                        "  - name: a\n"
                        "    address: 127.0.0.1:8080\n"
                        "    trusted_proxies: [10.0.0.0/8, 10.0.0.1/8, 300.0.0.0/8, ::/200]\n"),
              ElementsAre(HasSubstr("t.yaml:4:35: trusted_proxies: '10.0.0.1/8' has host bits "
                                    "set (did you mean 10.0.0.0/8?)"),
                          HasSubstr("t.yaml:4:47: trusted_proxies: '300.0.0.0/8' is not an IP"),
                          HasSubstr("t.yaml:4:60: trusted_proxies: '::/200': prefix length")));
}

TEST_F(RateLimitConfigTest, UnknownFilterNamesComeFromTheRegistry) {
  EXPECT_THAT(errors_of("listeners:\n"
                        "  - { name: a, address: 127.0.0.1:8080, filters: [rate_limt] }\n"),
              ElementsAre("t.yaml:2:51: unknown filter 'rate_limt' (did you mean 'rate_limit'?)"));
}

TEST_F(RateLimitConfigTest, StateKeyChangesWithEverySettingThatShapesCounts) {
  const RateLimitConfig& c = parsed(
      "rate_limits:\n"
      "  - { name: a, key: [client_ip], rate: 10/s }\n"
      "  - { name: b, key: [client_ip], rate: 10/s, mode: shadow, headers: true, status: 503 }\n"
      "  - { name: c, key: [client_ip], rate: 10/s, burst: 11 }\n"
      "  - { name: d, key: [host], rate: 10/s }\n");
  std::string a = c.rules[0].state_key();
  EXPECT_EQ(c.rules[1].state_key().substr(12), a.substr(12));  // mode/status/headers: kept
  EXPECT_NE(c.rules[2].state_key().substr(12), a.substr(12));
  EXPECT_NE(c.rules[3].state_key().substr(12), a.substr(12));
}

}  // namespace
}  // namespace sluice::rate_limit

namespace sluice::rate_limit {
namespace {

TEST_F(RateLimitConfigTest, ActiveConfigJsonLoadsBackWithTheSameRules) {
  const std::string yaml = std::string(kBase) +
                           "rate_limits:\n"
                           "  - { name: per_key, key: [header:x-api-key, query:v], rate: 5/min, "
                           "burst: 7, scope: global, mode: shadow, headers: true }\n"
                           "  - { name: per_ip, key: [client_ip], rate: 100/s }\n"
                           "redis: { address: 127.0.0.1:6379, on_error: deny }\n";
  const config::LoadResult first = config::load_string(yaml, "t.yaml");
  ASSERT_TRUE(first.config);
  std::string json = first.config->to_json();
  json.erase(json.find("\n  \"source\": "),
             json.find('\n', json.find("\"source\"")) - json.find("\n  \"source\": "));
  EXPECT_THAT(json, HasSubstr("\"rate_limits\": [\"per_ip\"]"));   // the listener's
  EXPECT_THAT(json, HasSubstr("\"rate_limits\": [\"per_key\"]"));  // the route's
  const config::LoadResult second = config::load_string(json, "dump.json");
  ASSERT_TRUE(second.config) << (second.errors.empty() ? "" : second.errors[0].str()) << json;
  std::string again = second.config->to_json();
  again.erase(again.find("\n  \"source\": "),
              again.find('\n', again.find("\"source\"")) - again.find("\n  \"source\": "));
  EXPECT_EQ(again, json);
}

}  // namespace
}  // namespace sluice::rate_limit
