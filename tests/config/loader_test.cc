// Valid configs: every key lands in the right field, defaults apply, files load.
#include <gtest/gtest.h>

#include <string>

#include "config/config.h"

namespace sluice::config {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

const std::string kTestdata = SLUICE_SOURCE_DIR "/tests/config/testdata/";

std::string all_errors(const LoadResult& r) {
  std::string out;
  for (const Diagnostic& d : r.errors) out += d.str() + "\n";
  return out;
}

TEST(Loader, FullConfigParsesEveryKey) {
  const LoadResult r = load_file(kTestdata + "full.yaml");
  ASSERT_TRUE(r.config) << all_errors(r);
  EXPECT_TRUE(r.errors.empty());
  EXPECT_TRUE(r.warnings.empty()) << r.warnings.front().str();
  const Config& c = *r.config;

  EXPECT_EQ(c.source, kTestdata + "full.yaml");
  EXPECT_EQ(c.workers, 4u);
  EXPECT_EQ(c.drain_timeout, seconds(30));
  EXPECT_EQ(c.admin.address.str(), "127.0.0.1:9902");
  EXPECT_EQ(c.access_log.path, "/var/log/sluice/access.log");
  EXPECT_EQ(c.access_log.format, "json");

  ASSERT_EQ(c.listeners.size(), 2u);
  const Listener& pub = c.listeners[0];
  EXPECT_EQ(pub.name, "public");
  EXPECT_EQ(pub.address.host, "0.0.0.0");
  EXPECT_EQ(pub.address.port, 8080);
  EXPECT_EQ(pub.limits.max_connections, 5000u);
  EXPECT_EQ(pub.limits.max_connections_per_ip, 20u);
  EXPECT_EQ(pub.limits.max_request_header_bytes, 32u * 1024);
  EXPECT_EQ(pub.limits.max_request_headers, 50u);
  EXPECT_EQ(pub.limits.max_request_body_bytes, 1'000'000u);
  EXPECT_EQ(pub.limits.max_uri_bytes, 4096u);
  EXPECT_EQ(pub.limits.header_timeout, seconds(5));
  EXPECT_EQ(pub.limits.body_timeout, seconds(30));
  EXPECT_EQ(pub.limits.request_timeout, minutes(2));
  EXPECT_EQ(pub.limits.idle_timeout, minutes(2));
  EXPECT_TRUE(pub.filters.empty());
  EXPECT_EQ(c.listeners[1].name, "local6");
  EXPECT_EQ(c.listeners[1].address.host, "::1");
  EXPECT_EQ(c.listeners[1].address.port, 8081);
  EXPECT_EQ(c.listeners[1].limits.max_connections, Limits{}.max_connections);

  ASSERT_EQ(c.routes.size(), 4u);
  const Route& api = c.routes[0];
  EXPECT_EQ(api.name, "api");
  EXPECT_EQ(api.match.hosts, (std::vector<std::string>{"api.example.com", "*.example.com"}));
  EXPECT_EQ(api.match.path.kind, PathMatch::Kind::prefix);
  EXPECT_EQ(api.match.path.value, "/v1/");
  EXPECT_EQ(api.match.methods, (std::vector<std::string>{"GET", "POST"}));
  ASSERT_EQ(api.match.headers.size(), 3u);
  EXPECT_EQ(api.match.headers[0].name, "x-env");
  EXPECT_EQ(api.match.headers[0].kind, HeaderMatch::Kind::exact);
  EXPECT_EQ(api.match.headers[0].value, "prod");
  EXPECT_EQ(api.match.headers[1].name, "x-trace");
  EXPECT_EQ(api.match.headers[1].kind, HeaderMatch::Kind::regex);
  EXPECT_EQ(api.match.headers[1].value, "^[0-9a-f]+$");
  EXPECT_EQ(api.match.headers[2].name, "x-debug");
  EXPECT_EQ(api.match.headers[2].kind, HeaderMatch::Kind::present);
  EXPECT_EQ(api.cluster, "api");
  EXPECT_FALSE(api.respond);
  EXPECT_FALSE(api.redirect);
  EXPECT_EQ(api.rewrite_prefix, "/");
  EXPECT_EQ(api.timeout, milliseconds(250));
  ASSERT_TRUE(api.retry);
  EXPECT_EQ(api.retry->attempts, 3u);
  EXPECT_TRUE(api.retry->on_connect_failure);
  EXPECT_FALSE(api.retry->on_reset);  // `on` replaces the defaults
  EXPECT_FALSE(api.retry->on_refused_stream);
  EXPECT_TRUE(api.retry->on_per_try_timeout);
  EXPECT_EQ(api.retry->on_statuses, (std::vector<unsigned>{503, 502}));
  EXPECT_EQ(api.retry->per_try_timeout, milliseconds(100));
  EXPECT_EQ(api.retry->budget_percent, 25u);
  EXPECT_TRUE(api.retry->retry_non_idempotent);

  const Route& health = c.routes[1];
  EXPECT_EQ(health.match.path.kind, PathMatch::Kind::exact);
  EXPECT_EQ(health.match.path.value, "/healthz");
  EXPECT_TRUE(health.cluster.empty());
  ASSERT_TRUE(health.respond);
  EXPECT_EQ(health.respond->status, 200u);
  EXPECT_EQ(health.respond->body, "ok\n");
  using Headers = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(health.respond->headers, (Headers{{"Content-Type", "text/plain"}, {"x-a", "b"}}));
  EXPECT_EQ(health.timeout, seconds(15));
  EXPECT_FALSE(health.retry);

  const Route& old = c.routes[2];
  EXPECT_EQ(old.match.path.kind, PathMatch::Kind::regex);
  EXPECT_EQ(old.match.path.value, "^/a.*");
  ASSERT_TRUE(old.redirect);
  EXPECT_EQ(old.redirect->status, 308u);
  EXPECT_EQ(old.redirect->scheme, "https");
  EXPECT_EQ(old.redirect->host, "www.example.com");
  EXPECT_EQ(old.redirect->port, 8443);
  EXPECT_EQ(old.redirect->path, "/new");
  EXPECT_TRUE(old.redirect->strip_query);

  const Route& fallback = c.routes[3];
  EXPECT_EQ(fallback.match.path.kind, PathMatch::Kind::any);
  EXPECT_TRUE(fallback.match.hosts.empty());
  EXPECT_TRUE(fallback.match.methods.empty());
  EXPECT_TRUE(fallback.match.headers.empty());
  EXPECT_EQ(fallback.cluster, "static");
  EXPECT_FALSE(fallback.rewrite_prefix);

  ASSERT_EQ(c.clusters.size(), 2u);
  const Cluster* cl = c.find_cluster("api");
  ASSERT_NE(cl, nullptr);
  EXPECT_EQ(cl, &c.clusters[0]);
  ASSERT_EQ(cl->endpoints.size(), 4u);
  EXPECT_EQ(cl->endpoints[0].address.str(), "127.0.0.1:9001");
  EXPECT_EQ(cl->endpoints[0].weight, 1u);
  EXPECT_EQ(cl->endpoints[1].address.str(), "127.0.0.1:9002");
  EXPECT_EQ(cl->endpoints[1].weight, 3u);
  EXPECT_EQ(cl->endpoints[2].address.str(), "[::1]:9003");
  EXPECT_EQ(cl->endpoints[3].address.str(), "backend.internal:80");
  EXPECT_EQ(cl->lb, "ring_hash");
  ASSERT_TRUE(cl->hash_on);
  EXPECT_EQ(cl->hash_on->kind, HashOn::Kind::header);
  EXPECT_EQ(cl->hash_on->name, "x-user");
  ASSERT_TRUE(cl->health_check);
  const HealthCheck& hc = *cl->health_check;
  EXPECT_EQ(hc.type, HealthCheck::Type::http);
  EXPECT_EQ(hc.path, "/ready");
  EXPECT_EQ(hc.host, "api.internal");
  using Ranges = std::vector<std::pair<unsigned, unsigned>>;
  EXPECT_EQ(hc.expected_statuses, (Ranges{{200, 299}, {404, 404}}));
  EXPECT_EQ(hc.interval, seconds(2));
  EXPECT_EQ(hc.timeout, milliseconds(500));
  EXPECT_EQ(hc.jitter_percent, 20u);
  EXPECT_EQ(hc.healthy_threshold, 3u);
  EXPECT_EQ(hc.unhealthy_threshold, 4u);
  ASSERT_TRUE(cl->outlier_detection);
  EXPECT_EQ(cl->outlier_detection->consecutive_failures, 7u);
  EXPECT_EQ(cl->outlier_detection->base_ejection_time, seconds(10));
  EXPECT_EQ(cl->outlier_detection->max_ejection_time, minutes(2));
  EXPECT_EQ(cl->outlier_detection->max_ejection_percent, 30u);
  EXPECT_EQ(cl->circuit_breakers.max_connections, 100u);
  EXPECT_EQ(cl->circuit_breakers.max_pending_requests, 50u);
  EXPECT_EQ(cl->circuit_breakers.max_requests, 200u);
  EXPECT_EQ(cl->panic_threshold_percent, 25u);
  EXPECT_EQ(cl->dns_refresh, seconds(10));
  EXPECT_EQ(cl->connect_timeout, seconds(1));
  EXPECT_EQ(cl->idle_timeout, hours(1));
  EXPECT_EQ(cl->max_idle_connections, 8u);
  EXPECT_EQ(cl->protocol, Cluster::Protocol::http1);
  const Cluster* st = c.find_cluster("static");
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(st->protocol, Cluster::Protocol::h2);
  EXPECT_EQ(st->max_concurrent_streams, 50u);
  EXPECT_EQ(st->endpoints[0].address.str(), "localhost:9100");
  EXPECT_EQ(st->connect_timeout, seconds(2));
  ASSERT_TRUE(st->health_check);
  EXPECT_EQ(st->health_check->type, HealthCheck::Type::tcp);
  EXPECT_EQ(st->health_check->interval, seconds(5));
  ASSERT_EQ(c.dns_servers.size(), 3u);
  EXPECT_EQ(c.dns_servers[0].str(), "127.0.0.1:5353");
  EXPECT_EQ(c.dns_servers[1].str(), "[::1]:53");
  EXPECT_EQ(c.dns_servers[2].str(), "10.0.0.2:53");
  EXPECT_EQ(c.find_cluster("nope"), nullptr);
  EXPECT_EQ(c.find_cluster(""), nullptr);
}

TEST(Loader, UpgradesAndAccessLogFields) {
  const LoadResult r = load_string(
      "access_log: { fields: [status, upstream_time_ms, time] }\n"
      "listeners: [{ name: l, address: 127.0.0.1:8080 }]\n"
      "routes:\n"
      "  - { name: r, cluster: c, upgrades: [WebSocket, foo/2], upgrade_idle_timeout: 90s }\n"
      "  - { name: s, cluster: c, upgrades: [] }\n"
      "clusters: [{ name: c, endpoints: [127.0.0.1:9000] }]\n",
      "u.yaml");
  ASSERT_TRUE(r.config) << all_errors(r);
  const Config& c = *r.config;
  EXPECT_EQ(c.access_log.fields, (std::vector<std::string>{"status", "upstream_time_ms", "time"}));
  EXPECT_EQ(c.routes[0].upgrades, (std::vector<std::string>{"websocket", "foo/2"}));
  EXPECT_EQ(c.routes[0].upgrade_idle_timeout, seconds(90));
  EXPECT_TRUE(c.routes[1].upgrades.empty());
}

TEST(Loader, TracingEndpointPortDependsOnTheScheme) {
  const auto endpoint = [](const std::string& url) {
    const LoadResult r = load_string(
        "listeners: [{ name: l, address: 127.0.0.1:8080 }]\n"
        "tracing: { otlp_endpoint: '" +
            url + "' }\n",
        "t.yaml");
    EXPECT_TRUE(r.config) << all_errors(r);
    return r.config ? r.config->tracing : Tracing{};
  };
  const Tracing https = endpoint("https://otel.example.com");
  EXPECT_TRUE(https.endpoint_tls);
  EXPECT_EQ(https.endpoint_port, 443);
  EXPECT_EQ(https.endpoint_target, "/v1/traces");
  const Tracing http = endpoint("http://collector/v1/traces?x=1");
  EXPECT_FALSE(http.endpoint_tls);
  EXPECT_EQ(http.endpoint_port, 4318);
  EXPECT_EQ(http.endpoint_target, "/v1/traces?x=1");
  EXPECT_EQ(endpoint("https://[::1]:8443/t").endpoint_port, 8443);
}

TEST(Loader, MinimalConfigGetsDefaults) {
  const LoadResult r = load_string(
      "listeners: [{ name: l, address: 127.0.0.1:8080 }]\n"
      "routes: [{ name: r, cluster: c }]\n"
      "clusters: [{ name: c, endpoints: [127.0.0.1:9000] }]\n",
      "min.yaml");
  ASSERT_TRUE(r.config) << all_errors(r);
  const Config& c = *r.config;
  EXPECT_EQ(c.workers, 0u);
  EXPECT_EQ(c.drain_timeout, seconds(15));
  EXPECT_EQ(c.admin.address.str(), "127.0.0.1:9901");
  EXPECT_EQ(c.access_log.path, "stdout");
  EXPECT_EQ(c.access_log.format, "json");
  EXPECT_TRUE(c.access_log.fields.empty());  // all of them
  EXPECT_EQ(c.routes[0].upgrades, std::vector<std::string>{"websocket"});
  EXPECT_EQ(c.routes[0].upgrade_idle_timeout, std::chrono::hours(1));
  const Limits& l = c.listeners[0].limits;
  EXPECT_EQ(l.max_connections, 10000u);
  EXPECT_EQ(l.max_connections_per_ip, 0u);  // no limit
  EXPECT_EQ(l.max_request_header_bytes, 64u * 1024);
  EXPECT_EQ(l.max_request_headers, 100u);
  EXPECT_EQ(l.max_request_body_bytes, 10u * 1024 * 1024);
  EXPECT_EQ(l.max_uri_bytes, 8u * 1024);
  EXPECT_EQ(l.header_timeout, seconds(10));
  EXPECT_EQ(l.body_timeout, seconds(60));
  EXPECT_EQ(l.request_timeout, seconds(0));  // no limit
  EXPECT_EQ(l.idle_timeout, seconds(60));
  EXPECT_EQ(c.routes[0].timeout, seconds(15));
  EXPECT_EQ(c.routes[0].match.path.kind, PathMatch::Kind::any);
  const Cluster& cl = c.clusters[0];
  EXPECT_EQ(cl.lb, "round_robin");
  EXPECT_EQ(cl.connect_timeout, seconds(2));
  EXPECT_EQ(cl.idle_timeout, seconds(60));
  EXPECT_FALSE(cl.max_idle_connections);  // the default policy
  EXPECT_EQ(cl.protocol, Cluster::Protocol::http1);
  EXPECT_EQ(cl.max_concurrent_streams, 100u);
  EXPECT_FALSE(cl.hash_on);
  EXPECT_FALSE(cl.health_check);  // no active checks: hosts are healthy until proven otherwise
  EXPECT_FALSE(cl.outlier_detection);
  EXPECT_FALSE(cl.circuit_breakers.max_connections);  // no limit
  EXPECT_FALSE(cl.circuit_breakers.max_pending_requests);
  EXPECT_FALSE(cl.circuit_breakers.max_requests);
  EXPECT_EQ(cl.panic_threshold_percent, 50u);
  EXPECT_EQ(cl.dns_refresh, seconds(30));
  EXPECT_FALSE(c.routes[0].retry);
  EXPECT_TRUE(c.dns_servers.empty());
}

TEST(Loader, EmptyResilienceSectionsGetDefaults) {
  const LoadResult r = load_string(
      "routes: [{ name: r, cluster: c, retry: {} }]\n"
      "clusters:\n"
      "  - name: c\n"
      "    endpoints: [127.0.0.1:9000]\n"
      "    lb: maglev\n"
      "    health_check: {}\n"
      "    outlier_detection: {}\n"
      "    circuit_breakers: { max_requests: 10000000 }\n"
      "dns: {}\n",
      "e.yaml");
  ASSERT_TRUE(r.config) << all_errors(r);
  const Cluster& cl = r.config->clusters[0];
  EXPECT_EQ(cl.lb, "maglev");
  EXPECT_FALSE(cl.hash_on);  // the runtime hashes the client's IP
  ASSERT_TRUE(cl.health_check);
  const HealthCheck& hc = *cl.health_check;
  EXPECT_EQ(hc.type, HealthCheck::Type::http);
  EXPECT_EQ(hc.path, "/healthz");
  EXPECT_EQ(hc.host, "");
  using Ranges = std::vector<std::pair<unsigned, unsigned>>;
  EXPECT_EQ(hc.expected_statuses, (Ranges{{200, 399}}));
  EXPECT_EQ(hc.interval, seconds(5));
  EXPECT_EQ(hc.timeout, seconds(1));
  EXPECT_EQ(hc.jitter_percent, 10u);
  EXPECT_EQ(hc.healthy_threshold, 2u);
  EXPECT_EQ(hc.unhealthy_threshold, 3u);
  ASSERT_TRUE(cl.outlier_detection);
  EXPECT_EQ(cl.outlier_detection->consecutive_failures, 5u);
  EXPECT_EQ(cl.outlier_detection->base_ejection_time, seconds(30));
  EXPECT_EQ(cl.outlier_detection->max_ejection_time, seconds(300));
  EXPECT_EQ(cl.outlier_detection->max_ejection_percent, 50u);
  EXPECT_FALSE(cl.circuit_breakers.max_connections);
  EXPECT_FALSE(cl.circuit_breakers.max_pending_requests);
  EXPECT_EQ(cl.circuit_breakers.max_requests, 10'000'000u);
  ASSERT_TRUE(r.config->routes[0].retry);
  const RetryPolicy& p = *r.config->routes[0].retry;
  EXPECT_EQ(p.attempts, 2u);
  EXPECT_TRUE(p.on_connect_failure);
  EXPECT_TRUE(p.on_reset);
  EXPECT_TRUE(p.on_refused_stream);
  EXPECT_FALSE(p.on_per_try_timeout);
  EXPECT_TRUE(p.on_statuses.empty());
  EXPECT_FALSE(p.per_try_timeout);
  EXPECT_EQ(p.budget_percent, 20u);
  EXPECT_FALSE(p.retry_non_idempotent);
  EXPECT_TRUE(r.config->dns_servers.empty());
}

TEST(Loader, EveryLbPolicyAndHashOnForm) {
  for (const char* lb : {"round_robin", "least_request", "random", "ring_hash", "maglev"}) {
    const LoadResult r = load_string(
        "clusters: [{ name: c, endpoints: [127.0.0.1:1], lb: " + std::string(lb) + " }]\n",
        "lb.yaml");
    ASSERT_TRUE(r.config) << lb << all_errors(r);
    EXPECT_EQ(r.config->clusters[0].lb, lb);
  }
  const LoadResult r = load_string(
      "clusters:\n"
      "  - { name: a, endpoints: [127.0.0.1:1], lb: ring_hash, hash_on: client_ip }\n"
      "  - { name: b, endpoints: [127.0.0.1:1], lb: maglev, hash_on: path }\n"
      "  - { name: c, endpoints: [127.0.0.1:1], lb: maglev, hash_on: \"header:X-Tenant\" }\n"
      "  - { name: d, endpoints: [127.0.0.1:1], lb: ring_hash, hash_on: cookie:SessionID }\n",
      "h.yaml");
  ASSERT_TRUE(r.config) << all_errors(r);
  const auto& cs = r.config->clusters;
  EXPECT_EQ(cs[0].hash_on->kind, HashOn::Kind::client_ip);
  EXPECT_EQ(cs[1].hash_on->kind, HashOn::Kind::path);
  EXPECT_EQ(cs[2].hash_on->kind, HashOn::Kind::header);
  EXPECT_EQ(cs[2].hash_on->name, "x-tenant");  // header names are case-insensitive
  EXPECT_EQ(cs[3].hash_on->kind, HashOn::Kind::cookie);
  EXPECT_EQ(cs[3].hash_on->name, "SessionID");  // cookie names are not
}

TEST(Loader, HealthCheckEdgesAndPercentages) {
  const LoadResult r = load_string(
      "clusters:\n"
      "  - name: c\n"
      "    endpoints: [backend.internal:80]\n"
      "    health_check: { type: tcp, interval: 1s, timeout: 1s, jitter: 0%, "
      "healthy_threshold: 100, unhealthy_threshold: 1 }\n"
      "    panic_threshold: 0%\n"
      "    dns_refresh: 1s\n"
      "  - name: d\n"
      "    endpoints: [127.0.0.1:1]\n"
      "    health_check: { host: \"[::1]\", expected_statuses: [\"100-599\", 599, 200-200], "
      "jitter: 100% }\n"
      "    panic_threshold: 100%\n"
      "    outlier_detection: { base_ejection_time: 1m, max_ejection_time: 1m, "
      "max_ejection_percent: 0, consecutive_failures: 1000 }\n",
      "hc.yaml");
  ASSERT_TRUE(r.config) << all_errors(r);
  const Cluster& c = r.config->clusters[0];
  EXPECT_EQ(c.endpoints[0].address.str(), "backend.internal:80");
  EXPECT_EQ(c.health_check->type, HealthCheck::Type::tcp);
  EXPECT_EQ(c.health_check->timeout, seconds(1));
  EXPECT_EQ(c.health_check->jitter_percent, 0u);
  EXPECT_EQ(c.health_check->healthy_threshold, 100u);
  EXPECT_EQ(c.health_check->unhealthy_threshold, 1u);
  EXPECT_EQ(c.panic_threshold_percent, 0u);
  EXPECT_EQ(c.dns_refresh, seconds(1));
  const Cluster& d = r.config->clusters[1];
  EXPECT_EQ(d.health_check->host, "[::1]");
  using Ranges = std::vector<std::pair<unsigned, unsigned>>;
  EXPECT_EQ(d.health_check->expected_statuses, (Ranges{{100, 599}, {599, 599}, {200, 200}}));
  EXPECT_EQ(d.health_check->jitter_percent, 100u);
  EXPECT_EQ(d.panic_threshold_percent, 100u);
  EXPECT_EQ(d.outlier_detection->max_ejection_time, minutes(1));
  EXPECT_EQ(d.outlier_detection->max_ejection_percent, 0u);
  EXPECT_EQ(d.outlier_detection->consecutive_failures, 1000u);
}

TEST(Loader, RetryOnReplacesTheDefaults) {
  const LoadResult r = load_string(
      "routes:\n"
      "  - { name: a, cluster: c, retry: { on: [reset, 500, \"599\"], attempts: 10 } }\n"
      "  - { name: b, cluster: c, timeout: 2s, retry: { per_try_timeout: 2s, budget_percent: 0 } "
      "}\n"
      "clusters: [{ name: c, endpoints: [127.0.0.1:1] }]\n",
      "retry.yaml");
  ASSERT_TRUE(r.config) << all_errors(r);
  const RetryPolicy& a = *r.config->routes[0].retry;
  EXPECT_EQ(a.attempts, 10u);
  EXPECT_FALSE(a.on_connect_failure);
  EXPECT_TRUE(a.on_reset);
  EXPECT_FALSE(a.on_refused_stream);
  EXPECT_FALSE(a.on_per_try_timeout);
  EXPECT_EQ(a.on_statuses, (std::vector<unsigned>{500, 599}));
  const RetryPolicy& b = *r.config->routes[1].retry;
  EXPECT_TRUE(b.on_connect_failure);  // no `on`: the defaults
  EXPECT_TRUE(b.on_reset);
  EXPECT_TRUE(b.on_refused_stream);
  EXPECT_EQ(b.per_try_timeout, seconds(2));  // equal to the route's timeout is allowed
  EXPECT_EQ(b.budget_percent, 0u);
}

TEST(Loader, DnsServersDefaultToPort53) {
  const LoadResult r = load_string(
      "dns: { servers: [10.0.0.2, \"[FD00::2]\", \"[::1]:5353\", 127.0.0.1:53] }\n", "dns.yaml");
  ASSERT_TRUE(r.config) << all_errors(r);
  ASSERT_EQ(r.config->dns_servers.size(), 4u);
  EXPECT_EQ(r.config->dns_servers[0].str(), "10.0.0.2:53");
  EXPECT_EQ(r.config->dns_servers[1].str(), "[fd00::2]:53");
  EXPECT_EQ(r.config->dns_servers[2].str(), "[::1]:5353");
  EXPECT_EQ(r.config->dns_servers[3].str(), "127.0.0.1:53");
}

TEST(Loader, WorkersAutoAndNumber) {
  auto r = load_string("workers: auto\n", "w.yaml");
  ASSERT_TRUE(r.config) << all_errors(r);
  EXPECT_EQ(r.config->workers, 0u);
  r = load_string("workers: 256\n", "w.yaml");
  ASSERT_TRUE(r.config) << all_errors(r);
  EXPECT_EQ(r.config->workers, 256u);
  r = load_string("workers: 1\n", "w.yaml");
  ASSERT_TRUE(r.config) << all_errors(r);
  EXPECT_EQ(r.config->workers, 1u);
}

TEST(Loader, BodyLimitZeroMeansUnlimitedAndDrainMayBeZero) {
  const LoadResult r = load_string(
      "drain_timeout: 0s\n"
      "listeners: [{ name: l, address: 127.0.0.1:80, limits: { max_request_body_bytes: 0 } }]\n",
      "z.yaml");
  ASSERT_TRUE(r.config) << all_errors(r);
  EXPECT_EQ(r.config->drain_timeout, milliseconds(0));
  EXPECT_EQ(r.config->listeners[0].limits.max_request_body_bytes, 0u);
}

TEST(Loader, ConnectionLimitsAndRequestTimeouts) {
  const LoadResult r = load_string(
      "listeners:\n"
      "  - name: l\n"
      "    address: 127.0.0.1:80\n"
      "    limits: { max_connections: 1, max_connections_per_ip: 1000000, body_timeout: 250ms,\n"
      "              request_timeout: 1h }\n"
      "  - { name: m, address: 127.0.0.1:81, limits: { max_connections_per_ip: 0, "
      "request_timeout: 0s } }\n",
      "c.yaml");
  ASSERT_TRUE(r.config) << all_errors(r);
  const Limits& l = r.config->listeners[0].limits;
  EXPECT_EQ(l.max_connections, 1u);
  EXPECT_EQ(l.max_connections_per_ip, 1'000'000u);
  EXPECT_EQ(l.body_timeout, milliseconds(250));
  EXPECT_EQ(l.request_timeout, hours(1));
  EXPECT_EQ(l.idle_timeout, seconds(60));  // no longer stands in for the body timeout
  const Limits& m = r.config->listeners[1].limits;
  EXPECT_EQ(m.max_connections_per_ip, 0u);  // 0: no limit
  EXPECT_EQ(m.request_timeout, milliseconds(0));
  EXPECT_EQ(m.body_timeout, seconds(60));
}

TEST(Loader, EmptyDocumentIsAnEmptyConfigWithAWarning) {
  for (const char* text : {"", "# only a comment\n", "---\n"}) {
    const LoadResult r = load_string(text, "empty.yaml");
    ASSERT_TRUE(r.config) << text << all_errors(r);
    EXPECT_TRUE(r.config->listeners.empty());
    ASSERT_EQ(r.warnings.size(), 1u) << text;
    EXPECT_EQ(r.warnings[0].str(), "empty.yaml: no listeners: only the admin API will be served");
  }
}

TEST(Loader, RespondAndRedirectDefaults) {
  const LoadResult r = load_string(
      "listeners: [{ name: l, address: 127.0.0.1:80 }]\n"
      "routes:\n"
      "  - { name: a, match: { path: { exact: /a } }, respond: {} }\n"
      "  - { name: b, redirect: { scheme: https } }\n",
      "d.yaml");
  ASSERT_TRUE(r.config) << all_errors(r);
  ASSERT_TRUE(r.config->routes[0].respond);
  EXPECT_EQ(r.config->routes[0].respond->status, 200u);
  EXPECT_EQ(r.config->routes[0].respond->body, "");
  ASSERT_TRUE(r.config->routes[1].redirect);
  const Redirect& d = *r.config->routes[1].redirect;
  EXPECT_EQ(d.status, 301u);
  EXPECT_EQ(d.scheme, "https");
  EXPECT_FALSE(d.host);
  EXPECT_FALSE(d.port);
  EXPECT_FALSE(d.path);
  EXPECT_FALSE(d.strip_query);
}

TEST(Loader, RewriteWithoutAPrefixMatch) {
  const LoadResult r = load_string(
      "routes: [{ name: r, cluster: c, rewrite: { prefix: /index.html } }]\n"
      "clusters: [{ name: c, endpoints: [127.0.0.1:9000] }]\n",
      "rw.yaml");
  ASSERT_TRUE(r.config) << all_errors(r);
  EXPECT_EQ(r.config->routes[0].rewrite_prefix, "/index.html");
}

TEST(Loader, ResilienceExampleLoads) {
  const LoadResult r = load_file(SLUICE_SOURCE_DIR "/config/examples/resilience.yaml");
  ASSERT_TRUE(r.config) << all_errors(r);
  EXPECT_TRUE(r.warnings.empty()) << r.warnings.front().str();
  const Cluster* app = r.config->find_cluster("app");
  ASSERT_NE(app, nullptr);
  ASSERT_TRUE(app->hash_on);
  EXPECT_EQ(app->hash_on->kind, HashOn::Kind::cookie);
  EXPECT_EQ(app->hash_on->name, "session");
}

TEST(Loader, MissingFileIsADiagnostic) {
  const LoadResult r = load_file(kTestdata + "does-not-exist.yaml");
  EXPECT_FALSE(r.config);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].str(),
            kTestdata + "does-not-exist.yaml: cannot read file: No such file or directory");
}

TEST(Loader, DirectoryIsADiagnostic) {
  const LoadResult r = load_file(kTestdata);
  EXPECT_FALSE(r.config);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].str(), kTestdata + ": cannot read file: Is a directory");
}

}  // namespace
}  // namespace sluice::config
