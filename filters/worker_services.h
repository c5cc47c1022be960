#pragma once
// Services a worker owns on behalf of its filters: a Redis connection for global rate limits,
// say. Created on first use, by key, on the worker thread, and kept for the life of the worker
// (across reloads: a service's key names the settings it depends on, so changed settings make
// a new one). Worker thread only.
#include <map>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>

namespace sluice {

class WorkerServices {
 public:
  WorkerServices(boost::asio::any_io_executor executor, unsigned worker_index)
      : executor_(std::move(executor)), worker_index_(worker_index) {}
  WorkerServices(const WorkerServices&) = delete;
  WorkerServices& operator=(const WorkerServices&) = delete;

  const boost::asio::any_io_executor& executor() const { return executor_; }
  unsigned worker_index() const { return worker_index_; }

  // The service under `key`, made by `make()` (returning shared_ptr<T>) the first time. The
  // same key must always be used with the same T.
  template <typename T, typename Make>
  T& get(const std::string& key, Make make) {
    auto it = services_.find(key);
    if (it == services_.end()) it = services_.emplace(key, std::shared_ptr<void>(make())).first;
    return *static_cast<T*>(it->second.get());
  }

  // Every service of type-erased kind, for a shutdown: destroys them (in reverse key order).
  void clear() { services_.clear(); }

 private:
  boost::asio::any_io_executor executor_;
  unsigned worker_index_;
  std::map<std::string, std::shared_ptr<void>> services_;
};

}  // namespace sluice
