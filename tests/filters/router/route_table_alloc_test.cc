// RouteTable::match() runs per request and must not allocate. This file replaces the global
// operator new/delete of the filters_tests binary with malloc/free plus a per-thread counter
// that only counts while a test has switched it on; everything else behaves as before.
#include <gtest/gtest.h>

#include <cstdlib>
#include <new>

#include "filters/router/route_table.h"

namespace {
thread_local bool counting = false;
thread_local size_t allocations = 0;
}  // namespace

// noinline: inlined into callers, free() on a new'd pointer looks mismatched to g++ -O2.
[[gnu::noinline]] void* operator new(std::size_t size) {
  if (counting) ++allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
// The nothrow forms too (std::stable_sort's buffer): their default would pair the runtime's
// new with the free above, which ASan reports as a mismatch.
[[gnu::noinline]] void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  if (counting) ++allocations;
  return std::malloc(size == 0 ? 1 : size);
}
[[gnu::noinline]] void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace sluice::router {
namespace {

// Allocations made by `fn` on this thread.
template <typename Fn>
size_t count_allocations(Fn&& fn) {
  allocations = 0;
  counting = true;
  fn();
  counting = false;
  return allocations;
}

TEST(RouteTableAllocations, CounterWorks) {
  // Guards the test below against a counter that never counts.
  // Direct calls: a new-expression paired with delete may be elided by the optimizer.
  EXPECT_GE(count_allocations([] { ::operator delete(::operator new(16)); }), 1u);
}

TEST(RouteTableAllocations, MatchDoesNotAllocate) {
  config::Config c;
  c.clusters.emplace_back().name = "b";
  auto add = [&](std::string name, config::PathMatch path) -> config::Route& {
    config::Route& r = c.routes.emplace_back();
    r.name = std::move(name);
    r.match.path = std::move(path);
    r.cluster = "b";
    return r;
  };
  using K = config::PathMatch::Kind;
  add("hosted", {K::prefix, "/v1/"}).match.hosts = {"api.example.com", "*.example.org"};
  add("methods", {K::exact, "/login"}).match.methods = {"POST"};
  add("header", {K::prefix, "/h"})
      .match.headers.push_back({"x-env", config::HeaderMatch::Kind::exact, "prod"});
  add("header-rx", {K::prefix, "/h"})
      .match.headers.push_back({"x-ver", config::HeaderMatch::Kind::regex, "v[0-9]+"});
  add("regex", {K::regex, "/users/[0-9]+/posts"});
  add("fallback", {});
  auto table = RouteTable::build(c);
  ASSERT_NE(table, nullptr);

  std::vector<RequestHead> requests(6);
  requests[0].target = "/v1/users?x=1";
  requests[0].authority = "a.b.example.org:8443";
  requests[1].target = "/login";
  requests[1].method = "POST";
  requests[2].target = "/h";
  requests[2].headers.add("X-Env", "prod");
  requests[3].target = "/h";
  requests[3].headers.add("x-ver", "v12");
  requests[4].target = "/users/42/posts?all";
  requests[4].authority = "[::1]:8080";
  requests[5].target = "/nothing/else";
  for (auto& r : requests) {
    if (r.method.empty()) r.method = "GET";
  }
  const char* expected[] = {"hosted", "methods", "header", "header-rx", "regex", "fallback"};
  for (size_t i = 0; i < requests.size(); ++i) {
    const CompiledRoute* m = table->match(requests[i]);
    ASSERT_NE(m, nullptr) << i;
    EXPECT_EQ(m->route->name, expected[i]);
  }
  // RE2 builds its DFA states lazily on first use; those are per-table, not per-request, so
  // only the warmed-up steady state is measured.
  const CompiledRoute* sink = nullptr;
  size_t n = count_allocations([&] {
    for (int round = 0; round < 100; ++round) {
      for (const auto& r : requests) sink = table->match(r);
    }
  });
  EXPECT_EQ(n, 0u);
  EXPECT_NE(sink, nullptr);
}

TEST(RouteTableAllocations, LargeIndexedTableMatchDoesNotAllocate) {
  // Every kind of index list: exact and wildcard hosts, any host, prefixes, exact paths, regex
  // routes in several sets, and a request whose candidates span many of them.
  config::Config c;
  c.clusters.emplace_back().name = "b";
  using K = config::PathMatch::Kind;
  for (int i = 0; i < 2000; ++i) {
    config::Route& r = c.routes.emplace_back();
    const std::string n = std::to_string(i);
    r.name = "r" + n;
    r.cluster = "b";
    switch (i % 5) {
      case 0:
        r.match.hosts = {"h" + n + ".example.com"};
        break;
      case 1:
        r.match.hosts = {"*.d" + n + ".example.com"};
        r.match.path = {K::prefix, "/p" + n + "/"};
        break;
      case 2:
        r.match.path = {K::exact, "/e" + n};
        r.match.methods = {"PUT"};
        break;
      case 3:
        r.match.path = {K::regex, "/re" + n + "/[0-9]+"};
        break;
      default:
        r.match.path = {K::prefix, "/p" + n + "/"};
        break;
    }
  }
  auto table = RouteTable::build(c);
  ASSERT_NE(table, nullptr);
  std::vector<RequestHead> requests(5);
  requests[0].authority = "h1995.example.com";
  requests[0].target = "/";
  requests[1].authority = "x.d1996.example.com:80";
  requests[1].target = "/p1996/users";
  requests[2].authority = "nothing.example.org";
  requests[2].target = "/re1998/42";
  requests[3].authority = "nothing.example.org";
  requests[3].target = "/p1999/x?y";
  requests[4].authority = "nothing.example.org";
  requests[4].target = "/matches/nothing";
  const char* expected[] = {"r1995", "r1996", "r1998", "r1999", ""};
  for (auto& r : requests) r.method = "GET";
  for (size_t i = 0; i < requests.size(); ++i) {
    const CompiledRoute* m = table->match(requests[i]);
    EXPECT_EQ(m ? m->route->name : "", expected[i]) << i;
  }
  const CompiledRoute* sink = nullptr;
  size_t n = count_allocations([&] {
    for (int round = 0; round < 100; ++round) {
      for (const auto& r : requests) sink = table->match(r);
    }
  });
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(sink, nullptr);
}

}  // namespace
}  // namespace sluice::router
