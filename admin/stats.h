#pragma once
// GET /stats: the dashboard's JSON. Totals come from sum_stats() (the sums /metrics exposes),
// hosts from clusters_json_array() (what /clusters shows), so the page never disagrees with
// either. The time series (requests/s, 5xx/s, p50/p99 latency per second over the last ten
// minutes) is built on the admin thread: a timer samples the summed counters once a second into
// a fixed ring and keeps only per-second deltas; workers do nothing extra.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>

#include "admin/totals.h"

namespace sluice::admin {

class AdminContext;

// Prometheus' histogram_quantile() over one histogram: `buckets` are non-cumulative counts whose
// last entry is the +Inf bucket, `bounds` the finite upper bounds (one fewer). The rank q * total
// is interpolated linearly inside the bucket that holds it (the first bucket starts at 0); a
// rank in +Inf gives the highest finite bound. NaN when the histogram is empty. Pure.
double histogram_quantile(double q, std::span<const uint64_t> buckets,
                          std::span<const double> bounds);

// The cumulative counters one sample reads.
struct SampleCounts {
  uint64_t requests = 0;  // responses sent, over listeners (sluice_downstream_requests_total)
  uint64_t errors = 0;    // the 5xx among them
  // sluice_request_duration_seconds over routes and status classes; non-cumulative buckets.
  std::array<uint64_t, kBuckets> latency{};
};

SampleCounts sample_counts(const StatsTotals& totals);

// One interval of the time series: the deltas between two samples.
struct SeriesPoint {
  int64_t time_ms = 0;  // Unix time of the sample that ends the interval
  double requests_per_second = 0;
  double errors_per_second = 0;
  // Of the requests that finished in the interval; NaN when none did.
  double p50_seconds = std::numeric_limits<double>::quiet_NaN();
  double p99_seconds = std::numeric_limits<double>::quiet_NaN();
};

// The last kCapacity points in a fixed ring (no allocation after construction). Admin thread
// only: written by the sampling timer, read by /stats.
class StatsSeries {
 public:
  static constexpr size_t kCapacity = 600;  // ten minutes at one sample a second
  static constexpr std::chrono::milliseconds kInterval{1000};

  // Adds the point for the interval since the previous add(); the first add() only takes the
  // baseline. Rates are per second of `now` (steady) elapsed, so a late timer does not inflate
  // them. A counter that went backwards counts as zero for that interval.
  void add(std::chrono::steady_clock::time_point now, int64_t unix_ms, const SampleCounts& counts);

  size_t size() const { return size_; }
  // The i-th oldest point, i < size().
  const SeriesPoint& at(size_t i) const {
    return ring_[(next_ + kCapacity - size_ + i) % kCapacity];
  }

 private:
  std::array<SeriesPoint, kCapacity> ring_{};
  size_t next_ = 0;  // where the next point goes
  size_t size_ = 0;
  bool have_baseline_ = false;
  std::chrono::steady_clock::time_point last_time_;
  SampleCounts last_;
};

struct StatsOptions {
  // Only series points newer than this Unix time in ms (the page polls with ?since=the last
  // point it has, so a poll carries a point or two, not six hundred). -1: every point.
  int64_t since_ms = -1;
  // More routes than this: the busiest are listed and "routes_omitted" counts the others.
  size_t max_routes = 200;
};

// The /stats body. Admin thread. `totals` is sum_stats() of `ctx`; `now_ms` the Unix time.
std::string stats_json(const AdminContext& ctx, const StatsTotals& totals,
                       const StatsSeries& series, int64_t now_ms, const StatsOptions& options);

}  // namespace sluice::admin
