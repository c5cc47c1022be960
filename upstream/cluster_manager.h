#pragma once
// Per-worker view of the upstream clusters: load balancer state and one connection pool per
// host. Owned by its worker and used only on that worker's thread; rebuilt from each config
// snapshot with pools kept for hosts whose address did not change.
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "config/config.h"
#include "core/error.h"
#include "upstream/load_balancer.h"
#include "upstream/pool/host_pool.h"
#include "upstream/shared_clusters.h"

struct ssl_ctx_st;
using SSL_CTX = ssl_ctx_st;

namespace sluice {
struct ClusterStats;
class WorkerStats;
}  // namespace sluice

namespace sluice::upstream {

class ClusterManager;

// One cluster as a worker sees it: the shared hosts (SharedCluster) with this worker's balancer
// and a connection pool per host. The worker follows the shared membership lazily: pick()
// notices a new version and rebuilds its view.
struct ClusterState {
  const config::Cluster* config = nullptr;  // valid while the snapshot is held
  ClusterStats* stats = nullptr;
  SharedClusterPtr shared;
  bool hashing = false;  // lb is ring_hash or maglev: requests carry a hash

  struct Pick {
    HostPtr host;        // null: no host can take the request
    HostPoolPtr pool;    // held by the request: a host that leaves drains, its pool stays
    bool panic = false;  // picked among all hosts because too few are available
  };
  Pick pick(const PickContext& ctx);
  // Hosts in the current membership (after the last pick's refresh).
  size_t host_count();

 private:
  friend class ClusterManager;
  void refresh();
  ClusterManager* manager_ = nullptr;
  uint64_t version_ = UINT64_MAX;
  HostSetPtr hosts_;
  LoadBalancerPtr lb_;
  struct Member {
    HostPtr host;
    HostPoolPtr pool;
  };
  std::unordered_map<const Host*, Member> members_;
};

// Held by a request for its whole life (retries pick from it again): a reload replaces the
// manager's states but never frees one a request still uses.
using ClusterStatePtr = std::shared_ptr<ClusterState>;

class ClusterManager {
 public:
  // `worker` of `workers`: balancers of different workers start at different hosts.
  ClusterManager(boost::asio::io_context& ioc, WorkerStats& stats, uint32_t worker = 0,
                 uint32_t workers = 1);
  ~ClusterManager();
  // Applies a new snapshot's clusters; keeps pools of hosts that remain. `config` must stay
  // alive until the next update (the worker holds it).
  void update(const config::Config& config, const std::map<std::string, SharedClusterPtr>& shared);
  ClusterStatePtr find(const std::string& name) const;
  void close_idle();
  boost::asio::io_context& io_context() { return ioc_; }

 private:
  friend struct ClusterState;
  // The pool for `host` of `cluster`, kept across updates while the host's address stays.
  HostPoolPtr pool_for(const ClusterState& cluster, const HostPtr& host);

  boost::asio::io_context& ioc_;
  WorkerStats& stats_;
  uint32_t worker_;
  uint32_t workers_;
  std::map<std::string, ClusterStatePtr> clusters_;
  std::map<std::string, HostPoolPtr> pools_;  // by "cluster/ip:port"
  // TLS client contexts by cluster, kept across reloads while their settings (and the CA
  // file) stay the same, so pooled connections made with them stay in use.
  struct ClientTls {
    config::ClusterTls settings;
    bool h2 = false;
    std::string ca_stamp;  // the CA file's size and modification time
    std::shared_ptr<SSL_CTX> ctx;
  };
  std::map<std::string, ClientTls> tls_contexts_;
};

}  // namespace sluice::upstream
