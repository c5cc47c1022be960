#pragma once
// Per-worker view of the upstream clusters: load balancer state and one connection pool per
// host. Owned by its worker and used only on that worker's thread; rebuilt from each config
// snapshot with pools kept for hosts whose address did not change.
#include <chrono>
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
#include "upstream/http1_client.h"

struct ssl_ctx_st;
using SSL_CTX = ssl_ctx_st;

namespace sluice {
struct ClusterStats;
class WorkerStats;
}  // namespace sluice

namespace sluice::upstream {

// Idle connections to one host, and new connections on demand.
class HostPool : public std::enable_shared_from_this<HostPool> {
 public:
  using ConnectCallback = std::function<void(Http1ClientConnectionPtr, const Error*)>;

  HostPool(boost::asio::io_context& ioc, config::SocketAddress address, ClusterStats& stats);
  ~HostPool();

  const std::string& name() const { return name_; }
  // Hands over an idle connection, or connects a new one within `timeout`. The callback runs
  // later, never inline. With `probe_idle` an idle socket is first checked with a peek (a
  // syscall) for a close the idle watch has not seen yet; callers that can resend the request
  // on a fresh connection when a reused one fails (no body to replay) skip it.
  void acquire(std::chrono::milliseconds timeout, ConnectCallback cb, bool probe_idle = true);
  // Called by a connection whose exchange completed with keep-alive.
  void release(Http1ClientConnectionPtr conn);
  // Called by an idle connection that the peer closed.
  void remove_idle(Http1ClientConnection* conn);
  void set_limits(uint32_t max_idle, std::chrono::milliseconds idle_timeout);
  // HTTPS: new connections run a TLS handshake (within the connect timeout) before use.
  void set_tls(std::shared_ptr<SSL_CTX> ctx, std::string sni, std::string verify_name);
  size_t idle_count() const { return idle_.size(); }
  void close_idle();

 private:
  struct Idle {
    Http1ClientConnectionPtr conn;
    std::chrono::steady_clock::time_point since;
  };
  bool resolve(boost::asio::ip::tcp::endpoint& out, Error& err);
  void expire_idle();

  boost::asio::io_context& ioc_;
  config::SocketAddress address_;
  std::string name_;
  ClusterStats& stats_;
  std::deque<Idle> idle_;  // oldest first; a deque, so parking a connection rarely allocates
  uint32_t max_idle_ = 64;
  std::chrono::milliseconds idle_timeout_{60000};
  std::shared_ptr<SSL_CTX> tls_ctx_;
  std::string tls_sni_;
  std::string tls_verify_name_;
  bool resolved_ = false;
  boost::asio::ip::tcp::endpoint endpoint_;
};

using HostPoolPtr = std::shared_ptr<HostPool>;

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
};

}  // namespace sluice::upstream
