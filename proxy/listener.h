#pragma once
// A listener on one worker: its own SO_REUSEPORT acceptor, limits, and live connections.
// Lives on the worker's thread (created on the main thread before it is handed over).
#include <list>
#include <memory>
#include <string>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "config/config.h"
#include "proxy/connection_limiter.h"
#include "proxy/stream.h"

namespace sluice {

class Http1Connection;
struct ListenerStats;

class ListenerRuntime : public std::enable_shared_from_this<ListenerRuntime> {
 public:
  // `limiter` counts the listener's connections on every worker; shared with them. Null: a
  // count of this runtime's own (a listener on one worker only, as in tests).
  ListenerRuntime(boost::asio::ip::tcp::acceptor acceptor, config::Listener config,
                  StreamContext& ctx, ListenerStats& stats,
                  std::shared_ptr<ConnectionLimiter> limiter = nullptr);
  ~ListenerRuntime();

  // Binds a new acceptor with SO_REUSEPORT; returns an error message on failure.
  static std::string bind(boost::asio::io_context& ioc, const config::SocketAddress& address,
                          boost::asio::ip::tcp::acceptor& out);

  void start();
  void stop_accepting();
  void drain_connections();
  void close_connections();
  // While set (admin API drain), connections answer every request with "Connection: close".
  void set_draining(bool draining) { draining_ = draining; }
  bool draining() const { return draining_; }
  size_t active_connections() const { return active_; }

  // The listener's config and snapshot currently in force; connections read them per request.
  const config::Listener& config() const { return config_; }
  void update(const config::Listener& config, SnapshotPtr snapshot);
  const SnapshotPtr& snapshot() const { return snapshot_; }
  ListenerStats& stats() { return stats_; }

  // The listener owns its connections; a connection unregisters itself once its socket is
  // closed (from a posted handler, never from inside its own callbacks).
  std::list<std::shared_ptr<Http1Connection>>::iterator add(std::shared_ptr<Http1Connection> c);
  void remove(std::list<std::shared_ptr<Http1Connection>>::iterator it);

 private:
  void accept();
  void on_accept(boost::asio::ip::tcp::socket socket);

  boost::asio::ip::tcp::acceptor acceptor_;
  // Waits out a failed accept (EMFILE and the like) before the next one.
  boost::asio::steady_timer backoff_;
  config::Listener config_;
  StreamContext& ctx_;
  ListenerStats& stats_;
  SnapshotPtr snapshot_;
  std::shared_ptr<ConnectionLimiter> limiter_;
  std::list<std::shared_ptr<Http1Connection>> connections_;
  size_t active_ = 0;
  bool accepting_ = false;
  bool draining_ = false;
};

}  // namespace sluice
