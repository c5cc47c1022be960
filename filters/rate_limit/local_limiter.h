#pragma once
// Local (in-process) rate limiting of one rule: GCRA (the generic cell rate algorithm) with one
// int64 "theoretical arrival time" (TAT) per key, kept in a fixed-size lock-free table shared by
// all workers. Exact across worker threads: every admission is one compare-exchange on the key's
// TAT, so N workers admit no more than one thread would.
//
// Times are int64 nanoseconds of a monotonic clock, read by the caller (never here), in
// [0, 2^61) (73 years of uptime). Tests drive a simulated clock.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

namespace sluice::rate_limit {

// `count` requests per `period` with a `burst`. Immutable; any thread.
//
// Emission interval T = ceil(period / count) ns. Rounding up means the admitted rate never
// exceeds the configured one; it falls short by less than 1 ns per request, i.e. by a relative
// 1/T: < 0.1 % up to 1e6/s (T >= 1000 ns), < 3e-13 at 1/h. Rates above 1e9/s become 1e9/s.
// Tolerance L = burst * T: a request is admitted iff max(TAT, now) + T <= now + L.
class Quota {
 public:
  // Null unless count >= 1, period_ns >= 1, burst >= 1 and burst * T <= 2^61 ns.
  static std::optional<Quota> make(int64_t count, int64_t period_ns, int64_t burst);

  int64_t count() const { return count_; }
  int64_t period() const { return period_; }
  int64_t burst() const { return burst_; }
  int64_t interval() const { return interval_; }    // T, ns
  int64_t tolerance() const { return tolerance_; }  // L = burst * T, ns

  // For `RateLimit-Policy: "name";q=<policy_limit>;w=<policy_window_seconds>`: q = burst (what
  // a fresh key may send at once) and w = ceil(burst * T in seconds), at least 1 (the time a
  // drained key takes to refill all of q). When burst * T is not a whole number of seconds, q/w
  // understates the sustained rate count/period; the header can only carry whole seconds.
  int64_t policy_limit() const { return burst_; }
  int64_t policy_window_seconds() const;

 private:
  Quota(int64_t count, int64_t period, int64_t burst, int64_t interval)
      : count_(count),
        period_(period),
        burst_(burst),
        interval_(interval),
        tolerance_(burst * interval) {}

  int64_t count_;
  int64_t period_;
  int64_t burst_;
  int64_t interval_;
  int64_t tolerance_;
};

// One request's verdict, with what the IETF RateLimit header fields need.
struct Decision {
  bool allowed = false;
  int64_t remaining = 0;    // requests still admissible at this instant after this one, >= 0
  int64_t reset = 0;        // ns until the key's quota is fully available again
  int64_t retry_after = 0;  // when limited, ns until one request would be admitted; else 0
};

struct GcraResult {
  Decision decision;
  int64_t tat;  // the state to store (unchanged when not allowed)
};

// A key never seen has TAT 0 (any TAT <= now means "quota full"; 0 is that for every now >= 0).
inline constexpr int64_t kFreshTat = 0;

// Pure GCRA step: state in, decision and new state out.
GcraResult gcra(const Quota& quota, int64_t tat, int64_t now);

// The same step applied to a shared TAT with a compare-exchange loop (no lock); any thread.
// A refusal writes nothing.
Decision gcra_acquire(const Quota& quota, std::atomic<int64_t>& tat, int64_t now);

// The limiter of one rule: one per rule, built on the main thread, then shared by all workers,
// which may call every member concurrently. acquire() takes no lock for a known key (a hash,
// usually one probe, one compare-exchange) and never allocates.
//
// Keys live in a fixed open-addressing table (capacity = next power of two >= 2 * max_keys, 16
// bytes a slot, probe window of 32 slots); memory never grows. A new key whose window is full
// takes the slot of an idle key (TAT <= now: forgetting it changes no decision), else the slot
// with the oldest TAT (an eviction of a key still limited; counted in evictions()). Only that
// path (a new key, full window) takes a lock: a spin flag per group of 32 home slots, held for
// a rescan and the swap. See the .cc for why concurrent use admits no more than GCRA would for
// every key not evicted while limited.
class LocalLimiter {
 public:
  LocalLimiter(Quota quota, size_t max_keys);
  ~LocalLimiter();
  LocalLimiter(const LocalLimiter&) = delete;
  LocalLimiter& operator=(const LocalLimiter&) = delete;

  Decision acquire(std::string_view key, int64_t now);

  // Slots holding a key (idle keys stay until their slot is reused); relaxed, approximate.
  size_t key_count() const;
  // The whole footprint, fixed at construction.
  size_t memory_bytes() const;
  // Keys pushed out while still limited (TAT > now): the only loss of exactness.
  uint64_t evictions() const;
  const Quota& quota() const { return quota_; }

 private:
  struct Slot;

  Decision insert(uint64_t hash, size_t home, int64_t now);
  // True when `slot` holds `hash`, claiming it first if it was empty.
  bool holds(Slot& slot, uint64_t hash);
  bool try_update(Slot& slot, uint64_t hash, int64_t now, Decision& out);

  const Quota quota_;
  const size_t mask_;    // capacity - 1
  const size_t window_;  // probe length, <= capacity
  uint64_t seed0_ = 0;   // the process's SipHash key, copied here to skip a static's guard
  uint64_t seed1_ = 0;
  std::unique_ptr<Slot[]> slots_;
  // One spin flag per window-aligned group of home slots: a key that must take an occupied
  // slot holds its group's flag, so two threads cannot insert the same key twice.
  std::unique_ptr<std::atomic<uint8_t>[]> insert_locks_;
  // Written only when a key is inserted or evicted; kept off the read-mostly line above.
  alignas(64) std::atomic<size_t> key_count_{0};
  std::atomic<uint64_t> evictions_{0};
};

namespace detail {
// SipHash-1-3 of `data` under the 128-bit key (k0, k1); exposed for its test vectors.
uint64_t siphash13(uint64_t k0, uint64_t k1, std::string_view data);
}  // namespace detail

}  // namespace sluice::rate_limit
