#pragma once
// One upstream endpoint (an address and port), shared by every worker and the control thread.
// Workers read its state on the hot path as relaxed atomics and count their requests on it; the
// control thread (health checks, outlier ejection, the admin API) changes its health. A Host is
// created when its address first appears in a cluster and kept across reloads and DNS refreshes
// while the address stays, so its health and counters survive them.
//
// No Asio, no config: the load-balancing library depends on this header alone.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace sluice::upstream {

class Host {
 public:
  // `name` is the address as "ip:port" ("[::1]:80"); `hostname` the endpoint's DNS name when
  // the address came from resolving one (for TLS SNI and the admin API), else empty.
  Host(std::string name, uint32_t weight, std::string hostname = {})
      : name_(std::move(name)), hostname_(std::move(hostname)), weight_(weight ? weight : 1) {}
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  const std::string& name() const { return name_; }
  const std::string& hostname() const { return hostname_; }

  // Balancers read the weight when their factory is built (at each host-set change).
  uint32_t weight() const { return weight_.load(std::memory_order_relaxed); }
  void set_weight(uint32_t w) { weight_.store(w ? w : 1, std::memory_order_relaxed); }

  // Takes new requests: not failed by the active check, not ejected, not disabled.
  bool available() const { return flags_.load(std::memory_order_relaxed) == 0; }
  bool healthy() const { return !(flags_.load(std::memory_order_relaxed) & kFailedCheck); }
  bool ejected() const { return flags_.load(std::memory_order_relaxed) & kEjected; }
  bool disabled() const { return flags_.load(std::memory_order_relaxed) & kDisabled; }
  // Control thread only. Each returns whether the flag changed.
  bool set_healthy(bool healthy) { return set_flag(kFailedCheck, !healthy); }
  bool set_ejected(bool ejected) { return set_flag(kEjected, ejected); }
  bool set_disabled(bool disabled) { return set_flag(kDisabled, disabled); }

  // Requests sent to this host and not yet answered, over all workers (least_request reads it).
  uint32_t active_requests() const { return active_.load(std::memory_order_relaxed); }
  void request_started() {
    active_.fetch_add(1, std::memory_order_relaxed);
    requests_total_.fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t requests_total() const { return requests_total_.load(std::memory_order_relaxed); }
  void request_finished() { active_.fetch_sub(1, std::memory_order_relaxed); }

  // Passive health: the count of failures in a row. Returns the new count.
  uint32_t record_failure() {
    failures_total_.fetch_add(1, std::memory_order_relaxed);
    return consecutive_failures_.fetch_add(1, std::memory_order_relaxed) + 1;
  }
  // A success only writes when there was a failure before: no shared write per request.
  void record_success() {
    if (consecutive_failures_.load(std::memory_order_relaxed) != 0) {
      consecutive_failures_.store(0, std::memory_order_relaxed);
    }
  }
  uint32_t consecutive_failures() const {
    return consecutive_failures_.load(std::memory_order_relaxed);
  }
  uint64_t failures_total() const { return failures_total_.load(std::memory_order_relaxed); }

  // The active health check's last probe, as it logs them ("status 200", "timeout after 1s",
  // "tls: certificate verify failed (...)"), for the admin API; empty before the first probe.
  // Written by the control thread once per probe, read by the admin thread.
  void set_last_check(std::string result) {
    std::lock_guard lock(check_mutex_);
    last_check_ = std::move(result);
  }
  std::string last_check() const {
    std::lock_guard lock(check_mutex_);
    return last_check_;
  }

  // Outlier detection's memory (control thread only): how many recent ejections the host has,
  // so each lasts longer than the last, and when it last came back (every base_ejection_time
  // in rotation since then forgives one).
  uint32_t ejection_count = 0;
  std::chrono::steady_clock::time_point returned_at;

 private:
  static constexpr uint8_t kFailedCheck = 1;
  static constexpr uint8_t kEjected = 2;
  static constexpr uint8_t kDisabled = 4;
  bool set_flag(uint8_t flag, bool on) {
    uint8_t old = on ? flags_.fetch_or(flag) : flags_.fetch_and(static_cast<uint8_t>(~flag));
    return static_cast<bool>(old & flag) != on;
  }

  const std::string name_;
  const std::string hostname_;
  mutable std::mutex check_mutex_;
  std::string last_check_;
  std::atomic<uint32_t> weight_;
  std::atomic<uint8_t> flags_{0};
  // Written per request by workers: on their own cache line, away from the read-mostly fields.
  alignas(64) std::atomic<uint32_t> active_{0};
  std::atomic<uint32_t> consecutive_failures_{0};
  std::atomic<uint64_t> failures_total_{0};
  std::atomic<uint64_t> requests_total_{0};
};

using HostPtr = std::shared_ptr<Host>;

// A cluster's hosts at one moment: immutable once built (on the control thread, at a reload or
// a DNS change) and shared by every worker's load balancer. Order is the config's order, with
// a hostname's addresses in the order the resolver gave them.
struct HostSet {
  std::vector<HostPtr> hosts;
  // How many hosts are available() and how many disabled(), kept by the control thread
  // (refresh_available() after it changes a host's flags) so a worker can tell panic mode
  // without a scan.
  mutable std::atomic<uint32_t> available{0};
  mutable std::atomic<uint32_t> disabled{0};

  size_t size() const { return hosts.size(); }
  uint32_t available_count() const { return available.load(std::memory_order_relaxed); }
  uint32_t disabled_count() const { return disabled.load(std::memory_order_relaxed); }
  void refresh_available() const {
    uint32_t n = 0;
    uint32_t off = 0;
    for (const auto& h : hosts) {
      n += h->available() ? 1 : 0;
      off += h->disabled() ? 1 : 0;
    }
    available.store(n, std::memory_order_relaxed);
    disabled.store(off, std::memory_order_relaxed);
  }
};

using HostSetPtr = std::shared_ptr<const HostSet>;

}  // namespace sluice::upstream
