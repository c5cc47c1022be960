#pragma once
// State that must survive a config reload: rate-limit buckets, host health, and the like. One
// RuntimeState is owned by the server for the life of the process and handed to each snapshot
// build. An object is found by a key that names both what it is and the settings it depends
// on ("rate_limit/per_ip/100/1s/200"), so an unchanged rule gets its old state back and a
// changed one starts fresh. Entries are held weakly: the snapshots that use an object keep it
// alive, and it goes away with the last of them.
//
// Thread-safe (a mutex; called while building snapshots on the main thread and by the admin
// thread, never per request).
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

namespace sluice {

class RuntimeState {
 public:
  // The live object under `key`, or a new one from `make()` (which must return shared_ptr<T>).
  // The same key must always be used with the same T.
  template <typename T, typename Make>
  std::shared_ptr<T> get_or_create(const std::string& key, Make make) {
    std::lock_guard lock(mutex_);
    auto& slot = objects_[key];
    if (auto existing = slot.lock()) return std::static_pointer_cast<T>(existing);
    std::shared_ptr<T> created = make();
    slot = created;
    sweep();
    return created;
  }

  // The live object under `key`, or null.
  template <typename T>
  std::shared_ptr<T> find(const std::string& key) const {
    std::lock_guard lock(mutex_);
    auto it = objects_.find(key);
    return it == objects_.end() ? nullptr : std::static_pointer_cast<T>(it->second.lock());
  }

  // How many objects are alive, for tests and the admin API.
  size_t size() const {
    std::lock_guard lock(mutex_);
    size_t n = 0;
    for (const auto& [key, weak] : objects_) n += weak.expired() ? 0 : 1;
    return n;
  }

 private:
  void sweep() {
    for (auto it = objects_.begin(); it != objects_.end();) {
      it = it->second.expired() ? objects_.erase(it) : std::next(it);
    }
  }

  mutable std::mutex mutex_;
  std::map<std::string, std::weak_ptr<void>> objects_;
};

}  // namespace sluice
