#pragma once
// Active health checking of one cluster's hosts. Runs on the control thread (the main thread's
// io_context), never on a worker: it only writes the hosts' health flags (atomics) and the host
// set's available count, which workers read.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "config/config.h"
#include "upstream/host.h"

struct ssl_ctx_st;

namespace sluice::upstream::health {

// The endpoint of a resolved host's name ("1.2.3.4:80", "[::1]:80"); nullopt for anything
// else (a hostname, no port, a port out of range).
std::optional<boost::asio::ip::tcp::endpoint> parse_host_endpoint(std::string_view name);

// How http probes reach a cluster's hosts: its `tls` and `protocol`. A tcp check only connects,
// whatever the transport.
struct ProbeTransport {
  std::optional<config::ClusterTls> tls;  // SNI and the verified name of each host
  // Made from `tls` (make_client_tls_context); its ALPN offer decides what is spoken: h2 when
  // it offers h2 alone (`h2`), else HTTP/1.1.
  std::shared_ptr<ssl_ctx_st> tls_context;
  bool h2 = false;
};

// Probes every host of one cluster's host set: each host every `interval` (± jitter) after its
// previous probe ended, one probe in flight per host, each with a fresh connection and a
// deadline of `timeout` for connect + TLS handshake + request + response head. Type http
// speaks the cluster's protocol over its TLS settings (ProbeTransport), as its requests do.
//
// Threading: every member function, and every callback, runs on the thread that runs `ioc`
// (the control thread). Create it with std::make_shared (handlers hold weak_from_this()).
// Owns its timers and sockets; shares the hosts with the cluster's host sets. The io_context
// must outlive it. Destroying it stops it.
class HealthChecker : public std::enable_shared_from_this<HealthChecker> {
 public:
  struct Transition {
    HostPtr host;
    bool healthy;        // the new state
    std::string reason;  // the probe that decided it: "status 503", "timeout after 1s", ...
  };
  // Called after a host's health changed and the host set's available count was refreshed
  // (for logging and metrics). It may call stop() or update_hosts().
  using OnTransition = std::function<void(const Transition&)>;

  // For tests and the admin API.
  struct HostStatus {
    HostPtr host;
    uint64_t consecutive_successes = 0;
    uint64_t consecutive_failures = 0;
    uint64_t probes = 0;  // probes finished since this checker started probing the host
    // "status 200", "connected", "connect: Connection refused",
    // "tls: certificate verify failed (unable to get local issuer certificate)", ...
    std::string last_result;
  };

  HealthChecker(boost::asio::io_context& ioc, std::string cluster, config::HealthCheck settings,
                HostSetPtr hosts, OnTransition on_transition, ProbeTransport transport = {});
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Starts probing: each host's first probe comes at a random point of the first interval, so
  // N hosts do not probe at once. Hosts keep the health they have (a new Host is healthy); the
  // thresholds count from the first probe. No-op when running.
  void start();
  // Cancels every timer and probe in flight; no callback runs after it returns and no host's
  // health changes. Counters are kept: start() may resume.
  void stop();
  // A new host set for the same cluster and settings (DNS refresh, reload). Hosts that remain
  // (the same HostPtr) keep their counters and their schedule; new ones are probed within an
  // interval; vanished ones stop being probed (a probe in flight is cancelled). A HostPtr
  // listed twice is probed once.
  void update_hosts(HostSetPtr hosts);
  // The same TLS settings with a context made again (a reload re-reads the CA file): probes
  // that start from now on use it.
  void set_tls_context(std::shared_ptr<ssl_ctx_st> context);

  const std::string& cluster() const { return cluster_; }
  const config::HealthCheck& settings() const { return settings_; }
  const ProbeTransport& transport() const { return transport_; }
  const HostSetPtr& hosts() const { return hosts_; }
  bool running() const { return running_; }
  // In the host set's order.
  std::vector<HostStatus> status() const;

 private:
  struct Probe;
  struct HostState;
  using HostStatePtr = std::shared_ptr<HostState>;
  using Clock = std::chrono::steady_clock;

  HostStatePtr make_state(const HostPtr& host) const;
  void activate(const HostStatePtr& s);
  static void deactivate(HostState& s);
  void schedule(const HostStatePtr& s, Clock::duration delay);
  void probe(const HostStatePtr& s);
  void start_exchange(const HostStatePtr& s, const std::shared_ptr<Probe>& p);
  void send_then_read(const HostStatePtr& s, const std::shared_ptr<Probe>& p);
  void read_response(const HostStatePtr& s, const std::shared_ptr<Probe>& p);
  void received(const HostStatePtr& s, const std::shared_ptr<Probe>& p, size_t n);
  void finish(const HostStatePtr& s, const std::shared_ptr<Probe>& p, bool pass,
              std::string result);
  void record(HostState& s, bool pass, std::string result);
  Clock::duration first_delay();
  Clock::duration next_delay();

  boost::asio::io_context& ioc_;
  const std::string cluster_;
  const config::HealthCheck settings_;
  HostSetPtr hosts_;
  OnTransition on_transition_;
  ProbeTransport transport_;
  std::vector<HostStatePtr> states_;  // one per distinct host of hosts_, in its order
  std::minstd_rand rng_;
  bool running_ = false;
};

using HealthCheckerPtr = std::shared_ptr<HealthChecker>;

}  // namespace sluice::upstream::health
