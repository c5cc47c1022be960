// Micro-benchmarks of canonicalize_path (Google Benchmark), the one piece of the sanitize
// filter that runs on every request: a typical API path that is already canonical, one with
// dot segments, escapes and doubled slashes to resolve, and a long plain path. Built, never run
// by ctest: figures, not assertions.
#include <benchmark/benchmark.h>

#include <string>

#include "filters/sanitize/path_canonicalizer.h"

namespace sluice::sanitize {
namespace {

void run(benchmark::State& state, const std::string& path) {
  const PathOptions options;
  for (auto _ : state) {
    PathResult r = canonicalize_path(path, options);
    benchmark::DoNotOptimize(r.path.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * path.size()));
}

void BM_CanonicalPath(benchmark::State& state) { run(state, "/api/v1/users/12345/orders"); }
BENCHMARK(BM_CanonicalPath);

void BM_PathToResolve(benchmark::State& state) {
  run(state, "/api//v1/./users/%2e%2e/accounts/%7Euser/caf%c3%a9/../orders");
}
BENCHMARK(BM_PathToResolve);

void BM_LongPlainPath(benchmark::State& state) {
  std::string path;
  while (path.size() < 1000) path += "/segment-" + std::to_string(path.size());
  run(state, path);
}
BENCHMARK(BM_LongPlainPath);

}  // namespace
}  // namespace sluice::sanitize
