#include "proxy/worker.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>

#include <boost/asio/post.hpp>

#include "proxy/access_log.h"
#include "proxy/listener.h"
#include "upstream/cluster_manager.h"

namespace sluice {

namespace asio = boost::asio;

Worker::Worker(unsigned index, unsigned count, LogWriter& log_writer, SpanSink* spans)
    : index_(index),
      work_(asio::make_work_guard(ioc_)),
      clusters_(std::make_unique<upstream::ClusterManager>(ioc_, stats_, index, count)),
      log_writer_(log_writer) {
  ctx_.executor = ioc_.get_executor();
  ctx_.cluster_manager = clusters_.get();
  ctx_.stats = &stats_;
  ctx_.read_buffers = &read_buffers_;
  ctx_.services = &services_;
  ctx_.spans = spans;
}

Worker::~Worker() { stop(); }

void Worker::apply(SnapshotPtr snapshot, std::map<std::string, asio::ip::tcp::acceptor> acceptors,
                   ConnectionLimiters limiters) {
  if (!started_) {
    apply_here(std::move(snapshot), std::move(acceptors), limiters);
    return;
  }
  // Acceptors are move-only; carry them in a shared_ptr through the copyable handler.
  auto moved =
      std::make_shared<std::map<std::string, asio::ip::tcp::acceptor>>(std::move(acceptors));
  asio::post(ioc_, [this, snapshot = std::move(snapshot), moved,
                    limiters = std::move(limiters)]() mutable {
    apply_here(std::move(snapshot), std::move(*moved), limiters);
  });
}

void Worker::apply_here(SnapshotPtr snapshot,
                        std::map<std::string, asio::ip::tcp::acceptor> acceptors,
                        const ConnectionLimiters& limiters) {
  const config::Config& cfg = *snapshot->config;
  std::string error;
  auto log = AccessLog::open(cfg.access_log, log_writer_, stats_.access_log_dropped, &error);
  if (!error.empty()) {
    log_line("error: worker " + std::to_string(index_) + ": " + error);
  } else {
    access_log_ = std::move(log);
  }
  ctx_.access_log = access_log_.get();
  clusters_->update(cfg, snapshot->clusters);

  std::map<std::string, std::shared_ptr<ListenerRuntime>> listeners;
  for (const auto& l : cfg.listeners) {
    auto it = acceptors.find(l.name);
    std::shared_ptr<ListenerRuntime> runtime;
    if (it != acceptors.end()) {
      if (auto old = listeners_.find(l.name); old != listeners_.end()) retire(*old->second);
      runtime = std::make_shared<ListenerRuntime>(std::move(it->second), l, ctx_,
                                                  stats_.listener(l.name), limiters.at(l.name));
      runtime->update(l, snapshot);
      runtime->set_draining(draining_);
      if (started_) runtime->start();
    } else if (auto old = listeners_.find(l.name); old != listeners_.end()) {
      runtime = old->second;
      runtime->update(l, snapshot);
    } else {
      continue;  // the main thread failed to bind it; already reported
    }
    listeners.emplace(l.name, std::move(runtime));
  }
  for (auto& [name, runtime] : listeners_) {
    if (!listeners.count(name)) retire(*runtime);
  }
  listeners_ = std::move(listeners);
  snapshot_ = std::move(snapshot);
  retired_.erase(
      std::remove_if(retired_.begin(), retired_.end(), [](const auto& w) { return w.expired(); }),
      retired_.end());
}

void Worker::retire(ListenerRuntime& runtime) {
  // Its connections finish the exchange in progress and close, as on shutdown: the address
  // they came to is gone, and they keep the snapshot they had until then.
  runtime.stop_accepting();
  runtime.drain_connections();
  retired_.push_back(runtime.shared_from_this());
}

template <typename Fn>
void Worker::each_listener(Fn fn) {
  // Copy first: fn may close connections, which can release a retired listener.
  std::vector<std::shared_ptr<ListenerRuntime>> all;
  for (auto& [name, l] : listeners_) all.push_back(l);
  for (auto& weak : retired_) {
    if (auto l = weak.lock()) all.push_back(std::move(l));
  }
  for (auto& l : all) fn(*l);
}

void Worker::start() {
  started_ = true;
  for (auto& [name, l] : listeners_) l->start();
  std::promise<void> done;
  finished_ = done.get_future();
  thread_ = std::thread([this, done = std::move(done)]() mutable {
    // Named so top -H, perf and /proc/PID/task show which thread is which worker.
    std::string name = "sluice-w" + std::to_string(index_);
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    ioc_.run();
    done.set_value();
  });
}

void Worker::stop_accepting() {
  asio::post(ioc_, [this] { each_listener([](ListenerRuntime& l) { l.stop_accepting(); }); });
}

void Worker::drain() {
  asio::post(ioc_, [this] {
    each_listener([](ListenerRuntime& l) { l.drain_connections(); });
    clusters_->close_idle();
  });
}

std::future<void> Worker::set_draining(bool draining) {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> switched = done->get_future();
  asio::post(ioc_, [this, draining, done] {
    draining_ = draining;
    each_listener([draining](ListenerRuntime& l) {
      l.set_draining(draining);
      if (draining) l.drain_connections();
    });
    done->set_value();
  });
  return switched;
}

void Worker::stop() {
  if (!thread_.joinable()) return;
  asio::post(ioc_, [this] {
    each_listener([](ListenerRuntime& l) {
      l.stop_accepting();
      l.close_connections();
    });
    clusters_->close_idle();
    services_.clear();  // their connections (Redis) close too
    work_.reset();
  });
  // With every socket closed the loop normally runs out of work at once; an operation that
  // nothing cancels (an upstream connect waiting for its timeout) must not hold up the exit.
  if (finished_.wait_for(std::chrono::seconds(1)) != std::future_status::ready) ioc_.stop();
  thread_.join();
  // Handlers that never ran hold connections whose destructors use this worker's stats,
  // access log and pools: destroy them now, while those still exist.
  ioc_.destroy_pending_handlers();
}

}  // namespace sluice
