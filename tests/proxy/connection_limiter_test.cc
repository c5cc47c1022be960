// ConnectionLimiter: exact totals and per-address counts under concurrent accepts and closes,
// and memory that follows the open connections.
#include "proxy/connection_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace sluice {
namespace {

using Refusal = ConnectionLimiter::Refusal;
using boost::asio::ip::make_address;

TEST(ConnectionLimiter, RefusesOverTheTotalAndFreesOnRelease) {
  auto limiter = std::make_shared<ConnectionLimiter>();
  std::vector<ConnectionLimiter::Slot> slots(3);
  for (auto& slot : slots) {
    EXPECT_EQ(limiter->try_acquire(make_address("10.0.0.1"), 3, 0, slot), Refusal::none);
    EXPECT_TRUE(slot);
  }
  ConnectionLimiter::Slot extra;
  EXPECT_EQ(limiter->try_acquire(make_address("10.0.0.2"), 3, 0, extra), Refusal::max_connections);
  EXPECT_FALSE(extra);
  EXPECT_EQ(limiter->active(), 3u);
  EXPECT_EQ(limiter->active_from(make_address("10.0.0.2")), 0u);  // a refusal leaves no trace
  slots[1].release();
  EXPECT_EQ(limiter->active(), 2u);
  EXPECT_EQ(limiter->try_acquire(make_address("10.0.0.2"), 3, 0, extra), Refusal::none);
  EXPECT_EQ(limiter->active(), 3u);
}

TEST(ConnectionLimiter, PerAddressLimitLeavesOtherAddressesAlone) {
  auto limiter = std::make_shared<ConnectionLimiter>();
  std::vector<ConnectionLimiter::Slot> a(2), b(2);
  for (auto& slot : a) {
    EXPECT_EQ(limiter->try_acquire(make_address("192.0.2.1"), 100, 2, slot), Refusal::none);
  }
  ConnectionLimiter::Slot refused;
  EXPECT_EQ(limiter->try_acquire(make_address("192.0.2.1"), 100, 2, refused),
            Refusal::max_connections_per_ip);
  for (auto& slot : b) {
    EXPECT_EQ(limiter->try_acquire(make_address("192.0.2.2"), 100, 2, slot), Refusal::none);
  }
  EXPECT_EQ(limiter->active(), 4u);
  EXPECT_EQ(limiter->active_from(make_address("192.0.2.1")), 2u);
  a[0] = ConnectionLimiter::Slot();  // assigning over a slot releases it
  EXPECT_EQ(limiter->try_acquire(make_address("192.0.2.1"), 100, 2, refused), Refusal::none);
}

TEST(ConnectionLimiter, AnIpv4AddressAndItsMappedFormAreOneClient) {
  auto limiter = std::make_shared<ConnectionLimiter>();
  ConnectionLimiter::Slot v4, mapped;
  EXPECT_EQ(limiter->try_acquire(make_address("198.51.100.7"), 10, 1, v4), Refusal::none);
  EXPECT_EQ(limiter->try_acquire(make_address("::ffff:198.51.100.7"), 10, 1, mapped),
            Refusal::max_connections_per_ip);
  ConnectionLimiter::Slot v6;
  EXPECT_EQ(limiter->try_acquire(make_address("2001:db8::7"), 10, 1, v6), Refusal::none);
  EXPECT_EQ(limiter->addresses(), 2u);
}

TEST(ConnectionLimiter, AddressesAreCountedWithoutALimitSoOneSetLaterCountsThem) {
  // A reload can turn max_connections_per_ip on while connections are open.
  auto limiter = std::make_shared<ConnectionLimiter>();
  std::vector<ConnectionLimiter::Slot> open(3);
  for (auto& slot : open) {
    EXPECT_EQ(limiter->try_acquire(make_address("203.0.113.9"), 100, 0, slot), Refusal::none);
  }
  ConnectionLimiter::Slot next;
  EXPECT_EQ(limiter->try_acquire(make_address("203.0.113.9"), 100, 3, next),
            Refusal::max_connections_per_ip);
}

TEST(ConnectionLimiter, AnAddressEntryGoesAwayWithItsLastConnection) {
  auto limiter = std::make_shared<ConnectionLimiter>();
  {
    std::vector<ConnectionLimiter::Slot> slots(1000);
    for (size_t i = 0; i < slots.size(); ++i) {
      auto addr = boost::asio::ip::address_v4(static_cast<uint32_t>(0x0A000000 + i));
      ASSERT_EQ(limiter->try_acquire(addr, 10000, 1, slots[i]), Refusal::none);
    }
    EXPECT_EQ(limiter->addresses(), 1000u);
    ConnectionLimiter::Slot moved = std::move(slots[0]);  // a moved-from slot counts nothing
    EXPECT_FALSE(slots[0]);
    slots[0].release();
    EXPECT_EQ(limiter->active(), 1000u);
  }
  EXPECT_EQ(limiter->active(), 0u);
  EXPECT_EQ(limiter->addresses(), 0u);
}

TEST(ConnectionLimiter, TheLimitsHoldExactlyUnderConcurrentAcceptsAndCloses) {
  // Workers accept and close on their own threads; at no moment may more than the limits be
  // open, and every refusal must be because a limit was reached.
  auto limiter = std::make_shared<ConnectionLimiter>();
  constexpr uint32_t kMax = 50;
  constexpr uint32_t kMaxPerIp = 20;
  std::atomic<size_t> open{0}, peak{0}, per_ip_open[3] = {0, 0, 0}, per_ip_peak{0};
  auto worker = [&](int seed) {
    std::vector<std::pair<ConnectionLimiter::Slot, int>> held;
    for (int i = 0; i < 20000; ++i) {
      const int ip = (seed + i) % 3;
      if (held.size() < 30 && (i % 3 != 0 || held.empty())) {
        ConnectionLimiter::Slot slot;
        auto addr = boost::asio::ip::address_v4(static_cast<uint32_t>(0x7F000002 + ip));
        if (limiter->try_acquire(addr, kMax, kMaxPerIp, slot) == Refusal::none) {
          const size_t now = open.fetch_add(1) + 1;
          size_t p = peak.load();
          while (now > p && !peak.compare_exchange_weak(p, now)) {
          }
          const size_t mine = per_ip_open[ip].fetch_add(1) + 1;
          size_t q = per_ip_peak.load();
          while (mine > q && !per_ip_peak.compare_exchange_weak(q, mine)) {
          }
          held.emplace_back(std::move(slot), ip);
        }
      } else if (!held.empty()) {
        // Counted down before the slot goes, so the observed count never lags the limiter's.
        open.fetch_sub(1);
        per_ip_open[held.back().second].fetch_sub(1);
        held.pop_back();
      }
    }
    for (auto& [slot, ip] : held) {
      open.fetch_sub(1);
      per_ip_open[ip].fetch_sub(1);
      slot.release();
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back(worker, t);
  for (auto& t : threads) t.join();
  EXPECT_LE(peak.load(), kMax);
  EXPECT_LE(per_ip_peak.load(), kMaxPerIp);
  EXPECT_GT(peak.load(), kMaxPerIp);  // the test did reach past one address's share
  EXPECT_EQ(limiter->active(), 0u);
  EXPECT_EQ(limiter->addresses(), 0u);
}

}  // namespace
}  // namespace sluice
