#include "upstream/cluster_manager.h"

#include <sys/stat.h>

#include <algorithm>

#include <boost/asio/post.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/stats.h"

namespace sluice::upstream {

namespace asio = boost::asio;
using boost::system::error_code;

ClusterManager::ClusterManager(asio::io_context& ioc, WorkerStats& stats)
    : ioc_(ioc), stats_(stats) {}

ClusterManager::~ClusterManager() { close_idle(); }

namespace {

// The client context for a cluster's HTTPS endpoints: TLS 1.2+, ALPN http/1.1 or h2, and unless
// `verify: false` the chain checked against ca_file (else the system store).
std::shared_ptr<SSL_CTX> client_context(const config::ClusterTls& tls, bool h2) {
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (!ctx) return nullptr;
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  static const unsigned char kHttp1[] = "\x08http/1.1";
  static const unsigned char kH2[] = "\x02h2";
  if (h2) {
    SSL_CTX_set_alpn_protos(ctx.get(), kH2, sizeof(kH2) - 1);
  } else {
    SSL_CTX_set_alpn_protos(ctx.get(), kHttp1, sizeof(kHttp1) - 1);
  }
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

// Changes when the file is replaced or rewritten (CA rotation), so a reload picks it up.
std::string file_stamp(const std::string& path) {
  struct stat st {};
  if (path.empty() || ::stat(path.c_str(), &st) != 0) return {};
  return std::to_string(st.st_size) + "/" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec) + "/" + std::to_string(st.st_ino);
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
  std::map<std::string, ClientTls> tls_contexts;
  for (const auto& c : config.clusters) {
    std::shared_ptr<SSL_CTX> tls_ctx;
    const bool h2 = c.protocol == config::Cluster::Protocol::h2;
    if (c.tls) {
      ClientTls entry{*c.tls, h2, file_stamp(c.tls->ca_file), nullptr};
      auto old = tls_contexts_.find(c.name);
      if (old != tls_contexts_.end() && old->second.settings == entry.settings &&
          old->second.h2 == h2 && old->second.ca_stamp == entry.ca_stamp) {
        entry.ctx = old->second.ctx;
      } else {
        entry.ctx = client_context(*c.tls, h2);
      }
      tls_ctx = entry.ctx;
      tls_contexts.emplace(c.name, std::move(entry));
    }
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
      pool->set_limits(c.max_idle_connections.value_or(config::Cluster::kDefaultMaxIdleConnections),
                       c.idle_timeout);
      pool->set_protocol(h2, c.max_concurrent_streams);
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
  tls_contexts_ = std::move(tls_contexts);
}

ClusterStatePtr ClusterManager::find(const std::string& name) const {
  auto it = clusters_.find(name);
  return it == clusters_.end() ? nullptr : it->second;
}

void ClusterManager::close_idle() {
  for (auto& [key, pool] : pools_) pool->close_idle();
}

}  // namespace sluice::upstream
