#include "upstream/cluster_manager.h"

#include <algorithm>

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "core/stats.h"

namespace sluice::upstream {

namespace asio = boost::asio;
using boost::system::error_code;

HostPool::HostPool(asio::io_context& ioc, config::SocketAddress address, ClusterStats& stats)
    : ioc_(ioc), address_(std::move(address)), name_(address_.str()), stats_(stats) {}

HostPool::~HostPool() { close_idle(); }

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
    bool done = false;
    Attempt(asio::io_context& ioc) : socket(ioc), timer(ioc) {}
  };
  auto attempt = std::make_shared<Attempt>(ioc_);
  auto self = shared_from_this();
  attempt->timer.expires_after(timeout);
  attempt->timer.async_wait([attempt](const error_code& ec) {
    if (ec || attempt->done) return;
    error_code ignored;
    attempt->socket.close(ignored);  // fails the pending connect with operation_aborted
  });
  stats_.connections_created.add();
  attempt->socket.async_connect(
      endpoint, [this, self, attempt, cb = std::move(cb), endpoint](const error_code& ec) {
        attempt->done = true;
        bool timed_out = !attempt->socket.is_open();
        attempt->timer.cancel();
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
        auto conn = std::make_shared<Http1ClientConnection>(std::move(attempt->socket),
                                                            weak_from_this(), false);
        cb(std::move(conn), nullptr);
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

void ClusterManager::update(const config::Config& config) {
  std::map<std::string, ClusterStatePtr> clusters;
  std::map<std::string, HostPoolPtr> pools;
  for (const auto& c : config.clusters) {
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
