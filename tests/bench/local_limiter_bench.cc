// Micro-benchmarks of LocalLimiter::acquire() (Google Benchmark). Built, never run by ctest:
// figures, not assertions. The clock is simulated: each call passes a `now` that moves on by
// one emission interval, so every request is admitted and pays its compare-exchange.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include "filters/rate_limit/local_limiter.h"

namespace sluice::rate_limit {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

Quota bench_quota() { return *Quota::make(1'000'000, kSecond, 1000); }  // T = 1 us

std::vector<std::string> client_keys(size_t n) {
  std::vector<std::string> keys;
  keys.reserve(n);
  char buf[32];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "10.%zu.%zu.%zu", (i >> 16) & 255, (i >> 8) & 255, i & 255);
    keys.emplace_back(buf);
  }
  return keys;
}

// The keyed hash alone, for the share of acquire() it takes.
void BM_KeyHash(benchmark::State& state) {
  const std::string key = "10.0.0.1";
  for (auto _ : state) {
    benchmark::DoNotOptimize(detail::siphash13(1, 2, key));
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_KeyHash);

void BM_HotKey(benchmark::State& state) {
  LocalLimiter limiter(bench_quota(), 100'000);
  const int64_t t = limiter.quota().interval();
  int64_t now = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(limiter.acquire("10.0.0.1", now));
    now += t;
  }
}
BENCHMARK(BM_HotKey);

// A refused request reads the TAT and writes nothing.
void BM_HotKeyRefused(benchmark::State& state) {
  LocalLimiter limiter(bench_quota(), 100'000);
  for (int i = 0; i < 1000; ++i) limiter.acquire("10.0.0.1", 0);
  for (auto _ : state) benchmark::DoNotOptimize(limiter.acquire("10.0.0.1", 0));
}
BENCHMARK(BM_HotKeyRefused);

void BM_DistinctKeysRoundRobin(benchmark::State& state) {
  const std::vector<std::string> keys = client_keys(static_cast<size_t>(state.range(0)));
  LocalLimiter limiter(bench_quota(), 100'000);
  const int64_t t = limiter.quota().interval();
  int64_t now = 0;
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(limiter.acquire(keys[i], now));
    if (++i == keys.size()) i = 0, now += t;
  }
  state.counters["evictions"] = static_cast<double>(limiter.evictions());
}
BENCHMARK(BM_DistinctKeysRoundRobin)->Arg(10'000);

// Every request a key never seen, into a full table of idle keys: the slow path (spin flag,
// rescan, reclaim of an idle slot).
void BM_FloodOfNewKeys(benchmark::State& state) {
  const std::vector<std::string> keys = client_keys(1'000'000);
  LocalLimiter limiter(bench_quota(), 10'000);
  int64_t now = 0;
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(limiter.acquire(keys[i], now));
    if (++i == keys.size()) i = 0;
    now += 1000;  // keys go idle 1 ms after their request: 1000 limited at a time
  }
  state.counters["evictions"] = static_cast<double>(limiter.evictions());
}
BENCHMARK(BM_FloodOfNewKeys);

// Two threads on one key: contended compare-exchanges on one cache line.
LocalLimiter* shared_limiter = nullptr;
void BM_HotKeyThreads(benchmark::State& state) {
  if (state.thread_index() == 0) shared_limiter = new LocalLimiter(bench_quota(), 100'000);
  // Each thread's clock moves at T per call, so the pair runs at twice the rate: about half
  // the requests are refused once the burst is used.
  const int64_t t = bench_quota().interval();
  int64_t now = 0;
  int64_t admitted = 0;
  for (auto _ : state) {
    admitted += shared_limiter->acquire("10.0.0.1", now).allowed;
    now += t;
  }
  state.counters["admitted_share"] =
      benchmark::Counter(static_cast<double>(admitted) / static_cast<double>(state.iterations()),
                         benchmark::Counter::kAvgThreads);
  if (state.thread_index() == 0) {
    delete shared_limiter;
    shared_limiter = nullptr;
  }
}
BENCHMARK(BM_HotKeyThreads)->Threads(2)->UseRealTime();

void BM_BytesPerKey(benchmark::State& state) {
  const size_t max_keys = static_cast<size_t>(state.range(0));
  size_t bytes = 0;
  for (auto _ : state) {
    LocalLimiter limiter(bench_quota(), max_keys);
    bytes = limiter.memory_bytes();
    benchmark::DoNotOptimize(bytes);
  }
  state.counters["memory_bytes"] = static_cast<double>(bytes);
  state.counters["bytes_per_key"] = static_cast<double>(bytes) / static_cast<double>(max_keys);
}
BENCHMARK(BM_BytesPerKey)->Arg(100'000)->Iterations(1);

}  // namespace
}  // namespace sluice::rate_limit
