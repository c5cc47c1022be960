#include "filters/rate_limit/local_limiter.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <string>

namespace sluice::rate_limit {
namespace {

constexpr int64_t kUs = 1'000;
constexpr int64_t kMs = 1'000'000;
constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kHour = 3600 * kSecond;

Quota quota(int64_t count, int64_t period, int64_t burst) {
  std::optional<Quota> q = Quota::make(count, period, burst);
  EXPECT_TRUE(q.has_value());
  return *q;
}

// Runs `n` requests at `now` on a pure state; returns how many were admitted.
int admit_at(const Quota& q, int64_t& tat, int64_t now, int n) {
  int admitted = 0;
  for (int i = 0; i < n; ++i) {
    GcraResult r = gcra(q, tat, now);
    tat = r.tat;
    admitted += r.decision.allowed;
  }
  return admitted;
}

TEST(QuotaTest, RejectsWhatItCannotRepresent) {
  EXPECT_FALSE(Quota::make(0, kSecond, 1));
  EXPECT_FALSE(Quota::make(1, 0, 1));
  EXPECT_FALSE(Quota::make(1, kSecond, 0));
  EXPECT_FALSE(Quota::make(1, -kSecond, 1));
  EXPECT_FALSE(Quota::make(1, kHour, 1'000'000));  // burst * T = 114 years > 2^61 ns
  EXPECT_TRUE(Quota::make(1, kHour, 600'000));
}

TEST(QuotaTest, IntervalRoundsUpToWholeNanoseconds) {
  EXPECT_EQ(quota(100, kSecond, 1).interval(), 10 * kMs);
  EXPECT_EQ(quota(3, kSecond, 1).interval(), 333'333'334);
  EXPECT_EQ(quota(1'000'000, kSecond, 1).interval(), 1'000);
  EXPECT_EQ(quota(1, kHour, 1).interval(), kHour);
  EXPECT_EQ(quota(10, 3, 1).interval(), 1);  // above 1e9/s: clamped to 1 ns
  EXPECT_EQ(quota(3, kSecond, 4).tolerance(), 4 * 333'333'334);
}

TEST(QuotaTest, PolicyNumbers) {
  Quota q = quota(100, kSecond, 10);  // L = 100 ms
  EXPECT_EQ(q.policy_limit(), 10);
  EXPECT_EQ(q.policy_window_seconds(), 1);
  EXPECT_EQ(quota(10, kSecond, 10).policy_window_seconds(), 1);
  EXPECT_EQ(quota(10, kSecond, 25).policy_window_seconds(), 3);  // 2.5 s rounds up
  EXPECT_EQ(quota(1, kHour, 5).policy_window_seconds(), 5 * 3600);
  EXPECT_EQ(quota(60, 60 * kSecond, 60).policy_window_seconds(), 60);
}

TEST(GcraTest, BurstAtOneInstantThenRefused) {
  Quota q = quota(10, kSecond, 5);  // T = 100 ms, L = 500 ms
  const int64_t t = q.interval();
  const int64_t now = 7 * kSecond;
  int64_t tat = kFreshTat;
  for (int k = 1; k <= 5; ++k) {
    GcraResult r = gcra(q, tat, now);
    ASSERT_TRUE(r.decision.allowed) << k;
    EXPECT_EQ(r.decision.remaining, 5 - k);
    EXPECT_EQ(r.decision.reset, k * t);
    EXPECT_EQ(r.decision.retry_after, 0);
    EXPECT_EQ(r.tat, now + k * t);
    tat = r.tat;
  }
  GcraResult r = gcra(q, tat, now);
  EXPECT_FALSE(r.decision.allowed);
  EXPECT_EQ(r.decision.remaining, 0);
  EXPECT_EQ(r.decision.reset, 5 * t);
  EXPECT_EQ(r.decision.retry_after, t);
  EXPECT_EQ(r.tat, tat);  // a refusal leaves the state alone
}

TEST(GcraTest, RefillsOneRequestPerInterval) {
  Quota q = quota(10, kSecond, 5);
  const int64_t t = q.interval();
  int64_t tat = kFreshTat;
  ASSERT_EQ(admit_at(q, tat, 0, 5), 5);

  GcraResult early = gcra(q, tat, t - 1);
  EXPECT_FALSE(early.decision.allowed);
  EXPECT_EQ(early.decision.retry_after, 1);
  EXPECT_EQ(early.decision.reset, 5 * t - (t - 1));

  GcraResult on_time = gcra(q, tat, t);
  EXPECT_TRUE(on_time.decision.allowed);
  EXPECT_EQ(on_time.decision.remaining, 0);
  EXPECT_EQ(on_time.decision.reset, 5 * t);
  tat = on_time.tat;
  EXPECT_EQ(admit_at(q, tat, t, 1), 0);

  // Idle for the whole tolerance: the full burst again.
  EXPECT_EQ(admit_at(q, tat, 6 * t + 5 * t, 6), 5);
}

TEST(GcraTest, PartialRefillReportsRemaining) {
  Quota q = quota(10, kSecond, 5);
  const int64_t t = q.interval();
  int64_t tat = kFreshTat;
  ASSERT_EQ(admit_at(q, tat, 0, 5), 5);
  GcraResult r = gcra(q, tat, 3 * t);  // three refilled, one used now
  EXPECT_TRUE(r.decision.allowed);
  EXPECT_EQ(r.decision.remaining, 2);
  EXPECT_EQ(r.decision.reset, 3 * t);
}

TEST(GcraTest, OnePerHour) {
  Quota q = quota(1, kHour, 1);
  int64_t tat = kFreshTat;
  const int64_t start = 42 * kSecond;
  GcraResult first = gcra(q, tat, start);
  ASSERT_TRUE(first.decision.allowed);
  EXPECT_EQ(first.decision.remaining, 0);
  EXPECT_EQ(first.decision.reset, kHour);
  tat = first.tat;

  GcraResult second = gcra(q, tat, start + kSecond);
  EXPECT_FALSE(second.decision.allowed);
  EXPECT_EQ(second.decision.retry_after, kHour - kSecond);
  EXPECT_EQ(second.decision.reset, kHour - kSecond);

  EXPECT_FALSE(gcra(q, tat, start + kHour - 1).decision.allowed);
  EXPECT_TRUE(gcra(q, tat, start + kHour).decision.allowed);
}

TEST(GcraTest, HundredThousandPerSecondUnderOverload) {
  Quota q = quota(100'000, kSecond, 100);  // T = 10 us
  int64_t tat = kFreshTat;
  int admitted = 0;
  for (int64_t now = 0; now <= kSecond; now += kUs) admitted += admit_at(q, tat, now, 1);
  // Bound for [0, 1 s]: burst + floor(1 s / T) = 100 + 100000, reached exactly.
  EXPECT_EQ(admitted, 100 + 100'000);
}

TEST(GcraTest, SeveralPerPeriod) {
  Quota q = quota(3, kSecond, 3);  // T = 333333334 ns (rounded up)
  const int64_t t = q.interval();
  int64_t tat = kFreshTat;
  EXPECT_EQ(admit_at(q, tat, 0, 10), 3);
  // One second is 2 ns short of 3 T: only two have refilled.
  EXPECT_EQ(admit_at(q, tat, kSecond, 10), 2);
  EXPECT_EQ(admit_at(q, tat, kSecond + 2, 10), 1);
  EXPECT_EQ(admit_at(q, tat, kSecond + 2 + 3 * t, 10), 3);
}

TEST(GcraTest, ConstantOverloadAdmitsCloseToTheBound) {
  Quota q = quota(1000, kSecond, 50);  // T = 1 ms
  int64_t tat = kFreshTat;
  int64_t admitted = 0;
  const int64_t span = 10 * kSecond;
  for (int64_t now = 0; now <= span; now += 100 * kUs) admitted += admit_at(q, tat, now, 1);
  const int64_t bound = q.burst() + span / q.interval();
  EXPECT_LE(admitted, bound);
  EXPECT_GE(admitted, bound * 99 / 100);
}

TEST(GcraTest, AtomicVersionAgreesWithPure) {
  Quota q = quota(7, kSecond, 3);
  int64_t tat = kFreshTat;
  std::atomic<int64_t> shared{kFreshTat};
  for (int64_t now = 0; now < 3 * kSecond; now += 37 * kMs) {
    GcraResult pure = gcra(q, tat, now);
    Decision atomic = gcra_acquire(q, shared, now);
    ASSERT_EQ(pure.decision.allowed, atomic.allowed);
    ASSERT_EQ(pure.decision.remaining, atomic.remaining);
    ASSERT_EQ(pure.decision.reset, atomic.reset);
    ASSERT_EQ(pure.decision.retry_after, atomic.retry_after);
    tat = pure.tat;
    ASSERT_EQ(tat, shared.load());
  }
}

TEST(SipHashTest, ReferenceVectors) {
  // From the reference implementation (github.com/veorq/SipHash) built with cROUNDS=1,
  // dROUNDS=3; key bytes 00..0f, message bytes 00, 01, 02, ...
  const uint64_t k0 = 0x0706050403020100ULL;
  const uint64_t k1 = 0x0f0e0d0c0b0a0908ULL;
  std::string message;
  for (int i = 0; i < 64; ++i) message.push_back(static_cast<char>(i));
  auto hash = [&](size_t n) {
    return detail::siphash13(k0, k1, std::string_view(message).substr(0, n));
  };
  EXPECT_EQ(hash(0), 0xabac0158050fc4dcULL);
  EXPECT_EQ(hash(1), 0xc9f49bf37d57ca93ULL);
  EXPECT_EQ(hash(7), 0xd3927d989bb11140ULL);
  EXPECT_EQ(hash(8), 0x369095118d299a8eULL);
  EXPECT_EQ(hash(9), 0x25a48eb36c063de4ULL);
  EXPECT_EQ(hash(15), 0xd320d86d2a519956ULL);
  EXPECT_EQ(hash(16), 0xcc4fdd1a7d908b66ULL);
  EXPECT_EQ(hash(31), 0x2370dd1f8c21d1bcULL);
  EXPECT_EQ(hash(63), 0x9d199062b7bbb3a8ULL);
}

std::string key_of(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "client-%llu", static_cast<unsigned long long>(i));
  return buf;
}

TEST(LocalLimiterTest, KeysAreIndependent) {
  LocalLimiter limiter(quota(1, kSecond, 2), 100);
  EXPECT_TRUE(limiter.acquire("a", 0).allowed);
  EXPECT_TRUE(limiter.acquire("a", 0).allowed);
  Decision refused = limiter.acquire("a", 0);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after, kSecond);

  Decision b = limiter.acquire("b", 0);
  EXPECT_TRUE(b.allowed);
  EXPECT_EQ(b.remaining, 1);
  EXPECT_TRUE(limiter.acquire("b", 0).allowed);
  EXPECT_FALSE(limiter.acquire("b", 0).allowed);
  EXPECT_TRUE(limiter.acquire("a", kSecond).allowed);
  EXPECT_EQ(limiter.evictions(), 0u);
}

TEST(LocalLimiterTest, DecisionsMatchPureGcraPerKey) {
  Quota q = quota(5, kSecond, 3);
  LocalLimiter limiter(q, 64);
  std::map<std::string, int64_t> model;
  uint64_t x = 12345;
  int64_t now = 0;
  for (int i = 0; i < 20'000; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    now += static_cast<int64_t>((x >> 33) % (20 * kMs));
    const std::string key = key_of((x >> 20) % 40);
    int64_t& tat = model[key];
    GcraResult want = gcra(q, tat, now);
    tat = want.tat;
    Decision got = limiter.acquire(key, now);
    ASSERT_EQ(got.allowed, want.decision.allowed) << i;
    ASSERT_EQ(got.remaining, want.decision.remaining) << i;
    ASSERT_EQ(got.reset, want.decision.reset) << i;
    ASSERT_EQ(got.retry_after, want.decision.retry_after) << i;
  }
  EXPECT_EQ(limiter.key_count(), 40u);
  EXPECT_EQ(limiter.evictions(), 0u);
}

TEST(LocalLimiterTest, KeyCountAndFixedMemory) {
  LocalLimiter limiter(quota(1, kSecond, 1), 100);  // 256 slots of 16 bytes
  EXPECT_EQ(limiter.key_count(), 0u);
  EXPECT_GE(limiter.memory_bytes(), 256u * 16u);
  EXPECT_LT(limiter.memory_bytes(), 256u * 16u + 512u);
  limiter.acquire("a", 0);
  limiter.acquire("a", 1);
  limiter.acquire("b", 2);
  EXPECT_EQ(limiter.key_count(), 2u);
  EXPECT_EQ(limiter.quota().burst(), 1);
}

// max_keys = 4 makes an 8-slot table whose one probe window is the whole table, so which keys
// compete for slots does not depend on the random hash seed.
TEST(LocalLimiterTest, ReclaimingIdleKeysKeepsDecisionsExact) {
  Quota q = quota(1, kSecond, 2);
  LocalLimiter limiter(q, 4);
  std::map<std::string, int64_t> model;
  auto check = [&](const std::string& key, int64_t now) {
    int64_t& tat = model[key];
    GcraResult want = gcra(q, tat, now);
    tat = want.tat;
    Decision got = limiter.acquire(key, now);
    EXPECT_EQ(got.allowed, want.decision.allowed) << key << " at " << now;
    EXPECT_EQ(got.remaining, want.decision.remaining) << key << " at " << now;
    EXPECT_EQ(got.reset, want.decision.reset) << key << " at " << now;
  };
  // 8 keys fill the table; each becomes idle 1 s after its request.
  for (int i = 0; i < 8; ++i) check(key_of(i), i * kMs);
  EXPECT_EQ(limiter.key_count(), 8u);
  // 8 new keys, all after the first 8 went idle: each takes an idle key's slot.
  for (int i = 8; i < 16; ++i) check(key_of(i), 2 * kSecond + i * kMs);
  // The forgotten keys come back exactly as if remembered (full quota), twice each.
  for (int i = 0; i < 8; ++i) {
    check(key_of(i), 4 * kSecond + i);
    check(key_of(i), 4 * kSecond + i);
    check(key_of(i), 4 * kSecond + i);  // refused: both used
  }
  EXPECT_EQ(limiter.key_count(), 8u);
  EXPECT_EQ(limiter.evictions(), 0u);
}

TEST(LocalLimiterTest, FullTableEvictsOldestAndCountsIt) {
  LocalLimiter limiter(quota(1, kHour, 1), 4);  // 8 slots, one window
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(limiter.acquire(key_of(i), i).allowed);
  // All 8 are limited for an hour; a 9th key takes the slot with the oldest TAT (key 0).
  EXPECT_TRUE(limiter.acquire(key_of(8), 8).allowed);
  EXPECT_EQ(limiter.evictions(), 1u);
  for (int i = 1; i <= 8; ++i) EXPECT_FALSE(limiter.acquire(key_of(i), 9).allowed) << i;
  EXPECT_EQ(limiter.evictions(), 1u);
  // Key 0, seen again after its eviction, starts fresh: the documented loss of exactness.
  EXPECT_TRUE(limiter.acquire(key_of(0), 10).allowed);
  EXPECT_EQ(limiter.evictions(), 2u);
  EXPECT_FALSE(limiter.acquire(key_of(0), 11).allowed);
}

TEST(LocalLimiterTest, MaxKeysLimitedKeysFitWithoutEviction) {
  // Load <= 0.38: a 32-slot window never overflowed in 2e7 simulated inserts. (At load 0.5, i.e.
  // max_keys a power of two, about 4e-6 of inserts would.)
  for (size_t max_keys : {1000u, 10'000u, 100'000u}) {
    LocalLimiter limiter(quota(1, kHour, 1), max_keys);
    for (size_t i = 0; i < max_keys; ++i) ASSERT_TRUE(limiter.acquire(key_of(i), 0).allowed);
    EXPECT_EQ(limiter.evictions(), 0u) << max_keys;
    EXPECT_EQ(limiter.key_count(), max_keys);
    for (size_t i = 0; i < max_keys; ++i) ASSERT_FALSE(limiter.acquire(key_of(i), 1).allowed);
  }
}

TEST(LocalLimiterTest, FloodOfDistinctKeysKeepsMemoryAndTableUsable) {
  Quota q = quota(1, 100 * kUs, 2);  // keys go idle 200 us after their last request
  LocalLimiter limiter(q, 1000);
  const size_t bytes = limiter.memory_bytes();
  char buf[32];
  for (int64_t i = 0; i < 1'000'000; ++i) {
    const int n = std::snprintf(buf, sizeof buf, "flood-%lld", static_cast<long long>(i));
    ASSERT_TRUE(limiter.acquire(std::string_view(buf, n), i * kUs).allowed);
  }
  EXPECT_EQ(limiter.memory_bytes(), bytes);
  EXPECT_LE(limiter.key_count(), 2048u);
  // At 1e6/s with keys idle after 200 us, about 200 keys are limited at any time: new keys
  // take idle keys' slots; an eviction needs 32 neighbouring slots all limited.
  std::printf("flood: key_count=%zu evictions=%llu\n", limiter.key_count(),
              static_cast<unsigned long long>(limiter.evictions()));
  const int64_t now = 1'000'000 * kUs;
  const int64_t t = q.interval();
  EXPECT_TRUE(limiter.acquire("hot", now).allowed);
  EXPECT_TRUE(limiter.acquire("hot", now).allowed);
  EXPECT_FALSE(limiter.acquire("hot", now).allowed);
  EXPECT_FALSE(limiter.acquire("hot", now + t - 1).allowed);
  EXPECT_TRUE(limiter.acquire("hot", now + t).allowed);
  EXPECT_EQ(limiter.memory_bytes(), bytes);
}

TEST(LocalLimiterTest, FloodOfLimitedKeysEvictsButStaysBounded) {
  LocalLimiter limiter(quota(1, kHour, 1), 1000);
  const size_t bytes = limiter.memory_bytes();
  for (int i = 0; i < 100'000; ++i) limiter.acquire(key_of(i), i);
  EXPECT_EQ(limiter.memory_bytes(), bytes);
  EXPECT_LE(limiter.key_count(), 2048u);
  EXPECT_GE(limiter.evictions(), 100'000u - 2048u);
}

}  // namespace
}  // namespace sluice::rate_limit
