#include "upstream/cluster_manager.h"

#include <algorithm>

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/stats.h"

namespace sluice::upstream {

namespace asio = boost::asio;
using boost::system::error_code;

HostPool::HostPool(asio::io_context& ioc, config::SocketAddress address, ClusterStats& stats)
    : ioc_(ioc), address_(std::move(address)), name_(address_.str()), stats_(stats) {}

HostPool::~HostPool() { close_idle(); }

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
  error_code ec;
  auto addr = asio::ip::make_address(address_.host, ec);
  if (ec) {
    // A hostname: resolved once, on first use, then cached for the life of the pool.
    asio::ip::tcp::resolver resolver(ioc_);
    auto results = resolver.resolve(address_.host, std::to_string(address_.port), ec);
    if (ec || results.empty()) {
      err = Error{ErrorKind::connect_failed, ErrorSource::upstream, true,
                  "cannot resolve " + address_.host + ": " + ec.message()};
      return false;
    }
    endpoint_ = results.begin()->endpoint();
  } else {
    endpoint_ = asio::ip::tcp::endpoint(addr, address_.port);
  }
  resolved_ = true;
  out = endpoint_;
  return true;
}

void HostPool::acquire(std::chrono::milliseconds timeout, ConnectCallback cb, bool probe_idle) {
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

  asio::ip::tcp::endpoint endpoint;
  Error err;
  if (!resolve(endpoint, err)) {
    stats_.connect_failures.add();
    asio::post(ioc_, [cb = std::move(cb), err]() { cb(nullptr, &err); });
    return;
  }

  struct Attempt {
    asio::ip::tcp::socket socket;
    asio::steady_timer timer;
    Http1ClientConnectionPtr conn;  // set while the TLS handshake runs
    bool done = false;
    Attempt(asio::io_context& ioc) : socket(ioc), timer(ioc) {}
  };
  auto attempt = std::make_shared<Attempt>(ioc_);
  auto self = shared_from_this();
  // connect_timeout covers the TLS handshake too.
  attempt->timer.expires_after(timeout);
  attempt->timer.async_wait([attempt](const error_code& ec) {
    if (ec || attempt->done) return;
    error_code ignored;
    attempt->socket.close(ignored);             // fails the pending connect with operation_aborted
    if (attempt->conn) attempt->conn->close();  // fails the handshake
  });
  stats_.connections_created.add();
  attempt->socket.async_connect(
      endpoint, [this, self, attempt, cb = std::move(cb), endpoint](const error_code& ec) mutable {
        bool timed_out = !attempt->socket.is_open();
        if (ec || !tls_ctx_) {
          attempt->done = true;
          attempt->timer.cancel();
        }
        if (ec) {
          stats_.connect_failures.add();
          Error err{ErrorKind::connect_failed, ErrorSource::upstream, true,
                    timed_out ? "connect to " + name_ + " timed out"
                              : "connect to " + name_ + " failed: " + ec.message()};
          cb(nullptr, &err);
          return;
        }
        error_code ignored;
        attempt->socket.set_option(asio::ip::tcp::no_delay(true), ignored);
        std::unique_ptr<TlsSession> tls;
        if (tls_ctx_)
          tls = std::make_unique<TlsSession>(tls_ctx_.get(), tls_sni_, tls_verify_name_);
        auto conn = std::make_shared<Http1ClientConnection>(
            std::move(attempt->socket), weak_from_this(), false, std::move(tls));
        if (!tls_ctx_) {
          cb(std::move(conn), nullptr);
          return;
        }
        attempt->conn = conn;
        conn->handshake([this, self, attempt, cb = std::move(cb)](const std::string& error) {
          attempt->done = true;
          attempt->timer.cancel();
          auto conn = std::move(attempt->conn);
          if (!error.empty() || !conn->is_open()) {
            stats_.connect_failures.add();
            Error err{ErrorKind::connect_failed, ErrorSource::upstream, true,
                      "TLS handshake with " + name_ +
                          " failed: " + (error.empty() ? std::string("timed out") : error)};
            cb(nullptr, &err);
            return;
          }
          cb(std::move(conn), nullptr);
        });
      });
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
}

ClusterManager::ClusterManager(asio::io_context& ioc, WorkerStats& stats)
    : ioc_(ioc), stats_(stats) {}

ClusterManager::~ClusterManager() { close_idle(); }

namespace {

// The client context for a cluster's HTTPS endpoints: TLS 1.2+, ALPN http/1.1, and unless
// `verify: false` the chain checked against ca_file (else the system store).
std::shared_ptr<SSL_CTX> client_context(const config::ClusterTls& tls) {
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (!ctx) return nullptr;
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  static const unsigned char kAlpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx.get(), kAlpn, sizeof(kAlpn) - 1);
  if (tls.verify) {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    if (tls.ca_file.empty()) {
      SSL_CTX_set_default_verify_paths(ctx.get());
    } else {
      SSL_CTX_load_verify_locations(ctx.get(), tls.ca_file.c_str(), nullptr);
    }
  }
  ERR_clear_error();
  return ctx;
}

bool is_ip_literal(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

void ClusterManager::update(const config::Config& config) {
  std::map<std::string, ClusterStatePtr> clusters;
  std::map<std::string, HostPoolPtr> pools;
  for (const auto& c : config.clusters) {
    std::shared_ptr<SSL_CTX> tls_ctx;
    if (c.tls) tls_ctx = client_context(*c.tls);
    ClusterState state;
    state.config = &c;
    state.stats = &stats_.cluster(c.name);
    std::vector<std::pair<HostPoolPtr, uint32_t>> weighted;
    uint32_t max_weight = 1;
    for (const auto& ep : c.endpoints) {
      std::string key = c.name + "/" + ep.address.str();
      HostPoolPtr pool;
      if (auto it = pools.find(key); it != pools.end()) {
        pool = it->second;
      } else if (auto old = pools_.find(key); old != pools_.end()) {
        pool = old->second;
      } else {
        pool = std::make_shared<HostPool>(ioc_, ep.address, *state.stats);
      }
      pool->set_limits(c.max_idle_connections, c.idle_timeout);
      if (c.tls) {
        // SNI and the verified name: `sni`, else the endpoint's host when it is a name.
        std::string name = !c.tls->sni.empty()              ? c.tls->sni
                           : is_ip_literal(ep.address.host) ? std::string()
                                                            : ep.address.host;
        const std::string& verify_name = name.empty() ? ep.address.host : name;
        pool->set_tls(tls_ctx, name, c.tls->verify ? verify_name : std::string());
      } else {
        pool->set_tls(nullptr, "", "");
      }
      if (!pools.count(key)) ++state.distinct_hosts;
      pools[key] = pool;
      weighted.emplace_back(pool, std::max<uint32_t>(1, ep.weight));
      max_weight = std::max(max_weight, weighted.back().second);
    }
    // Interleave by weight (a:3, b:1 → a b a a) so heavier hosts are not hit in bursts.
    for (uint32_t round = 0; round < max_weight; ++round) {
      for (const auto& [pool, weight] : weighted) {
        if (weight > round) state.hosts.push_back(pool);
      }
    }
    // Keep the cursor so a reload does not send a burst to the first host.
    if (auto old = clusters_.find(c.name); old != clusters_.end()) state.next = old->second->next;
    clusters.emplace(c.name, std::make_shared<ClusterState>(std::move(state)));
  }
  for (auto& [key, pool] : pools_) {
    if (!pools.count(key)) pool->close_idle();
  }
  clusters_ = std::move(clusters);
  pools_ = std::move(pools);
}

ClusterStatePtr ClusterManager::find(const std::string& name) const {
  auto it = clusters_.find(name);
  return it == clusters_.end() ? nullptr : it->second;
}

void ClusterManager::close_idle() {
  for (auto& [key, pool] : pools_) pool->close_idle();
}

}  // namespace sluice::upstream
