#pragma once
// Prometheus text exposition (format 0.0.4) of the process's statistics. Per-worker counters are
// summed at scrape time, so workers never share a cache line for a counter.
#include <string>
#include <vector>

#include <prometheus/metric_family.h>

namespace sluice::admin {

class AdminContext;

// Content-Type of render_metrics() output.
inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// Called on the admin thread. Sums every worker's scopes; listeners, clusters and named routes of
// the active config appear at zero before their first use, so rate() works from the start.
std::vector<prometheus::MetricFamily> collect_metrics(const AdminContext& ctx);

// Called on the admin thread. collect_metrics() serialized with prometheus::TextSerializer.
std::string render_metrics(const AdminContext& ctx);

}  // namespace sluice::admin
