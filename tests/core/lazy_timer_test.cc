// core/lazy_timer.h: deadlines that move later, earlier, get cancelled, or outlive their owner.
#include "core/lazy_timer.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace sluice
