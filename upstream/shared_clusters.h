#pragma once
// The clusters as the control thread keeps them: each cluster's hosts (shared by all workers),
// its balancer factory, active health checking, outlier ejection, DNS refresh of hostname
// endpoints and the cluster-wide counters that circuit breakers and retry budgets read.
//
// SharedClusters is owned by the server and lives on the control thread's io_context; update()
// and everything that changes host state run there. Workers hold SharedClusterPtr (through the
// snapshot) and read membership() when version() moved, and the counters as atomics.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "config/config.h"
#include "upstream/health/health_checker.h"
#include "upstream/host.h"
#include "upstream/load_balancer.h"

namespace sluice::upstream {

namespace dns {
class Resolver;
}

class SharedClusters;

class SharedCluster : public std::enable_shared_from_this<SharedCluster> {
 public:
  SharedCluster(SharedClusters& owner, std::string name);
  ~SharedCluster();

  const std::string& name() const { return name_; }

  struct Membership {
    HostSetPtr hosts;
    LoadBalancerFactoryPtr lb;
  };
  // Any thread. Changes when hosts join or leave (reload, DNS), not when their health does.
  Membership membership() const;
  uint64_t version() const { return version_.load(std::memory_order_acquire); }

  // Worker threads: a request to `host` failed (5xx or a gateway failure) / succeeded.
  // Ejection is decided on the control thread.
  void record_failure(const HostPtr& host);
  static void record_success(Host& host) { host.record_success(); }

  // Cluster-wide counts, over every worker (circuit breakers, retry budget).
  std::atomic<int64_t> active_requests{0};
  std::atomic<int64_t> pending_requests{0};
  std::atomic<int64_t> open_connections{0};
  std::atomic<int64_t> active_retries{0};

  // Control thread: counters for the admin API and metrics.
  std::atomic<uint64_t> ejections_total{0};
  std::atomic<uint64_t> dns_failures_total{0};

 private:
  friend class SharedClusters;
  struct Resolved {
    std::vector<std::string> addresses;  // "ip:port"
    bool done = false;                   // a first answer (or failure) came
  };
  void apply(const config::Cluster& settings);
  void rebuild_hosts();
  // What the health checker's http probes connect with: the cluster's TLS and protocol.
  health::ProbeTransport probe_transport() const;
  void start_dns();
  void resolve_names();
  void eject(const HostPtr& host);
  void stop();

  SharedClusters& owner_;
  const std::string name_;
  config::Cluster settings_;                    // control thread
  std::atomic<uint32_t> outlier_threshold_{0};  // consecutive failures; 0: no outlier detection
  mutable std::mutex mutex_;                    // guards membership_
  Membership membership_;
  std::atomic<uint64_t> version_{0};
  // Every Host ever in this cluster and still in its set, by "ip:port": kept across rebuilds.
  std::map<std::string, HostPtr> hosts_by_address_;
  std::map<std::string, Resolved> resolved_;  // hostname endpoint "name:port" → its addresses
  std::unique_ptr<boost::asio::steady_timer> dns_timer_;
  std::chrono::seconds min_ttl_{0};
  std::shared_ptr<health::HealthChecker> checker_;
  std::map<Host*, std::unique_ptr<boost::asio::steady_timer>> ejection_timers_;
  bool stopped_ = false;
};

using SharedClusterPtr = std::shared_ptr<SharedCluster>;

class SharedClusters {
 public:
  using Log = std::function<void(const std::string&)>;
  SharedClusters(boost::asio::io_context& control, Log log);
  ~SharedClusters();

  // Control thread. Brings the clusters in line with `config`: a cluster that remains keeps
  // its hosts (and their health) for addresses that remain. Returns the clusters by name.
  std::map<std::string, SharedClusterPtr> update(const config::Config& config);
  // Control thread: runs the control io_context until every hostname endpoint has had a first
  // answer or `limit` passed, so the first requests do not meet an empty cluster.
  void wait_for_dns(std::chrono::milliseconds limit);
  // Any thread (admin API).
  std::vector<SharedClusterPtr> all() const;
  SharedClusterPtr find(const std::string& name) const;
  void stop();

 private:
  friend class SharedCluster;
  dns::Resolver* resolver();

  boost::asio::io_context& control_;
  Log log_;
  std::vector<std::string> dns_servers_;
  std::unique_ptr<dns::Resolver> resolver_;
  mutable std::mutex mutex_;
  std::map<std::string, SharedClusterPtr> clusters_;
};

}  // namespace sluice::upstream
