#include "filters/rate_limit/local_limiter.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <random>
#include <thread>

namespace sluice::rate_limit {
namespace {

constexpr int64_t kMaxTolerance = int64_t{1} << 61;
// A slot's TAT while its slot is being handed to another key. Never a real TAT: now < 2^61 and
// L <= 2^61, so a stored TAT stays below 2^62.
constexpr int64_t kLocked = std::numeric_limits<int64_t>::max();
// Probe length. Linear probing clusters: with every slot of a table at load 0.5 (max_keys a
// power of two) holding a limited key, 16 slots overflowed on 3e-4 of inserts, 32 slots on
// 4e-6, and at load <= 0.38 (max_keys = 100000) none in 2e7 (simulation). Misses stop at the
// first empty slot, so only inserts into a full window read all 32.
constexpr size_t kWindow = 32;

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

void lock(std::atomic<uint8_t>& flag) {
  for (int spins = 0; flag.exchange(1, std::memory_order_acquire) != 0;) {
    while (flag.load(std::memory_order_relaxed) != 0) {
      if (++spins < 64) {
        cpu_relax();
      } else {
        std::this_thread::yield();  // the holder was preempted mid-swap
      }
    }
  }
}

void unlock(std::atomic<uint8_t>& flag) { flag.store(0, std::memory_order_release); }

uint64_t load_le64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  return v;
}

// Drawn once per process: clients cannot learn it, so they cannot choose keys that share a
// probe window (hash flooding) to evict other clients' limited keys.
struct Seed {
  uint64_t k0;
  uint64_t k1;
};
const Seed& process_seed() {
  static const Seed seed = [] {
    std::random_device device;
    auto draw = [&device] { return (uint64_t{device()} << 32) | device(); };
    return Seed{draw(), draw()};
  }();
  return seed;
}

}  // namespace

namespace detail {

// SipHash-1-3 (Aumasson & Bernstein; the 1-3 variant is what Rust's HashMap and CPython 3.11
// use): a keyed PRF, so with a secret key an attacker cannot find colliding keys, unlike seeded
// non-cryptographic hashes (Murmur, City) that have seed-independent collisions. ~15 ns for a
// short key, small next to the compare-exchange.
uint64_t siphash13(uint64_t k0, uint64_t k1, std::string_view data) {
  uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
  uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
  uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
  uint64_t v3 = 0x7465646279746573ULL ^ k1;
  auto round = [&] {
    v0 += v1, v1 = std::rotl(v1, 13), v1 ^= v0, v0 = std::rotl(v0, 32);
    v2 += v3, v3 = std::rotl(v3, 16), v3 ^= v2;
    v0 += v3, v3 = std::rotl(v3, 21), v3 ^= v0;
    v2 += v1, v1 = std::rotl(v1, 17), v1 ^= v2, v2 = std::rotl(v2, 32);
  };
  const size_t whole = data.size() & ~size_t{7};
  for (size_t i = 0; i < whole; i += 8) {
    const uint64_t m = load_le64(data.data() + i);
    v3 ^= m;
    round();
    v0 ^= m;
  }
  uint64_t last = uint64_t{data.size()} << 56;
  for (size_t i = whole; i < data.size(); ++i) {
    last |= uint64_t{static_cast<unsigned char>(data[i])} << (8 * (i - whole));
  }
  v3 ^= last;
  round();
  v0 ^= last;
  v2 ^= 0xff;
  round();
  round();
  round();
  return v0 ^ v1 ^ v2 ^ v3;
}

}  // namespace detail

std::optional<Quota> Quota::make(int64_t count, int64_t period_ns, int64_t burst) {
  if (count < 1 || period_ns < 1 || burst < 1) return std::nullopt;
  const int64_t interval = period_ns / count + (period_ns % count != 0 ? 1 : 0);
  if (interval > kMaxTolerance / burst) return std::nullopt;
  return Quota(count, period_ns, burst, interval);
}

int64_t Quota::policy_window_seconds() const {
  constexpr int64_t kSecond = 1'000'000'000;
  return std::max<int64_t>(1, (tolerance_ + kSecond - 1) / kSecond);
}

namespace {

// Why admitted <= burst + floor(t / T) in any window [a, a + t]: take the n admissions whose
// times lie in it, in the order they were processed (any order of times). The first leaves
// TAT >= its time + T >= a + T; every later admission adds at least T (max(TAT, now) >= TAT)
// and nothing else lowers TAT, so the last leaves TAT >= a + n * T, and being admitted it left
// TAT <= its time + L <= a + t + burst * T. So n * T <= t + burst * T, and n, being whole, is
// <= burst + floor(t / T). Processing order never mattered, so this holds for concurrent
// callers whose `now`s reach the shared TAT out of order.
//
// GCRA written into `out` field by field, returning the new TAT. Building a Decision temporary
// and copying it out made g++ load 16 bytes over 8-byte stores just made, a store-forwarding
// stall that cost a third of acquire().
int64_t decide(const Quota& quota, int64_t tat, int64_t now, Decision& out) {
  const int64_t interval = quota.interval();
  const int64_t tolerance = quota.tolerance();
  const int64_t next = std::max(tat, now) + interval;
  if (next - now <= tolerance) {
    out.allowed = true;
    out.remaining = (tolerance - (next - now)) / interval;
    out.reset = next - now;
    out.retry_after = 0;
    return next;
  }
  // Refused implies tat > now (else next - now = T <= L), so next = tat + T.
  out.allowed = false;
  out.remaining = 0;
  out.reset = tat - now;
  out.retry_after = next - tolerance - now;
  return tat;
}

}  // namespace

GcraResult gcra(const Quota& quota, int64_t tat, int64_t now) {
  GcraResult result;
  result.tat = decide(quota, tat, now, result.decision);
  return result;
}

// Relaxed is enough: the decision depends on this one word only, and compare-exchanges on one
// atomic are totally ordered.
Decision gcra_acquire(const Quota& quota, std::atomic<int64_t>& tat, int64_t now) {
  Decision decision;
  int64_t current = tat.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t next = decide(quota, current, now, decision);
    if (!decision.allowed) break;
    if (tat.compare_exchange_weak(current, next, std::memory_order_relaxed)) break;
  }
  return decision;
}

// The key table and its races.
//
// A slot is {hash, tat}; hash 0 = empty, and a slot never becomes empty again, so a lookup may
// stop at the first empty slot of its window and every thread agrees on where a new key goes.
//  - Known key (no lock): find the hash; load tat (acquire); if it is kLocked or the hash no
//    longer matches, the slot is leaving this key: take the slow path; else compute GCRA and
//    compare-exchange tat. A refusal writes nothing.
//  - New key, window has an empty slot (no lock): compare-exchange hash 0 -> key on the first
//    empty slot; whoever loses sees the winner's hash there (perhaps the same key) and goes on.
//    tat is still 0, the fresh state.
//  - New key, window full (slow path, under the spin flag of the key's home group, so the same
//    key is never inserted twice; after a rescan that may find it): pick the first idle slot
//    (tat <= now), else the one with the smallest tat; compare-exchange its tat from the value
//    read to kLocked (fails, and we rescan, if its owner admitted a request meanwhile); store
//    the new hash (relaxed), then the new key's tat = now + T, the state after its first
//    request, which is always admitted (release).
//
// Why no key that was not evicted while limited gets more than GCRA allows:
//  1. A slot's tat only moves through compare-exchanges from a value just read, and kLocked
//     aside it only grows (max(tat, now) + T > tat; an idle reclaim writes now + T > now >= old
//     tat), except across a counted eviction. So a compare-exchange that succeeds saw no write in
//     between (no ABA), except across such an eviction.
//  2. An admission for key K succeeds only if, after loading tat with acquire, the slot's hash
//     was K. If that tat was written by a reclaimer, its release store comes after its hash
//     store, so the hash check sees the new owner and we back off. If the tat was K's, a
//     reclaim can only start by replacing that very value with kLocked: whichever of the two
//     compare-exchanges comes second fails (1). So every admission of K lands in K's own slot's run
//     of GCRA.
//  3. The swap to kLocked is the instant a key leaves its slot, atomic with the check that it
//     was idle: tat <= now means its quota is full again, and GCRA from a fresh state gives the
//     same answers as from that tat for every later request (max(tat, now) = now). So an idle
//     key that comes back elsewhere starts exactly where it would have been.
//  4. At most one live slot holds a key: empty-slot inserts go to the first empty slot of the
//     window, and a reclaim (under the flag) happens only after a scan saw no empty slot and no
//     copy of the key; a lock-free insert that claimed an empty slot would have been seen by
//     that scan, as an empty slot or as the key (slots never empty again).
// Limits: "idle" is judged with the reclaimer's now; a request carrying an older now (another
// worker's clock read a little earlier) may see a fresh state where TAT was up to that skew
// ahead: at most ceil(skew / T) extra admissions for that key, bounded by the skew. Two keys with
// the same 64-bit hash share one state (they are limited together, never more). An evicted limited
// key (counted) restarts fresh, and a request of it racing its eviction may be charged to the new
// owner.

struct alignas(16) LocalLimiter::Slot {
  std::atomic<uint64_t> hash{0};
  std::atomic<int64_t> tat{kFreshTat};
};

LocalLimiter::LocalLimiter(Quota quota, size_t max_keys)
    : quota_(quota),
      mask_(std::bit_ceil(std::max<size_t>(2 * max_keys, 2)) - 1),
      window_(std::min(kWindow, mask_ + 1)),
      slots_(new Slot[mask_ + 1]),
      insert_locks_(new std::atomic<uint8_t>[(mask_ + 1) / window_]) {
  for (size_t i = 0; i < (mask_ + 1) / window_; ++i) insert_locks_[i].store(0);
  const Seed& seed = process_seed();
  seed0_ = seed.k0;
  seed1_ = seed.k1;
}

LocalLimiter::~LocalLimiter() = default;

size_t LocalLimiter::key_count() const { return key_count_.load(std::memory_order_relaxed); }

size_t LocalLimiter::memory_bytes() const {
  return sizeof(*this) + (mask_ + 1) * sizeof(Slot) + (mask_ + 1) / window_;
}

uint64_t LocalLimiter::evictions() const { return evictions_.load(std::memory_order_relaxed); }

bool LocalLimiter::try_update(Slot& slot, uint64_t hash, int64_t now, Decision& out) {
  int64_t tat = slot.tat.load(std::memory_order_acquire);
  for (;;) {
    if (tat == kLocked || slot.hash.load(std::memory_order_relaxed) != hash) return false;
    const int64_t next = decide(quota_, tat, now, out);
    if (!out.allowed) return true;
    if (slot.tat.compare_exchange_weak(tat, next, std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
      return true;
    }
  }
}

bool LocalLimiter::holds(Slot& slot, uint64_t hash) {
  uint64_t found = slot.hash.load(std::memory_order_acquire);
  if (found == 0 && slot.hash.compare_exchange_strong(found, hash, std::memory_order_acq_rel,
                                                      std::memory_order_acquire)) {
    key_count_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  return found == hash;  // after a lost race, `found` is the winner's key (maybe this one)
}

Decision LocalLimiter::acquire(std::string_view key, int64_t now) {
  uint64_t hash = detail::siphash13(seed0_, seed1_, key);
  if (hash == 0) hash = 1;  // 0 marks an empty slot
  const size_t home = hash & mask_;
  Decision decision;
  for (size_t i = 0; i < window_; ++i) {
    Slot& slot = slots_[(home + i) & mask_];
    if (holds(slot, hash)) {
      if (try_update(slot, hash, now, decision)) return decision;
      break;  // the slot is being handed to another key
    }
  }
  decision = insert(hash, home, now);
  return decision;  // one named object returned everywhere: built in the caller's storage
}

Decision LocalLimiter::insert(uint64_t hash, size_t home, int64_t now) {
  std::atomic<uint8_t>& flag = insert_locks_[home / window_];
  lock(flag);
  Decision decision;
  for (;;) {
    Slot* victim = nullptr;
    int64_t victim_tat = kLocked;
    bool victim_idle = false;
    for (size_t i = 0; i < window_; ++i) {
      Slot& slot = slots_[(home + i) & mask_];
      if (holds(slot, hash)) {
        if (try_update(slot, hash, now, decision)) {
          unlock(flag);
          return decision;
        }
        continue;  // leaving us for another key
      }
      const int64_t tat = slot.tat.load(std::memory_order_acquire);
      if (tat == kLocked || victim_idle) continue;
      if (tat <= now) {
        victim = &slot, victim_tat = tat, victim_idle = true;
      } else if (tat < victim_tat) {
        victim = &slot, victim_tat = tat;
      }
    }
    if (victim == nullptr) {  // every slot mid-swap: momentary
      cpu_relax();
      continue;
    }
    if (!victim->tat.compare_exchange_strong(victim_tat, kLocked, std::memory_order_acq_rel,
                                             std::memory_order_relaxed)) {
      continue;  // its owner admitted a request meanwhile, or another reclaim took it
    }
    if (!victim_idle) evictions_.fetch_add(1, std::memory_order_relaxed);
    const int64_t next = decide(quota_, kFreshTat, now, decision);
    victim->hash.store(hash, std::memory_order_relaxed);
    victim->tat.store(next, std::memory_order_release);
    unlock(flag);
    return decision;
  }
}

}  // namespace sluice::rate_limit
