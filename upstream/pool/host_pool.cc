#include "upstream/pool/host_pool.h"

#include <algorithm>

#include <boost/asio/post.hpp>

#include "core/stats.h"

namespace sluice::upstream {

namespace asio = boost::asio;
using boost::system::error_code;

HostPool::HostPool(asio::io_context& ioc, config::SocketAddress address, ClusterStats& stats)
    : ioc_(ioc), address_(std::move(address)), name_(address_.str()), stats_(stats) {}

HostPool::~HostPool() {
  close_idle();
  // Streams still running hold their connections: close them so nothing outlives the pool.
  auto h2 = std::move(h2_conns_);
  for (auto& c : h2) c->close();
}

void HostPool::set_tls(std::shared_ptr<SSL_CTX> ctx, std::string sni, std::string verify_name) {
  if (ctx != tls_ctx_) close_idle();  // connections made under other TLS settings
  tls_ctx_ = std::move(ctx);
  tls_sni_ = std::move(sni);
  tls_verify_name_ = std::move(verify_name);
}

void HostPool::set_limits(uint32_t max_idle, std::chrono::milliseconds idle_timeout) {
  max_idle_ = max_idle;
  idle_timeout_ = idle_timeout;
}

bool HostPool::resolve(asio::ip::tcp::endpoint& out, Error& err) {
  if (resolved_) {
    out = endpoint_;
    return true;
  }
  // Names are resolved on the control thread (SharedCluster); a pool only ever gets an address.
  error_code ec;
  auto addr = asio::ip::make_address(address_.host, ec);
  if (ec) {
    err = Error{ErrorKind::connect_failed, ErrorSource::upstream, true,
                "not an IP address: " + address_.host};
    return false;
  }
  endpoint_ = asio::ip::tcp::endpoint(addr, address_.port);
  resolved_ = true;
  out = endpoint_;
  return true;
}

void HostPool::set_open_connections(std::atomic<int64_t>* open, uint32_t max) {
  open_connections_ = open;
  max_connections_ = max;
}

std::shared_ptr<void> HostPool::take_connection_slot() {
  if (!open_connections_) return nullptr;
  std::atomic<int64_t>* open = open_connections_;
  open->fetch_add(1, std::memory_order_relaxed);
  // The counter lives in the SharedCluster, which the connection's pool's cluster keeps alive.
  return std::shared_ptr<void>(nullptr,
                               [open](void*) { open->fetch_sub(1, std::memory_order_relaxed); });
}

void HostPool::acquire(std::chrono::milliseconds timeout, ConnectCallback cb, bool probe_idle) {
  if (h2_) {
    acquire_h2(timeout, std::move(cb));
    return;
  }
  expire_idle();
  while (!idle_.empty()) {
    // Most recently used first: the one least likely to have been closed by the backend.
    auto conn = std::move(idle_.back().conn);
    idle_.pop_back();
    if (probe_idle ? conn->idle_socket_usable() : conn->is_open()) {
      asio::post(ioc_, [conn = std::move(conn), cb = std::move(cb)]() { cb(conn, nullptr); });
      return;
    }
    conn->close();
  }
  connect(timeout,
          [this, self = shared_from_this(), cb = std::move(cb)](
              asio::ip::tcp::socket socket, std::unique_ptr<TlsSession> tls, const Error* err) {
            if (err) {
              cb(nullptr, err);
              return;
            }
            auto conn = std::make_shared<Http1ClientConnection>(std::move(socket), weak_from_this(),
                                                                false, std::move(tls));
            conn->hold(take_connection_slot());
            cb(std::move(conn), nullptr);
          });
}

void HostPool::acquire_h2(std::chrono::milliseconds timeout, ConnectCallback cb) {
  for (auto& conn : h2_conns_) {
    if (conn->can_take_stream()) {
      asio::post(ioc_, [s = conn->new_stream(), cb = std::move(cb)]() { cb(s, nullptr); });
      return;
    }
  }
  // A connection on its way takes as many requests as the last one could carry.
  for (auto& pending : h2_connecting_) {
    if (pending->waiters.size() < std::min(h2_max_streams_, h2_stream_limit_)) {
      pending->waiters.push_back(std::move(cb));
      return;
    }
  }
  auto pending = std::make_shared<H2Connecting>();
  pending->waiters.push_back(std::move(cb));
  h2_connecting_.push_back(pending);
  connect(timeout, [this, self = shared_from_this(), pending, timeout](
                       asio::ip::tcp::socket socket, std::unique_ptr<TlsSession> tls,
                       const Error* err) {
    if (err) {
      h2_connection_failed(pending, *err);
      return;
    }
    auto conn = std::make_shared<Http2ClientConnection>(
        std::move(socket), std::move(tls), weak_from_this(), h2_max_streams_, idle_timeout_);
    conn->hold(take_connection_slot());
    // Requests wait for the server's SETTINGS, so none goes over its stream limit.
    std::weak_ptr<Http2ClientConnection> weak = conn;
    conn->start(
        [this, self, pending, timeout, weak](bool ok) {
          auto conn = weak.lock();
          if (!ok || !conn) {
            h2_connection_failed(pending, Error{ErrorKind::connect_failed, ErrorSource::upstream,
                                                true, "HTTP/2 connection to " + name_ + " failed"});
            return;
          }
          h2_conns_.push_back(conn);
          h2_stream_limit_ = conn->stream_limit();
          for (auto& w : take_h2_waiters(pending)) {
            if (conn->can_take_stream()) {
              w(conn->new_stream(), nullptr);
            } else {
              acquire_h2(timeout, std::move(w));
            }
          }
        },
        timeout);
  });
}

std::vector<HostPool::ConnectCallback> HostPool::take_h2_waiters(
    const std::shared_ptr<H2Connecting>& pending) {
  h2_connecting_.erase(std::remove(h2_connecting_.begin(), h2_connecting_.end(), pending),
                       h2_connecting_.end());
  std::vector<ConnectCallback> waiters;
  waiters.swap(pending->waiters);
  return waiters;
}

void HostPool::h2_connection_failed(const std::shared_ptr<H2Connecting>& pending,
                                    const Error& err) {
  for (auto& w : take_h2_waiters(pending)) w(nullptr, &err);
}

void HostPool::connect(std::chrono::milliseconds timeout, ConnectDone done) {
  asio::ip::tcp::endpoint endpoint;
  Error err;
  if (!resolve(endpoint, err)) {
    stats_.connect_failures.add();
    asio::post(ioc_, [done = std::move(done), err, this]() {
      done(asio::ip::tcp::socket(ioc_), nullptr, &err);
    });
    return;
  }
  if (max_connections_ != 0 && open_connections_ &&
      open_connections_->load(std::memory_order_relaxed) >= max_connections_) {
    stats_.overflow_connections.add();
    Error overflow{ErrorKind::overflow, ErrorSource::upstream, false,
                   "circuit breaker: max_connections reached"};
    asio::post(ioc_, [done = std::move(done), overflow, this]() {
      done(asio::ip::tcp::socket(ioc_), nullptr, &overflow);
    });
    return;
  }
  stats_.connections_created.add();
  ConnectOptions options;
  options.tls_ctx = tls_ctx_.get();
  options.sni = tls_sni_;
  options.verify_name = tls_verify_name_;
  options.require_h2 = h2_;
  // connect_timeout covers the TLS handshake too.
  connect_upstream(
      ioc_, endpoint, timeout, options, name_,
      [this, self = shared_from_this(), done = std::move(done)](
          asio::ip::tcp::socket socket, std::unique_ptr<TlsSession> tls, const Error* err) {
        if (err) stats_.connect_failures.add();
        done(std::move(socket), std::move(tls), err);
      });
}

void HostPool::set_protocol(bool h2, uint32_t max_streams) {
  if (h2 != h2_) {
    close_idle();  // connections of the other protocol
    h2_ = h2;
  }
  h2_max_streams_ = max_streams;
}

void HostPool::remove_h2(Http2ClientConnection* conn) {
  h2_conns_.erase(std::remove_if(h2_conns_.begin(), h2_conns_.end(),
                                 [&](const auto& c) { return c.get() == conn; }),
                  h2_conns_.end());
}

void HostPool::release(Http1ClientConnectionPtr conn) {
  if (idle_.size() >= max_idle_) {
    conn->close();
    return;
  }
  conn->watch_idle();
  idle_.push_back(Idle{std::move(conn), std::chrono::steady_clock::now()});
}

void HostPool::remove_idle(Http1ClientConnection* conn) {
  idle_.erase(std::remove_if(idle_.begin(), idle_.end(),
                             [&](const Idle& i) { return i.conn.get() == conn; }),
              idle_.end());
}

void HostPool::expire_idle() {
  auto now = std::chrono::steady_clock::now();
  while (!idle_.empty() && now - idle_.front().since > idle_timeout_) {
    idle_.front().conn->close();
    idle_.pop_front();
  }
}

void HostPool::close_idle() {
  for (auto& i : idle_) i.conn->close();
  idle_.clear();
  auto h2 = h2_conns_;  // drain() may remove a connection from the list
  for (auto& c : h2) c->drain();
}

}  // namespace sluice::upstream
