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
           R"("max_connections_per_ip": 20)",
           R"("max_request_header_bytes": 32768)",
           R"("max_request_headers": 50)",
           R"("max_request_body_bytes": 1000000)",
           R"("max_uri_bytes": 4096)",
           R"("header_timeout": "5s")",
           R"("body_timeout": "30s")",
           R"("request_timeout": "2m")",
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
  EXPECT_THAT(json, HasSubstr(R"("retry": {
        "attempts": 3,
        "on": [
          "connect-failure",
          "per-try-timeout",
          "503",
          "502"
        ],
        "per_try_timeout": "100ms",
        "budget_percent": 25,
        "retry_non_idempotent": true
      })"));
  EXPECT_THAT(json, HasSubstr(R"("lb": "ring_hash",
      "hash_on": "header:x-user",
      "health_check": {
        "type": "http",
        "path": "/ready",
        "host": "api.internal",
        "expected_statuses": [
          "200-299",
          404
        ],
        "interval": "2s",
        "timeout": "500ms",
        "jitter": "20%",
        "healthy_threshold": 3,
        "unhealthy_threshold": 4
      },
      "outlier_detection": {
        "consecutive_failures": 7,
        "base_ejection_time": "10s",
        "max_ejection_time": "2m",
        "max_ejection_percent": 30
      },
      "circuit_breakers": {
        "max_connections": 100,
        "max_pending_requests": 50,
        "max_requests": 200
      },
      "panic_threshold": "25%",
      "dns_refresh": "10s",)"));
  // A tcp check shows no http-only keys (they are errors with type tcp); no limits: {}.
  EXPECT_THAT(json, HasSubstr(R"("health_check": {
        "type": "tcp",
        "interval": "5s",
        "timeout": "1s",
        "jitter": "10%",
        "healthy_threshold": 2,
        "unhealthy_threshold": 3
      },
      "circuit_breakers": {},
      "panic_threshold": "50%",
      "dns_refresh": "30s",)"));
  EXPECT_THAT(json, HasSubstr(R"("dns": {
    "servers": [
      "127.0.0.1:5353",
      "[::1]:53",
      "10.0.0.2:53"
    ]
  })"));
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

namespace sluice::config {
namespace {

// Each resilience setting survives /config and back, field by field, including the forms
// full.yaml does not use.
TEST(ToJson, ResilienceSettingsSurviveTheRoundTrip) {
  const LoadResult first = load_string(
      "routes:\n"
      "  - { name: a, cluster: a, retry: {} }\n"
      "  - { name: b, cluster: b, timeout: 3s, retry: { on: [refused-stream, 599], attempts: 1, "
      "budget_percent: 0, per_try_timeout: 3s } }\n"
      "  - { name: c, cluster: a }\n"
      "clusters:\n"
      "  - { name: a, endpoints: [127.0.0.1:1], lb: maglev, health_check: {}, "
      "outlier_detection: {} }\n"
      "  - { name: b, endpoints: [\"[::1]:2\"], lb: ring_hash, hash_on: \"cookie:Sid\", "
      "circuit_breakers: { max_pending_requests: 1 }, panic_threshold: 0%, dns_refresh: 1s, "
      "health_check: { expected_statuses: [204], jitter: 0% } }\n"
      "  - { name: c, endpoints: [127.0.0.1:3], lb: least_request }\n"
      "dns: { servers: [\"[fd00::53]\"] }\n",
      "first.yaml");
  ASSERT_TRUE(first.config) << first.errors[0].str();
  const std::string json = first.config->to_json();
  EXPECT_TRUE(JsonChecker(json).valid()) << json;
  const LoadResult second = load_string(without_source_line(json), "dump.json");
  ASSERT_TRUE(second.config) << (second.errors.empty() ? "" : second.errors[0].str()) << json;
  const Config& a = *first.config;
  const Config& b = *second.config;
  EXPECT_EQ(without_source_line(b.to_json()), without_source_line(json));

  ASSERT_EQ(b.clusters.size(), 3u);
  for (size_t i = 0; i < a.clusters.size(); ++i) {
    const Cluster& x = a.clusters[i];
    const Cluster& y = b.clusters[i];
    EXPECT_EQ(y.lb, x.lb);
    EXPECT_EQ(y.hash_on.has_value(), x.hash_on.has_value()) << x.name;
    if (x.hash_on && y.hash_on) {
      EXPECT_EQ(y.hash_on->kind, x.hash_on->kind);
      EXPECT_EQ(y.hash_on->name, x.hash_on->name);
    }
    EXPECT_EQ(y.health_check, x.health_check) << x.name;
    EXPECT_EQ(y.outlier_detection.has_value(), x.outlier_detection.has_value()) << x.name;
    if (x.outlier_detection && y.outlier_detection) {
      EXPECT_EQ(y.outlier_detection->consecutive_failures,
                x.outlier_detection->consecutive_failures);
      EXPECT_EQ(y.outlier_detection->base_ejection_time, x.outlier_detection->base_ejection_time);
      EXPECT_EQ(y.outlier_detection->max_ejection_time, x.outlier_detection->max_ejection_time);
      EXPECT_EQ(y.outlier_detection->max_ejection_percent,
                x.outlier_detection->max_ejection_percent);
    }
    EXPECT_EQ(y.circuit_breakers.max_connections, x.circuit_breakers.max_connections);
    EXPECT_EQ(y.circuit_breakers.max_pending_requests, x.circuit_breakers.max_pending_requests);
    EXPECT_EQ(y.circuit_breakers.max_requests, x.circuit_breakers.max_requests);
    EXPECT_EQ(y.panic_threshold_percent, x.panic_threshold_percent);
    EXPECT_EQ(y.dns_refresh, x.dns_refresh);
  }
  EXPECT_EQ(b.clusters[1].hash_on->name, "Sid");
  EXPECT_EQ(b.clusters[1].circuit_breakers.max_pending_requests, 1u);
  EXPECT_FALSE(b.clusters[1].circuit_breakers.max_requests);
  EXPECT_EQ(b.clusters[1].panic_threshold_percent, 0u);

  ASSERT_EQ(b.routes.size(), 3u);
  for (size_t i = 0; i < a.routes.size(); ++i) {
    const std::optional<RetryPolicy>& x = a.routes[i].retry;
    const std::optional<RetryPolicy>& y = b.routes[i].retry;
    ASSERT_EQ(y.has_value(), x.has_value()) << a.routes[i].name;
    if (!x) continue;
    EXPECT_EQ(y->attempts, x->attempts);
    EXPECT_EQ(y->on_connect_failure, x->on_connect_failure);
    EXPECT_EQ(y->on_reset, x->on_reset);
    EXPECT_EQ(y->on_refused_stream, x->on_refused_stream);
    EXPECT_EQ(y->on_per_try_timeout, x->on_per_try_timeout);
    EXPECT_EQ(y->on_statuses, x->on_statuses);
    EXPECT_EQ(y->per_try_timeout, x->per_try_timeout);
    EXPECT_EQ(y->budget_percent, x->budget_percent);
    EXPECT_EQ(y->retry_non_idempotent, x->retry_non_idempotent);
  }
  EXPECT_FALSE(b.routes[1].retry->on_connect_failure);
  EXPECT_TRUE(b.routes[1].retry->on_refused_stream);
  EXPECT_EQ(b.routes[1].retry->on_statuses, std::vector<unsigned>{599});

  EXPECT_EQ(b.dns_servers, a.dns_servers);
  ASSERT_EQ(b.dns_servers.size(), 1u);
  EXPECT_EQ(b.dns_servers[0].str(), "[fd00::53]:53");
}

}  // namespace
}  // namespace sluice::config
