// core/lazy_timer.h: deadlines that move later, earlier, get cancelled, or outlive their owner.
#include "core/lazy_timer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include <boost/asio/io_context.hpp>

namespace sluice {
namespace {

using namespace std::chrono_literals;
using Clock = LazyTimer::Clock;

class LazyTimerTest : public ::testing::Test {
 protected:
  boost::asio::io_context ioc_;
  std::shared_ptr<int> owner_ = std::make_shared<int>(0);
  int fired_ = 0;
  Clock::time_point fired_at_{};
  void fired() {
    ++fired_;
    fired_at_ = Clock::now();
  }
  LazyTimer timer_{ioc_.get_executor(),
                   [](void* self) { static_cast<LazyTimerTest*>(self)->fired(); }, this};
};

TEST_F(LazyTimerTest, FiresOnceAtTheLastDeadlineWhenMovedLater) {
  auto start = Clock::now();
  timer_.expire_after(20ms, owner_);
  for (int i = 0; i < 5; ++i) {
    ioc_.run_for(10ms);
    timer_.expire_after(30ms, owner_);  // every move is later than the pending wait
  }
  EXPECT_EQ(fired_, 0);
  ioc_.run_for(2s);
  EXPECT_EQ(fired_, 1);
  // The last move was made at least 50 ms after start, for 30 ms.
  EXPECT_GE(fired_at_ - start, 80ms);
  EXPECT_FALSE(timer_.active());
}

TEST_F(LazyTimerTest, AnEarlierDeadlineReplacesTheWait) {
  auto start = Clock::now();
  timer_.expire_after(10s, owner_);
  timer_.expire_after(20ms, owner_);
  ioc_.run_for(2s);
  EXPECT_EQ(fired_, 1);
  EXPECT_LT(fired_at_ - start, 5s);
}

TEST_F(LazyTimerTest, CancelledDeadlineNeverFires) {
  timer_.expire_after(10ms, owner_);
  timer_.cancel();
  ioc_.run_for(100ms);
  EXPECT_EQ(fired_, 0);
  // And it can be armed again.
  timer_.expire_after(10ms, owner_);
  ioc_.restart();  // the loop ran out of work
  ioc_.run_for(2s);
  EXPECT_EQ(fired_, 1);
}

TEST_F(LazyTimerTest, NoCallbackOnceTheOwnerIsGone) {
  timer_.expire_after(10ms, owner_);
  owner_.reset();
  ioc_.run_for(100ms);
  EXPECT_EQ(fired_, 0);
}

TEST_F(LazyTimerTest, ATimerMovedEarlierThanTheSharedWaitFiresOnTime) {
  // Another timer of the context holds the shared wait far out; an earlier one re-arms it.
  LazyTimer far(
      ioc_.get_executor(), [](void*) {}, nullptr);
  far.expire_after(10s, owner_);
  auto start = Clock::now();
  timer_.expire_after(20ms, owner_);
  ioc_.run_for(500ms);
  EXPECT_EQ(fired_, 1);
  EXPECT_LT(fired_at_ - start, 400ms);
  EXPECT_TRUE(far.active());
}

// Many timers of one context share one heap: each fires once, in deadline order, and
// cancelled or destroyed ones never do.
TEST(TimerQueueTest, ManyTimersFireInDeadlineOrder) {
  boost::asio::io_context ioc;
  auto owner = std::make_shared<int>(0);
  struct Probe {
    std::vector<int>* order;
    int n;
  };
  std::vector<int> order;
  std::vector<Probe> probes;
  probes.reserve(64);
  std::vector<std::unique_ptr<LazyTimer>> timers;
  for (int i = 0; i < 64; ++i) {
    probes.push_back({&order, i});
    timers.push_back(std::make_unique<LazyTimer>(
        ioc.get_executor(),
        [](void* p) {
          auto* probe = static_cast<Probe*>(p);
          probe->order->push_back(probe->n);
        },
        &probes.back()));
  }
  // Deadlines in a scrambled order, then some moved, some cancelled, some destroyed.
  for (int i = 0; i < 64; ++i) {
    timers[i]->expire_after(std::chrono::milliseconds(5 + (i * 37) % 64), owner);
  }
  for (int i = 0; i < 64; i += 8) timers[i]->expire_after(std::chrono::milliseconds(80), owner);
  timers[3]->cancel();
  timers[5].reset();
  EXPECT_EQ(TimerQueue::of(ioc.get_executor()).size(), 62u);
  ioc.run_for(2s);
  ASSERT_EQ(order.size(), 62u);
  for (size_t i = 1; i < order.size(); ++i) {
    auto at = [](int n) { return n % 8 == 0 ? 80 : 5 + (n * 37) % 64; };
    EXPECT_LE(at(order[i - 1]), at(order[i])) << i;
  }
  EXPECT_EQ(std::count(order.begin(), order.end(), 3), 0);
  EXPECT_EQ(std::count(order.begin(), order.end(), 5), 0);
  EXPECT_EQ(TimerQueue::of(ioc.get_executor()).size(), 0u);
}

TEST(TimerQueueTest, ACallbackMayDestroyAnotherDueTimer) {
  boost::asio::io_context ioc;
  auto owner = std::make_shared<int>(0);
  struct State {
    std::unique_ptr<LazyTimer> a, b;
    int fired = 0;
  } st;
  auto cb = [](void* p) {
    auto* s = static_cast<State*>(p);
    ++s->fired;
    s->a.reset();  // whichever fires first destroys both
    s->b.reset();
  };
  st.a = std::make_unique<LazyTimer>(ioc.get_executor(), cb, &st);
  st.b = std::make_unique<LazyTimer>(ioc.get_executor(), cb, &st);
  st.a->expire_after(5ms, owner);
  st.b->expire_after(5ms, owner);
  ioc.run_for(200ms);
  EXPECT_EQ(st.fired, 1);
}

}  // namespace
}  // namespace sluice
