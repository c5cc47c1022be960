// Invalid configs: each kind of mistake gives its message at the right FILE:LINE:COL, every
// mistake in a file is reported in one run, and nothing throws.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config.h"
#include "tests/config/diagnostics.h"

namespace sluice::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr const char* kBadDuration = " (expected an integer and a unit: 250ms, 5s, 1m, 1h)";
constexpr const char* kBadSize =
    " (expected bytes, or an integer and a unit: 512, 64KiB, 10MiB, 1GiB, 1KB, 1MB, 1GB)";

TEST(Errors, UnknownKeyWithAndWithoutSuggestion) {
  EXPECT_THAT(errors_of("workers: 2\n"
                        "listners: []\n"
                        "colour: red\n"),
              ElementsAre("t.yaml:2:1: unknown key 'listners' in the top level (did you mean "
                          "'listeners'?)",
                          "t.yaml:3:1: unknown key 'colour' in the top level"));
}

TEST(Errors, UnknownNestedKeys) {
  EXPECT_THAT(
      errors_of("listeners:\n"
                "  - name: a\n"
                "    address: 127.0.0.1:80\n"
                "    limits: { max_conections: 5, header_timout: 1s }\n"
                "routes:\n"
                "  - name: r\n"
                "    clustr: c\n"),
      ElementsAre(
          "t.yaml:4:15: unknown key 'max_conections' in limits (did you mean 'max_connections'?)",
          "t.yaml:4:34: unknown key 'header_timout' in limits (did you mean 'header_timeout'?)",
          "t.yaml:6:5: route 'r' needs one of 'cluster', 'respond' or 'redirect'",
          "t.yaml:7:5: unknown key 'clustr' in route (did you mean 'cluster'?)"));
}

TEST(Errors, DuplicateKey) {
  EXPECT_THAT(
      errors_of("workers: 1\n"
                "workers: 2\n"),
      ElementsAre("t.yaml:2:1: duplicate key 'workers' in the top level (first at line 1)"));
}

TEST(Errors, WrongTypes) {
  EXPECT_THAT(errors_of("listeners: {}\n"
                        "admin: [1]\n"
                        "access_log: { path: [a] }\n"
                        "routes:\n"
                        "  - name: [r]\n"
                        "    respond: { status: 200, headers: [a] }\n"
                        "clusters:\n"
                        "  - 5\n"),
              ElementsAre("t.yaml:1:12: listeners: expected a list, got a map",
                          "t.yaml:2:8: admin: expected a map, got a list",
                          "t.yaml:3:21: path: expected a string, got a list",
                          "t.yaml:5:11: name: expected a string, got a list",
                          "t.yaml:6:38: headers: expected a map, got a list",
                          "t.yaml:8:5: cluster: expected a map, got '5'"));
}

TEST(Errors, TopLevelMustBeAMap) {
  EXPECT_THAT(errors_of("- a\n- b\n"),
              ElementsAre("t.yaml:1:1: config: expected a map, got a list"));
}

TEST(Errors, NullValueIsReportedAtItsKey) {
  EXPECT_THAT(errors_of("listeners:\n"
                        "\n"
                        "routes: []\n"),
              ElementsAre("t.yaml:1:1: listeners: expected a list, got null"));
}

TEST(Errors, Integers) {
  EXPECT_THAT(errors_of("listeners:\n"
                        "  - name: l\n"
                        "    address: 127.0.0.1:80\n"
                        "    limits:\n"
                        "      max_connections: many\n"
                        "      max_request_headers: 0\n"
                        "clusters:\n"
                        "  - name: c\n"
                        "    endpoints: [127.0.0.1:1]\n"
                        "    max_idle_connections: 99999999999999999999\n"),
              ElementsAre("t.yaml:5:24: max_connections: expected an integer, got 'many'",
                          "t.yaml:6:28: max_request_headers: must be from 1 to 10000, got 0",
                          "t.yaml:10:27: max_idle_connections: must be from 0 to 100000, got "
                          "99999999999999999999"));
}

TEST(Errors, Workers) {
  EXPECT_THAT(errors_of("workers: 0\n"),
              ElementsAre("t.yaml:1:10: workers: must be from 1 to 256, got 0"));
  EXPECT_THAT(errors_of("workers: 257\n"),
              ElementsAre("t.yaml:1:10: workers: must be from 1 to 256, got 257"));
  EXPECT_THAT(errors_of("workers: -1\n"),
              ElementsAre("t.yaml:1:10: workers: must be from 1 to 256, got -1"));
  EXPECT_THAT(errors_of("workers: many\n"),
              ElementsAre("t.yaml:1:10: workers: expected 'auto' or an integer from 1 to 256, got "
                          "'many'"));
  EXPECT_THAT(errors_of("workers: [1]\n"),
              ElementsAre("t.yaml:1:10: workers: expected 'auto' or an integer from 1 to 256, got "
                          "a list"));
}

TEST(Errors, Durations) {
  EXPECT_THAT(
      errors_of("drain_timeout: 5\n"
                "clusters:\n"
                "  - name: c\n"
                "    endpoints: [127.0.0.1:1]\n"
                "    connect_timeout: 0s\n"
                "    idle_timeout: 1.5s\n"
                "routes:\n"
                "  - { name: r, cluster: c, timeout: -1s }\n"),
      ElementsAre(std::string("t.yaml:1:16: drain_timeout: invalid duration '5'") + kBadDuration,
                  "t.yaml:5:22: connect_timeout: must be greater than 0",
                  std::string("t.yaml:6:19: idle_timeout: invalid duration '1.5s'") + kBadDuration,
                  std::string("t.yaml:8:37: timeout: invalid duration '-1s'") + kBadDuration));
}

TEST(Errors, ConnectionLimitsAndRequestTimeouts) {
  EXPECT_THAT(
      errors_of("listeners:\n"
                "  - name: l\n"
                "    address: 127.0.0.1:80\n"
                "    limits:\n"
                "      max_connections: 0\n"
                "      max_connections_per_ip: -1\n"
                "      body_timeout: 0s\n"
                "      request_timeout: 30\n"
                "  - name: m\n"
                "    address: 127.0.0.1:81\n"
                "    limits: { max_connections_per_ip: 1000001, body_timeout: soon, "
                "request_timeout: -5s, max_conections_per_ip: 3 }\n"),
      ElementsAre(
          "t.yaml:5:24: max_connections: must be from 1 to 1000000, got 0",
          "t.yaml:6:31: max_connections_per_ip: must be from 0 to 1000000, got -1",
          "t.yaml:7:21: body_timeout: must be greater than 0",
          std::string("t.yaml:8:24: request_timeout: invalid duration '30'") + kBadDuration,
          "t.yaml:11:39: max_connections_per_ip: must be from 0 to 1000000, got 1000001",
          std::string("t.yaml:11:62: body_timeout: invalid duration 'soon'") + kBadDuration,
          std::string("t.yaml:11:85: request_timeout: invalid duration '-5s'") + kBadDuration,
          "t.yaml:11:90: unknown key 'max_conections_per_ip' in limits (did you mean "
          "'max_connections_per_ip'?)"));
}

TEST(Errors, Sizes) {
  EXPECT_THAT(
      errors_of("listeners:\n"
                "  - name: l\n"
                "    address: 127.0.0.1:80\n"
                "    limits:\n"
                "      max_uri_bytes: 8k\n"
                "      max_request_body_bytes: 18446744073709551616\n"
                "      max_request_header_bytes: 16MiB\n"),
      ElementsAre(std::string("t.yaml:5:22: max_uri_bytes: invalid size '8k'") + kBadSize,
                  std::string("t.yaml:6:31: max_request_body_bytes: invalid size "
                              "'18446744073709551616'") +
                      kBadSize,
                  "t.yaml:7:33: max_request_header_bytes: must be from 1 to 8388608 bytes, got "
                  "16MiB"));
}

TEST(Errors, Addresses) {
  EXPECT_THAT(
      errors_of("admin: { address: example.com:9901 }\n"
                "listeners:\n"
                "  - { name: a, address: 127.0.0.1 }\n"
                "  - { name: b, address: \"127.0.0.1:0\" }\n"
                "  - { name: c, address: \"::1:80\" }\n"
                "  - { name: d, address: \"[::1]:70000\" }\n"
                "  - { name: e, address: backend:80 }\n"
                "clusters:\n"
                "  - { name: c, endpoints: [127.0.0.1:0, \"bad host:80\"] }\n"),
      ElementsAre(
          "t.yaml:1:19: address: 'example.com' must be an IP address or 'localhost' (a local "
          "address to bind)",
          "t.yaml:3:25: address: invalid address '127.0.0.1': missing port (expected host:port)",
          "t.yaml:4:25: address: invalid address '127.0.0.1:0': port must be an integer from 1 "
          "to 65535",
          "t.yaml:5:25: address: invalid address '::1:80': IPv6 addresses need brackets, as in "
          "[::1]:8080",
          "t.yaml:6:25: address: invalid address '[::1]:70000': port must be an integer from 1 "
          "to 65535",
          "t.yaml:7:25: address: 'backend' must be an IP address or 'localhost' (a local address "
          "to bind)",
          "t.yaml:9:28: endpoint: invalid address '127.0.0.1:0': port must be an integer from 1 "
          "to 65535",
          "t.yaml:9:41: endpoint: invalid address 'bad host:80': 'bad host' is not an IP address "
          "or host name"));
}

TEST(Errors, UnquotedIpv6GetsAHint) {
  EXPECT_THAT(errors_of("listeners:\n"
                        "  - name: a\n"
                        "    address: [::1]\n"),
              ElementsAre("t.yaml:3:14: address: expected an address, got a list (quote IPv6 "
                          "addresses: \"[::1]:8080\")"));
}

TEST(Errors, DuplicateListenerAddresses) {
  EXPECT_THAT(
      errors_of("listeners:\n"
                "  - { name: a, address: 127.0.0.1:80 }\n"
                "  - { name: b, address: \"[::1]:80\" }\n"
                "  - { name: c, address: \"127.0.0.1:80\" }\n"
                "  - { name: d, address: \"[0:0::1]:80\" }\n"
                "  - { name: e, address: 127.0.0.2:80 }\n"
                "admin: { address: \"[::1]:80\" }\n"),
      ElementsAre("t.yaml:4:25: address: 127.0.0.1:80 is already used by listener 'a' at line 2",
                  "t.yaml:5:25: address: [0:0::1]:80 is already used by listener 'b' at line 3",
                  "t.yaml:7:19: address: [::1]:80 is already used by listener 'b' at line 3"));
}

TEST(Errors, DuplicateNames) {
  EXPECT_THAT(errors_of("listeners:\n"
                        "  - { name: a, address: 127.0.0.1:1 }\n"
                        "  - { name: a, address: 127.0.0.1:2 }\n"
                        "routes:\n"
                        "  - { name: r, respond: {} }\n"
                        "  - { name: r, respond: {} }\n"
                        "clusters:\n"
                        "  - { name: c, endpoints: [127.0.0.1:1] }\n"
                        "  - { name: c, endpoints: [127.0.0.1:1] }\n"),
              ElementsAre("t.yaml:3:13: duplicate listener name 'a' (first defined at line 2)",
                          "t.yaml:6:13: duplicate route name 'r' (first defined at line 5)",
                          "t.yaml:9:13: duplicate cluster name 'c' (first defined at line 8)"));
}

TEST(Errors, NamesMustBePlain) {
  EXPECT_THAT(errors_of("listeners: [{ name: \"a b\", address: 127.0.0.1:80 }]\n"
                        "clusters: [{ name: \"\", endpoints: [127.0.0.1:1] }]\n"),
              ElementsAre("t.yaml:1:21: name: 'a b' may contain only letters, digits, '_', '-' "
                          "and '.'",
                          "t.yaml:2:20: name: must not be empty"));
}

TEST(Errors, MissingRequiredKeysAreReportedAtTheParent) {
  EXPECT_THAT(errors_of("listeners:\n"
                        "  - name: l\n"
                        "  - address: 127.0.0.1:80\n"
                        "  - {}\n"
                        "routes:\n"
                        "  - cluster: c\n"
                        "clusters:\n"
                        "  - endpoints: [127.0.0.1:1]\n"
                        "  - name: c\n"),
              ElementsAre("t.yaml:2:5: listener is missing required key 'address'",
                          "t.yaml:3:5: listener is missing required key 'name'",
                          "t.yaml:4:5: listener is missing required key 'name'",
                          "t.yaml:4:5: listener is missing required key 'address'",
                          "t.yaml:6:5: route is missing required key 'name'",
                          "t.yaml:8:5: cluster is missing required key 'name'",
                          "t.yaml:9:5: cluster is missing required key 'endpoints'"));
}

TEST(Errors, InvalidRegexReportsRe2Error) {
  const std::vector<std::string> errors = errors_of(
      "routes:\n"
      "  - name: r\n"
      "    match:\n"
      "      path: { regex: \"(\" }\n"
      "      headers: [{ name: x, regex: \"a{2,1}\" }]\n"
      "    respond: {}\n");
  EXPECT_THAT(errors, ElementsAre("t.yaml:4:22: regex: invalid regex '(': missing ): (",
                                  "t.yaml:5:35: regex: invalid regex 'a{2,1}': invalid repetition "
                                  "size: {2,1}"));
}

TEST(Errors, UnknownClusterWithSuggestion) {
  EXPECT_THAT(errors_of("routes:\n"
                        "  - name: r\n"
                        "    cluster: apj\n"
                        "  - name: s\n"
                        "    cluster: zzz\n"
                        "clusters:\n"
                        "  - { name: api, endpoints: [127.0.0.1:1] }\n"),
              ElementsAre("t.yaml:3:14: cluster: unknown cluster 'apj' (did you mean 'api'?)",
                          "t.yaml:5:14: cluster: unknown cluster 'zzz'"));
}

TEST(Errors, StatusCodes) {
  EXPECT_THAT(
      errors_of(
          "routes:\n"
          "  - { name: a, match: { path: { exact: /a } }, respond: { status: 99 } }\n"
          "  - { name: b, match: { path: { exact: /b } }, respond: { status: 600 } }\n"
          "  - { name: c, match: { path: { exact: /c } }, redirect: { status: 200, port: 0 } }\n"
          "  - { name: d, match: { path: { exact: /d } }, respond: { status: \"abc\" } }\n"),
      ElementsAre("t.yaml:2:67: status: must be from 100 to 599, got 99",
                  "t.yaml:3:67: status: must be from 100 to 599, got 600",
                  "t.yaml:4:68: status: a redirect status must be 301, 302, 303, 307 or 308, "
                  "got 200",
                  "t.yaml:4:79: port: must be from 1 to 65535, got 0",
                  "t.yaml:5:67: status: expected an integer, got 'abc'"));
}

TEST(Errors, RouteNeedsExactlyOneAction) {
  EXPECT_THAT(errors_of("routes:\n"
                        "  - name: none\n"
                        "    match: { path: { prefix: /x } }\n"
                        "  - name: two\n"
                        "    cluster: c\n"
                        "    respond: { status: 404 }\n"
                        "    redirect: { scheme: https }\n"
                        "clusters: [{ name: c, endpoints: [127.0.0.1:1] }]\n"),
              ElementsAre("t.yaml:2:5: route 'none' needs one of 'cluster', 'respond' or "
                          "'redirect'",
                          "t.yaml:6:5: route 'two' has both 'cluster' and 'respond'; set only "
                          "one of 'cluster', 'respond' or 'redirect'",
                          "t.yaml:7:5: route 'two' has both 'cluster' and 'redirect'; set only "
                          "one of 'cluster', 'respond' or 'redirect'"));
}

TEST(Errors, ClusterEndpoints) {
  EXPECT_THAT(
      errors_of(
          "clusters:\n"
          "  - name: empty\n"
          "    endpoints: []\n"
          "  - name: w\n"
          "    endpoints: [{ address: 127.0.0.1:1, weight: 0 }, { weight: 2 }, 127.0.0.1:1]\n"),
      ElementsAre("t.yaml:3:16: endpoints: a cluster needs at least one endpoint",
                  "t.yaml:5:49: weight: must be from 1 to 10000, got 0",
                  "t.yaml:5:54: endpoint is missing required key 'address'",
                  "t.yaml:5:69: endpoint: 127.0.0.1:1 is listed twice in cluster 'w'"));
}

TEST(Errors, UnknownLbPolicy) {
  EXPECT_THAT(errors_of("clusters:\n"
                        "  - name: a\n"
                        "    endpoints: [127.0.0.1:1]\n"
                        "    lb: round_robbin\n"
                        "  - name: b\n"
                        "    endpoints: [127.0.0.1:1]\n"
                        "    lb: fastest\n"),
              ElementsAre("t.yaml:4:9: lb: unknown load balancing policy 'round_robbin' (did you "
                          "mean 'round_robin'?)",
                          "t.yaml:7:9: lb: unknown load balancing policy 'fastest' (known: "
                          "round_robin, least_request, random, ring_hash, maglev)"));
}

TEST(Errors, HashOn) {
  EXPECT_THAT(
      errors_of("clusters:\n"
                "  - { name: a, endpoints: [127.0.0.1:1], hash_on: client_ip }\n"
                "  - { name: b, endpoints: [127.0.0.1:1], lb: random, hash_on: path }\n"
                "  - name: c\n"
                "    endpoints: [127.0.0.1:1]\n"
                "    lb: ring_hash\n"
                "    hash_on: \"header:\"\n"
                "  - { name: d, endpoints: [127.0.0.1:1], lb: maglev, hash_on: \"heder:x-user\" }\n"
                "  - { name: e, endpoints: [127.0.0.1:1], lb: maglev, hash_on: clientip }\n"
                "  - { name: f, endpoints: [127.0.0.1:1], lb: maglev, hash_on: ip }\n"
                "  - { name: g, endpoints: [127.0.0.1:1], lb: maglev, hash_on: \"cookie:a b\" }\n"
                "  - { name: h, endpoints: [127.0.0.1:1], lb: magleb, hash_on: path }\n"),
      ElementsAre(
          "t.yaml:2:42: hash_on: applies only to lb: ring_hash or maglev (this cluster's lb is "
          "'round_robin')",
          "t.yaml:3:54: hash_on: applies only to lb: ring_hash or maglev (this cluster's lb is "
          "'random')",
          "t.yaml:7:14: hash_on: 'header:' needs a header name after ':' (e.g. header:x-user-id)",
          "t.yaml:8:63: hash_on: unknown value 'heder:x-user' (did you mean 'header:x-user'?)",
          "t.yaml:9:63: hash_on: unknown value 'clientip' (did you mean 'client_ip'?)",
          "t.yaml:10:63: hash_on: unknown value 'ip' (known: client_ip, path, header:NAME, "
          "cookie:NAME)",
          "t.yaml:11:63: hash_on: 'a b' is not a valid cookie name",
          "t.yaml:12:46: lb: unknown load balancing policy 'magleb' (did you mean 'maglev'?)"));
}

TEST(Errors, HealthCheck) {
  EXPECT_THAT(
      errors_of("clusters:\n"
                "  - name: a\n"
                "    endpoints: [127.0.0.1:1]\n"
                "    health_check:\n"
                "      type: htp\n"
                "      path: healthz\n"
                "      host: \"a b\"\n"
                "      expected_statuses: [99, 200-100, \"200-700\", ok, [1]]\n"
                "      interval: 0s\n"
                "      timeout: 1.5s\n"
                "      jitter: 10\n"
                "      healthy_threshold: 0\n"
                "      unhealthy_threshold: 101\n"
                "      intervall: 5s\n"
                "  - name: b\n"
                "    endpoints: [127.0.0.1:1]\n"
                "    health_check: { interval: 2s, timeout: 3s, jitter: 150%, path: \"/a b\" }\n"
                "  - name: c\n"
                "    endpoints: [127.0.0.1:1]\n"
                "    health_check: { interval: 500ms, expected_statuses: [] }\n"
                "  - name: d\n"
                "    endpoints: [127.0.0.1:1]\n"
                "    health_check: { type: tcp, path: /, host: h, expected_statuses: [200] }\n"
                "  - name: e\n"
                "    endpoints: [127.0.0.1:1]\n"
                "    health_check:\n"),
      ElementsAre(
          "t.yaml:5:13: type: unknown health check type 'htp' (did you mean 'http'?)",
          "t.yaml:6:13: path: must start with '/', got 'healthz'",
          "t.yaml:7:13: host: 'a b' is not a host name or IP address",
          "t.yaml:8:27: expected_statuses: statuses must be from 100 to 599, got 99",
          "t.yaml:8:31: expected_statuses: range 200-100 is empty (200 is greater than 100)",
          "t.yaml:8:40: expected_statuses: statuses must be from 100 to 599, got 200-700",
          "t.yaml:8:51: expected_statuses: expected a status from 100 to 599 or a range like "
          "200-399, got 'ok'",
          "t.yaml:8:55: expected_statuses: expected a status from 100 to 599 or a range like "
          "200-399, got a list",
          "t.yaml:9:17: interval: must be greater than 0",
          std::string("t.yaml:10:16: timeout: invalid duration '1.5s'") + kBadDuration,
          "t.yaml:11:15: jitter: invalid percentage '10' (expected an integer from 0 to 100 "
          "followed by '%', as in 10%)",
          "t.yaml:12:26: healthy_threshold: must be from 1 to 100, got 0",
          "t.yaml:13:28: unhealthy_threshold: must be from 1 to 100, got 101",
          "t.yaml:14:7: unknown key 'intervall' in health_check (did you mean 'interval'?)",
          "t.yaml:17:44: timeout: must be at most the interval (2s), got 3s",
          "t.yaml:17:56: jitter: must be from 0% to 100%, got 150%",
          "t.yaml:17:68: path: must not contain spaces or control characters",
          "t.yaml:20:31: interval: must be at least the timeout (1s, the default), got 500ms",
          "t.yaml:20:57: expected_statuses: needs at least one status or range (e.g. [200-399])",
          "t.yaml:23:32: path: applies only to health checks of type http",
          "t.yaml:23:41: host: applies only to health checks of type http",
          "t.yaml:23:50: expected_statuses: applies only to health checks of type http",
          "t.yaml:26:5: health_check: expected a map, got null"));
}

// Probes speak the cluster's protocol over its TLS, so every check type fits every cluster.
TEST(Errors, HttpHealthCheckOnATlsOrH2ClusterIsAccepted) {
  EXPECT_THAT(errors_of("clusters:\n"
                        "  - name: a\n"
                        "    endpoints: [127.0.0.1:1]\n"
                        "    tls: {}\n"
                        "    health_check: { path: /healthz }\n"
                        "  - name: b\n"
                        "    endpoints: [127.0.0.1:1]\n"
                        "    protocol: h2\n"
                        "    health_check: {}\n"
                        "  - name: c\n"
                        "    endpoints: [127.0.0.1:1]\n"
                        "    tls: { verify: false }\n"
                        "    protocol: h2\n"
                        "    health_check: { type: http }\n"
                        "  - name: d\n"
                        "    endpoints: [127.0.0.1:1]\n"
                        "    tls: {}\n"
                        "    health_check: { type: tcp }\n"),
              IsEmpty());
}

TEST(Errors, OutlierDetectionAndCircuitBreakers) {
  EXPECT_THAT(
      errors_of("clusters:\n"
                "  - name: a\n"
                "    endpoints: [127.0.0.1:1]\n"
                "    outlier_detection:\n"
                "      consecutive_failures: 0\n"
                "      base_ejection_time: 1m\n"
                "      max_ejection_time: 30s\n"
                "      max_ejection_percent: 101\n"
                "    circuit_breakers: { max_connections: 0, max_requests: 10000001, "
                "max_pending_request: 5 }\n"
                "  - name: b\n"
                "    endpoints: [127.0.0.1:1]\n"
                "    outlier_detection: { base_ejection_time: 10m, consecutive_failures: 1001 }\n"
                "    circuit_breakers: 100\n"),
      ElementsAre(
          "t.yaml:5:29: consecutive_failures: must be from 1 to 1000, got 0",
          "t.yaml:7:26: max_ejection_time: must be at least base_ejection_time (1m), got 30s",
          "t.yaml:8:29: max_ejection_percent: must be from 0 to 100, got 101",
          "t.yaml:9:42: max_connections: must be from 1 to 10000000, got 0",
          "t.yaml:9:59: max_requests: must be from 1 to 10000000, got 10000001",
          "t.yaml:9:69: unknown key 'max_pending_request' in circuit_breakers (did you mean "
          "'max_pending_requests'?)",
          "t.yaml:12:46: base_ejection_time: must be at most max_ejection_time (5m, the "
          "default), got 10m",
          "t.yaml:12:73: consecutive_failures: must be from 1 to 1000, got 1001",
          "t.yaml:13:23: circuit_breakers: expected a map, got '100'"));
}

TEST(Errors, PanicThresholdAndDnsRefresh) {
  EXPECT_THAT(
      errors_of("clusters:\n"
                "  - name: a\n"
                "    endpoints: [127.0.0.1:1]\n"
                "    panic_threshold: 50\n"
                "    dns_refresh: 500ms\n"
                "  - name: b\n"
                "    endpoints: [127.0.0.1:1]\n"
                "    panic_threshold: 101%\n"
                "    dns_refresh: 0s\n"
                "  - name: c\n"
                "    endpoints: [127.0.0.1:1]\n"
                "    panic_threshold: \"-1%\"\n"
                "    dns_refresh: 30\n"),
      ElementsAre("t.yaml:4:22: panic_threshold: invalid percentage '50' (expected an integer "
                  "from 0 to 100 followed by '%', as in 10%)",
                  "t.yaml:5:18: dns_refresh: must be at least 1s, got 500ms",
                  "t.yaml:8:22: panic_threshold: must be from 0% to 100%, got 101%",
                  "t.yaml:9:18: dns_refresh: must be at least 1s, got 0s",
                  "t.yaml:12:22: panic_threshold: invalid percentage '-1%' (expected an integer "
                  "from 0 to 100 followed by '%', as in 10%)",
                  std::string("t.yaml:13:18: dns_refresh: invalid duration '30'") + kBadDuration));
}

TEST(Errors, Retry) {
  EXPECT_THAT(
      errors_of("routes:\n"
                "  - name: a\n"
                "    respond: {}\n"
                "    retry: { attempts: 2 }\n"
                "  - name: b\n"
                "    cluster: c\n"
                "    timeout: 2s\n"
                "    retry:\n"
                "      attempts: 11\n"
                "      on: [connect_failure, \"404\", reset, reset, bogus, 503, 5000, \"\"]\n"
                "      per_try_timeout: 3s\n"
                "      budget_percent: 101\n"
                "      retry_non_idempotent: yes\n"
                "      budget_precent: 1\n"
                "  - name: d\n"
                "    cluster: c\n"
                "    retry: { on: [], attempts: 0, per_try_timeout: 0s }\n"
                "clusters: [{ name: c, endpoints: [127.0.0.1:1] }]\n"),
      ElementsAre(
          "t.yaml:4:5: retry: applies only to routes that forward to a 'cluster'",
          "t.yaml:9:17: attempts: must be from 1 to 10, got 11",
          "t.yaml:10:12: on: unknown retry condition 'connect_failure' (did you mean "
          "'connect-failure'?)",
          "t.yaml:10:29: on: 404 is not a status from 500 to 599",
          "t.yaml:10:43: on: 'reset' is listed twice",
          "t.yaml:10:50: on: unknown retry condition 'bogus' (known: connect-failure, reset, "
          "refused-stream, per-try-timeout, or a status from 500 to 599)",
          "t.yaml:10:62: on: 5000 is not a status from 500 to 599",
          "t.yaml:10:68: on: must not be empty",
          "t.yaml:11:24: per_try_timeout: must be at most the route's timeout (2s), got 3s",
          "t.yaml:12:23: budget_percent: must be from 0 to 100, got 101",
          "t.yaml:13:29: retry_non_idempotent: expected true or false, got 'yes'",
          "t.yaml:14:7: unknown key 'budget_precent' in retry (did you mean "
          "'budget_percent'?)",
          "t.yaml:17:18: on: needs at least one condition (to never retry, leave 'retry' out)",
          "t.yaml:17:32: attempts: must be from 1 to 10, got 0",
          "t.yaml:17:52: per_try_timeout: must be greater than 0"));
}

TEST(Errors, DnsServers) {
  EXPECT_THAT(
      errors_of("dns:\n"
                "  servers:\n"
                "    - ns1.example.com\n"
                "    - localhost:53\n"
                "    - \"10.0.0.1:99999\"\n"
                "    - \"::1\"\n"
                "    - 127.0.0.1\n"
                "    - 127.0.0.1:53\n"
                "    - \"[::1]\"\n"
                "    - \"[0::1]:53\"\n"
                "    - [1]\n"),
      ElementsAre(
          "t.yaml:3:7: server: 'ns1.example.com' must be an IP address (name servers are not "
          "looked up by name)",
          "t.yaml:4:7: server: 'localhost' must be an IP address (name servers are not looked up "
          "by name)",
          "t.yaml:5:7: server: invalid address '10.0.0.1:99999': port must be an integer from 1 "
          "to 65535",
          "t.yaml:6:7: server: invalid address '::1': IPv6 addresses need brackets, as in "
          "[::1]:8080",
          "t.yaml:8:7: server: 127.0.0.1:53 is listed twice",
          "t.yaml:10:7: server: [0::1]:53 is listed twice",
          "t.yaml:11:7: server: expected an address, got a list (quote IPv6 addresses: "
          "\"[::1]:8080\")"));
  EXPECT_THAT(errors_of("dns: { servers: [], server: [127.0.0.1] }\n"),
              ElementsAre("t.yaml:1:17: servers: needs at least one address (leave 'dns' out "
                          "to use /etc/resolv.conf)",
                          "t.yaml:1:21: unknown key 'server' in dns (did you mean 'servers'?)"));
}

TEST(Errors, ClusterProtocol) {
  EXPECT_THAT(errors_of("clusters:\n"
                        "  - name: a\n"
                        "    endpoints: [127.0.0.1:1]\n"
                        "    protocol: http2\n"
                        "    max_concurrent_streams: 0\n"),
              ElementsAre("t.yaml:4:15: protocol: unknown upstream protocol 'http2' (did you "
                          "mean 'h2'?)",
                          "t.yaml:5:29: max_concurrent_streams: must be from 1 to 1000000, got 0"));
}

TEST(Errors, UnknownFilters) {
  EXPECT_THAT(errors_of("listeners:\n"
                        "  - name: l\n"
                        "    address: 127.0.0.1:80\n"
                        "    filters: [sanitize]\n"),
              ElementsAre("t.yaml:4:15: unknown filter 'sanitize'"));
}

TEST(Errors, PathMatch) {
  EXPECT_THAT(errors_of("routes:\n"
                        "  - name: r\n"
                        "    match: { path: { prefix: v1/ } }\n"
                        "    respond: {}\n"
                        "  - name: s\n"
                        "    match: { path: { prefix: /a, exact: /b } }\n"
                        "    respond: {}\n"
                        "  - name: t\n"
                        "    match: { path: {} }\n"
                        "    respond: {}\n"),
              ElementsAre("t.yaml:3:30: prefix: must start with '/', got 'v1/'",
                          "t.yaml:6:34: path has both 'prefix' and 'exact'; set only one of "
                          "'prefix', 'exact' or 'regex'",
                          "t.yaml:9:20: path needs one of 'prefix', 'exact' or 'regex'"));
}

TEST(Errors, HeaderMatch) {
  EXPECT_THAT(errors_of("routes:\n"
                        "  - name: r\n"
                        "    match:\n"
                        "      headers:\n"
                        "        - { name: x-a }\n"
                        "        - { name: \"bad name\", exact: v }\n"
                        "        - { name: x-b, present: false }\n"
                        "        - { exact: v }\n"
                        "    respond: {}\n"),
              ElementsAre("t.yaml:5:11: header match needs one of 'exact', 'regex' or 'present'",
                          "t.yaml:6:19: name: 'bad name' is not a valid header name",
                          "t.yaml:7:33: present: only 'true' is supported (to ignore a header, "
                          "leave it out of the match)",
                          "t.yaml:8:11: header match is missing required key 'name'"));
}

TEST(Errors, MethodsAndHosts) {
  EXPECT_THAT(
      errors_of(
          "routes:\n"
          "  - name: r\n"
          "    match:\n"
          "      methods: [GET, \"PO ST\", \"\"]\n"
          "      hosts: [good.example.com, \"bad_host\", \"*.\", \"a.*.com\", \"*.1.2.3.4\"]\n"
          "    respond: {}\n"),
      ElementsAre("t.yaml:4:22: method: 'PO ST' is not a valid method token",
                  "t.yaml:4:31: method: must not be empty",
                  "t.yaml:5:33: host: 'bad_host' is not a host name or a wildcard like "
                  "'*.example.com'",
                  "t.yaml:5:45: host: '*.' is not a host name or a wildcard like '*.example.com'",
                  "t.yaml:5:51: host: 'a.*.com' is not a host name or a wildcard like "
                  "'*.example.com'",
                  "t.yaml:5:62: host: '*.1.2.3.4' is not a host name or a wildcard like "
                  "'*.example.com'"));
}

TEST(Errors, HostPatterns) {
  EXPECT_THAT(
      errors_of(
          "routes:\n"
          "  - name: r\n"
          "    match: { hosts: [\"*\", \"[::1]\", \"[1.2.3.4]\", 10.0.0.1, \"::1\", Foo.COM] }\n"
          "    respond: {}\n"),
      ElementsAre("t.yaml:3:22: host: '*' is not a host pattern; leave 'hosts' out to match any "
                  "host",
                  "t.yaml:3:36: host: '[1.2.3.4]' is not a host name or a wildcard like "
                  "'*.example.com'",
                  "t.yaml:3:59: host: '::1' is not a host name or a wildcard like "
                  "'*.example.com'"));
  const LoadResult ok = load_string(
      "routes: [{ name: r, match: { hosts: [\"[::1]\", 10.0.0.1, Foo.COM] }, respond: {} }]\n",
      "t.yaml");
  ASSERT_TRUE(ok.config);
  EXPECT_THAT(ok.config->routes[0].match.hosts, ElementsAre("[::1]", "10.0.0.1", "foo.com"));
}

TEST(Errors, RespondHeaders) {
  EXPECT_THAT(errors_of("routes:\n"
                        "  - name: r\n"
                        "    respond:\n"
                        "      headers:\n"
                        "        Content-Length: \"5\"\n"
                        "        \"bad name\": x\n"
                        "        x-a: \"a\\nb\"\n"
                        "        x-b: 1\n"
                        "        X-B: 2\n"),
              ElementsAre("t.yaml:5:9: header 'Content-Length' is set by sluice from the body; "
                          "remove it",
                          "t.yaml:6:9: header name: 'bad name' is not a valid header name",
                          "t.yaml:7:14: x-a: header values must not contain CR, LF or NUL",
                          "t.yaml:9:9: duplicate header 'X-B'"));
}

TEST(Errors, Redirect) {
  EXPECT_THAT(errors_of("routes:\n"
                        "  - name: r\n"
                        "    redirect:\n"
                        "      scheme: htps\n"
                        "      host: \"h:80\"\n"
                        "      path: new\n"
                        "      strip_query: yes\n"),
              ElementsAre("t.yaml:4:15: scheme: expected 'http' or 'https', got 'htps' (did you "
                          "mean 'https'?)",
                          "t.yaml:5:13: host: 'h:80' is not a host name or IP address (set the "
                          "port with 'port')",
                          "t.yaml:6:13: path: must start with '/', got 'new'",
                          "t.yaml:7:20: strip_query: expected true or false, got 'yes'"));
}

TEST(Errors, Rewrite) {
  EXPECT_THAT(
      errors_of(
          "routes:\n"
          "  - { name: a, respond: {}, rewrite: { prefix: / } }\n"
          "  - { name: b, cluster: c, rewrite: {} }\n"
          "  - { name: d, match: { path: { prefix: /x } }, cluster: c, rewrite: { prefix: y } }\n"
          "clusters: [{ name: c, endpoints: [127.0.0.1:1] }]\n"),
      ElementsAre("t.yaml:2:29: rewrite: applies only to routes that forward to a 'cluster'",
                  "t.yaml:3:37: rewrite is missing required key 'prefix'",
                  "t.yaml:4:80: prefix: must start with '/', got 'y'"));
}

TEST(Errors, AccessLog) {
  EXPECT_THAT(errors_of("access_log: { path: \"\", format: jsn }\n"),
              ElementsAre("t.yaml:1:21: path: must not be empty",
                          "t.yaml:1:33: format: unknown access log format 'jsn' (did you mean "
                          "'json'?)"));
}

TEST(Errors, AccessLogFields) {
  EXPECT_THAT(errors_of("access_log: { fields: [time, stauts, time] }\n"),
              ElementsAre("t.yaml:1:30: fields: unknown access log field 'stauts' (did you mean "
                          "'status'?)",
                          "t.yaml:1:38: fields: 'time' is listed twice"));
  EXPECT_THAT(errors_of("access_log: { fields: [] }\n"),
              ElementsAre("t.yaml:1:23: fields: list at least one field (leave 'fields' out "
                          "for all)"));
}

TEST(Errors, Upgrades) {
  EXPECT_THAT(
      errors_of("clusters: [{ name: c, endpoints: [\"127.0.0.1:1\"] }]\n"
                "routes:\n"
                "  - { name: r, cluster: c, upgrades: [h2c, \"bad token\"] }\n"
                "  - { name: s, cluster: c, upgrade_idle_timeout: 0s }\n"),
      ElementsAre("t.yaml:3:39: upgrades: 'h2c' cannot be forwarded (sluice speaks "
                  "HTTP/2 to clients itself: see listeners[].http2)",
                  "t.yaml:3:44: upgrades: 'bad token' is not a protocol (a token, optionally "
                  "/version)",
                  "t.yaml:4:50: upgrade_idle_timeout: must be greater than 0"));
}

TEST(Errors, YamlSyntaxErrorHasItsPosition) {
  EXPECT_THAT(errors_of("listeners:\n"
                        "  - name: a\n"
                        "    address: 127.0.0.1:80\n"
                        "clusters: [{ name: c, endpoints: [127.0.0.1:1] }\n"),
              ElementsAre("t.yaml:5:1: YAML syntax error: end of sequence flow not found"));
  EXPECT_THAT(errors_of("routes:\n"
                        "  - name: r\n"
                        "    match: { hosts: [*.example.com] }\n"),
              ElementsAre("t.yaml:3:22: YAML syntax error: the referenced anchor is not defined "
                          "(an unquoted value that starts with '*' is a YAML alias: quote it, "
                          "\"*.example.com\")"));
}

TEST(Errors, MoreThanOneDocument) {
  EXPECT_THAT(errors_of("workers: 1\n"
                        "---\n"
                        "workers: 2\n"),
              ElementsAre("t.yaml:3:1: expected one YAML document, found 2"));
}

TEST(Errors, EveryErrorInAFileIsReportedInOneRun) {
  const std::string file = SLUICE_SOURCE_DIR "/tests/config/testdata/multiple_errors.yaml";
  const LoadResult r = load_file(file);
  EXPECT_FALSE(r.config);
  std::vector<std::string> got;
  for (const Diagnostic& d : r.errors) got.push_back(d.str());
  EXPECT_THAT(
      got,
      ElementsAre(file + ":2:10: workers: expected 'auto' or an integer from 1 to 256, got 'lots'",
                  file + ":4:5: listener is missing required key 'address'",
                  file + ":5:5: unknown key 'adress' in listener (did you mean 'address'?)",
                  file + ":6:31: header_timeout: invalid duration '10'" + kBadDuration,
                  file + ":9:14: cluster: unknown cluster 'apii' (did you mean 'api'?)",
                  file + ":10:14: timeout: invalid duration '1.5s'" + kBadDuration,
                  file + ":13:16: endpoints: a cluster needs at least one endpoint",
                  file + ":14:9: lb: unknown load balancing policy 'rondom' (did you mean "
                         "'random'?)"));
}

TEST(Errors, HostileInputNeverThrows) {
  const std::string deep(20000, '[');
  const std::string inputs[] = {deep,         std::string("\x00\xff\xfe", 3), "{{{{",
                                "a: &x [*x]", "key: \"unterminated",          "\t- tab"};
  for (const std::string& in : inputs) {
    LoadResult r;
    EXPECT_NO_THROW(r = load_string(in, "t.yaml"));
    EXPECT_FALSE(r.config) << in.substr(0, 20);
    ASSERT_FALSE(r.errors.empty());
    EXPECT_THAT(r.errors[0].str(), HasSubstr("t.yaml:"));
  }
}

TEST(Warnings, RouteAfterACatchAllCanNeverMatch) {
  EXPECT_THAT(warnings_of("listeners: [{ name: l, address: 127.0.0.1:80 }]\n"
                          "routes:\n"
                          "  - { name: a, match: { path: { prefix: /a } }, respond: {} }\n"
                          "  - { name: all, respond: {} }\n"
                          "  - { name: b, respond: {} }\n"),
              ElementsAre("t.yaml:5:5: route 'b' can never match: route 'all' at line 4 "
                          "matches every request"));
}

TEST(Warnings, LowercaseMethodAndNoOpRedirect) {
  EXPECT_THAT(warnings_of("listeners: [{ name: l, address: 127.0.0.1:80 }]\n"
                          "routes:\n"
                          "  - name: r\n"
                          "    match: { methods: [get, PURGE, Custom] }\n"
                          "    redirect: { status: 302 }\n"),
              ElementsAre("t.yaml:4:24: method 'get' is case-sensitive and does not match 'GET' "
                          "requests",
                          "t.yaml:5:15: redirect changes nothing in the URL, so clients will "
                          "loop"));
}

}  // namespace
}  // namespace sluice::config
