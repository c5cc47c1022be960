#pragma once
// The last few config reloads, for AdminContext::recent_reloads(). add() is called by the thread
// that reloads (the control thread), recent() by the admin thread; both are rare, so a mutex.
#include <chrono>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "admin/admin_context.h"

namespace sluice::admin {

class ReloadHistory {
 public:
  static constexpr size_t kCapacity = 10;     // reloads kept
  static constexpr size_t kErrorsKept = 3;    // errors kept per reload (all are counted)
  static constexpr size_t kErrorBytes = 300;  // a longer error is cut

  // `started` is when the reload began (steady clock), for its duration.
  void add(std::string_view trigger, std::chrono::steady_clock::time_point started, bool ok,
           const std::vector<std::string>& errors) {
    ReloadRecord r;
    r.time = std::chrono::system_clock::now();
    r.duration = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
    r.trigger = trigger;
    r.ok = ok;
    r.error_count = errors.size();
    for (size_t i = 0; i < errors.size() && i < kErrorsKept; ++i) {
      r.errors.push_back(errors[i].substr(0, kErrorBytes));
    }
    std::lock_guard lock(mutex_);
    if (records_.size() == kCapacity) records_.pop_front();
    records_.push_back(std::move(r));
  }

  // Oldest first.
  std::vector<ReloadRecord> recent() const {
    std::lock_guard lock(mutex_);
    return {records_.begin(), records_.end()};
  }

 private:
  mutable std::mutex mutex_;
  std::deque<ReloadRecord> records_;
};

}  // namespace sluice::admin
