#pragma once
// The per-worker counters summed over workers: what /metrics exposes and /stats shows, computed
// by one function so that the two never disagree. Admin thread.
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/stats.h"

namespace sluice::admin {

class AdminContext;

inline constexpr std::array<const char*, 5> kStatusClasses = {"1xx", "2xx", "3xx", "4xx", "5xx"};
inline constexpr size_t kBuckets = Histogram::kBounds.size() + 1;  // + the +Inf bucket

struct ListenerSum {
  std::array<uint64_t, 5> requests{};
  int64_t connections_active = 0;
  uint64_t connections_total = 0;
  uint64_t rejected_max_connections = 0, rejected_max_connections_per_ip = 0;
  uint64_t tls_ok = 0, tls_failed = 0, tls_timed_out = 0;
  bool tls = false;
};

struct ClusterSum {
  std::array<uint64_t, 5> requests{};
  uint64_t connect_failures = 0;
  uint64_t timeouts = 0;
  uint64_t connections_created = 0;
  // connect_failure, reset, refused_stream, per_try_timeout, status, budget_exhausted
  std::array<uint64_t, 6> retries{};
  // connections, pending, requests
  std::array<uint64_t, 3> overflow{};
  uint64_t no_healthy_host = 0;
  uint64_t panic = 0;
};

struct HistogramSum {
  std::array<uint64_t, kBuckets> buckets{};  // non-cumulative, like Histogram
  double sum = 0;
  bool empty() const {
    for (uint64_t n : buckets) {
      if (n != 0) return false;
    }
    return true;
  }
};

// Per status class, indexed like kStatusClasses.
struct RouteSum {
  std::array<HistogramSum, 5> by_class;
  uint64_t upgrades = 0;
  bool configured = false;  // a named route of the active config
};

// Every worker's counters summed, as /metrics and /stats show them. Sorted maps keep the
// output order stable between scrapes.
struct StatsTotals {
  std::map<std::string, ListenerSum> listeners;
  std::map<std::string, ClusterSum> clusters;
  std::map<std::string, RouteSum> routes;
  // Per rule: allowed, limited, would_limit, skipped, error.
  std::map<std::string, std::array<uint64_t, 5>> rate_limits;
  uint64_t redis_errors = 0;
  uint64_t access_log_dropped = 0;
  std::map<std::pair<std::string, std::string>, uint64_t> sanitize_rejections;
  struct Compression {
    uint64_t responses = 0, bytes_in = 0, bytes_out = 0;
  };
  std::array<Compression, 3> compression;  // gzip, br, zstd (compression::Algorithm)
};

// Sums `workers` (AdminContext::worker_stats()); listeners, clusters and named routes of the
// active config are present at zero before their first use.
StatsTotals sum_stats(const AdminContext& ctx, const std::vector<const WorkerStats*>& workers);

}  // namespace sluice::admin
