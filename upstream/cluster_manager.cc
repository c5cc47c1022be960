#include "upstream/cluster_manager.h"

#include <sys/stat.h>

#include <algorithm>

#include <boost/asio/post.hpp>

#include "core/stats.h"
#include "upstream/connector.h"

namespace sluice::upstream {

namespace asio = boost::asio;
using boost::system::error_code;

ClusterManager::ClusterManager(asio::io_context& ioc, WorkerStats& stats, uint32_t worker,
                               uint32_t workers)
    : ioc_(ioc), stats_(stats), worker_(worker), workers_(workers ? workers : 1) {}

ClusterManager::~ClusterManager() { close_idle(); }

namespace {

// Changes when the file is replaced or rewritten (CA rotation), so a reload picks it up.
std::string file_stamp(const std::string& path) {
  struct stat st {};
  if (path.empty() || ::stat(path.c_str(), &st) != 0) return {};
  return std::to_string(st.st_size) + "/" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec) + "/" + std::to_string(st.st_ino);
}

}  // namespace

void ClusterManager::update(const config::Config& config,
                            const std::map<std::string, SharedClusterPtr>& shared) {
  std::map<std::string, ClusterStatePtr> clusters;
  std::map<std::string, ClientTls> tls_contexts;
  for (const auto& c : config.clusters) {
    if (c.tls) {
      const bool h2 = c.protocol == config::Cluster::Protocol::h2;
      ClientTls entry{*c.tls, h2, file_stamp(c.tls->ca_file), nullptr};
      auto old = tls_contexts_.find(c.name);
      if (old != tls_contexts_.end() && old->second.settings == entry.settings &&
          old->second.h2 == h2 && old->second.ca_stamp == entry.ca_stamp) {
        entry.ctx = old->second.ctx;
      } else {
        entry.ctx = make_client_tls_context(*c.tls, h2);
      }
      tls_contexts.emplace(c.name, std::move(entry));
    }
    auto it = shared.find(c.name);
    if (it == shared.end()) continue;
    auto state = std::make_shared<ClusterState>();
    state->config = &c;
    state->stats = &stats_.cluster(c.name);
    state->shared = it->second;
    state->hashing = c.lb == "ring_hash" || c.lb == "maglev";
    state->manager_ = this;
    clusters.emplace(c.name, std::move(state));
  }
  tls_contexts_ = std::move(tls_contexts);
  clusters_ = std::move(clusters);
  // Pools are made again (or taken from pools_) as each cluster first refreshes; those of
  // hosts that are gone close their idle connections.
  std::map<std::string, HostPoolPtr> pools;
  for (auto& [name, state] : clusters_) {
    state->refresh();
    for (const auto& [host, m] : state->members_) pools[name + "/" + host->name()] = m.pool;
  }
  for (auto& [key, pool] : pools_) {
    if (!pools.count(key)) pool->close_idle();
  }
  pools_ = std::move(pools);
}

HostPoolPtr ClusterManager::pool_for(const ClusterState& cluster, const HostPtr& host) {
  const config::Cluster& c = *cluster.config;
  const std::string key = c.name + "/" + host->name();
  HostPoolPtr pool;
  if (auto old = pools_.find(key); old != pools_.end()) {
    pool = old->second;
  } else {
    auto address = config::parse_address(host->name());
    pool =
        std::make_shared<HostPool>(ioc_, address.value_or(config::SocketAddress{}), *cluster.stats);
    pools_.emplace(key, pool);
  }
  pool->set_limits(c.max_idle_connections.value_or(config::Cluster::kDefaultMaxIdleConnections),
                   c.idle_timeout);
  pool->set_protocol(c.protocol == config::Cluster::Protocol::h2, c.max_concurrent_streams);
  auto tls = tls_contexts_.find(c.name);
  if (c.tls && tls != tls_contexts_.end()) {
    TlsNames names = tls_names(*c.tls, *host);
    pool->set_tls(tls->second.ctx, std::move(names.sni), std::move(names.verify_name));
  } else {
    pool->set_tls(nullptr, "", "");
  }
  pool->set_open_connections(&cluster.shared->open_connections,
                             c.circuit_breakers.max_connections.value_or(0));
  return pool;
}

void ClusterState::refresh() {
  if (shared->version() == version_) return;
  version_ = shared->version();
  SharedCluster::Membership m = shared->membership();
  std::unordered_map<const Host*, Member> members;
  for (const HostPtr& h : m.hosts->hosts) {
    auto old = members_.find(h.get());
    members.emplace(h.get(), Member{h, old != members_.end() ? old->second.pool
                                                             : manager_->pool_for(*this, h)});
  }
  // Pools of hosts that left (DNS) close their idle connections; busy ones finish first.
  auto current = manager_->clusters_.find(config->name);
  if (current != manager_->clusters_.end() && current->second.get() == this) {
    for (const auto& [host, member] : members_) {
      if (members.count(host)) continue;
      member.pool->close_idle();
      manager_->pools_.erase(config->name + "/" + host->name());
    }
  }
  hosts_ = m.hosts;
  lb_ = m.lb ? m.lb->create(manager_->worker_, manager_->workers_) : nullptr;
  members_ = std::move(members);
}

size_t ClusterState::host_count() {
  refresh();
  return hosts_ ? hosts_->size() : 0;
}

ClusterState::Pick ClusterState::pick(const PickContext& ctx) {
  refresh();
  Pick out;
  if (!lb_ || !hosts_ || hosts_->size() == 0) return out;
  PickContext c = ctx;
  // Panic mode (Envoy's): with too few hosts available, spread over all rather than crush the
  // few that are left. Hosts disabled through the admin API are out of rotation, not failing:
  // they count on neither side and are never picked.
  // The disabled count is read only when the first test says panic may be due.
  const uint64_t available = hosts_->available_count();
  const uint64_t threshold = config->panic_threshold_percent;
  if (available * 100 < threshold * hosts_->size()) {
    const uint64_t eligible =
        hosts_->size() - std::min<uint64_t>(hosts_->disabled_count(), hosts_->size());
    if (available * 100 < threshold * eligible) {
      c.ignore_health = true;
      out.panic = true;
    }
  }
  Host* host = lb_->pick(c);
  if (!host) return out;
  auto it = members_.find(host);
  if (it == members_.end()) return out;
  out.host = it->second.host;
  out.pool = it->second.pool;
  return out;
}

ClusterStatePtr ClusterManager::find(const std::string& name) const {
  auto it = clusters_.find(name);
  return it == clusters_.end() ? nullptr : it->second;
}

void ClusterManager::close_idle() {
  for (auto& [key, pool] : pools_) pool->close_idle();
}

}  // namespace sluice::upstream
