#pragma once
// Process metrics under the names every Prometheus client library uses (process_cpu_seconds_total,
// process_resident_memory_bytes, ...), read from /proc at scrape time (prometheus-cpp has no
// process collector), and sluice_build_info.
#include <optional>
#include <string>
#include <vector>

#include <prometheus/metric_family.h>

namespace sluice::admin {

// What /proc says about one process; a value that could not be read is left empty (and its
// metric out of the exposition).
struct ProcessStats {
  std::optional<double> cpu_seconds;         // user + system
  std::optional<double> resident_bytes;      // RSS
  std::optional<double> virtual_bytes;       // VSZ
  std::optional<double> start_time_seconds;  // since the Unix epoch
  std::optional<double> open_fds;
  std::optional<double> max_fds;  // the soft RLIMIT_NOFILE; empty when unlimited
};

// Reads `proc`/self/{stat,limits,fd} and `proc`/stat (for the boot time). `proc` is "/proc"
// except in tests, which give a directory laid out the same way.
ProcessStats read_process_stats(const std::string& proc = "/proc");

// process_* families for `stats`, then sluice_build_info{version,compiler,openssl} 1.
std::vector<prometheus::MetricFamily> process_metric_families(const ProcessStats& stats);

}  // namespace sluice::admin
