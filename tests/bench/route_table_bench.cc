// Micro-benchmarks of RouteTable::match() with 10 and 10,000 routes, the request hitting the
// last one: routes by exact host, by path prefix, and half of each (as in issue 12). The
// `Linear` variants run the first-match scan the index replaced (match_linear()),
// `AllCatchAll` is the index's worst case (every route a candidate, each failing on its
// method), and `Regexes` has only regex routes ("/rN/[0-9]+"), also at 1,000.
// Built, never run by ctest: figures, not assertions.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "filters/router/route_table.h"

namespace sluice::router {
namespace {

enum class Shape { hosts, prefixes, half, catch_all, regexes };

// The table keeps pointers into its Config, so both live together.
struct Fixture {
  config::Config config;
  std::shared_ptr<const RouteTable> table;
  RequestHead request;
};

std::unique_ptr<Fixture> make(Shape shape, int routes) {
  auto f = std::make_unique<Fixture>();
  f->config.clusters.emplace_back().name = "backend";
  const int host_routes = shape == Shape::hosts ? routes : shape == Shape::half ? routes / 2 : 0;
  for (int i = 0; i < routes; ++i) {
    config::Route& r = f->config.routes.emplace_back();
    r.name = "r" + std::to_string(i);
    r.cluster = "backend";
    if (shape == Shape::regexes) {
      r.match.path = {config::PathMatch::Kind::regex, "/r" + std::to_string(i) + "/[0-9]+"};
    } else if (shape == Shape::catch_all) {
      r.match.path = {config::PathMatch::Kind::prefix, "/"};
      if (i + 1 < routes) r.match.methods = {"PUT"};
    } else if (i < host_routes) {
      r.match.hosts = {"h" + std::to_string(i) + ".example.com"};
    } else {
      r.match.path = {config::PathMatch::Kind::prefix, "/p" + std::to_string(i) + "/"};
    }
  }
  f->table = RouteTable::build(f->config);
  f->request.method = "GET";
  f->request.authority = "www.example.net";
  f->request.target = "/index.html";
  const int last = routes - 1;
  if (shape == Shape::hosts) {
    f->request.authority = "h" + std::to_string(last) + ".example.com";
  } else if (shape == Shape::regexes) {
    f->request.target = "/r" + std::to_string(last) + "/42?page=2";
  } else if (shape != Shape::catch_all) {
    f->request.target = "/p" + std::to_string(last) + "/users/42?page=2";
  }
  return f;
}

void run(benchmark::State& state, Shape shape, bool linear) {
  auto f = make(shape, static_cast<int>(state.range(0)));
  const CompiledRoute* expected = &f->table->routes().back();
  if (f->table->match(f->request) != expected || f->table->match_linear(f->request) != expected) {
    state.SkipWithError("the request does not hit the last route");
    return;
  }
  for (auto _ : state) {
    const CompiledRoute* m =
        linear ? f->table->match_linear(f->request) : f->table->match(f->request);
    benchmark::DoNotOptimize(m);
  }
}

void BM_Hosts(benchmark::State& s) { run(s, Shape::hosts, false); }
void BM_HostsLinear(benchmark::State& s) { run(s, Shape::hosts, true); }
void BM_Prefixes(benchmark::State& s) { run(s, Shape::prefixes, false); }
void BM_PrefixesLinear(benchmark::State& s) { run(s, Shape::prefixes, true); }
void BM_HalfHalf(benchmark::State& s) { run(s, Shape::half, false); }
void BM_HalfHalfLinear(benchmark::State& s) { run(s, Shape::half, true); }
void BM_AllCatchAll(benchmark::State& s) { run(s, Shape::catch_all, false); }
void BM_AllCatchAllLinear(benchmark::State& s) { run(s, Shape::catch_all, true); }
void BM_Regexes(benchmark::State& s) { run(s, Shape::regexes, false); }
void BM_RegexesLinear(benchmark::State& s) { run(s, Shape::regexes, true); }
BENCHMARK(BM_Hosts)->Arg(10)->Arg(10000);
BENCHMARK(BM_HostsLinear)->Arg(10)->Arg(10000);
BENCHMARK(BM_Prefixes)->Arg(10)->Arg(10000);
BENCHMARK(BM_PrefixesLinear)->Arg(10)->Arg(10000);
BENCHMARK(BM_HalfHalf)->Arg(10)->Arg(10000);
BENCHMARK(BM_HalfHalfLinear)->Arg(10)->Arg(10000);
BENCHMARK(BM_AllCatchAll)->Arg(10)->Arg(10000);
BENCHMARK(BM_AllCatchAllLinear)->Arg(10)->Arg(10000);
BENCHMARK(BM_Regexes)->Arg(10)->Arg(1000)->Arg(10000);
BENCHMARK(BM_RegexesLinear)->Arg(10)->Arg(1000)->Arg(10000);

}  // namespace
}  // namespace sluice::router
