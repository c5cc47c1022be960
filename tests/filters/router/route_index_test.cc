// RouteTable::match() goes through RouteIndex; it must return exactly the route the linear
// first-match scan (match_linear()) returns. A property test over random tables from a fixed
// seed, then targeted cases for order and for the index's edges.
#include <gtest/gtest.h>

#include <cctype>
#include <random>
#include <string>
#include <vector>

#include "filters/router/route_table.h"

namespace sluice::router {
namespace {

using config::HeaderMatch;
using config::PathMatch;

// Each regex with paths that it matches, so requests can hit regex routes.
struct RegexCase {
  const char* pattern;
  std::vector<const char*> hits;
};
const std::vector<RegexCase>& regex_cases() {
  static const std::vector<RegexCase> cases = {
      {"/a/.*", {"/a/", "/a/b", "/a/b/c"}},
      {"/api/v[0-9]+/.*", {"/api/v1/users", "/api/v22/x"}},
      {"/users/[0-9]+", {"/users/1", "/users/42"}},
      {".*", {"/", "/anything"}},
      {"/a", {"/a"}},
      {"/(a|b)/c", {"/a/c", "/b/c"}},
      {"/static/.*\\.css", {"/static/x.css", "/static/a/b.css"}},
      {"/x|/y/.*", {"/x", "/y/", "/y/z"}},
  };
  return cases;
}

const std::vector<std::string> kExactHosts = {
    "api.example.com", "API.example.com", "example.com", "www.example.org",
    "a.b.example.com", "[::1]",           "::1",         "127.0.0.1",
    "host.",           "localhost",       "*x",          "b.example.com"};
const std::vector<std::string> kWildcards = {
    "*.example.com", "*.b.example.com", "*.com", "*.example.org", "*.", "*.Example.COM"};
const std::vector<std::string> kPrefixes = {
    "", "/", "/a", "/a/", "/a/b", "/api", "/api/", "/api/v1/", "/api/v1/users", "/b", "/static/"};
const std::vector<std::string> kExactPaths = {"/", "/a", "/a/b", "/api/v1/users", "/login", ""};
const std::vector<std::string> kMethods = {"GET", "POST", "PUT"};
const std::vector<std::string> kLabels = {"a", "b", "api", "www", "x", "A"};
const std::vector<std::string> kSuffixes = {"", "x", "/", "/c", "/v1/users", "?q=1", "1"};

class Random {
 public:
  explicit Random(uint32_t seed) : engine_(seed) {}
  size_t below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(engine_); }
  bool chance(double p) { return std::bernoulli_distribution(p)(engine_); }
  template <typename T>
  const T& pick(const std::vector<T>& v) {
    return v[below(v.size())];
  }

 private:
  std::mt19937 engine_;
};

config::Route random_route(Random& rnd, size_t index) {
  config::Route r;
  r.name = "r" + std::to_string(index);
  r.cluster = "backend";
  const size_t host_kind = rnd.below(10);
  if (host_kind < 3) {
    // no hosts: any
  } else if (host_kind < 4) {
    r.match.hosts = {"*"};
  } else {
    const size_t n = 1 + rnd.below(3);
    for (size_t i = 0; i < n; ++i) {
      r.match.hosts.push_back(rnd.chance(0.6) ? rnd.pick(kExactHosts) : rnd.pick(kWildcards));
    }
  }
  switch (rnd.below(5)) {
    case 0:
      break;  // any
    case 1:
      r.match.path = {PathMatch::Kind::exact, rnd.pick(kExactPaths)};
      break;
    case 2:
      r.match.path = {PathMatch::Kind::regex, rnd.pick(regex_cases()).pattern};
      break;
    default:
      r.match.path = {PathMatch::Kind::prefix, rnd.pick(kPrefixes)};
      break;
  }
  if (rnd.chance(0.3)) {
    const size_t n = 1 + rnd.below(2);
    for (size_t i = 0; i < n; ++i) r.match.methods.push_back(rnd.pick(kMethods));
  }
  if (rnd.chance(0.15)) {
    switch (rnd.below(3)) {
      case 0:
        r.match.headers.push_back({"x-env", HeaderMatch::Kind::present, ""});
        break;
      case 1:
        r.match.headers.push_back({"X-Env", HeaderMatch::Kind::exact, "prod"});
        break;
      default:
        r.match.headers.push_back({"x-ver", HeaderMatch::Kind::regex, "v[0-9]+"});
        break;
    }
  }
  if (rnd.chance(0.1)) r.match.listeners = {rnd.chance(0.5) ? "l1" : "l2"};
  return r;
}

std::string random_host(Random& rnd) {
  std::string host;
  const size_t labels = rnd.below(4);
  for (size_t i = 0; i < labels; ++i) host += rnd.pick(kLabels) + ".";
  host += rnd.chance(0.5) ? "example.com" : rnd.chance(0.5) ? "example.org" : "com";
  return host;
}

// A request aimed at `target` (usually): its host, path, method and headers drawn to fit the
// route's conditions, each now and then left to chance instead.
RequestHead request_for(Random& rnd, const config::Route& target) {
  RequestHead r;
  const config::RouteMatch& m = target.match;
  std::string host;
  if (m.hosts.empty() || rnd.chance(0.1)) {
    host = rnd.chance(0.5) ? random_host(rnd) : rnd.pick(kExactHosts);
  } else {
    const std::string& pattern = rnd.pick(m.hosts);
    if (pattern == "*") {
      host = random_host(rnd);
    } else if (pattern.starts_with("*.")) {
      host = rnd.pick(kLabels) + pattern.substr(1);
      if (rnd.chance(0.3)) host = rnd.pick(kLabels) + "." + host;
    } else {
      host = pattern;
    }
  }
  if (rnd.chance(0.2)) {
    for (char& c : host) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  if (rnd.chance(0.1) && !host.ends_with('.') && !host.ends_with(']')) host += ".";
  if (host == "::1" && rnd.chance(0.5)) host = "[::1]";
  if (rnd.chance(0.2) && !host.starts_with(':')) host += ":8080";
  if (rnd.chance(0.03)) host.clear();
  r.authority = host;

  std::string path;
  switch (m.path.kind) {
    case PathMatch::Kind::any:
      path = rnd.pick(kPrefixes) + rnd.pick(kSuffixes);
      break;
    case PathMatch::Kind::exact:
      path = m.path.value;
      break;
    case PathMatch::Kind::prefix:
      path = m.path.value + rnd.pick(kSuffixes);
      break;
    case PathMatch::Kind::regex:
      for (const RegexCase& c : regex_cases()) {
        if (c.pattern == m.path.value) path = rnd.pick(c.hits);
      }
      break;
  }
  if (rnd.chance(0.15)) path = rnd.pick(kExactPaths) + rnd.pick(kSuffixes);
  r.target = path;

  r.method = !m.methods.empty() && rnd.chance(0.8) ? rnd.pick(m.methods) : rnd.pick(kMethods);
  if (rnd.chance(0.3)) r.headers.add("X-ENV", rnd.chance(0.7) ? "prod" : "dev");
  if (rnd.chance(0.2)) r.headers.add("x-ver", rnd.chance(0.7) ? "v7" : "seven");
  return r;
}

std::string name_of(const CompiledRoute* route) { return route ? route->route->name : "(none)"; }

void expect_same(const RouteTable& table, const RequestHead& request, const std::string& what) {
  const CompiledRoute* indexed = table.match(request);
  const CompiledRoute* linear = table.match_linear(request);
  ASSERT_EQ(indexed, linear) << what << ": indexed " << name_of(indexed) << ", linear "
                             << name_of(linear) << " for " << request.method << " "
                             << request.authority << " " << request.target;
}

TEST(RouteIndexProperty, SameRouteAsLinearScanOverRandomTables) {
  Random rnd(20261203);
  size_t hits = 0;
  size_t checks = 0;
  for (int t = 0; t < 400; ++t) {
    config::Config c;
    c.clusters.emplace_back().name = "backend";
    const size_t n = t % 50 == 0 ? 1000 + rnd.below(500) : rnd.below(t % 3 == 0 ? 20 : 150);
    for (size_t i = 0; i < n; ++i) c.routes.push_back(random_route(rnd, i));
    std::string error;
    auto table = RouteTable::build(c, &error);
    ASSERT_NE(table, nullptr) << error;
    auto l1 = RouteTable::for_listener(table, "l1");
    const std::string what = "table " + std::to_string(t);
    for (int q = 0; q < 150; ++q) {
      const RequestHead request = n == 0 || rnd.chance(0.1) ? request_for(rnd, random_route(rnd, 0))
                                                            : request_for(rnd, rnd.pick(c.routes));
      ASSERT_NO_FATAL_FAILURE(expect_same(*table, request, what));
      ASSERT_NO_FATAL_FAILURE(expect_same(*l1, request, what + " listener l1"));
      hits += table->match(request) != nullptr;
      ++checks;
    }
  }
  // The requests mostly hit something, so the comparison is not between two nulls.
  EXPECT_GT(hits, checks / 2);
}

// Builds the table (asserting success) and keeps its Config alive alongside it.
class RouteIndexTest : public ::testing::Test {
 protected:
  config::Route& add(std::string name, PathMatch path = {}, std::vector<std::string> hosts = {}) {
    config::Route& r = config_.routes.emplace_back();
    r.name = std::move(name);
    r.match.path = std::move(path);
    r.match.hosts = std::move(hosts);
    r.cluster = "backend";
    return r;
  }
  void build() {
    config_.clusters.emplace_back().name = "backend";
    std::string error;
    table_ = RouteTable::build(config_, &error);
    ASSERT_NE(table_, nullptr) << error;
  }
  // Name of the matched route ("" when none), after checking the linear scan agrees.
  std::string match(std::string target, std::string authority = "example.com",
                    std::string method = "GET") {
    RequestHead r;
    r.method = std::move(method);
    r.target = std::move(target);
    r.authority = std::move(authority);
    const CompiledRoute* indexed = table_->match(r);
    EXPECT_EQ(indexed, table_->match_linear(r)) << r.authority << " " << r.target;
    return indexed ? indexed->route->name : "";
  }

  config::Config config_;
  std::shared_ptr<const RouteTable> table_;
};

PathMatch prefix(std::string v) { return {PathMatch::Kind::prefix, std::move(v)}; }
PathMatch exact(std::string v) { return {PathMatch::Kind::exact, std::move(v)}; }
PathMatch regex(std::string v) { return {PathMatch::Kind::regex, std::move(v)}; }

TEST_F(RouteIndexTest, LaterExactHostDoesNotBeatEarlierWildcard) {
  add("wild", {}, {"*.example.com"});
  add("exact", {}, {"api.example.com"});
  ASSERT_NO_FATAL_FAILURE(build());
  EXPECT_EQ(match("/", "api.example.com"), "wild");
  EXPECT_EQ(match("/", "example.com"), "");
}

TEST_F(RouteIndexTest, LaterLongerPrefixDoesNotBeatEarlierShorterOne) {
  add("short", prefix("/api/"));
  add("long", prefix("/api/v1/"));
  add("exact", exact("/api/v1/users"));
  ASSERT_NO_FATAL_FAILURE(build());
  EXPECT_EQ(match("/api/v1/users"), "short");
  EXPECT_EQ(match("/apx"), "");
}

TEST_F(RouteIndexTest, EarlierAnyBeatsLaterSpecificRoutes) {
  add("specific", exact("/x"), {"a.example.com"});
  add("any");
  add("exact-host", {}, {"b.example.com"});
  add("regex", regex("/r.*"));
  ASSERT_NO_FATAL_FAILURE(build());
  EXPECT_EQ(match("/x", "a.example.com"), "specific");
  EXPECT_EQ(match("/x", "b.example.com"), "any");
  EXPECT_EQ(match("/rr", "b.example.com"), "any");
}

TEST_F(RouteIndexTest, CandidateFailingOtherConditionsFallsThroughInOrder) {
  add("post-only", prefix("/a"), {"h.example.com"}).match.methods = {"POST"};
  add("needs-header", prefix("/a/b"), {"*.example.com"})
      .match.headers.push_back({"x-env", HeaderMatch::Kind::present, ""});
  add("regex", regex("/a/.*"), {"*.com"});
  add("wrong-host", prefix("/"), {"other.org"});
  add("last", prefix("/a"));
  ASSERT_NO_FATAL_FAILURE(build());
  EXPECT_EQ(match("/a/b", "h.example.com", "POST"), "post-only");
  EXPECT_EQ(match("/a/b", "h.example.com"), "regex");
  EXPECT_EQ(match("/ab", "h.example.com"), "last");
  EXPECT_EQ(match("/b", "other.org"), "wrong-host");
}

TEST_F(RouteIndexTest, HostFormsAsHostMatches) {
  add("v6", {}, {"[::1]"});
  add("dot", {}, {"trailing.example."});
  add("case", {}, {"MiXeD.example.com"});
  add("deep-wild", {}, {"*.b.example.com"});
  add("wild", {}, {"*.example.com"});
  ASSERT_NO_FATAL_FAILURE(build());
  EXPECT_EQ(match("/", "[::1]:8080"), "v6");
  EXPECT_EQ(match("/", "::1"), "v6");
  EXPECT_EQ(match("/", "trailing.example"), "dot");
  EXPECT_EQ(match("/", "TRAILING.example.:80"), "dot");
  EXPECT_EQ(match("/", "mixed.EXAMPLE.com."), "case");
  EXPECT_EQ(match("/", "x.y.B.example.com"), "deep-wild");
  EXPECT_EQ(match("/", "b.example.com"), "wild");
  EXPECT_EQ(match("/", ".example.com"), "");
  EXPECT_EQ(match("/", ""), "");
}

TEST_F(RouteIndexTest, TenThousandRoutesLastOneWins) {
  for (int i = 0; i < 5000; ++i) {
    add("h" + std::to_string(i), {}, {"h" + std::to_string(i) + ".example.com"});
  }
  for (int i = 0; i < 5000; ++i) {
    add("p" + std::to_string(i), prefix("/p" + std::to_string(i) + "/"));
  }
  ASSERT_NO_FATAL_FAILURE(build());
  EXPECT_EQ(match("/", "h4999.example.com"), "h4999");
  EXPECT_EQ(match("/p4999/x", "nothing.example.com"), "p4999");
  EXPECT_EQ(match("/p4999/x", "h17.example.com"), "h17");
  EXPECT_EQ(match("/p5000/x", "nothing.example.com"), "");
}

TEST_F(RouteIndexTest, TenThousandCatchAllsThatAllFailOnMethod) {
  // Every route is a candidate on both sides: the index degenerates to the linear scan.
  for (int i = 0; i < 10000; ++i) add("c" + std::to_string(i), prefix("/")).match.methods = {"PUT"};
  add("last", prefix("/"));
  ASSERT_NO_FATAL_FAILURE(build());
  EXPECT_EQ(match("/x", "any.example.com", "GET"), "last");
  EXPECT_EQ(match("/x", "any.example.com", "PUT"), "c0");
}

TEST_F(RouteIndexTest, ManyRegexRoutesInSeveralSets) {
  // More regexes than one set holds: 16 blocks of 63, each in leaves of 16 with sets of their
  // own. Only one regex matches each path.
  for (int i = 0; i < 1000; ++i) {
    add("re" + std::to_string(i), regex("/n" + std::to_string(i) + "/[0-9]+"));
  }
  ASSERT_NO_FATAL_FAILURE(build());
  EXPECT_EQ(match("/n999/42"), "re999");
  EXPECT_EQ(match("/n0/1"), "re0");
  EXPECT_EQ(match("/n512/1"), "re512");
  EXPECT_EQ(match("/n512/x"), "");
  // Routes all through the blocks and their leaves (match() also compares with the scan).
  for (int i = 0; i < 1000; i += 7) {
    EXPECT_EQ(match("/n" + std::to_string(i) + "/7"), "re" + std::to_string(i));
  }
}

TEST_F(RouteIndexTest, MoreListsThanTheCursorsHoldFallsBackToTheScan) {
  // A host with 60 labels under 60 wildcard patterns, and a path under 60 nested prefixes.
  std::string host = "example.com";
  std::string path;
  for (int i = 0; i < 60; ++i) {
    add("w" + std::to_string(i), {}, {"*." + host}).match.methods = {"PUT"};
    host = "l" + std::to_string(i) + "." + host;
    path += "/s";
    add("p" + std::to_string(i), prefix(path)).match.methods = {"PUT"};
  }
  add("last");
  ASSERT_NO_FATAL_FAILURE(build());
  EXPECT_EQ(match(path, "x." + host), "last");
  EXPECT_EQ(match(path, "x." + host, "PUT"), "w0");
  EXPECT_EQ(match(path, "nothing.org", "PUT"), "p0");
}

TEST_F(RouteIndexTest, ListenerViewsHaveTheirOwnIndex) {
  add("only-l2", prefix("/"), {"a.example.com"}).match.listeners = {"l2"};
  add("l1-exact", exact("/a"), {"a.example.com"}).match.listeners = {"l1"};
  add("shared", prefix("/a"));
  ASSERT_NO_FATAL_FAILURE(build());
  RequestHead r;
  r.method = "GET";
  r.target = "/a";
  r.authority = "a.example.com";
  EXPECT_EQ(name_of(RouteTable::for_listener(table_, "l1")->match(r)), "l1-exact");
  EXPECT_EQ(name_of(RouteTable::for_listener(table_, "l2")->match(r)), "only-l2");
  EXPECT_EQ(name_of(RouteTable::for_listener(table_, "l3")->match(r)), "shared");
}

}  // namespace
}  // namespace sluice::router
