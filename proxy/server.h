#pragma once
// The process: config, workers, admin server and signals. Runs on the main thread, which is
// the control plane: it loads and validates configs, builds snapshots, binds listeners and
// hands the results to the workers.
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "admin/admin_context.h"
#include "admin/reload_history.h"
#include "core/log_writer.h"
#include "core/runtime_state.h"
#include "proxy/snapshot.h"
#include "tracing/otlp_exporter.h"

namespace sluice {

class Worker;
class ConfigWatcher;

class Server : public admin::AdminContext {
 public:
  // With `watch`, the config is reloaded when its file (or a certificate it names) changes.
  explicit Server(std::string config_path, bool watch = false);
  ~Server() override;

  // Loads the config, starts everything and serves until SIGTERM/SIGINT; returns the exit
  // status.
  int run();

  // AdminContext (admin thread)
  bool ready() const override { return ready_.load(); }
  config::ConfigPtr config() const override;
  std::vector<const WorkerStats*> worker_stats() const override;
  uint64_t reloads_succeeded() const override { return reloads_ok_.load(); }
  uint64_t reloads_failed() const override { return reloads_failed_.load(); }
  std::vector<admin::ReloadRecord> recent_reloads() const override {
    return reload_history_.recent();
  }
  RuntimeState& runtime() const override { return runtime_; }
  std::vector<upstream::SharedClusterPtr> clusters() const override { return clusters_.all(); }
  uint64_t error_log_dropped() const override { return error_log_dropped_->load(); }
  admin::TracingCounters tracing_counters() const override;
  // Admin actions: run on the control thread while the admin thread waits (bounded).
  ActionResult reload_config() override;
  ActionResult set_draining(bool draining) override;
  ActionResult set_host_disabled(std::string_view cluster, std::string_view host,
                                 bool disabled) override;

 private:
  struct ReloadOutcome {
    bool ok = false;
    std::vector<std::string> errors;  // "FILE:LINE:COL: message", or "FILE: message"
    std::vector<std::string> warnings;
  };
  // `trigger` names the cause for the reload history: "signal", "file_watch" or "api". With
  // --watch, `watched_now` is what the watched files hold, if the caller has read them.
  ReloadOutcome reload(std::string_view trigger, std::optional<size_t> watched_now = std::nullopt);
  // Admin thread: runs `fn` on the control thread and waits for its result, or answers 503
  // when the process is starting or stopping, or the control thread does not get to it.
  ActionResult on_control_thread(std::function<ActionResult()> fn);
  // --watch: watches the files the running config was read from (the config, certificates and
  // keys) and remembers what they held: `read_before` when the list did not change, else now.
  void watch_config_files(std::optional<size_t> read_before = std::nullopt);
  void on_watched_files_changed();
  // Binds new listeners on every worker and hands the snapshot over. On error nothing changes.
  bool install(SnapshotPtr snapshot, std::string* error);
  size_t active_connections() const;

  std::string config_path_;
  bool watch_;
  // First, so that it goes last: workers and clusters log until they are destroyed.
  LogWriter log_writer_;
  const LogWriter::DropCounter error_log_dropped_ = std::make_shared<std::atomic<uint64_t>>(0);
  // The control thread's loop (this thread): signals, drain, health checks, DNS, ejections.
  boost::asio::io_context control_{1};
  upstream::SharedClusters clusters_;
  // Outlives every snapshot: rate-limit state survives reloads through it.
  mutable RuntimeState runtime_;
  // Before the workers, so that it outlives them: their streams submit spans to it.
  tracing::OtlpExporter tracer_;
  std::vector<std::unique_ptr<Worker>> workers_;
  mutable std::mutex snapshot_mutex_;  // guards snapshot_ for the admin thread
  SnapshotPtr snapshot_;
  config::ConfigPtr started_;     // the config at start: workers and admin.address stay as in it
  std::set<std::string> bound_;   // "name@address" of listeners every worker has
  uint64_t open_file_limit_ = 0;  // RLIMIT_NOFILE once raised at start; 0: unknown
  std::unique_ptr<ConfigWatcher> watcher_;  // --watch only
  std::vector<std::string> watched_files_;
  size_t watched_fingerprint_ = 0;
  bool draining_ = false;          // control thread: shutting down (SIGTERM/SIGINT)
  bool drained_by_admin_ = false;  // control thread: POST /drain, until ?cancel
  // The control loop is running (admin actions are taken) / has ended (they are refused).
  std::atomic<bool> control_running_{false};
  std::atomic<bool> control_stopped_{false};
  std::atomic<bool> ready_{false};
  std::atomic<uint64_t> reloads_ok_{0};
  std::atomic<uint64_t> reloads_failed_{0};
  admin::ReloadHistory reload_history_;
};

}  // namespace sluice
