#pragma once
// A worker: one thread, one io_context, its own acceptor per listener (SO_REUSEPORT), its own
// upstream pools and stats. Connections never leave their worker, so nothing on the data path
// is shared or locked. The main thread talks to a worker only by posting to its io_context.
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "core/stats.h"
#include "proxy/snapshot.h"
#include "proxy/stream.h"

namespace sluice {

class ListenerRuntime;
class AccessLog;

namespace upstream {
class ClusterManager;
}

class Worker {
 public:
  explicit Worker(unsigned index);
  ~Worker();

  boost::asio::io_context& io_context() { return ioc_; }
  const WorkerStats& stats() const { return stats_; }
  unsigned index() const { return index_; }

  // Main thread. `acceptors` holds sockets already bound (on this worker's io_context) for
  // listeners this worker does not have yet, by listener name; listeners absent from the
  // snapshot are closed. Runs on the worker thread once it has started.
  void apply(SnapshotPtr snapshot, std::map<std::string, boost::asio::ip::tcp::acceptor> acceptors);
  void start();
  void stop_accepting();
  void drain();
  // Stops the event loop and joins the thread; open connections are dropped.
  void stop();

 private:
  void apply_here(SnapshotPtr snapshot,
                  std::map<std::string, boost::asio::ip::tcp::acceptor> acceptors);

  unsigned index_;
  boost::asio::io_context ioc_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  WorkerStats stats_;
  std::unique_ptr<upstream::ClusterManager> clusters_;
  std::unique_ptr<AccessLog> access_log_;
  BufferPool read_buffers_{64 * 1024};
  StreamContext ctx_;
  SnapshotPtr snapshot_;
  std::map<std::string, std::shared_ptr<ListenerRuntime>> listeners_;
  std::thread thread_;
  bool started_ = false;
};

}  // namespace sluice
