#include "admin/metrics.h"

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <sstream>
#include <utility>

#include <prometheus/text_serializer.h>

#include "admin/admin_context.h"
#include "admin/process_metrics.h"
#include "admin/totals.h"
#include "core/stats.h"

namespace sluice::admin {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

ClientMetric sample(std::vector<ClientMetric::Label> labels, double value, MetricType type) {
  ClientMetric m;
  m.label = std::move(labels);
  if (type == MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  return m;
}

// One series per status class, zeros included, so a class never appears mid-range in rate().
void add_status_series(MetricFamily& f, const std::string& scope_label, const std::string& scope,
                       const std::array<uint64_t, 5>& counts) {
  for (size_t i = 0; i < counts.size(); ++i) {
    f.metric.push_back(sample({{scope_label, scope}, {"code", kStatusClasses[i]}},
                              static_cast<double>(counts[i]), MetricType::Counter));
  }
}

ClientMetric histogram_sample(const std::string& route, const char* code, const HistogramSum& sum) {
  ClientMetric m;
  m.label = {{"route", route}, {"code", code}};
  // Counts come from the buckets, not Histogram::count(): the workers keep writing while we read,
  // and the exposition must keep +Inf == _count.
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    cumulative += sum.buckets[i];
    double bound = i < Histogram::kBounds.size() ? Histogram::kBounds[i]
                                                 : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back({cumulative, bound});
  }
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = sum.sum;
  return m;
}

}  // namespace

std::vector<MetricFamily> collect_metrics(const AdminContext& ctx) {
  const std::vector<const WorkerStats*> worker_stats = ctx.worker_stats();
  const StatsTotals totals = sum_stats(ctx, worker_stats);

  MetricFamily workers =
      family("sluice_workers", "Number of worker threads serving traffic.", MetricType::Gauge);
  workers.metric.push_back(sample({}, static_cast<double>(worker_stats.size()), MetricType::Gauge));

  MetricFamily reloads = family("sluice_config_reloads_total",
                                "Configuration reload attempts, by result.", MetricType::Counter);
  reloads.metric.push_back(sample(
      {{"result", "success"}}, static_cast<double>(ctx.reloads_succeeded()), MetricType::Counter));
  reloads.metric.push_back(sample({{"result", "failure"}},
                                  static_cast<double>(ctx.reloads_failed()), MetricType::Counter));

  MetricFamily requests = family(
      "sluice_downstream_requests_total",
      "Responses sent to downstream clients, by listener and status class.", MetricType::Counter);
  MetricFamily active =
      family("sluice_downstream_connections_active",
             "Open downstream client connections, by listener.", MetricType::Gauge);
  MetricFamily accepted =
      family("sluice_downstream_connections_total",
             "Downstream client connections accepted, by listener.", MetricType::Counter);
  MetricFamily rejected = family(
      "sluice_downstream_connections_rejected_total",
      "Downstream client connections closed at accept because the listener was at a limit, by "
      "listener and reason (max_connections, max_connections_per_ip).",
      MetricType::Counter);
  MetricFamily handshakes = family(
      "sluice_tls_handshakes_total",
      "TLS handshakes on downstream connections, by listener and result.", MetricType::Counter);
  for (const auto& [name, s] : totals.listeners) {
    add_status_series(requests, "listener", name, s.requests);
    active.metric.push_back(
        sample({{"listener", name}}, static_cast<double>(s.connections_active), MetricType::Gauge));
    accepted.metric.push_back(sample({{"listener", name}}, static_cast<double>(s.connections_total),
                                     MetricType::Counter));
    for (auto [reason, n] :
         {std::pair{"max_connections", s.rejected_max_connections},
          std::pair{"max_connections_per_ip", s.rejected_max_connections_per_ip}}) {
      rejected.metric.push_back(sample({{"listener", name}, {"reason", reason}},
                                       static_cast<double>(n), MetricType::Counter));
    }
    // Series for TLS listeners (and for ones that were TLS before a reload and still count).
    if (s.tls || s.tls_ok + s.tls_failed + s.tls_timed_out > 0) {
      for (auto [result, n] : {std::pair{"success", s.tls_ok}, std::pair{"failure", s.tls_failed},
                               std::pair{"timeout", s.tls_timed_out}}) {
        handshakes.metric.push_back(sample({{"listener", name}, {"result", result}},
                                           static_cast<double>(n), MetricType::Counter));
      }
    }
  }

  MetricFamily duration =
      family("sluice_request_duration_seconds",
             "Time from receiving a request to sending the last response byte, by route and status "
             "class.",
             MetricType::Histogram);
  // A class appears with its first response; a configured route shows 2xx from the start so
  // that it has a histogram before its first request. Counters never go down, so a class that
  // has appeared stays.
  constexpr size_t k2xx = 1;
  for (const auto& [name, s] : totals.routes) {
    for (size_t c = 0; c < s.by_class.size(); ++c) {
      if (s.by_class[c].empty() && !(c == k2xx && s.configured)) continue;
      duration.metric.push_back(histogram_sample(name, kStatusClasses[c], s.by_class[c]));
    }
  }
  MetricFamily upgrades =
      family("sluice_upgrades_total",
             "Requests switched to another protocol (WebSocket) by the backend's 101, by route.",
             MetricType::Counter);
  for (const auto& [name, s] : totals.routes) {
    if (!s.configured && s.upgrades == 0) continue;
    upgrades.metric.push_back(
        sample({{"route", name}}, static_cast<double>(s.upgrades), MetricType::Counter));
  }

  MetricFamily upstream_requests = family(
      "sluice_upstream_requests_total",
      "Responses received from upstream hosts, by cluster and status class.", MetricType::Counter);
  MetricFamily connect_failures =
      family("sluice_upstream_connect_failures_total",
             "Failed attempts to connect to an upstream host, by cluster.", MetricType::Counter);
  MetricFamily timeouts =
      family("sluice_upstream_timeouts_total", "Upstream requests that timed out, by cluster.",
             MetricType::Counter);
  MetricFamily created =
      family("sluice_upstream_connections_created_total",
             "Upstream connections opened, by cluster; requests minus this were reuses.",
             MetricType::Counter);
  MetricFamily retries = family(
      "sluice_upstream_retries_total",
      "Requests sent again to an upstream, by cluster and reason; reason budget_exhausted counts "
      "retries that were due but refused by the retry budget.",
      MetricType::Counter);
  MetricFamily overflow =
      family("sluice_upstream_overflow_total",
             "Requests refused with 503 by a circuit breaker, by cluster and breaker.",
             MetricType::Counter);
  MetricFamily no_healthy =
      family("sluice_upstream_no_healthy_host_total",
             "Requests answered 503 at once because no host of the cluster could take them.",
             MetricType::Counter);
  MetricFamily panic =
      family("sluice_upstream_panic_total",
             "Requests balanced over all hosts because fewer than panic_threshold were healthy.",
             MetricType::Counter);
  static constexpr const char* kRetryReasons[] = {"connect_failure", "reset",  "refused_stream",
                                                  "per_try_timeout", "status", "budget_exhausted"};
  static constexpr const char* kBreakers[] = {"max_connections", "max_pending_requests",
                                              "max_requests"};
  for (const auto& [name, s] : totals.clusters) {
    for (size_t i = 0; i < s.retries.size(); ++i) {
      retries.metric.push_back(sample({{"cluster", name}, {"reason", kRetryReasons[i]}},
                                      static_cast<double>(s.retries[i]), MetricType::Counter));
    }
    for (size_t i = 0; i < s.overflow.size(); ++i) {
      overflow.metric.push_back(sample({{"cluster", name}, {"breaker", kBreakers[i]}},
                                       static_cast<double>(s.overflow[i]), MetricType::Counter));
    }
    no_healthy.metric.push_back(
        sample({{"cluster", name}}, static_cast<double>(s.no_healthy_host), MetricType::Counter));
    panic.metric.push_back(
        sample({{"cluster", name}}, static_cast<double>(s.panic), MetricType::Counter));
  }
  // Host state comes from the shared hosts, not the workers.
  MetricFamily healthy =
      family("sluice_upstream_host_healthy",
             "1 if the host takes requests (passes its health check, not ejected, not disabled).",
             MetricType::Gauge);
  MetricFamily ejected =
      family("sluice_upstream_host_ejected",
             "1 while outlier detection keeps the host out of rotation.", MetricType::Gauge);
  MetricFamily host_active =
      family("sluice_upstream_host_active_requests",
             "Requests in flight to the host, over all workers.", MetricType::Gauge);
  MetricFamily ejections =
      family("sluice_upstream_ejections_total", "Hosts ejected by outlier detection, by cluster.",
             MetricType::Counter);
  MetricFamily dns_failures =
      family("sluice_dns_failures_total",
             "Failed resolutions of a cluster's hostname endpoints (the last addresses stay).",
             MetricType::Counter);
  for (const upstream::SharedClusterPtr& c : ctx.clusters()) {
    ejections.metric.push_back(sample({{"cluster", c->name()}},
                                      static_cast<double>(c->ejections_total.load()),
                                      MetricType::Counter));
    dns_failures.metric.push_back(sample({{"cluster", c->name()}},
                                         static_cast<double>(c->dns_failures_total.load()),
                                         MetricType::Counter));
    upstream::SharedCluster::Membership m = c->membership();
    if (!m.hosts) continue;
    for (const auto& h : m.hosts->hosts) {
      std::vector<ClientMetric::Label> labels = {{"cluster", c->name()}, {"host", h->name()}};
      healthy.metric.push_back(sample(labels, h->available() ? 1 : 0, MetricType::Gauge));
      ejected.metric.push_back(sample(labels, h->ejected() ? 1 : 0, MetricType::Gauge));
      host_active.metric.push_back(
          sample(labels, static_cast<double>(h->active_requests()), MetricType::Gauge));
    }
  }
  for (const auto& [name, s] : totals.clusters) {
    add_status_series(upstream_requests, "cluster", name, s.requests);
    connect_failures.metric.push_back(
        sample({{"cluster", name}}, static_cast<double>(s.connect_failures), MetricType::Counter));
    timeouts.metric.push_back(
        sample({{"cluster", name}}, static_cast<double>(s.timeouts), MetricType::Counter));
    created.metric.push_back(sample({{"cluster", name}}, static_cast<double>(s.connections_created),
                                    MetricType::Counter));
  }

  auto decisions = family("sluice_ratelimit_decisions_total",
                          "Rate-limit decisions, by rule and decision (allowed, limited, "
                          "would_limit in shadow mode, skipped for a missing key part, error).",
                          MetricType::Counter);
  static constexpr const char* kDecisions[] = {"allowed", "limited", "would_limit", "skipped",
                                               "error"};
  for (const auto& [rule, counts] : totals.rate_limits) {
    for (size_t i = 0; i < counts.size(); ++i) {
      decisions.metric.push_back(sample({{"rule", rule}, {"decision", kDecisions[i]}},
                                        static_cast<double>(counts[i]), MetricType::Counter));
    }
  }
  auto redis_errors = family("sluice_redis_errors_total",
                             "Redis calls of global rate limits that failed: no answer (timeout, "
                             "connection failure, circuit breaker open) or an error reply.",
                             MetricType::Counter);
  redis_errors.metric.push_back(
      sample({}, static_cast<double>(totals.redis_errors), MetricType::Counter));

  auto access_log_dropped =
      family("sluice_access_log_dropped_total",
             "Access-log lines dropped because the log sink could not keep up (the logging "
             "thread's buffer was full) or a write to it failed.",
             MetricType::Counter);
  access_log_dropped.metric.push_back(
      sample({}, static_cast<double>(totals.access_log_dropped), MetricType::Counter));
  auto error_log_dropped = family(
      "sluice_error_log_dropped_total",
      "Error-log (stderr) lines dropped because stderr could not keep up.", MetricType::Counter);
  error_log_dropped.metric.push_back(
      sample({}, static_cast<double>(ctx.error_log_dropped()), MetricType::Counter));

  const TracingCounters tracing = ctx.tracing_counters();
  auto spans_exported = family("sluice_tracing_spans_exported_total",
                               "Spans the OTLP collector accepted.", MetricType::Counter);
  spans_exported.metric.push_back(
      sample({}, static_cast<double>(tracing.spans_exported), MetricType::Counter));
  auto spans_dropped = family(
      "sluice_tracing_spans_dropped_total",
      "Spans dropped: the export queue was full (queue_full) or the collector could not take "
      "their batch before export_timeout (export_failed).",
      MetricType::Counter);
  spans_dropped.metric.push_back(sample({{"reason", "queue_full"}},
                                        static_cast<double>(tracing.spans_dropped_queue_full),
                                        MetricType::Counter));
  spans_dropped.metric.push_back(sample({{"reason", "export_failed"}},
                                        static_cast<double>(tracing.spans_dropped_export_failed),
                                        MetricType::Counter));
  auto export_failures =
      family("sluice_tracing_export_failures_total",
             "OTLP export requests that failed (no answer, or not 2xx), retried ones included.",
             MetricType::Counter);
  export_failures.metric.push_back(
      sample({}, static_cast<double>(tracing.export_requests_failed), MetricType::Counter));

  auto sanitize = family("sluice_sanitize_rejections_total",
                         "Requests the sanitize filter refused, by listener and reason (a path "
                         "error such as encoded_character, underscore_header, or deny:RULE).",
                         MetricType::Counter);
  for (const auto& [key, n] : totals.sanitize_rejections) {
    sanitize.metric.push_back(sample({{"listener", key.first}, {"reason", key.second}},
                                     static_cast<double>(n), MetricType::Counter));
  }

  auto compressed = family("sluice_compressed_responses_total",
                           "Responses sent compressed, by content coding.", MetricType::Counter);
  auto compression_in = family("sluice_compression_input_bytes_total",
                               "Response body bytes given to the compressor, by content coding.",
                               MetricType::Counter);
  auto compression_out =
      family("sluice_compression_output_bytes_total",
             "Compressed response body bytes sent, by content coding.", MetricType::Counter);
  constexpr std::array<const char*, 3> kAlgorithms = {"gzip", "br", "zstd"};
  for (size_t i = 0; i < kAlgorithms.size(); ++i) {
    const auto& c = totals.compression[i];
    const std::vector<ClientMetric::Label> labels = {{"algorithm", kAlgorithms[i]}};
    compressed.metric.push_back(
        sample(labels, static_cast<double>(c.responses), MetricType::Counter));
    compression_in.metric.push_back(
        sample(labels, static_cast<double>(c.bytes_in), MetricType::Counter));
    compression_out.metric.push_back(
        sample(labels, static_cast<double>(c.bytes_out), MetricType::Counter));
  }

  std::vector<MetricFamily> out;
  for (MetricFamily* f :
       {&workers,           &reloads,          &requests,           &active,
        &accepted,          &rejected,         &duration,           &upgrades,
        &upstream_requests, &connect_failures, &timeouts,           &created,
        &retries,           &overflow,         &no_healthy,         &panic,
        &healthy,           &ejected,          &host_active,        &ejections,
        &dns_failures,      &redis_errors,     &access_log_dropped, &error_log_dropped,
        &compressed,        &compression_in,   &compression_out,    &spans_exported,
        &spans_dropped,     &export_failures}) {
    out.push_back(std::move(*f));
  }
  if (!handshakes.metric.empty()) out.push_back(std::move(handshakes));  // no TLS: no family
  if (!decisions.metric.empty()) out.push_back(std::move(decisions));
  if (!sanitize.metric.empty()) out.push_back(std::move(sanitize));
  for (MetricFamily& f : process_metric_families(read_process_stats())) {
    out.push_back(std::move(f));
  }
  return out;
}

std::string render_metrics(const AdminContext& ctx) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, collect_metrics(ctx));
  return std::move(out).str();
}

}  // namespace sluice::admin
