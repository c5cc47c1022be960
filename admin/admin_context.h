#pragma once
// What the admin server needs from the running process. Implemented by proxy/ (the server
// owner), called on the admin thread; every method must be safe to call from it.
#include <vector>

#include "config/config.h"
#include "upstream/shared_clusters.h"

namespace sluice {
class WorkerStats;
class RuntimeState;

namespace admin {

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
  // State that outlives snapshots (rate-limit tables), for status endpoints.
  virtual RuntimeState& runtime() const = 0;
  // The clusters' shared hosts (health, ejection, counters), for /clusters and metrics.
  virtual std::vector<upstream::SharedClusterPtr> clusters() const { return {}; }
  // Error-log lines dropped because stderr could not keep up (sluice_error_log_dropped_total).
  virtual uint64_t error_log_dropped() const { return 0; }
};

}  // namespace admin
}  // namespace sluice
