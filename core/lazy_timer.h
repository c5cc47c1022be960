#pragma once
// A timeout whose deadline moves often and cheaply. Proxies re-arm timeouts on every request
// and every body piece; with a plain Asio timer each re-arm is a timer-queue update, a
// cancelled handler and often a timerfd_settime syscall. Here the Asio timer is armed only
// when the new deadline is earlier than the one it waits for; a wait that ends before the
// current deadline re-arms itself, and cancel() only clears the deadline. So a deadline that
// keeps moving later costs a clock read, not a syscall.
//
// Single-threaded: used on its owner's executor. The owner outlives nothing here: each wait
// holds a weak reference to the owner (`guard`), and the expiry callback is not run once the
// guard has expired.
#include <chrono>
#include <memory>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

namespace sluice {

class LazyTimer {
 public:
  using Clock = std::chrono::steady_clock;

  // `on_expiry(context)` runs on the executor when a deadline passes without being moved or
  // cancelled. A plain function and pointer, not a std::function: one of these lives in every
  // idle keep-alive connection.
  using Callback = void (*)(void* context);
  LazyTimer(const boost::asio::any_io_executor& ex, Callback on_expiry, void* context)
      : timer_(ex), on_expiry_(on_expiry), context_(context) {}
  LazyTimer(const LazyTimer&) = delete;
  LazyTimer& operator=(const LazyTimer&) = delete;

  void expire_after(Clock::duration d, std::weak_ptr<const void> guard) {
    deadline_ = Clock::now() + d;
    active_ = true;
    if (waiting_ && timer_.expiry() <= deadline_) return;  // the pending wait re-arms if early
    start_wait(std::move(guard));
  }
  void cancel() { active_ = false; }
  bool active() const { return active_; }

 private:
  void start_wait(std::weak_ptr<const void> guard) {
    waiting_ = true;
    timer_.expires_at(deadline_);  // cancels an earlier wait, which then does nothing
    timer_.async_wait(
        [this, guard = std::move(guard)](const boost::system::error_code& ec) mutable {
          if (ec) return;  // superseded by a new wait, or the timer is gone
          auto owner = guard.lock();
          if (!owner) return;
          waiting_ = false;
          if (!active_) return;
          if (Clock::now() < deadline_) {
            start_wait(std::move(guard));
            return;
          }
          active_ = false;
          on_expiry_(context_);
        });
  }

  boost::asio::steady_timer timer_;
  Callback on_expiry_;
  void* context_;
  Clock::time_point deadline_{};
  bool active_ = false;
  bool waiting_ = false;
};

}  // namespace sluice
