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
  EXPECT_EQ(pub.limits.max_request_header_bytes, 32u * 1024);
  EXPECT_EQ(pub.limits.max_request_headers, 50u);
  EXPECT_EQ(pub.limits.max_request_body_bytes, 1'000'000u);
  EXPECT_EQ(pub.limits.max_uri_bytes, 4096u);
  EXPECT_EQ(pub.limits.header_timeout, seconds(5));
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
  EXPECT_EQ(cl->lb, "round_robin");
  EXPECT_EQ(cl->connect_timeout, seconds(1));
  EXPECT_EQ(cl->idle_timeout, hours(1));
  EXPECT_EQ(cl->max_idle_connections, 8u);
  EXPECT_EQ(cl->protocol, Cluster::Protocol::h2);
  EXPECT_EQ(cl->max_concurrent_streams, 50u);
  const Cluster* st = c.find_cluster("static");
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(st->endpoints[0].address.str(), "localhost:9100");
  EXPECT_EQ(st->connect_timeout, seconds(2));
  EXPECT_EQ(c.find_cluster("nope"), nullptr);
  EXPECT_EQ(c.find_cluster(""), nullptr);
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
  const Limits& l = c.listeners[0].limits;
  EXPECT_EQ(l.max_connections, 10000u);
  EXPECT_EQ(l.max_request_header_bytes, 64u * 1024);
  EXPECT_EQ(l.max_request_headers, 100u);
  EXPECT_EQ(l.max_request_body_bytes, 10u * 1024 * 1024);
  EXPECT_EQ(l.max_uri_bytes, 8u * 1024);
  EXPECT_EQ(l.header_timeout, seconds(10));
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
