#include "filters/router/route_table.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <utility>

namespace sluice::router {
namespace {

using config::HeaderMatch;
using config::PathMatch;

config::PathMatch prefix(std::string v) { return {PathMatch::Kind::prefix, std::move(v)}; }
config::PathMatch exact(std::string v) { return {PathMatch::Kind::exact, std::move(v)}; }
config::PathMatch regex(std::string v) { return {PathMatch::Kind::regex, std::move(v)}; }

config::Route route(std::string name, config::PathMatch path = {}) {
  config::Route r;
  r.name = std::move(name);
  r.match.path = std::move(path);
  r.cluster = "backend";
  return r;
}

config::Cluster cluster(std::string name) {
  config::Cluster c;
  c.name = std::move(name);
  return c;
}

config::Config make_config(std::initializer_list<config::Route> routes) {
  config::Config c;
  c.clusters.push_back(cluster("backend"));
  c.clusters.push_back(cluster("other"));
  c.routes = routes;
  return c;
}

RequestHead request(std::string target, std::string authority = "example.com",
                    std::string method = "GET") {
  RequestHead r;
  r.method = std::move(method);
  r.target = std::move(target);
  r.authority = std::move(authority);
  return r;
}

// Builds the table (asserting success) and keeps its Config alive alongside it.
class RouteTableTest : public ::testing::Test {
 protected:
  void build(config::Config c) {
    config_ = std::move(c);
    std::string error;
    table_ = RouteTable::build(config_, &error);
    ASSERT_NE(table_, nullptr) << error;
    EXPECT_EQ(error, "");
  }
  // Name of the matched route, "" when none.
  std::string matched(const RequestHead& r) const {
    const CompiledRoute* m = table_->match(r);
    return m == nullptr ? "" : m->route->name;
  }

  config::Config config_;
  std::shared_ptr<const RouteTable> table_;
};

// ---- host ----------------------------------------------------------------------

TEST(HostMatches, ExactIsCaseInsensitiveAndIgnoresPort) {
  EXPECT_TRUE(host_matches("api.example.com", "api.example.com"));
  EXPECT_TRUE(host_matches("api.example.com", "API.Example.COM"));
  EXPECT_TRUE(host_matches("API.example.com", "api.example.com:8443"));
  EXPECT_TRUE(host_matches("api.example.com", "api.example.com."));
  EXPECT_FALSE(host_matches("api.example.com", "www.example.com"));
  EXPECT_FALSE(host_matches("api.example.com", "api.example.com.evil"));
  EXPECT_FALSE(host_matches("api.example.com", "example.com"));
  EXPECT_FALSE(host_matches("api.example.com", ""));
}

TEST(HostMatches, Wildcard) {
  EXPECT_TRUE(host_matches("*.example.com", "a.example.com"));
  EXPECT_TRUE(host_matches("*.example.com", "a.b.example.com"));
  EXPECT_TRUE(host_matches("*.example.com", "A.EXAMPLE.com:80"));
  EXPECT_FALSE(host_matches("*.example.com", "example.com"));
  EXPECT_FALSE(host_matches("*.example.com", ".example.com"));
  EXPECT_FALSE(host_matches("*.example.com", "badexample.com"));
  EXPECT_FALSE(host_matches("*.example.com", "a.example.org"));
  EXPECT_FALSE(host_matches("*.example.com", "a.example.com.evil.net"));
}

TEST(HostMatches, StarMatchesAnyHost) {
  EXPECT_TRUE(host_matches("*", "anything.test:1"));
  EXPECT_TRUE(host_matches("*", "[::1]:8080"));
}

TEST(HostMatches, Ipv6WithOrWithoutBrackets) {
  EXPECT_TRUE(host_matches("[::1]", "[::1]:8080"));
  EXPECT_TRUE(host_matches("::1", "[::1]:8080"));
  EXPECT_TRUE(host_matches("::1", "[::1]"));
  EXPECT_TRUE(host_matches("[2001:DB8::1]", "[2001:db8::1]:443"));
  EXPECT_FALSE(host_matches("::1", "[::2]:8080"));
  EXPECT_FALSE(host_matches("[::1]", "127.0.0.1:8080"));
}

// ---- build ---------------------------------------------------------------------------------

TEST_F(RouteTableTest, ResolvesClusters) {
  auto to_other = route("o");
  to_other.cluster = "other";
  auto respond = route("r");
  respond.cluster.clear();
  respond.respond.emplace().status = 204;
  build(make_config({route("b"), to_other, respond}));
  ASSERT_EQ(table_->routes().size(), 3u);
  EXPECT_EQ(table_->routes()[0].cluster, &config_.clusters[0]);
  EXPECT_EQ(table_->routes()[1].cluster, &config_.clusters[1]);
  EXPECT_EQ(table_->routes()[2].cluster, nullptr);
  EXPECT_EQ(table_->routes()[0].route, &config_.routes[0]);
}

TEST(RouteTableBuild, UnknownClusterIsAnError) {
  auto r = route("x");
  r.cluster = "missing";
  auto c = make_config({r});
  std::string error;
  EXPECT_EQ(RouteTable::build(c, &error), nullptr);
  EXPECT_NE(error.find("missing"), std::string::npos) << error;
  EXPECT_EQ(RouteTable::build(c), nullptr);  // error pointer is optional
}

TEST(RouteTableBuild, InvalidPathRegexIsAnError) {
  auto c = make_config({route("bad", regex("/a(b"))});
  std::string error;
  EXPECT_EQ(RouteTable::build(c, &error), nullptr);
  EXPECT_NE(error.find("bad"), std::string::npos) << error;
  EXPECT_NE(error.find("/a(b"), std::string::npos) << error;
}

TEST(RouteTableBuild, InvalidHeaderRegexIsAnError) {
  auto r = route("badheader");
  r.match.headers.push_back({"x-v", HeaderMatch::Kind::regex, "[z-a]"});
  auto c = make_config({r});
  std::string error;
  EXPECT_EQ(RouteTable::build(c, &error), nullptr);
  EXPECT_NE(error.find("x-v"), std::string::npos) << error;
}

TEST_F(RouteTableTest, RegexesCompiledOnlyWhereNeeded) {
  auto r = route("r", regex("/a/.*"));
  r.match.headers.push_back({"x-a", HeaderMatch::Kind::present, ""});
  r.match.headers.push_back({"x-b", HeaderMatch::Kind::regex, "v[0-9]+"});
  r.match.headers.push_back({"x-c", HeaderMatch::Kind::exact, "v"});
  build(make_config({r, route("p", prefix("/"))}));
  const auto& compiled = table_->routes()[0];
  EXPECT_NE(compiled.path_regex, nullptr);
  ASSERT_EQ(compiled.header_regexes.size(), 3u);
  EXPECT_EQ(compiled.header_regexes[0], nullptr);
  EXPECT_NE(compiled.header_regexes[1], nullptr);
  EXPECT_EQ(compiled.header_regexes[2], nullptr);
  EXPECT_EQ(table_->routes()[1].path_regex, nullptr);
}

TEST_F(RouteTableTest, EmptyTableMatchesNothing) {
  build(make_config({}));
  EXPECT_EQ(table_->match(request("/")), nullptr);
}

// ---- path ----------------------------------------------------------------------------------

TEST_F(RouteTableTest, AnyPathMatchesEverything) {
  build(make_config({route("any")}));
  EXPECT_EQ(matched(request("/")), "any");
  EXPECT_EQ(matched(request("/a/b?c=d")), "any");
  EXPECT_EQ(matched(request("*", "example.com", "OPTIONS")), "any");
}

TEST_F(RouteTableTest, PrefixIsPlainStringPrefixOfPath) {
  build(make_config({route("v1", prefix("/v1/")), route("api", prefix("/api"))}));
  EXPECT_EQ(matched(request("/v1/")), "v1");
  EXPECT_EQ(matched(request("/v1/users?id=3")), "v1");
  EXPECT_EQ(matched(request("/v1")), "");
  EXPECT_EQ(matched(request("/v1?x=/v1/")), "");  // the query is not part of the path
  EXPECT_EQ(matched(request("/V1/users")), "");   // case-sensitive
  EXPECT_EQ(matched(request("/api")), "api");
  EXPECT_EQ(matched(request("/apiary")), "api");  // string prefix, not segment prefix
  EXPECT_EQ(matched(request("/ap")), "");
}

TEST_F(RouteTableTest, ExactMatchesWholePathWithoutQuery) {
  build(make_config({route("health", exact("/healthz"))}));
  EXPECT_EQ(matched(request("/healthz")), "health");
  EXPECT_EQ(matched(request("/healthz?verbose=1")), "health");
  EXPECT_EQ(matched(request("/healthz/")), "");
  EXPECT_EQ(matched(request("/healthzz")), "");
  EXPECT_EQ(matched(request("/health")), "");
}

TEST_F(RouteTableTest, RegexIsFullMatchAgainstPathWithoutQuery) {
  build(make_config({route("user", regex("/users/[0-9]+"))}));
  EXPECT_EQ(matched(request("/users/42")), "user");
  EXPECT_EQ(matched(request("/users/42?x=y")), "user");
  EXPECT_EQ(matched(request("/users/42/posts")), "");  // a partial match is not enough
  EXPECT_EQ(matched(request("/api/users/42")), "");
  EXPECT_EQ(matched(request("/users/")), "");
  EXPECT_EQ(matched(request("/users/abc")), "");
}

TEST_F(RouteTableTest, RegexAnchorsAndAlternation) {
  // Without a full match, "a|b" would accept "/xa"; the whole pattern must cover the path.
  build(make_config({route("alt", regex("/a|/b"))}));
  EXPECT_EQ(matched(request("/a")), "alt");
  EXPECT_EQ(matched(request("/b")), "alt");
  EXPECT_EQ(matched(request("/ab")), "");
  EXPECT_EQ(matched(request("/xa")), "");
}

// ---- hosts ---------------------------------------------------------------------------------

TEST_F(RouteTableTest, Hosts) {
  auto api = route("api");
  api.match.hosts = {"api.example.com", "API.example.org"};
  auto wild = route("wild");
  wild.match.hosts = {"*.example.com"};
  auto v6 = route("v6");
  v6.match.hosts = {"::1"};
  build(make_config({api, wild, v6, route("fallback")}));
  EXPECT_EQ(matched(request("/", "api.example.com")), "api");
  EXPECT_EQ(matched(request("/", "Api.Example.Com:8080")), "api");
  EXPECT_EQ(matched(request("/", "api.example.org")), "api");
  EXPECT_EQ(matched(request("/", "www.example.com")), "wild");
  EXPECT_EQ(matched(request("/", "a.b.example.com:443")), "wild");
  EXPECT_EQ(matched(request("/", "example.com")), "fallback");
  EXPECT_EQ(matched(request("/", "[::1]:8080")), "v6");
  EXPECT_EQ(matched(request("/", "[::1]")), "v6");
  EXPECT_EQ(matched(request("/", "[::2]:8080")), "fallback");
  EXPECT_EQ(matched(request("/", "")), "fallback");  // no authority: only host-less routes
}

// ---- methods -------------------------------------------------------------------------------

TEST_F(RouteTableTest, MethodsAreExactAndCaseSensitive) {
  auto write = route("write");
  write.match.methods = {"POST", "PUT"};
  build(make_config({write, route("other")}));
  EXPECT_EQ(matched(request("/", "h", "POST")), "write");
  EXPECT_EQ(matched(request("/", "h", "PUT")), "write");
  EXPECT_EQ(matched(request("/", "h", "post")), "other");
  EXPECT_EQ(matched(request("/", "h", "GET")), "other");
  EXPECT_EQ(matched(request("/", "h", "POS")), "other");
  EXPECT_EQ(matched(request("/", "h", "POSTS")), "other");
}

// ---- headers -------------------------------------------------------------------------------

TEST_F(RouteTableTest, HeaderPresent) {
  auto r = route("h");
  r.match.headers.push_back({"X-Debug", HeaderMatch::Kind::present, ""});
  build(make_config({r}));
  auto req = request("/");
  EXPECT_EQ(matched(req), "");
  req.headers.add("x-debugging", "1");
  EXPECT_EQ(matched(req), "");
  req.headers.add("x-debug", "");  // an empty value still counts as present
  EXPECT_EQ(matched(req), "h");
}

TEST_F(RouteTableTest, HeaderExactValueCaseSensitiveNameInsensitive) {
  auto r = route("prod");
  r.match.headers.push_back({"x-env", HeaderMatch::Kind::exact, "prod"});
  build(make_config({r}));
  auto req = request("/");
  req.headers.add("X-ENV", "prod");
  EXPECT_EQ(matched(req), "prod");

  auto upper = request("/");
  upper.headers.add("x-env", "PROD");
  EXPECT_EQ(matched(upper), "");

  auto longer = request("/");
  longer.headers.add("x-env", "production");
  EXPECT_EQ(matched(longer), "");

  auto missing = request("/");
  EXPECT_EQ(matched(missing), "");
}

TEST_F(RouteTableTest, HeaderRegexIsFullMatch) {
  auto r = route("ver");
  r.match.headers.push_back({"x-version", HeaderMatch::Kind::regex, "v[0-9]+"});
  build(make_config({r}));
  auto req = request("/");
  req.headers.add("X-Version", "v12");
  EXPECT_EQ(matched(req), "ver");
  auto partial = request("/");
  partial.headers.add("x-version", "v12-beta");
  EXPECT_EQ(matched(partial), "");
  auto prefixed = request("/");
  prefixed.headers.add("x-version", "av1");
  EXPECT_EQ(matched(prefixed), "");
}

TEST_F(RouteTableTest, RepeatedHeaderMatchesWhenAnyFieldMatches) {
  auto r = route("r");
  r.match.headers.push_back({"x-tag", HeaderMatch::Kind::exact, "b"});
  auto rx = route("rx");
  rx.match.headers.push_back({"x-id", HeaderMatch::Kind::regex, "[0-9]+"});
  build(make_config({r, rx}));
  auto req = request("/");
  req.headers.add("x-tag", "a");
  req.headers.add("x-tag", "b");
  EXPECT_EQ(matched(req), "r");
  auto ids = request("/");
  ids.headers.add("x-id", "abc");
  ids.headers.add("X-Id", "123");
  EXPECT_EQ(matched(ids), "rx");
}

TEST_F(RouteTableTest, AllHeaderConditionsMustMatch) {
  auto r = route("both");
  r.match.headers.push_back({"x-a", HeaderMatch::Kind::exact, "1"});
  r.match.headers.push_back({"x-b", HeaderMatch::Kind::present, ""});
  build(make_config({r}));
  auto only_a = request("/");
  only_a.headers.add("x-a", "1");
  EXPECT_EQ(matched(only_a), "");
  auto both = only_a;
  both.headers.add("x-b", "anything");
  EXPECT_EQ(matched(both), "both");
  auto wrong_a = request("/");
  wrong_a.headers.add("x-a", "2");
  wrong_a.headers.add("x-b", "anything");
  EXPECT_EQ(matched(wrong_a), "");
}

// ---- combination and order -----------------------------------------------------------------

TEST_F(RouteTableTest, EveryConditionMustHold) {
  auto api = route("api", prefix("/v1/"));
  api.match.hosts = {"api.example.com"};
  api.match.methods = {"GET", "POST"};
  api.match.headers.push_back({"x-env", HeaderMatch::Kind::exact, "prod"});
  build(make_config({api}));
  auto ok = request("/v1/users", "api.example.com:443", "POST");
  ok.headers.add("x-env", "prod");
  EXPECT_EQ(matched(ok), "api");

  auto bad_host = ok;
  bad_host.authority = "web.example.com";
  EXPECT_EQ(matched(bad_host), "");
  auto bad_path = ok;
  bad_path.target = "/v2/users";
  EXPECT_EQ(matched(bad_path), "");
  auto bad_method = ok;
  bad_method.method = "DELETE";
  EXPECT_EQ(matched(bad_method), "");
  auto bad_header = ok;
  bad_header.headers.set("x-env", "dev");
  EXPECT_EQ(matched(bad_header), "");
}

TEST_F(RouteTableTest, FirstMatchWins) {
  build(make_config({route("users", prefix("/v1/users")), route("v1", prefix("/v1/")),
                     route("exact-users", exact("/v1/users")), route("all", prefix("/"))}));
  EXPECT_EQ(matched(request("/v1/users")), "users");  // not exact-users: it comes later
  EXPECT_EQ(matched(request("/v1/orders")), "v1");
  EXPECT_EQ(matched(request("/v2")), "all");
  // The returned pointer is the table's entry for that route.
  EXPECT_EQ(table_->match(request("/v1/x")), &table_->routes()[1]);
}

TEST_F(RouteTableTest, BroadRouteFirstShadowsLaterOnes) {
  build(make_config({route("all", prefix("/")), route("users", prefix("/v1/users"))}));
  EXPECT_EQ(matched(request("/v1/users")), "all");
}

// ---- per-listener views --------------------------------------------------------------------

TEST_F(RouteTableTest, ForListenerKeepsItsRoutesInOrder) {
  auto https = route("to-https");
  https.match.listeners = {"plain"};
  auto site = route("site", prefix("/"));
  site.match.listeners = {"tls", "other"};
  auto users = route("users", prefix("/users"));
  build(make_config({https, site, route("everywhere"), users}));
  const auto plain = RouteTable::for_listener(table_, "plain");
  ASSERT_EQ(plain->routes().size(), 3u);
  EXPECT_EQ(plain->routes()[0].route->name, "to-https");
  EXPECT_EQ(plain->routes()[1].route->name, "everywhere");
  EXPECT_EQ(plain->routes()[2].route->name, "users");
  EXPECT_EQ(plain->match(request("/users"))->route->name, "to-https");

  const auto tls = RouteTable::for_listener(table_, "tls");
  ASSERT_EQ(tls->routes().size(), 3u);
  EXPECT_EQ(tls->match(request("/users"))->route->name, "site");
  EXPECT_EQ(RouteTable::for_listener(table_, "other")->routes().size(), 3u);
  // A listener no restricted route names gets only the unrestricted ones.
  const auto none = RouteTable::for_listener(table_, "admin");
  ASSERT_EQ(none->routes().size(), 2u);
  EXPECT_EQ(none->match(request("/x"))->route->name, "everywhere");
  // The full table still has every route; views share its compiled routes' config.
  EXPECT_EQ(table_->routes().size(), 4u);
  EXPECT_EQ(plain->routes()[2].route, table_->routes()[3].route);
}

TEST_F(RouteTableTest, ForListenerSharesRegexesAndTheWholeTableWhenNothingIsRestricted) {
  auto re = route("re", regex("/r/[0-9]+"));
  re.match.listeners = {"a"};
  build(make_config({re, route("rest")}));
  const auto a = RouteTable::for_listener(table_, "a");
  EXPECT_EQ(a->routes()[0].path_regex, table_->routes()[0].path_regex);  // not recompiled
  EXPECT_EQ(a->match(request("/r/12"))->route->name, "re");
  EXPECT_EQ(RouteTable::for_listener(table_, "b")->match(request("/r/12"))->route->name, "rest");

  build(make_config({route("one"), route("two")}));
  EXPECT_EQ(RouteTable::for_listener(table_, "a"), table_);
  EXPECT_EQ(RouteTable::for_listener(nullptr, "a"), nullptr);
}

// ---- rewrite -------------------------------------------------------------------------------

class RewriteTest : public RouteTableTest {
 protected:
  std::string rewrite(config::PathMatch path, std::optional<std::string> to, std::string target) {
    auto r = route("r", std::move(path));
    r.rewrite_prefix = std::move(to);
    build(make_config({r}));
    auto req = request(std::move(target));
    const CompiledRoute* m = table_->match(req);
    EXPECT_NE(m, nullptr) << req.target;
    if (m == nullptr) return "<no match>";
    return RouteTable::rewrite_target(*m, req);
  }
};

TEST_F(RewriteTest, NoRewriteKeepsTarget) {
  EXPECT_EQ(rewrite(prefix("/v1/"), std::nullopt, "/v1/users?x=1"), "/v1/users?x=1");
}

TEST_F(RewriteTest, PrefixReplacesMatchedPrefixAndKeepsQuery) {
  EXPECT_EQ(rewrite(prefix("/v1/"), "/v2/", "/v1/users"), "/v2/users");
  EXPECT_EQ(rewrite(prefix("/v1/"), "/v2/", "/v1/users?id=1&b=2"), "/v2/users?id=1&b=2");
  EXPECT_EQ(rewrite(prefix("/api"), "/backend", "/api/x"), "/backend/x");
  EXPECT_EQ(rewrite(prefix("/v1/"), "/v2/", "/v1/"), "/v2/");
}

TEST_F(RewriteTest, NoDoubleSlash) {
  EXPECT_EQ(rewrite(prefix("/v1/"), "/", "/v1/users"), "/users");
  EXPECT_EQ(rewrite(prefix("/v1"), "/", "/v1/users"), "/users");
  EXPECT_EQ(rewrite(prefix("/v1"), "/", "/v1"), "/");
  EXPECT_EQ(rewrite(prefix("/v1"), "/", "/v1?q=1"), "/?q=1");
  EXPECT_EQ(rewrite(prefix("/v1/"), "/", "/v1/"), "/");
  EXPECT_EQ(rewrite(prefix("/v1"), "/v2/", "/v1/a"), "/v2/a");
}

TEST_F(RewriteTest, LiteralJoinOtherwise) {
  // As in Envoy and nginx: the remainder is appended as is.
  EXPECT_EQ(rewrite(prefix("/v1/"), "/v2", "/v1/users"), "/v2users");
  EXPECT_EQ(rewrite(prefix("/api"), "/v2", "/apiary"), "/v2ary");
  // A later "//" inside the remainder is the client's and is kept.
  EXPECT_EQ(rewrite(prefix("/v1/"), "/", "/v1//x"), "/x");
  EXPECT_EQ(rewrite(prefix("/v1"), "/v2", "/v1//x"), "/v2//x");
}

TEST_F(RewriteTest, ResultAlwaysStartsWithSlash) {
  EXPECT_EQ(rewrite(prefix("/v1/"), "", "/v1/users?a"), "/users?a");
  EXPECT_EQ(rewrite(prefix("/v1"), "", "/v1"), "/");
  EXPECT_EQ(rewrite(prefix("/v1/"), "x/", "/v1/y"), "/x/y");
}

TEST_F(RewriteTest, OtherKindsReplaceWholePath) {
  EXPECT_EQ(rewrite(exact("/old"), "/new", "/old?x=1"), "/new?x=1");
  EXPECT_EQ(rewrite(regex("/users/[0-9]+"), "/user", "/users/12?full"), "/user?full");
  EXPECT_EQ(rewrite({}, "/all", "/anything/at/all"), "/all");
}

TEST_F(RewriteTest, EmptyQueryMarkerIsKept) {
  EXPECT_EQ(rewrite(prefix("/a/"), "/b/", "/a/c?"), "/b/c?");
}

// ---- redirect ------------------------------------------------------------------------------

std::string redirect(const config::Redirect& rd, std::string target, std::string authority,
                     std::string scheme = "http") {
  auto req = request(std::move(target), std::move(authority));
  req.scheme = std::move(scheme);
  return RouteTable::redirect_location(rd, req);
}

TEST(Redirect, NothingSetRebuildsRequestUrl) {
  config::Redirect rd;
  EXPECT_EQ(redirect(rd, "/a/b?c=d", "example.com"), "http://example.com/a/b?c=d");
  EXPECT_EQ(redirect(rd, "/a", "example.com:8080"), "http://example.com:8080/a");
  EXPECT_EQ(redirect(rd, "/a", "example.com:8443", "https"), "https://example.com:8443/a");
}

TEST(Redirect, DefaultPortIsOmitted) {
  config::Redirect rd;
  EXPECT_EQ(redirect(rd, "/a", "example.com:80"), "http://example.com/a");
  EXPECT_EQ(redirect(rd, "/a", "example.com:443", "https"), "https://example.com/a");
  rd.port = 443;
  rd.scheme = "https";
  EXPECT_EQ(redirect(rd, "/a", "example.com"), "https://example.com/a");
}

TEST(Redirect, HttpsUpgradeDropsPort) {
  config::Redirect rd;
  rd.scheme = "https";
  EXPECT_EQ(redirect(rd, "/login?next=/x", "example.com"), "https://example.com/login?next=/x");
  EXPECT_EQ(redirect(rd, "/", "example.com:8080"), "https://example.com/");
  EXPECT_EQ(redirect(rd, "/", "[::1]:8080"), "https://[::1]/");
}

TEST(Redirect, SameSchemeKeepsPort) {
  config::Redirect rd;
  rd.scheme = "https";
  EXPECT_EQ(redirect(rd, "/", "example.com:8443", "https"), "https://example.com:8443/");
}

TEST(Redirect, PortSet) {
  config::Redirect rd;
  rd.scheme = "https";
  rd.port = 8443;
  EXPECT_EQ(redirect(rd, "/x", "example.com:8080"), "https://example.com:8443/x");
  config::Redirect port_only;
  port_only.port = 9000;
  EXPECT_EQ(redirect(port_only, "/x", "example.com"), "http://example.com:9000/x");
  EXPECT_EQ(redirect(port_only, "/x", "[::1]:80"), "http://[::1]:9000/x");
}

TEST(Redirect, HostReplacesAuthority) {
  config::Redirect rd;
  rd.host = "new.example.com";
  EXPECT_EQ(redirect(rd, "/p?q", "old.example.com:8080"), "http://new.example.com/p?q");
  rd.port = 8081;
  EXPECT_EQ(redirect(rd, "/p", "old.example.com:8080"), "http://new.example.com:8081/p");
  config::Redirect v6;
  v6.host = "2001:db8::1";
  EXPECT_EQ(redirect(v6, "/", "a.test"), "http://[2001:db8::1]/");
  v6.host = "[2001:db8::2]";
  EXPECT_EQ(redirect(v6, "/", "a.test"), "http://[2001:db8::2]/");
}

TEST(Redirect, Ipv6AuthorityKeepsBracketsAndPort) {
  config::Redirect rd;
  rd.path = "/new";
  EXPECT_EQ(redirect(rd, "/old", "[::1]:8080"), "http://[::1]:8080/new");
  EXPECT_EQ(redirect(rd, "/old", "[::1]"), "http://[::1]/new");
}

TEST(Redirect, PathReplacesPathQueryKept) {
  config::Redirect rd;
  rd.path = "/new/place";
  EXPECT_EQ(redirect(rd, "/old?a=1", "example.com"), "http://example.com/new/place?a=1");
  EXPECT_EQ(redirect(rd, "/old", "example.com"), "http://example.com/new/place");
}

TEST(Redirect, StripQuery) {
  config::Redirect rd;
  rd.strip_query = true;
  EXPECT_EQ(redirect(rd, "/old?a=1&b=2", "example.com"), "http://example.com/old");
  rd.path = "/n";
  EXPECT_EQ(redirect(rd, "/old?a=1", "example.com"), "http://example.com/n");
}

TEST(Redirect, PathWithOwnQueryReplacesRequestQuery) {
  config::Redirect rd;
  rd.path = "/search?src=old";
  EXPECT_EQ(redirect(rd, "/find?q=x", "example.com"), "http://example.com/search?src=old");
}

TEST(Redirect, EverythingSet) {
  config::Redirect rd;
  rd.status = 308;
  rd.scheme = "https";
  rd.host = "secure.example.net";
  rd.port = 4443;
  rd.path = "/landing";
  rd.strip_query = true;
  EXPECT_EQ(redirect(rd, "/x?y=z", "example.com:8080"), "https://secure.example.net:4443/landing");
}

TEST(Redirect, NoHostGivesRelativeReference) {
  config::Redirect rd;
  rd.path = "/moved";
  EXPECT_EQ(redirect(rd, "/old?q=1", ""), "/moved?q=1");
  rd.host = "h.test";
  EXPECT_EQ(redirect(rd, "/old", ""), "http://h.test/moved");
}

TEST(Redirect, NonSlashTargetGetsSlash) {
  config::Redirect rd;
  EXPECT_EQ(redirect(rd, "*", "example.com"), "http://example.com/*");
}

// A redirect route goes through match() like any other; its cluster is null.
TEST_F(RouteTableTest, RedirectRouteMatches) {
  auto r = route("to-https", prefix("/"));
  r.cluster.clear();
  r.redirect.emplace().scheme = "https";
  build(make_config({r}));
  auto req = request("/a?b", "example.com:80");
  const CompiledRoute* m = table_->match(req);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->cluster, nullptr);
  ASSERT_TRUE(m->route->redirect.has_value());
  EXPECT_EQ(RouteTable::redirect_location(*m->route->redirect, req), "https://example.com/a?b");
}

}  // namespace
}  // namespace sluice::router
