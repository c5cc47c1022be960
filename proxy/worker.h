#pragma once
// A worker: one thread, one io_context, its own acceptor per listener (SO_REUSEPORT), its own
// upstream pools and stats. Connections never leave their worker, so nothing on the data path
// is shared or locked. The main thread talks to a worker only by posting to its io_context.
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "core/stats.h"
#include "proxy/snapshot.h"
#include "proxy/stream.h"

namespace sluice {

class ListenerRuntime;
class AccessLog;
class LogWriter;
class ConnectionLimiter;

// Per listener name: the counts of its open connections, shared by every worker.
using ConnectionLimiters = std::map<std::string, std::shared_ptr<ConnectionLimiter>>;

namespace upstream {
class ClusterManager;
}

class Worker {
 public:
  // Worker `index` of `count`; its access log goes through `log_writer`, its spans (when the
  // config traces) to `spans`.
  Worker(unsigned index, unsigned count, LogWriter& log_writer, SpanSink* spans);
  ~Worker();

  // io_context that can destroy its pending handlers on demand (execution_context::shutdown is
  // protected), so they never outlive the worker state they point to.
  class Context : public boost::asio::io_context {
   public:
    using boost::asio::io_context::io_context;
    void destroy_pending_handlers() { shutdown(); }
  };

  boost::asio::io_context& io_context() { return ioc_; }
  const WorkerStats& stats() const { return stats_; }
  unsigned index() const { return index_; }

  // Main thread. `acceptors` holds sockets already bound (on this worker's io_context) for
  // listeners this worker does not have yet, by listener name; listeners absent from the
  // snapshot are closed. `limiters` has one entry per listener of the snapshot. Runs on the
  // worker thread once it has started.
  void apply(SnapshotPtr snapshot, std::map<std::string, boost::asio::ip::tcp::acceptor> acceptors,
             ConnectionLimiters limiters);
  // Main thread, once: starts the listeners and the thread.
  void start();
  // Main thread; the work happens on the worker thread. Closes every acceptor.
  void stop_accepting();
  // Main thread: idle connections close now, busy ones after their current response.
  void drain();
  // Main thread (admin API drain): drain() and keep accepting, with every request until
  // set_draining(false) answered "Connection: close", so clients move on without being refused.
  // The future is ready once the worker thread has switched.
  std::future<void> set_draining(bool draining);
  // Main thread: closes every connection, lets the loop finish and joins the thread. Open
  // exchanges are cut off (their responses end visibly incomplete).
  void stop();

 private:
  void apply_here(SnapshotPtr snapshot,
                  std::map<std::string, boost::asio::ip::tcp::acceptor> acceptors,
                  const ConnectionLimiters& limiters);
  // Worker thread: a listener removed or moved to another address by a reload.
  void retire(ListenerRuntime& runtime);
  // Worker thread. Calls fn for each listener, current or replaced by a reload but still
  // holding connections.
  template <typename Fn>
  void each_listener(Fn fn);

  unsigned index_;
  // One thread runs it and only that thread touches its sockets (others only post), so the
  // per-socket locks in Asio's reactor are skipped; posting and timers stay locked.
  Context ioc_{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  WorkerStats stats_;
  std::unique_ptr<upstream::ClusterManager> clusters_;
  LogWriter& log_writer_;
  std::unique_ptr<AccessLog> access_log_;
  BufferPool read_buffers_{64 * 1024};
  WorkerServices services_{ioc_.get_executor(), index_};
  StreamContext ctx_;
  SnapshotPtr snapshot_;
  std::map<std::string, std::shared_ptr<ListenerRuntime>> listeners_;
  // Listeners a reload removed or moved; they live on while their connections do.
  std::vector<std::weak_ptr<ListenerRuntime>> retired_;
  std::thread thread_;
  std::future<void> finished_;  // ready when the thread's loop has returned
  bool started_ = false;
  bool draining_ = false;  // worker thread: set_draining()
};

}  // namespace sluice
