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
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "config/config.h"
#include "core/error.h"
#include "upstream/pool/host_pool.h"

struct ssl_ctx_st;
using SSL_CTX = ssl_ctx_st;

namespace sluice {
struct ClusterStats;
class WorkerStats;
}  // namespace sluice

namespace sluice::upstream {

struct ClusterState {
  const config::Cluster* config = nullptr;  // valid while the snapshot is held
  std::vector<HostPoolPtr> hosts;           // weighted: a host appears `weight` times
  size_t next = 0;                          // round-robin cursor
  ClusterStats* stats = nullptr;
  size_t distinct_hosts = 0;

  // Round robin over the weighted host list.
  HostPool& pick() { return *hosts[next++ % hosts.size()]; }
};

// Held by a request for its whole life (retries pick from it again): a reload replaces the
// manager's states but never frees one a request still uses.
using ClusterStatePtr = std::shared_ptr<ClusterState>;

class ClusterManager {
 public:
  ClusterManager(boost::asio::io_context& ioc, WorkerStats& stats);
  ~ClusterManager();
  // Applies a new snapshot; keeps pools of hosts that remain. `config` must stay alive
  // until the next update (the worker holds it).
  void update(const config::Config& config);
  ClusterStatePtr find(const std::string& name) const;
  void close_idle();
  boost::asio::io_context& io_context() { return ioc_; }

 private:
  boost::asio::io_context& ioc_;
  WorkerStats& stats_;
  std::map<std::string, ClusterStatePtr> clusters_;
  std::map<std::string, HostPoolPtr> pools_;  // by "cluster/host:port"
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
