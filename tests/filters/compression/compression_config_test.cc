// The compression filter's config: defaults of `compression: {}`, every key, FILE:LINE:COL
// errors, which listeners get the filter in their chain, and the JSON dump loading back.
#include "filters/compression/compression_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/config/diagnostics.h"
#include "tests/filters/filter_config_test.h"

namespace sluice::compression {
namespace {

using config::errors_of;
using ::testing::Contains;
using ::testing::ElementsAre;

class CompressionConfigTest : public FilterConfigTest<CompressionConfig> {
 protected:
  const CompressionConfig& parsed(const std::string& yaml) {
    return FilterConfigTest::parsed(yaml, "compression");
  }
};

std::string yaml(const std::string& listener_extra, const std::string& route_extra = "") {
  return "clusters: [{ name: api, endpoints: [127.0.0.1:9000] }]\n"
         "listeners:\n"
         "  - { name: web, address: 127.0.0.1:8080" +
         listener_extra +
         " }\n"
         "  - { name: other, address: 127.0.0.1:8081 }\n"
         "routes:\n"
         "  - { name: api, match: { path: { prefix: / } }, cluster: api" +
         route_extra + " }\n";
}

TEST_F(CompressionConfigTest, EmptyBlockGivesDefaults) {
  const CompressionConfig& c = parsed(yaml(", compression: {}"));
  const Settings& s = c.listeners.at("web");
  EXPECT_TRUE(s.enabled);
  EXPECT_EQ(s.min_bytes, 1024u);
  EXPECT_THAT(s.algorithms, ElementsAre(Algorithm::br, Algorithm::zstd, Algorithm::gzip));
  for (const char* t :
       {"text/html", "text/css", "text/plain", "text/javascript", "application/javascript",
        "application/json", "application/xml", "image/svg+xml"}) {
    EXPECT_THAT(s.types, Contains(t));
    EXPECT_TRUE(s.type_matches(t));
  }
  for (const char* t : {"image/png", "image/jpeg", "video/mp4", "application/zip",
                        "application/octet-stream", "font/woff2", "application/grpc"}) {
    EXPECT_FALSE(s.type_matches(t)) << t;
  }
  EXPECT_TRUE(c.routes.empty());
}

TEST_F(CompressionConfigTest, EveryKey) {
  const CompressionConfig& c = parsed(
      yaml(", compression: { types: [Text/HTML, text/*], min_bytes: 4KiB, algorithms: [gzip, br] }",
           ", compression: { enabled: false }"));
  const Settings& s = c.listeners.at("web");
  EXPECT_THAT(s.types, ElementsAre("text/html", "text/*"));
  EXPECT_EQ(s.min_bytes, 4096u);
  EXPECT_THAT(s.algorithms, ElementsAre(Algorithm::gzip, Algorithm::br));
  EXPECT_FALSE(c.routes.at("api").enabled);
}

TEST_F(CompressionConfigTest, ErrorsArePositioned) {
  EXPECT_THAT(errors_of(yaml(", compression: { level: 9 }")),
              ElementsAre("t.yaml:3:58: unknown key 'level' in compression"));
  EXPECT_THAT(errors_of(yaml(", compression: { algorithms: [gzip, lz4, gzip] }")),
              ElementsAre("t.yaml:3:77: algorithm: unknown value 'lz4' (known: br, zstd, gzip)",
                          "t.yaml:3:82: algorithms: 'gzip' is listed twice"));
  EXPECT_THAT(errors_of(yaml(", compression: { types: [html, text/html;charset=utf-8] }")),
              ElementsAre("t.yaml:3:66: types: 'html' is not a media type like 'text/html' or "
                          "'text/*'",
                          "t.yaml:3:72: types: 'text/html;charset=utf-8' has parameters; give "
                          "the media type alone (parameters are ignored when matching)"));
  EXPECT_THAT(errors_of(yaml(", compression: { types: [] }")),
              ElementsAre(::testing::HasSubstr("types: list at least one media type")));
  EXPECT_THAT(errors_of(yaml(", compression: { min_bytes: lots }")),
              ElementsAre(::testing::StartsWith("t.yaml:3:69: min_bytes: invalid size 'lots'")));
  EXPECT_THAT(errors_of(yaml("", ", compression: [gzip]")),
              ElementsAre(::testing::StartsWith("t.yaml:6:")));
}

TEST_F(CompressionConfigTest, InTheChainOnlyWhereABlockApplies) {
  parsed(yaml(""));
  EXPECT_THAT(chain_of(0), ::testing::Not(Contains("compression")));
  parsed(yaml(", compression: {}"));
  EXPECT_THAT(chain_of(0), Contains("compression"));
  EXPECT_THAT(chain_of(1), ::testing::Not(Contains("compression")));
  parsed(yaml(", compression: { enabled: false }"));
  EXPECT_THAT(chain_of(0), ::testing::Not(Contains("compression")));
  // A route's block: on every listener the route can match on.
  parsed(yaml("", ", compression: {}"));
  EXPECT_THAT(chain_of(0), Contains("compression"));
  EXPECT_THAT(chain_of(1), Contains("compression"));
  parsed(
      "clusters: [{ name: api, endpoints: [127.0.0.1:9000] }]\n"
      "listeners: [{ name: web, address: 127.0.0.1:8080 }, { name: other, address: "
      "127.0.0.1:8081 }]\n"
      "routes: [{ name: api, match: { listeners: [other] }, cluster: api, compression: {} }]\n");
  EXPECT_THAT(chain_of(0), ::testing::Not(Contains("compression")));
  EXPECT_THAT(chain_of(1), Contains("compression"));
  parsed(yaml("", ", compression: { enabled: false }"));
  EXPECT_THAT(chain_of(0), ::testing::Not(Contains("compression")));
}

TEST_F(CompressionConfigTest, JsonDumpLoadsBackAsTheSameSettings) {
  parsed(
      yaml(", compression: { types: [text/*, application/json], min_bytes: 10, algorithms: "
           "[zstd] }",
           ", compression: { enabled: false }"));
  // GET /config's answer without `source`, as an operator would save it.
  auto without_source = [](std::string json) {
    const size_t at = json.find("\"source\"");
    return at == std::string::npos ? json : json.erase(at, json.find('\n', at) + 1 - at);
  };
  const std::string json = without_source(config_->to_json());
  const config::LoadResult again = config::load_string(json, "t.yaml");
  for (const auto& d : again.errors) ADD_FAILURE() << d.str() << "\n" << json;
  ASSERT_TRUE(again.config);
  const auto& c =
      static_cast<const CompressionConfig&>(*again.config->filter_config("compression"));
  const Settings& s = c.listeners.at("web");
  EXPECT_THAT(s.types, ElementsAre("text/*", "application/json"));
  EXPECT_EQ(s.min_bytes, 10u);
  EXPECT_THAT(s.algorithms, ElementsAre(Algorithm::zstd));
  EXPECT_FALSE(c.routes.at("api").enabled);
  EXPECT_EQ(without_source(again.config->to_json()), json);
}

}  // namespace
}  // namespace sluice::compression
