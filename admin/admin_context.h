#pragma once
// What the admin server needs from the running process. Implemented by proxy/ (the server
// owner), called on the admin server's threads (the admin thread, and the actions thread for
// the actions and the checks before them); every method must be safe to call from them.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "upstream/shared_clusters.h"

namespace sluice {
class WorkerStats;
class RuntimeState;

namespace admin {

// One config reload attempt, for the dashboard's history (GET /stats).
struct ReloadRecord {
  std::chrono::system_clock::time_point time;  // when it finished
  std::chrono::milliseconds duration{0};
  std::string trigger;  // "signal" (SIGHUP), "file_watch" (--watch), "api" (POST /reload)
  bool ok = false;
  size_t error_count = 0;
  std::vector<std::string> errors;  // the first few, "FILE:LINE:COL: message"
};

// The tracing exporter's counters (sluice_tracing_*).
struct TracingCounters {
  uint64_t spans_exported = 0;
  uint64_t spans_dropped_queue_full = 0;
  uint64_t spans_dropped_export_failed = 0;
  uint64_t export_requests_failed = 0;
};

class AdminContext {
 public:
  virtual ~AdminContext() = default;
  // True once every listener is bound and until draining starts.
  virtual bool ready() const = 0;
  // The active snapshot.
  virtual config::ConfigPtr config() const = 0;
  // One per worker; the pointers stay valid for the life of the process.
  virtual std::vector<const WorkerStats*> worker_stats() const = 0;
  // Config reload counters for sluice_config_reloads_total{result}.
  virtual uint64_t reloads_succeeded() const = 0;
  virtual uint64_t reloads_failed() const = 0;
  // The last few reloads, oldest first.
  virtual std::vector<ReloadRecord> recent_reloads() const { return {}; }
  // State that outlives snapshots (rate-limit tables), for status endpoints.
  virtual RuntimeState& runtime() const = 0;
  // The clusters' shared hosts (health, ejection, counters), for /clusters and metrics.
  virtual std::vector<upstream::SharedClusterPtr> clusters() const { return {}; }
  // Error-log lines dropped because stderr could not keep up (sluice_error_log_dropped_total).
  virtual uint64_t error_log_dropped() const { return 0; }
  virtual TracingCounters tracing_counters() const { return {}; }

  // The admin API's actions (POST), on the actions thread. Each blocks that thread until the
  // control thread has done the work (a bounded wait, in the implementation): actions are rare
  // and this keeps them in order, while the admin thread goes on serving reads. `status` is the
  // reply's HTTP status, `json` its body, `summary` the result as the admin log line gives it
  // ("ok", "failed: 2 errors").
  struct ActionResult {
    unsigned status = 200;
    std::string json;
    std::string summary;
  };
  // As SIGHUP: reload the config file; a bad config leaves the running one in force.
  virtual ActionResult reload_config() { return not_supported(); }
  // As the first half of SIGTERM (/ready fails, connections close as their requests end),
  // without exiting; `draining == false` undoes it.
  virtual ActionResult set_draining(bool /*draining*/) { return not_supported(); }
  // Takes a host ("ip:port", as /clusters shows it) out of rotation or puts it back.
  virtual ActionResult set_host_disabled(std::string_view /*cluster*/, std::string_view /*host*/,
                                         bool /*disabled*/) {
    return not_supported();
  }

 protected:
  static ActionResult not_supported() {
    return {501, "{\"result\": \"error\", \"error\": \"not supported\"}\n", "not supported"};
  }
};

}  // namespace admin
}  // namespace sluice
