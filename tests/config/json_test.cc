// Config::to_json(): valid JSON, every field present, and it loads back to the same config.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cctype>
#include <string>

#include "config/config.h"

namespace sluice::config {
namespace {

using ::testing::HasSubstr;

// A strict RFC 8259 syntax checker, enough to prove the output is well-formed JSON.
class JsonChecker {
 public:
  explicit JsonChecker(std::string_view s) : s_(s) {}
  bool valid() {
    ws();
    if (!value()) return false;
    ws();
    return i_ == s_.size();
  }

 private:
  bool value() {
    if (i_ >= s_.size()) return false;
    switch (s_[i_]) {
      case '{':
        return object();
      case '[':
        return array();
      case '"':
        return string();
      case 't':
        return literal("true");
      case 'f':
        return literal("false");
      case 'n':
        return literal("null");
      default:
        return number();
    }
  }
  bool object() {
    ++i_;
    ws();
    if (eat('}')) return true;
    do {
      ws();
      if (i_ >= s_.size() || s_[i_] != '"' || !string()) return false;
      ws();
      if (!eat(':')) return false;
      ws();
      if (!value()) return false;
      ws();
    } while (eat(','));
    return eat('}');
  }
  bool array() {
    ++i_;
    ws();
    if (eat(']')) return true;
    do {
      ws();
      if (!value()) return false;
      ws();
    } while (eat(','));
    return eat(']');
  }
  bool string() {
    ++i_;
    while (i_ < s_.size()) {
      const unsigned char c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c != '\\') continue;
      if (i_ >= s_.size()) return false;
      const char e = s_[i_++];
      if (e == 'u') {
        for (int k = 0; k < 4; ++k, ++i_) {
          if (i_ >= s_.size() || !isxdigit(static_cast<unsigned char>(s_[i_]))) return false;
        }
      } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
        return false;
      }
    }
    return false;
  }
  bool number() {
    const size_t start = i_;
    eat('-');
    if (eat('0')) {
    } else if (!digits()) {
      return false;
    }
    if (eat('.') && !digits()) return false;
    if ((eat('e') || eat('E')) && (eat('+') || eat('-') || true) && !digits()) return false;
    return i_ > start;
  }
  bool digits() {
    const size_t start = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    return i_ > start;
  }
  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }
  bool eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r'))
      ++i_;
  }

  std::string_view s_;
  size_t i_ = 0;
};

TEST(JsonChecker, RejectsMalformed) {
  for (const char* bad :
       {"", "{", "{\"a\" 1}", "[1,]", "\"a\nb\"", "\"\\x\"", "01", "{a:1}", "[1] x", "tru"}) {
    EXPECT_FALSE(JsonChecker(bad).valid()) << bad;
  }
  EXPECT_TRUE(JsonChecker(R"({"a": [1, -2.5e3, true, null, "x\u00e9\n"], "b": {}})").valid());
}

const std::string kFull = SLUICE_SOURCE_DIR "/tests/config/testdata/full.yaml";

std::string without_source_line(std::string json) {
  const size_t start = json.find("\n  \"source\": ");
  const size_t end = json.find('\n', start + 1);
  json.erase(start, end - start);
  return json;
}

TEST(ToJson, FullConfigIsValidJsonWithEveryField) {
  const LoadResult r = load_file(kFull);
  ASSERT_TRUE(r.config);
  const std::string json = r.config->to_json();
  EXPECT_TRUE(JsonChecker(json).valid()) << json;
  for (const char* expected : {
           R"("workers": 4)",
           R"("drain_timeout": "30s")",
           R"("address": "127.0.0.1:9902")",
           R"("path": "/var/log/sluice/access.log")",
           R"("format": "json")",
           R"("address": "0.0.0.0:8080")",
           R"("max_connections": 5000)",
           R"("max_request_header_bytes": 32768)",
           R"("max_request_headers": 50)",
           R"("max_request_body_bytes": 1000000)",
           R"("max_uri_bytes": 4096)",
           R"("header_timeout": "5s")",
           R"("idle_timeout": "2m")",
           R"("filters": [])",
           R"("address": "[::1]:8081")",
           R"("prefix": "/v1/")",
           R"("exact": "/healthz")",
           R"("regex": "^/a.*")",
           R"("name": "x-env")",
           R"("exact": "prod")",
           R"("present": true)",
           R"("cluster": "api")",
           R"("timeout": "250ms")",
           R"("timeout": "15s")",
           R"("body": "ok\n")",
           R"("Content-Type": "text/plain")",
           R"("status": 308)",
           R"("scheme": "https")",
           R"("host": "www.example.com")",
           R"("port": 8443)",
           R"("path": "/new")",
           R"("strip_query": true)",
           R"("address": "[::1]:9003")",
           R"("weight": 3)",
           R"("lb": "round_robin")",
           R"("connect_timeout": "1s")",
           R"("idle_timeout": "1h")",
           R"("max_idle_connections": 8)",
       }) {
    EXPECT_THAT(json, HasSubstr(expected));
  }
  EXPECT_THAT(json, HasSubstr("\"source\": \"" + kFull + "\""));
  EXPECT_THAT(json, HasSubstr("\"rewrite\": {\n        \"prefix\": \"/\"\n      }"));
}

TEST(ToJson, DefaultConfig) {
  const Config c;
  const std::string json = c.to_json();
  EXPECT_TRUE(JsonChecker(json).valid()) << json;
  EXPECT_THAT(json, HasSubstr(R"("workers": "auto")"));
  EXPECT_THAT(json, HasSubstr(R"("drain_timeout": "15s")"));
  EXPECT_THAT(json, HasSubstr(R"("listeners": [])"));
  EXPECT_THAT(json, HasSubstr(R"("routes": [])"));
  EXPECT_THAT(json, HasSubstr(R"("clusters": [])"));
}

TEST(ToJson, EscapesHostileStrings) {
  Config c;
  c.source = "a\"b\\c\n\x01\xff";
  Route r;
  r.name = "r";
  r.respond = Respond{200, "line1\r\nline2\t\"q\"", {{"x-a", "\x7f"}}};
  c.routes.push_back(r);
  const std::string json = c.to_json();
  EXPECT_TRUE(JsonChecker(json).valid()) << json;
  EXPECT_THAT(json, HasSubstr(R"("source": "a\"b\\c\n\u0001\ufffd")"));
  EXPECT_THAT(json, HasSubstr(R"("body": "line1\r\nline2\t\"q\"")"));
}

TEST(ToJson, LoadsBackToTheSameConfig) {
  // JSON is YAML, so the output is itself a config (once the informational "source" is gone).
  const LoadResult first = load_file(kFull);
  ASSERT_TRUE(first.config);
  const std::string json = without_source_line(first.config->to_json());
  const LoadResult second = load_string(json, "dump.json");
  ASSERT_TRUE(second.config) << (second.errors.empty() ? "" : second.errors[0].str()) << json;
  EXPECT_EQ(without_source_line(second.config->to_json()), json);
}

}  // namespace
}  // namespace sluice::config

namespace sluice::config {
namespace {

TEST(ToJson, ClusterProtocolSurvivesTheRoundTrip) {
  // An h2 cluster used to come back as http1: /config left the protocol out.
  const LoadResult first = load_file(kFull);
  ASSERT_TRUE(first.config);
  const std::string json = first.config->to_json();
  EXPECT_THAT(json, HasSubstr("\"protocol\": \"h2\""));
  EXPECT_THAT(json, HasSubstr("\"max_concurrent_streams\": 50"));
  const LoadResult second = load_string(without_source_line(json), "dump.json");
  ASSERT_TRUE(second.config);
  const Cluster* h2 = nullptr;
  for (const Cluster& c : second.config->clusters) {
    if (c.protocol == Cluster::Protocol::h2) h2 = &c;
  }
  ASSERT_NE(h2, nullptr);
  EXPECT_EQ(h2->max_concurrent_streams, 50u);
}

}  // namespace
}  // namespace sluice::config
