#pragma once
// Connections from one worker to one upstream host: HTTP/1.1 keep-alive connections kept idle
// for reuse, or HTTP/2 connections shared by many requests. Owned by its worker's
// ClusterManager and used only on that worker's thread.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "config/config.h"
#include "core/error.h"
#include "upstream/connector.h"
#include "upstream/http1_client.h"
#include "upstream/http2_client.h"

struct ssl_ctx_st;
using SSL_CTX = ssl_ctx_st;

namespace sluice {
struct ClusterStats;
}  // namespace sluice

namespace sluice::upstream {

// Connections to one host: HTTP/1.1 idle connections kept for reuse, or HTTP/2 connections
// shared by many requests; new connections on demand.
class HostPool : public std::enable_shared_from_this<HostPool> {
 public:
  using ConnectCallback = std::function<void(UpstreamRequestPtr, const Error*)>;

  HostPool(boost::asio::io_context& ioc, config::SocketAddress address, ClusterStats& stats);
  ~HostPool();

  const std::string& name() const { return name_; }
  // Hands over a request slot: HTTP/1.1, an idle connection or a new one connected within
  // `timeout`; HTTP/2, a stream on an open connection below its stream limit, else on a
  // connection being made. The callback runs later, never inline. With `probe_idle` an idle
  // HTTP/1.1 socket is first checked with a peek (a syscall) for a close the idle watch has
  // not seen yet; callers that can resend the request on a fresh connection when a reused one
  // fails (no body to replay) skip it.
  void acquire(std::chrono::milliseconds timeout, ConnectCallback cb, bool probe_idle = true);
  // Called by a connection whose exchange completed with keep-alive.
  void release(Http1ClientConnectionPtr conn);
  // Called by an idle connection that the peer closed.
  void remove_idle(Http1ClientConnection* conn);
  // Called by an HTTP/2 connection that closed.
  void remove_h2(Http2ClientConnection* conn);
  // HTTP/2 instead of HTTP/1.1, at most `max_streams` per connection. A change drops the
  // connections made before.
  void set_protocol(bool h2, uint32_t max_streams);
  void set_limits(uint32_t max_idle, std::chrono::milliseconds idle_timeout);
  // HTTPS: new connections run a TLS handshake (within the connect timeout) before use.
  void set_tls(std::shared_ptr<SSL_CTX> ctx, std::string sni, std::string verify_name);
  // The cluster-wide count of open connections this pool adds to, and its limit (0: none);
  // a connection over the limit is not made (circuit breaker). Null: not counted.
  void set_open_connections(std::atomic<int64_t>* open, uint32_t max);
  size_t idle_count() const { return idle_.size(); }
  size_t h2_connection_count() const { return h2_conns_.size(); }
  // Closes idle HTTP/1.1 connections; HTTP/2 connections close once their streams end.
  void close_idle();

 private:
  struct Idle {
    Http1ClientConnectionPtr conn;
    std::chrono::steady_clock::time_point since;
  };
  // Waiters for an HTTP/2 connection being made.
  struct H2Connecting {
    std::vector<ConnectCallback> waiters;
  };
  bool resolve(boost::asio::ip::tcp::endpoint& out, Error& err);
  void expire_idle();
  void acquire_h2(std::chrono::milliseconds timeout, ConnectCallback cb);
  // The connection is ready or failed: it no longer takes waiters, and these are its.
  std::vector<ConnectCallback> take_h2_waiters(const std::shared_ptr<H2Connecting>& pending);
  void h2_connection_failed(const std::shared_ptr<H2Connecting>& pending, const Error& err);
  void connect(std::chrono::milliseconds timeout, ConnectDone done);
  std::shared_ptr<void> take_connection_slot();

  boost::asio::io_context& ioc_;
  config::SocketAddress address_;
  std::string name_;
  ClusterStats& stats_;
  std::deque<Idle> idle_;  // oldest first; a deque, so parking a connection rarely allocates
  uint32_t max_idle_ = config::Cluster::kDefaultMaxIdleConnections;
  std::chrono::milliseconds idle_timeout_{60000};
  std::atomic<int64_t>* open_connections_ = nullptr;
  uint32_t max_connections_ = 0;
  std::shared_ptr<SSL_CTX> tls_ctx_;
  std::string tls_sni_;
  std::string tls_verify_name_;
  bool resolved_ = false;
  boost::asio::ip::tcp::endpoint endpoint_;
  bool h2_ = false;
  uint32_t h2_max_streams_ = 100;
  uint32_t h2_stream_limit_ = UINT32_MAX;  // learned from the server's last SETTINGS
  std::vector<std::shared_ptr<Http2ClientConnection>> h2_conns_;
  std::vector<std::shared_ptr<H2Connecting>> h2_connecting_;
};

using HostPoolPtr = std::shared_ptr<HostPool>;

}  // namespace sluice::upstream
