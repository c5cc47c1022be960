// The sanitize filter's config: safe defaults without a section, top-level settings, a
// listener's own keys over them, deny rules with compiled regexes, and FILE:LINE:COL errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "filters/sanitize/sanitize_config.h"
#include "tests/filters/filter_config_test.h"

namespace sluice::sanitize {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class SanitizeConfigTest : public FilterConfigTest<SanitizeConfig> {
 protected:
  const SanitizeConfig& parsed(const std::string& yaml) {
    return FilterConfigTest::parsed(yaml, "sanitize");
  }
};

constexpr const char* kBase =
    "clusters: [{ name: api, endpoints: [127.0.0.1:9000] }]\n"
    "listeners:\n"
    "  - { name: public, address: 127.0.0.1:8080 }\n"
    "routes:\n"
    "  - { name: api, match: { path: { prefix: / } }, cluster: api }\n";

TEST_F(SanitizeConfigTest, SafeDefaultsWithoutASection) {
  const SanitizeConfig& c = parsed(kBase);
  const Settings& s = c.for_listener("public");
  EXPECT_TRUE(s.enabled);
  EXPECT_TRUE(s.path.normalize_path);
  EXPECT_TRUE(s.path.merge_slashes);
  EXPECT_EQ(s.path.allowed_encoded, 0);
  EXPECT_EQ(s.underscores_in_headers, Settings::Underscores::drop);
  EXPECT_TRUE(s.deny.empty());
  EXPECT_TRUE(c.root_json().empty());  // /config writes only what the file has
  EXPECT_THAT(chain_of(0), ElementsAre("sanitize", "router"));
}

TEST_F(SanitizeConfigTest, RunsBeforeListedFilters) {
  parsed(
      "clusters: [{ name: api, endpoints: [127.0.0.1:9000] }]\n"
      "rate_limits: [{ name: per_ip, key: [path], rate: 5/s }]\n"
      "listeners:\n"
      "  - { name: public, address: 127.0.0.1:8080, filters: [rate_limit] }\n"
      "  - { name: raw, address: 127.0.0.1:8081, sanitize: { enabled: false }, "
      "rate_limits: [per_ip] }\n"
      "  - { name: ordered, address: 127.0.0.1:8082, filters: [rate_limit, sanitize] }\n"
      "routes: [{ name: all, match: { path: { prefix: / } }, cluster: api }]\n");
  EXPECT_THAT(chain_of(0), ElementsAre("sanitize", "rate_limit", "router"));
  EXPECT_THAT(chain_of(1), ElementsAre("rate_limit", "router"));
  // Listed explicitly: the listener's order stands.
  EXPECT_THAT(chain_of(2), ElementsAre("rate_limit", "sanitize", "router"));
}

TEST_F(SanitizeConfigTest, TopLevelAndListenerOverrides) {
  const SanitizeConfig& c = parsed(
      "clusters: [{ name: api, endpoints: [127.0.0.1:9000] }]\n"
      "listeners:\n"
      "  - { name: public, address: 127.0.0.1:8080 }\n"
      "  - name: legacy\n"
      "    address: 127.0.0.1:8081\n"
      "    sanitize: { escaped_slashes: decode, underscores_in_headers: allow, deny: [] }\n"
      "routes: [{ name: all, match: { path: { prefix: / } }, cluster: api }]\n"
      "sanitize:\n"
      "  merge_slashes: false\n"
      "  encoded_characters: { allow: ['%3b', '%5C'] }\n"
      "  underscores_in_headers: reject\n"
      "  deny:\n"
      "    - { name: sqli, query_regex: '(?i)union\\s+select', status: 403 }\n"
      "    - { name: admin, path_regex: '^/admin', method: [POST, DELETE], body: no }\n"
      "    - { name: bot, header: User-Agent, regex: 'sqlmap', status: 429 }\n");
  const Settings& top = c.for_listener("public");
  EXPECT_FALSE(top.path.merge_slashes);
  EXPECT_TRUE(top.path.allows(EncodedChar::semicolon));
  EXPECT_TRUE(top.path.allows(EncodedChar::backslash));
  EXPECT_FALSE(top.path.allows(EncodedChar::slash));
  EXPECT_EQ(top.underscores_in_headers, Settings::Underscores::reject);
  ASSERT_EQ(top.deny.size(), 3u);
  EXPECT_EQ(top.deny[0].reason, "deny:sqli");
  EXPECT_EQ(top.deny[0].status, 403u);
  EXPECT_THAT(top.deny[1].methods, ElementsAre("POST", "DELETE"));
  EXPECT_EQ(top.deny[1].body, "no");
  EXPECT_EQ(top.deny[2].header, "user-agent");
  EXPECT_EQ(top.deny[2].status, 429u);

  const Settings& legacy = c.for_listener("legacy");
  EXPECT_FALSE(legacy.path.merge_slashes);  // from the top level
  EXPECT_TRUE(legacy.path.allows(EncodedChar::slash));
  EXPECT_EQ(legacy.path.escaped_slashes, PathOptions::EscapedSlashes::decode);
  EXPECT_EQ(legacy.underscores_in_headers, Settings::Underscores::allow);
  EXPECT_TRUE(legacy.deny.empty());
}

TEST_F(SanitizeConfigTest, ConfigJsonLoadsBackTheSame) {
  const SanitizeConfig& c =
      parsed(std::string(kBase) +
             "sanitize:\n"
             "  escaped_slashes: keep\n"
             "  encoded_characters: { allow: ['%3B'] }\n"
             "  deny: [{ name: q, query_regex: 'a\"b', header: x-a, regex: '.', method: GET }]\n");
  const auto members = c.root_json();
  ASSERT_EQ(members.size(), 1u);
  const std::string yaml = std::string(kBase) + "sanitize: " + members[0].second + "\n";
  auto config = config_;
  const SanitizeConfig& back = parsed(yaml);
  EXPECT_EQ(back.root_json(), members);
  const Settings& s = back.for_listener("public");
  EXPECT_TRUE(s.path.allows(EncodedChar::slash));
  EXPECT_TRUE(s.path.allows(EncodedChar::semicolon));
  ASSERT_EQ(s.deny.size(), 1u);
  EXPECT_EQ(s.deny[0].query_regex->pattern(), "a\"b");
}

TEST_F(SanitizeConfigTest, ErrorsHavePositions) {
  EXPECT_THAT(errors_of(std::string(kBase) + "sanitize: { normalise_path: false }\n"),
              ElementsAre(HasSubstr("t.yaml:6:13: ")));
  EXPECT_THAT(errors_of(std::string(kBase) + "sanitize: { normalise_path: false }\n")[0],
              HasSubstr("did you mean 'normalize_path'"));
  EXPECT_THAT(errors_of(std::string(kBase) + "sanitize: { escaped_slashes: decoded }\n"),
              ElementsAre(AllOf(HasSubstr("t.yaml:6:30: "), HasSubstr("'decode'"))));
  EXPECT_THAT(
      errors_of(std::string(kBase) + "sanitize: { encoded_characters: { allow: ['%41'] } }\n"),
      ElementsAre(AllOf(HasSubstr("t.yaml:6:43: "), HasSubstr("'%41' is not one of"))));
  EXPECT_THAT(errors_of(std::string(kBase) +
                        "sanitize: { escaped_slashes: reject, encoded_characters: { allow: "
                        "['%2F'] } }\n"),
              ElementsAre(HasSubstr("contradicts")));
  EXPECT_THAT(errors_of(std::string(kBase) + "sanitize: { underscores_in_headers: no }\n"),
              ElementsAre(HasSubstr("unknown value 'no'")));
  EXPECT_THAT(
      errors_of(std::string(kBase) + "sanitize: { deny: [{ name: a, path_regex: '(' }] }\n"),
      ElementsAre(AllOf(HasSubstr("t.yaml:6:43: "), HasSubstr("invalid regex"))));
  EXPECT_THAT(errors_of(std::string(kBase) + "sanitize: { deny: [{ name: a }] }\n"),
              ElementsAre(HasSubstr("matches every request")));
  EXPECT_THAT(errors_of(std::string(kBase) + "sanitize: { deny: [{ name: a, header: x-a }] }\n"),
              ElementsAre(HasSubstr("needs 'regex'")));
  EXPECT_THAT(errors_of(std::string(kBase) + "sanitize: { deny: [{ name: a, regex: x }] }\n"),
              ElementsAre(HasSubstr("add 'header: NAME'")));
  EXPECT_THAT(errors_of(std::string(kBase) +
                        "sanitize: { deny: [{ name: a, method: GET, status: 200 }] }\n"),
              ElementsAre(HasSubstr("status")));
  EXPECT_THAT(errors_of(std::string(kBase) +
                        "sanitize: { deny: [{ name: a, method: GET }, { name: a, method: PUT }] "
                        "}\n"),
              ElementsAre(HasSubstr("'a'")));
}

}  // namespace
}  // namespace sluice::sanitize
