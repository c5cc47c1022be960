// Micro-benchmarks of the load-balancing policies (Google Benchmark): the cost of one pick at 10
// and 1,000 hosts, all available, and of building the hash policies' shared tables for 1,000
// hosts. Built, never run by ctest: figures, not assertions.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "upstream/host.h"
#include "upstream/lb/maglev.h"
#include "upstream/lb/ring_hash.h"
#include "upstream/load_balancer.h"

namespace sluice::upstream {
namespace {

HostSetPtr bench_hosts(size_t n) {
  auto set = std::make_shared<HostSet>();
  for (size_t i = 0; i < n; ++i) {
    set->hosts.push_back(std::make_shared<Host>(
        "10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1) + ":8080",
        static_cast<uint32_t>(i % 3 + 1)));
  }
  set->refresh_available();
  return set;
}

// One pick per iteration; the hash policies get a different, spread key hash each time (as
// requests do, without the cost of hashing a key: BM_LbHashKey has it).
void pick_bench(benchmark::State& state, std::string_view policy) {
  auto set = bench_hosts(static_cast<size_t>(state.range(0)));
  auto lb = make_load_balancer_factory(policy, set)->create(0, 2);
  PickContext ctx;
  uint64_t key = 0;
  for (auto _ : state) {
    ctx.hash = ++key * 0x9E3779B97F4A7C15ULL;
    benchmark::DoNotOptimize(lb->pick(ctx));
  }
}

void BM_LbPickRoundRobin(benchmark::State& state) { pick_bench(state, "round_robin"); }
void BM_LbPickLeastRequest(benchmark::State& state) { pick_bench(state, "least_request"); }
void BM_LbPickRandom(benchmark::State& state) { pick_bench(state, "random"); }
void BM_LbPickRingHash(benchmark::State& state) { pick_bench(state, "ring_hash"); }
void BM_LbPickMaglev(benchmark::State& state) { pick_bench(state, "maglev"); }
BENCHMARK(BM_LbPickRoundRobin)->Arg(10)->Arg(1000);
BENCHMARK(BM_LbPickLeastRequest)->Arg(10)->Arg(1000);
BENCHMARK(BM_LbPickRandom)->Arg(10)->Arg(1000);
BENCHMARK(BM_LbPickRingHash)->Arg(10)->Arg(1000);
BENCHMARK(BM_LbPickMaglev)->Arg(10)->Arg(1000);

// hash_key() of a client address.
void BM_LbHashKey(benchmark::State& state) {
  const std::string key = "203.0.113.77";
  for (auto _ : state) benchmark::DoNotOptimize(hash_key(key));
}
BENCHMARK(BM_LbHashKey);

template <class Factory>
void build_bench(benchmark::State& state) {
  auto set = bench_hosts(static_cast<size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(std::make_shared<Factory>(set));
}
void BM_LbBuildRingHash(benchmark::State& state) { build_bench<lb::RingHashFactory>(state); }
void BM_LbBuildMaglev(benchmark::State& state) { build_bench<lb::MaglevFactory>(state); }
BENCHMARK(BM_LbBuildRingHash)->Arg(1000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LbBuildMaglev)->Arg(1000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sluice::upstream
