#include "upstream/shared_clusters.h"

#include <algorithm>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>

#include "upstream/connector.h"
#include "upstream/dns/resolver.h"
#include "upstream/health/health_checker.h"

namespace sluice::upstream {

namespace asio = boost::asio;

namespace {

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

std::string address_str(const asio::ip::address& a, uint16_t port) {
  return config::SocketAddress{a.to_string(), port}.str();
}

std::string format_seconds(std::chrono::milliseconds d) {
  return std::to_string(d.count() / 1000) +
         (d.count() % 1000 ? "." + std::to_string(d.count() % 1000 / 100) : "") + "s";
}

}  // namespace

SharedCluster::SharedCluster(SharedClusters& owner, std::string name)
    : owner_(owner), name_(std::move(name)) {}

SharedCluster::~SharedCluster() = default;

SharedCluster::Membership SharedCluster::membership() const {
  std::lock_guard lock(mutex_);
  return membership_;
}

void SharedCluster::apply(const config::Cluster& settings) {
  // Probes speak the cluster's protocol over its TLS: new ones are new checks too.
  const bool checks_changed = !checker_ || !settings_.health_check || !settings.health_check ||
                              !(*settings_.health_check == *settings.health_check) ||
                              settings_.tls != settings.tls ||
                              settings_.protocol != settings.protocol;
  const bool endpoints_changed = settings_.endpoints != settings.endpoints;
  const bool lb_changed = settings_.lb != settings.lb;
  settings_ = settings;
  outlier_threshold_.store(
      settings_.outlier_detection ? settings_.outlier_detection->consecutive_failures : 0,
      std::memory_order_relaxed);
  // Names no longer listed lose their addresses; new ones get resolved.
  std::map<std::string, Resolved> resolved;
  bool has_names = false;
  for (const auto& ep : settings_.endpoints) {
    if (is_ip_literal(ep.address.host)) continue;
    has_names = true;
    const std::string key = ep.address.str();
    auto old = resolved_.find(key);
    resolved[key] = old != resolved_.end() ? old->second : Resolved{};
  }
  resolved_ = std::move(resolved);
  if (endpoints_changed || lb_changed || !membership_.hosts) rebuild_hosts();
  if (checks_changed) {
    if (checker_) checker_->stop();
    checker_.reset();
    // Health state from the old checker settings does not carry over to new ones.
    for (auto& [addr, host] : hosts_by_address_) host->set_healthy(true);
    if (settings_.health_check) {
      std::weak_ptr<SharedCluster> weak = weak_from_this();
      checker_ = std::make_shared<health::HealthChecker>(
          owner_.control_, name_, *settings_.health_check, membership().hosts,
          [weak](const health::HealthChecker::Transition& t) {
            auto self = weak.lock();
            if (!self) return;
            self->owner_.log_("cluster '" + self->name_ + "': host " + t.host->name() + " is " +
                              (t.healthy ? "healthy" : "unhealthy") + " (" + t.reason + ")");
          },
          probe_transport());
      checker_->start();
    }
    if (membership_.hosts) membership_.hosts->refresh_available();
  } else if (checker_ && settings_.tls) {
    // The same checks: a context made again, so that a replaced CA file is read.
    checker_->set_tls_context(probe_transport().tls_context);
  }
  if (has_names) {
    start_dns();
  } else {
    dns_timer_.reset();
  }
}

health::ProbeTransport SharedCluster::probe_transport() const {
  health::ProbeTransport t;
  t.h2 = settings_.protocol == config::Cluster::Protocol::h2;
  if (settings_.tls) {
    t.tls = settings_.tls;
    t.tls_context = make_client_tls_context(*settings_.tls, t.h2);
  }
  return t;
}

void SharedCluster::rebuild_hosts() {
  auto set = std::make_shared<HostSet>();
  std::map<std::string, HostPtr> by_address;
  auto add = [&](const std::string& address, uint32_t weight, const std::string& hostname) {
    if (by_address.count(address)) return;  // a name that resolves to a listed address
    HostPtr host;
    if (auto old = hosts_by_address_.find(address); old != hosts_by_address_.end()) {
      host = old->second;
      host->set_weight(weight);
    } else {
      host = std::make_shared<Host>(address, weight, hostname);
    }
    by_address.emplace(address, host);
    set->hosts.push_back(std::move(host));
  };
  for (const auto& ep : settings_.endpoints) {
    if (is_ip_literal(ep.address.host)) {
      boost::system::error_code ec;
      add(address_str(asio::ip::make_address(ep.address.host, ec), ep.address.port), ep.weight, "");
      continue;
    }
    auto it = resolved_.find(ep.address.str());
    if (it == resolved_.end()) continue;
    for (const auto& a : it->second.addresses) add(a, ep.weight, ep.address.host);
  }
  // Hosts that left stop being checked and ejected; in-flight requests on them finish.
  for (auto it = ejection_timers_.begin(); it != ejection_timers_.end();) {
    bool kept = std::any_of(set->hosts.begin(), set->hosts.end(),
                            [&](const HostPtr& h) { return h.get() == it->first; });
    it = kept ? std::next(it) : ejection_timers_.erase(it);
  }
  hosts_by_address_ = std::move(by_address);
  set->refresh_available();
  Membership m{set, make_load_balancer_factory(settings_.lb, set)};
  {
    std::lock_guard lock(mutex_);
    membership_ = m;
  }
  version_.fetch_add(1, std::memory_order_release);
  if (checker_) checker_->update_hosts(set);
}

void SharedCluster::start_dns() {
  if (!dns_timer_) {
    dns_timer_ = std::make_unique<asio::steady_timer>(owner_.control_);
    resolve_names();
  }
}

void SharedCluster::resolve_names() {
  dns::Resolver* resolver = owner_.resolver();
  if (!resolver || stopped_) return;
  auto pending = std::make_shared<size_t>(resolved_.size());
  auto changed = std::make_shared<bool>(false);
  auto ttl = std::make_shared<std::chrono::seconds>(0);
  std::weak_ptr<SharedCluster> weak = weak_from_this();
  auto finish = [weak, pending, changed, ttl] {
    auto self = weak.lock();
    if (!self || self->stopped_ || --*pending != 0) return;
    if (*changed) self->rebuild_hosts();
    // Re-resolve every dns_refresh, sooner when a record lives shorter (not under 1s).
    std::chrono::milliseconds next = self->settings_.dns_refresh;
    if (ttl->count() > 0) {
      next = std::min<std::chrono::milliseconds>(
          next, std::max<std::chrono::milliseconds>(*ttl, std::chrono::seconds(1)));
    }
    if (!self->dns_timer_) return;
    self->dns_timer_->expires_after(next);
    self->dns_timer_->async_wait([weak](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (!ec && self) self->resolve_names();
    });
  };
  if (resolved_.empty()) return;
  for (auto& [key, entry] : resolved_) {
    auto colon = key.rfind(':');
    std::string host = key.substr(0, colon);
    uint16_t port = static_cast<uint16_t>(std::stoi(key.substr(colon + 1)));
    resolver->resolve(host, [weak, key = key, host, port, changed, ttl, finish](
                                const dns::Resolution& r, const std::string& error) {
      auto self = weak.lock();
      if (!self || self->stopped_) return;
      auto it = self->resolved_.find(key);
      if (it != self->resolved_.end()) {
        Resolved& entry = it->second;
        entry.done = true;
        if (!error.empty() || r.addresses.empty()) {
          // The last good addresses stay in use.
          self->dns_failures_total.fetch_add(1, std::memory_order_relaxed);
          self->owner_.log_("cluster '" + self->name_ +
                            "': " + (error.empty() ? "no address for " + host : error) +
                            (entry.addresses.empty() ? "" : "; keeping the last addresses"));
        } else {
          std::vector<std::string> addresses;
          for (const auto& a : r.addresses) addresses.push_back(address_str(a, port));
          if (addresses != entry.addresses) {
            self->owner_.log_("cluster '" + self->name_ + "': " + host + " resolves to " + [&] {
              std::string joined;
              for (const auto& a : addresses) {
                joined += (joined.empty() ? "" : ", ") + a;
              }
              return joined;
            }());
            entry.addresses = std::move(addresses);
            *changed = true;
          }
          if (r.ttl.count() > 0 && (ttl->count() == 0 || r.ttl < *ttl)) *ttl = r.ttl;
        }
      }
      finish();
    });
  }
}

void SharedCluster::record_failure(const HostPtr& host) {
  uint32_t failures = host->record_failure();
  // Exactly at the threshold: one ejection request per run of failures.
  uint32_t threshold = outlier_threshold_.load(std::memory_order_relaxed);
  if (threshold == 0 || failures != threshold) return;
  std::weak_ptr<SharedCluster> weak = weak_from_this();
  asio::post(owner_.control_, [weak, host] {
    if (auto self = weak.lock()) self->eject(host);
  });
}

void SharedCluster::eject(const HostPtr& host) {
  if (stopped_ || !settings_.outlier_detection || host->ejected()) return;
  if (!hosts_by_address_.count(host->name())) return;  // it left the cluster meanwhile
  const config::OutlierDetection& od = *settings_.outlier_detection;
  HostSetPtr set = membership().hosts;
  size_t ejected = 0;
  for (const auto& h : set->hosts) ejected += h->ejected() ? 1 : 0;
  // At least one host may always be ejected (as Envoy does), whatever the percentage.
  if (ejected > 0 && (ejected + 1) * 100 > od.max_ejection_percent * set->size()) {
    owner_.log_("cluster '" + name_ + "': host " + host->name() + " failed " +
                std::to_string(od.consecutive_failures) +
                " times in a row; not ejected (max_ejection_percent reached)");
    host->record_success();  // count a fresh run
    return;
  }
  // Time in rotation since the last ejection forgives ejections, one per base_ejection_time
  // (as Envoy's multiplier decays), so an old incident does not lengthen a new one forever.
  if (host->ejection_count > 0 && od.base_ejection_time.count() > 0) {
    auto forgiven = static_cast<uint64_t>((std::chrono::steady_clock::now() - host->returned_at) /
                                          od.base_ejection_time);
    host->ejection_count -=
        static_cast<uint32_t>(std::min<uint64_t>(forgiven, host->ejection_count));
  }
  ++host->ejection_count;
  auto duration = std::min<std::chrono::milliseconds>(od.base_ejection_time * host->ejection_count,
                                                      od.max_ejection_time);
  host->set_ejected(true);
  set->refresh_available();
  ejections_total.fetch_add(1, std::memory_order_relaxed);
  owner_.log_("cluster '" + name_ + "': host " + host->name() + " ejected for " +
              format_seconds(duration) + " after " + std::to_string(od.consecutive_failures) +
              " failures in a row");
  auto& timer = ejection_timers_[host.get()];
  timer = std::make_unique<asio::steady_timer>(owner_.control_);
  timer->expires_after(duration);
  std::weak_ptr<SharedCluster> weak = weak_from_this();
  timer->async_wait([weak, host](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->stopped_) return;
    host->set_ejected(false);
    host->returned_at = std::chrono::steady_clock::now();
    host->record_success();
    self->membership().hosts->refresh_available();
    self->owner_.log_("cluster '" + self->name_ + "': host " + host->name() +
                      " back from ejection");
    self->ejection_timers_.erase(host.get());
  });
}

void SharedCluster::stop() {
  stopped_ = true;
  if (checker_) checker_->stop();
  checker_.reset();
  dns_timer_.reset();
  ejection_timers_.clear();
}

SharedClusters::SharedClusters(asio::io_context& control, Log log)
    : control_(control), log_(std::move(log)) {}

SharedClusters::~SharedClusters() { stop(); }

dns::Resolver* SharedClusters::resolver() {
  if (!resolver_) {
    std::string error;
    resolver_ = std::make_unique<dns::Resolver>(control_, dns_servers_,
                                                std::chrono::milliseconds(5000), &error);
    if (!error.empty()) {
      log_("DNS resolver: " + error);
      resolver_.reset();
    }
  }
  return resolver_.get();
}

std::map<std::string, SharedClusterPtr> SharedClusters::update(const config::Config& config) {
  std::vector<std::string> servers;
  for (const auto& s : config.dns_servers) servers.push_back(s.str());
  if (servers != dns_servers_) {
    dns_servers_ = std::move(servers);
    resolver_.reset();  // the next resolution uses the new servers
  }
  std::map<std::string, SharedClusterPtr> next;
  for (const auto& c : config.clusters) {
    SharedClusterPtr cluster;
    {
      std::lock_guard lock(mutex_);
      if (auto it = clusters_.find(c.name); it != clusters_.end()) cluster = it->second;
    }
    if (!cluster) cluster = std::make_shared<SharedCluster>(*this, c.name);
    cluster->apply(c);
    next.emplace(c.name, cluster);
  }
  std::lock_guard lock(mutex_);
  for (auto& [name, cluster] : clusters_) {
    if (!next.count(name)) cluster->stop();
  }
  clusters_ = next;
  return next;
}

void SharedClusters::wait_for_dns(std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  auto all_done = [&] {
    std::lock_guard lock(mutex_);
    for (const auto& [name, c] : clusters_) {
      for (const auto& [key, r] : c->resolved_) {
        if (!r.done) return false;
      }
    }
    return true;
  };
  while (!all_done() && std::chrono::steady_clock::now() < deadline) {
    control_.run_one_for(std::chrono::milliseconds(50));
  }
  control_.restart();
}

std::vector<SharedClusterPtr> SharedClusters::all() const {
  std::lock_guard lock(mutex_);
  std::vector<SharedClusterPtr> out;
  for (const auto& [name, c] : clusters_) out.push_back(c);
  return out;
}

SharedClusterPtr SharedClusters::find(const std::string& name) const {
  std::lock_guard lock(mutex_);
  auto it = clusters_.find(name);
  return it == clusters_.end() ? nullptr : it->second;
}

void SharedClusters::stop() {
  std::lock_guard lock(mutex_);
  for (auto& [name, c] : clusters_) c->stop();
  clusters_.clear();
}

}  // namespace sluice::upstream
