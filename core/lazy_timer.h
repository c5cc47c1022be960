#pragma once
// A timeout whose deadline moves often and cheaply, and that costs little while it waits.
// Proxies re-arm timeouts on every request and every body piece, and every idle keep-alive
// connection holds one. Here all LazyTimers of an execution context (a worker's io_context)
// share one Asio timer: they sit in a binary heap ordered by deadline (TimerQueue, an Asio
// service of the context), and the Asio timer waits for the earliest deadline only. Moving a
// deadline is a heap update; the Asio timer is re-armed only when the earliest deadline becomes
// earlier than the one it waits for, so a deadline that keeps moving later costs a clock read
// and a few comparisons, not a syscall. An armed LazyTimer costs its own 56 bytes and one heap
// slot (8 bytes), against about 270 for a steady_timer with a pending wait.
//
// Single-threaded: every LazyTimer of a context, and the context's run(), on one thread (the
// worker's). Callbacks run on the executor of the first LazyTimer made for the context. The
// owner outlives nothing here: a LazyTimer leaves the heap when it is destroyed or cancelled,
// and the expiry callback is not run once the `guard` given to expire_after() has expired.
// A LazyTimer must be destroyed before its execution context.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace sluice {

class LazyTimer;

// The per-context heap of armed LazyTimers and the one Asio timer driving them.
class TimerQueue : public boost::asio::execution_context::service {
 public:
  using Clock = std::chrono::steady_clock;
  static inline boost::asio::execution_context::id id;

  explicit TimerQueue(boost::asio::execution_context& ctx)
      : boost::asio::execution_context::service(ctx) {}

  // The queue of `ex`'s execution context, created on first use.
  static TimerQueue& of(const boost::asio::any_io_executor& ex) {
    auto& q = boost::asio::use_service<TimerQueue>(
        boost::asio::query(ex, boost::asio::execution::context));
    if (!q.timer_ && !q.shut_down_) q.timer_.emplace(ex);
    return q;
  }

  size_t size() const { return heap_.size(); }

 private:
  friend class LazyTimer;
  static constexpr uint32_t kNone = UINT32_MAX;

  void shutdown() override {
    // Before any service is destroyed: the Asio timer belongs to another service.
    timer_.reset();
    shut_down_ = true;
  }

  inline void schedule(LazyTimer& t, Clock::time_point deadline);
  inline void remove(LazyTimer& t);
  inline bool earlier(uint32_t a, uint32_t b) const;
  inline void place(uint32_t i, LazyTimer* t);
  inline void sift_up(uint32_t i);
  inline void sift_down(uint32_t i);
  inline void arm();
  inline void on_timer();

  std::vector<LazyTimer*> heap_;
  std::optional<boost::asio::steady_timer> timer_;
  Clock::time_point armed_at_ = Clock::time_point::max();  // max: no wait pending
  uint64_t generation_ = 0;  // of the pending wait; a wait of an older one does nothing
  bool shut_down_ = false;
};

class LazyTimer {
 public:
  using Clock = std::chrono::steady_clock;

  // `on_expiry(context)` runs on the executor when a deadline passes without being moved or
  // cancelled. A plain function and pointer, not a std::function: one of these lives in every
  // idle keep-alive connection.
  using Callback = void (*)(void* context);
  LazyTimer(const boost::asio::any_io_executor& ex, Callback on_expiry, void* context)
      : queue_(&TimerQueue::of(ex)), on_expiry_(on_expiry), context_(context) {}
  LazyTimer(const LazyTimer&) = delete;
  LazyTimer& operator=(const LazyTimer&) = delete;
  ~LazyTimer() { cancel(); }

  void expire_after(Clock::duration d, std::weak_ptr<const void> guard) {
    guard_ = std::move(guard);
    queue_->schedule(*this, Clock::now() + d);
  }
  void cancel() {
    if (index_ != TimerQueue::kNone) queue_->remove(*this);
    guard_.reset();
  }
  bool active() const { return index_ != TimerQueue::kNone; }

 private:
  friend class TimerQueue;

  TimerQueue* queue_;
  Callback on_expiry_;
  void* context_;
  Clock::time_point deadline_{};
  std::weak_ptr<const void> guard_;
  uint32_t index_ = TimerQueue::kNone;  // place in the queue's heap while armed
};

inline bool TimerQueue::earlier(uint32_t a, uint32_t b) const {
  return heap_[a]->deadline_ < heap_[b]->deadline_;
}

inline void TimerQueue::place(uint32_t i, LazyTimer* t) {
  heap_[i] = t;
  t->index_ = i;
}

inline void TimerQueue::sift_up(uint32_t i) {
  LazyTimer* t = heap_[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (!(t->deadline_ < heap_[parent]->deadline_)) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, t);
}

inline void TimerQueue::sift_down(uint32_t i) {
  LazyTimer* t = heap_[i];
  const auto n = static_cast<uint32_t>(heap_.size());
  for (;;) {
    uint32_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && earlier(child + 1, child)) ++child;
    if (!(heap_[child]->deadline_ < t->deadline_)) break;
    place(i, heap_[child]);
    i = child;
  }
  place(i, t);
}

inline void TimerQueue::schedule(LazyTimer& t, Clock::time_point deadline) {
  if (t.index_ == kNone) {
    t.deadline_ = deadline;
    heap_.push_back(&t);
    t.index_ = static_cast<uint32_t>(heap_.size() - 1);
    sift_up(t.index_);
  } else {
    const bool later = t.deadline_ < deadline;
    t.deadline_ = deadline;
    if (later) {
      sift_down(t.index_);
    } else {
      sift_up(t.index_);
    }
  }
  if (heap_.front()->deadline_ < armed_at_) arm();
}

inline void TimerQueue::remove(LazyTimer& t) {
  uint32_t i = t.index_;
  t.index_ = kNone;
  LazyTimer* last = heap_.back();
  heap_.pop_back();
  if (last == &t) return;
  place(i, last);
  sift_up(i);
  sift_down(last->index_);
  // The Asio timer may now wait for a deadline nobody has: it finds nothing due and re-arms.
}

inline void TimerQueue::arm() {
  if (!timer_) return;  // shut down
  armed_at_ = heap_.front()->deadline_;
  const uint64_t generation = ++generation_;
  timer_->expires_at(armed_at_);  // cancels the pending wait, which then does nothing
  timer_->async_wait([this, generation](const boost::system::error_code& ec) {
    if (ec || generation != generation_) return;  // superseded, or the context shuts down
    on_timer();
  });
}

inline void TimerQueue::on_timer() {
  armed_at_ = Clock::time_point::max();
  const auto now = Clock::now();
  while (!heap_.empty() && heap_.front()->deadline_ <= now) {
    LazyTimer* t = heap_.front();
    remove(*t);
    auto owner = t->guard_.lock();
    t->guard_.reset();
    // The callback may re-arm, cancel or destroy any LazyTimer, this one included.
    if (owner) t->on_expiry_(t->context_);
  }
  if (!heap_.empty() && heap_.front()->deadline_ < armed_at_) arm();
}

}  // namespace sluice
