#include "admin/clusters_json.h"

#include <map>

#include "admin/admin_context.h"
#include "core/json.h"
#include "core/stats.h"

namespace sluice::admin {

namespace {

const char* yes(bool b) { return b ? "true" : "false"; }

struct Totals {
  uint64_t requests = 0, errors_5xx = 0, retries = 0, no_healthy_host = 0, panic = 0, overflow = 0;
};

}  // namespace

std::string clusters_json_array(const AdminContext& ctx) {
  std::map<std::string, Totals> totals;
  for (const WorkerStats* w : ctx.worker_stats()) {
    if (!w) continue;
    w->visit([&](const auto&, const std::map<std::string, ClusterStats>& clusters, const auto&) {
      for (const auto& [name, s] : clusters) {
        Totals& t = totals[name];
        for (const auto& c : s.requests.by_class) t.requests += c.value();
        t.errors_5xx += s.requests.by_class[4].value();
        t.retries += s.retry_connect_failure.value() + s.retry_reset.value() +
                     s.retry_refused_stream.value() + s.retry_per_try_timeout.value() +
                     s.retry_status.value();
        t.no_healthy_host += s.no_healthy_host.value();
        t.panic += s.panic.value();
        t.overflow += s.overflow_connections.value() + s.overflow_pending.value() +
                      s.overflow_requests.value();
      }
    });
  }
  config::ConfigPtr cfg = ctx.config();
  std::string out = "[";
  bool first_cluster = true;
  for (const upstream::SharedClusterPtr& c : ctx.clusters()) {
    const config::Cluster* settings = cfg ? cfg->find_cluster(c->name()) : nullptr;
    upstream::SharedCluster::Membership m = c->membership();
    out += first_cluster ? "\n  " : ",\n  ";
    first_cluster = false;
    const Totals& t = totals[c->name()];
    out += "{\"name\": " + json_string(c->name());
    if (settings) out += ", \"lb\": " + json_string(settings->lb);
    out += ", \"health_check\": " + std::string(yes(settings && settings->health_check));
    out += ", \"active_requests\": " + std::to_string(c->active_requests.load());
    out += ", \"pending_requests\": " + std::to_string(c->pending_requests.load());
    out += ", \"open_connections\": " + std::to_string(c->open_connections.load());
    out += ", \"requests_total\": " + std::to_string(t.requests);
    out += ", \"responses_5xx_total\": " + std::to_string(t.errors_5xx);
    out += ", \"retries_total\": " + std::to_string(t.retries);
    out += ", \"no_healthy_host_total\": " + std::to_string(t.no_healthy_host);
    out += ", \"panic_total\": " + std::to_string(t.panic);
    out += ", \"overflow_total\": " + std::to_string(t.overflow);
    out += ", \"ejections_total\": " + std::to_string(c->ejections_total.load());
    out += ", \"dns_failures_total\": " + std::to_string(c->dns_failures_total.load());
    out += ", \"hosts\": [";
    if (m.hosts) {
      for (size_t i = 0; i < m.hosts->hosts.size(); ++i) {
        const upstream::Host& h = *m.hosts->hosts[i];
        out += i ? ",\n    " : "\n    ";
        out += "{\"address\": " + json_string(h.name());
        if (!h.hostname().empty()) out += ", \"hostname\": " + json_string(h.hostname());
        out += ", \"weight\": " + std::to_string(h.weight());
        out += ", \"healthy\": " + std::string(yes(h.healthy()));
        // Only while the cluster is checked: a reload that drops the check leaves the last
        // result behind in the host.
        if (settings && settings->health_check) {
          out += ", \"last_check\": " + json_string(h.last_check());
        }
        out += ", \"ejected\": " + std::string(yes(h.ejected()));
        out += ", \"disabled\": " + std::string(yes(h.disabled()));
        out += ", \"available\": " + std::string(yes(h.available()));
        out += ", \"active_requests\": " + std::to_string(h.active_requests());
        out += ", \"consecutive_failures\": " + std::to_string(h.consecutive_failures());
        out += ", \"requests_total\": " + std::to_string(h.requests_total());
        out += ", \"failures_total\": " + std::to_string(h.failures_total());
        out += "}";
      }
      if (!m.hosts->hosts.empty()) out += "\n  ";
    }
    out += "]}";
  }
  out += first_cluster ? "]" : "\n]";
  return out;
}

std::string clusters_json(const AdminContext& ctx) {
  return "{\"clusters\": " + clusters_json_array(ctx) + "}\n";
}

}  // namespace sluice::admin
