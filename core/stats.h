#pragma once
// Per-worker statistics. Each worker owns one WorkerStats and is the only writer of its
// counters, so increments are a relaxed load + store (no read-modify-write on a shared cache
// line). The admin thread reads them at scrape time and sums over workers.
//
// Scopes (listener, cluster, route) are created on first use by the owning worker under
// `mutex_`; the worker's own lookups need no lock because only it inserts, and node-based maps
// keep element addresses stable, so callers may cache the returned references.
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace sluice {

class Counter {
 public:
  void add(uint64_t n = 1) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void add(int64_t n) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Fixed-bucket latency histogram in seconds.
class Histogram {
 public:
  static constexpr std::array<double, 14> kBounds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  void observe(double seconds);
  uint64_t bucket(size_t i) const { return buckets_[i].value(); }  // non-cumulative
  uint64_t count() const { return count_.value(); }
  double sum() const { return static_cast<double>(sum_micros_.value()) / 1e6; }

 private:
  std::array<Counter, kBounds.size() + 1> buckets_;  // last one is +Inf
  Counter count_;
  Counter sum_micros_;
};

// Index of a status's class: 0 for 1xx … 4 for 5xx; anything outside 100-599 counts as 5xx.
inline size_t status_class_index(unsigned status) {
  return (status >= 100 && status <= 599) ? status / 100 - 1 : 4;
}

// Counters by status class: index 0 is 1xx … 4 is 5xx.
struct StatusCounters {
  std::array<Counter, 5> by_class;
  void add(unsigned status);
};

struct ListenerStats {
  StatusCounters requests;
  Gauge connections_active;
  Counter connections_total;
  // TLS listeners only.
  Counter tls_handshakes_ok;
  Counter tls_handshakes_failed;     // the peer's hello or the handshake was bad
  Counter tls_handshakes_timed_out;  // not complete within handshake_timeout
  // Connections closed at accept because the listener was at a limit
  // (sluice_downstream_connections_rejected_total{listener,reason}).
  Counter connections_rejected_max_connections;
  Counter connections_rejected_max_connections_per_ip;
};

struct ClusterStats {
  StatusCounters requests;
  Counter connect_failures;
  Counter timeouts;
  Counter connections_created;  // new upstream TCP connections; reuse = requests - created
  // Requests refused at once by a circuit breaker, by breaker.
  Counter overflow_connections;
  Counter overflow_pending;
  Counter overflow_requests;
  Counter no_healthy_host;  // no host could take the request: 503 without trying
  Counter panic;            // picked among all hosts because too few were healthy
  // Retries, by what caused them (sluice_upstream_retries_total{cluster,reason}).
  Counter retry_connect_failure;
  Counter retry_reset;
  Counter retry_refused_stream;
  Counter retry_per_try_timeout;
  Counter retry_status;
  Counter retry_budget_exhausted;  // a retry was due but the budget said no
};

struct RouteStats {
  // Request durations by the status class of the response sent (indexed by
  // status_class_index()), so the hot path indexes an array instead of looking a label up.
  std::array<Histogram, 5> duration;
  Counter upgrades;  // upgrades the backend accepted (101): WebSocket and the like
  void observe(unsigned status, double seconds) {
    duration[status_class_index(status)].observe(seconds);
  }
};

// Decisions of one rate-limit rule (sluice_ratelimit_decisions_total{rule,decision}).
struct RateLimitStats {
  Counter allowed;
  Counter limited;      // refused (mode: enforce)
  Counter would_limit;  // would have been refused (mode: shadow); let through
  Counter skipped;      // the request lacks a part of the rule's key
  Counter error;        // no decision (Redis failed or the breaker is open)
};

// One compression algorithm's work (indexed by compression::Algorithm: gzip, br, zstd):
// sluice_compressed_responses_total{algorithm} and
// sluice_compression_{input,output}_bytes_total{algorithm}.
struct CompressionStats {
  Counter responses;
  Counter bytes_in;   // body bytes given to the encoder
  Counter bytes_out;  // encoded bytes sent
};

class WorkerStats {
 public:
  ListenerStats& listener(const std::string& name) { return scope(listeners_, name); }
  ClusterStats& cluster(const std::string& name) { return scope(clusters_, name); }
  RouteStats& route(const std::string& name) { return scope(routes_, name); }
  RateLimitStats& rate_limit(const std::string& rule) { return scope(rate_limits_, rule); }
  // Redis calls of rate limits that failed: no reply (timeout, connection failure, breaker
  // open) or an error reply.
  Counter redis_errors;
  // Fixed labels, so no scope lookup: read by the admin thread like any counter.
  std::array<CompressionStats, 3> compression;
  // Access-log lines dropped because the logging thread's buffer was full, or lost to a failed
  // write (sluice_access_log_dropped_total). Shared with that thread, which counts the latter.
  const std::shared_ptr<std::atomic<uint64_t>> access_log_dropped =
      std::make_shared<std::atomic<uint64_t>>(0);
  // Requests the sanitize filter refused, by listener and reason
  // (sluice_sanitize_rejections_total{listener,reason}); refusals are rare, so a lookup by
  // name each time is fine.
  Counter& sanitize_rejection(const std::string& listener, std::string_view reason) {
    return scope(sanitize_rejections_, std::pair{listener, std::string(reason)});
  }
  using SanitizeRejections = std::map<std::pair<std::string, std::string>, Counter>;
  void visit_sanitize(const std::function<void(const SanitizeRejections&)>& fn) const {
    std::lock_guard lock(mutex_);
    fn(sanitize_rejections_);
  }

  // Called by the admin thread; `fn` runs with the scope maps locked against insertion.
  void visit(const std::function<void(const std::map<std::string, ListenerStats>&,
                                      const std::map<std::string, ClusterStats>&,
                                      const std::map<std::string, RouteStats>&)>& fn) const {
    std::lock_guard lock(mutex_);
    fn(listeners_, clusters_, routes_);
  }
  void visit_rate_limits(
      const std::function<void(const std::map<std::string, RateLimitStats>&)>& fn) const {
    std::lock_guard lock(mutex_);
    fn(rate_limits_);
  }

 private:
  template <typename K, typename T>
  T& scope(std::map<K, T>& map, const K& name) {
    auto it = map.find(name);
    if (it != map.end()) return it->second;
    std::lock_guard lock(mutex_);
    return map.try_emplace(name).first->second;
  }

  mutable std::mutex mutex_;
  std::map<std::string, ListenerStats> listeners_;
  std::map<std::string, ClusterStats> clusters_;
  std::map<std::string, RouteStats> routes_;
  std::map<std::string, RateLimitStats> rate_limits_;
  SanitizeRejections sanitize_rejections_;
};

}  // namespace sluice
