#include "admin/totals.h"

#include "admin/admin_context.h"

namespace sluice::admin {
namespace {

void add_status(std::array<uint64_t, 5>& to, const StatusCounters& from) {
  for (size_t i = 0; i < to.size(); ++i) to[i] += from.by_class[i].value();
}

}  // namespace

StatsTotals sum_stats(const AdminContext& ctx, const std::vector<const WorkerStats*>& workers) {
  StatsTotals totals;
  if (config::ConfigPtr cfg = ctx.config()) {
    for (const auto& l : cfg->listeners) {
      totals.listeners.try_emplace(l.name).first->second.tls = l.tls.has_value();
    }
    for (const auto& c : cfg->clusters) totals.clusters.try_emplace(c.name);
    for (const auto& r : cfg->routes) {
      if (!r.name.empty()) totals.routes.try_emplace(r.name).first->second.configured = true;
    }
  }
  for (const WorkerStats* worker : workers) {
    if (worker == nullptr) continue;
    worker->visit([&](const std::map<std::string, ListenerStats>& listeners,
                      const std::map<std::string, ClusterStats>& clusters,
                      const std::map<std::string, RouteStats>& routes) {
      for (const auto& [name, s] : listeners) {
        ListenerSum& sum = totals.listeners[name];
        add_status(sum.requests, s.requests);
        sum.connections_active += s.connections_active.value();
        sum.connections_total += s.connections_total.value();
        sum.rejected_max_connections += s.connections_rejected_max_connections.value();
        sum.rejected_max_connections_per_ip +=
            s.connections_rejected_max_connections_per_ip.value();
        sum.tls_ok += s.tls_handshakes_ok.value();
        sum.tls_failed += s.tls_handshakes_failed.value();
        sum.tls_timed_out += s.tls_handshakes_timed_out.value();
      }
      for (const auto& [name, s] : clusters) {
        ClusterSum& sum = totals.clusters[name];
        add_status(sum.requests, s.requests);
        sum.connect_failures += s.connect_failures.value();
        sum.timeouts += s.timeouts.value();
        sum.connections_created += s.connections_created.value();
        const Counter* retries[] = {&s.retry_connect_failure, &s.retry_reset,
                                    &s.retry_refused_stream,  &s.retry_per_try_timeout,
                                    &s.retry_status,          &s.retry_budget_exhausted};
        for (size_t i = 0; i < sum.retries.size(); ++i) sum.retries[i] += retries[i]->value();
        sum.overflow[0] += s.overflow_connections.value();
        sum.overflow[1] += s.overflow_pending.value();
        sum.overflow[2] += s.overflow_requests.value();
        sum.no_healthy_host += s.no_healthy_host.value();
        sum.panic += s.panic.value();
      }
      for (const auto& [name, s] : routes) {
        RouteSum& sum = totals.routes[name];
        for (size_t c = 0; c < sum.by_class.size(); ++c) {
          HistogramSum& h = sum.by_class[c];
          for (size_t i = 0; i < kBuckets; ++i) h.buckets[i] += s.duration[c].bucket(i);
          h.sum += s.duration[c].sum();
        }
        sum.upgrades += s.upgrades.value();
      }
    });
    worker->visit_rate_limits([&](const std::map<std::string, RateLimitStats>& rules) {
      for (const auto& [name, s] : rules) {
        auto& sum = totals.rate_limits[name];
        sum[0] += s.allowed.value();
        sum[1] += s.limited.value();
        sum[2] += s.would_limit.value();
        sum[3] += s.skipped.value();
        sum[4] += s.error.value();
      }
    });
    totals.redis_errors += worker->redis_errors.value();
    totals.access_log_dropped += worker->access_log_dropped->load(std::memory_order_relaxed);
    for (size_t i = 0; i < totals.compression.size(); ++i) {
      totals.compression[i].responses += worker->compression[i].responses.value();
      totals.compression[i].bytes_in += worker->compression[i].bytes_in.value();
      totals.compression[i].bytes_out += worker->compression[i].bytes_out.value();
    }
    worker->visit_sanitize([&](const WorkerStats::SanitizeRejections& rejections) {
      for (const auto& [key, c] : rejections) totals.sanitize_rejections[key] += c.value();
    });
  }
  return totals;
}

}  // namespace sluice::admin
