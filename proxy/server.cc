#include "proxy/server.h"

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <future>
#include <iostream>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "admin/admin_server.h"
#include "core/json.h"
#include "proxy/access_log.h"
#include "proxy/config_watcher.h"
#include "proxy/connection_limiter.h"
#include "proxy/cpu_limit.h"
#include "proxy/listener.h"
#include "proxy/worker.h"

namespace sluice {

namespace asio = boost::asio;

namespace {

// Every connection is a file descriptor. Shells and service managers commonly start processes
// with a soft limit of 1024 (a leftover of select()) under a much higher hard limit, expecting a
// server to raise its own (systemd documents this; Go and HAProxy do it). At the soft limit
// accept() fails with EMFILE and new clients, from every address, wait in the kernel's backlog
// behind whoever holds the descriptors (a few hundred trickling connections did exactly that),
// whereas under max_connections they are counted and the limits decide. Returns the limit in
// force.
uint64_t raise_open_file_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < rl.rlim_max) {
    rlimit want = rl;
    // An unlimited hard limit still stops at fs.nr_open; 2^20 is its usual value.
    want.rlim_cur = rl.rlim_max == RLIM_INFINITY ? rlim_t{1} << 20 : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl.rlim_cur = want.rlim_cur;
  }
  return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : static_cast<uint64_t>(rl.rlim_cur);
}

// Says so when the listeners' max_connections cannot all be reached: past the open-file limit
// the operating system refuses connections before the limits can count them.
void check_open_file_limit(const config::Config& cfg, uint64_t limit) {
  uint64_t wanted = 0;
  for (const auto& l : cfg.listeners) wanted += l.limits.max_connections;
  constexpr uint64_t kReserve = 64;  // listeners, logs, the admin server, upstream connections
  if (limit == 0 || wanted + kReserve <= limit) return;
  log_line("warning: the listeners allow " + std::to_string(wanted) +
           " connections (max_connections) but the open-file limit is " + std::to_string(limit) +
           ", and upstream connections need descriptors too: raise the limit (ulimit -n, "
           "systemd LimitNOFILE=) or lower max_connections");
}

}  // namespace

SnapshotPtr Snapshot::build(config::ConfigPtr config, RuntimeState& runtime,
                            upstream::SharedClusters* clusters, std::string* error) {
  auto snap = std::make_shared<Snapshot>();
  snap->routes = router::RouteTable::build(*config, error);
  if (!snap->routes) return nullptr;
  for (const auto& l : config->listeners) {
    auto chain = FilterChainFactory::build(*config, l, snap->routes, runtime, error);
    if (!chain) return nullptr;
    snap->chains.emplace(l.name, std::move(chain));
    if (l.tls) {
      auto tls = TlsServerContext::build(l, error);
      if (!tls) return nullptr;
      snap->tls.emplace(l.name, std::move(tls));
    }
  }
  if (clusters) snap->clusters = clusters->update(*config);
  snap->config = std::move(config);
  return snap;
}

Server::Server(std::string config_path, bool watch)
    : config_path_(std::move(config_path)),
      watch_(watch),
      clusters_(control_, [](const std::string& line) { log_line(line); }) {}

Server::~Server() {
  for (auto& w : workers_) w->stop();
}

config::ConfigPtr Server::config() const {
  std::lock_guard lock(snapshot_mutex_);
  return snapshot_ ? snapshot_->config : nullptr;
}

std::vector<const WorkerStats*> Server::worker_stats() const {
  std::vector<const WorkerStats*> out;
  for (const auto& w : workers_) out.push_back(&w->stats());
  return out;
}

size_t Server::active_connections() const {
  size_t total = 0;
  for (const auto& w : workers_) {
    w->stats().visit([&](const auto& listeners, const auto&, const auto&) {
      for (const auto& [name, l] : listeners) {
        total += static_cast<size_t>(std::max<int64_t>(0, l.connections_active.value()));
      }
    });
  }
  return total;
}

bool Server::install(SnapshotPtr snapshot, std::string* error) {
  const auto& cfg = *snapshot->config;
  // Workers open their own access log; opening it here first turns a bad path into a
  // failed start or reload instead of a worker running without a log.
  std::string log_error = AccessLog::check_path(cfg.access_log);
  if (!log_error.empty()) {
    *error = log_error;
    return false;
  }
  std::set<std::string> wanted;
  for (const auto& l : cfg.listeners) wanted.insert(l.name + "@" + l.address.str());

  // One count of open connections per listener name, for all workers: a listener that stays
  // keeps its count across the reload (it holds its limiter, so RuntimeState finds it).
  ConnectionLimiters limiters;
  for (const auto& l : cfg.listeners) {
    limiters.emplace(
        l.name, runtime_.get_or_create<ConnectionLimiter>("listener_connections/" + l.name, [] {
          return std::make_shared<ConnectionLimiter>();
        }));
  }
  std::vector<std::map<std::string, asio::ip::tcp::acceptor>> per_worker(workers_.size());
  for (const auto& l : cfg.listeners) {
    if (bound_.count(l.name + "@" + l.address.str())) continue;
    for (size_t i = 0; i < workers_.size(); ++i) {
      asio::ip::tcp::acceptor acceptor(workers_[i]->io_context());
      std::string err = ListenerRuntime::bind(workers_[i]->io_context(), l.address, acceptor);
      if (!err.empty()) {
        *error = "listener '" + l.name + "': " + err;
        return false;  // the acceptors bound so far close with per_worker
      }
      per_worker[i].emplace(l.name, std::move(acceptor));
    }
  }
  // Before the workers see the snapshot: its first sampled request finds the exporter set up.
  tracer_.configure(cfg.tracing);
  for (size_t i = 0; i < workers_.size(); ++i)
    workers_[i]->apply(snapshot, std::move(per_worker[i]), limiters);
  bound_ = std::move(wanted);
  std::lock_guard lock(snapshot_mutex_);
  snapshot_ = std::move(snapshot);
  return true;
}

namespace {

// What a load of `cfg` reads besides the config file itself.
std::vector<std::string> files_read(const std::string& config_path, const config::Config& cfg) {
  std::vector<std::string> files{config_path};
  for (const auto& l : cfg.listeners) {
    if (!l.tls) continue;
    for (const auto& c : l.tls->certificates) {
      files.push_back(c.cert_file);
      files.push_back(c.key_file);
    }
    if (!l.tls->client_auth.ca_file.empty()) files.push_back(l.tls->client_auth.ca_file);
  }
  for (const auto& c : cfg.clusters) {
    if (c.tls && !c.tls->ca_file.empty()) files.push_back(c.tls->ca_file);
  }
  if (!cfg.admin.token_file.empty()) files.push_back(cfg.admin.token_file);
  return files;
}

}  // namespace

void Server::watch_config_files(std::optional<size_t> read_before) {
  std::vector<std::string> files = files_read(config_path_, *config());
  watched_fingerprint_ =
      read_before && files == watched_files_ ? *read_before : fingerprint_files(files);
  watched_files_ = std::move(files);
  std::string error;
  if (!watcher_->watch(watched_files_, &error)) log_line("error: --watch: " + error);
}

void Server::on_watched_files_changed() {
  if (draining_) return;
  size_t now = fingerprint_files(watched_files_);
  if (now == watched_fingerprint_) return;
  log_line("config files changed: reloading");
  reload("file_watch", now);
}

Server::ReloadOutcome Server::reload(std::string_view trigger, std::optional<size_t> watched_now) {
  const auto started = std::chrono::steady_clock::now();
  ReloadOutcome out;
  // Read before the load, so that a change made while loading is seen as a change after it.
  if (watcher_ && !watched_now) watched_now = fingerprint_files(watched_files_);
  auto result = config::load_file(config_path_);
  for (const auto& w : result.warnings) {
    log_line("warning: " + w.str());
    out.warnings.push_back(w.str());
  }
  std::string error;
  // The admin port stays where it was bound until a restart: a config that moves it to
  // loopback must not drop the token it needs where it still is.
  if (result.config && !config::is_loopback(started_->admin.address) &&
      result.config->admin.token.empty() && !result.config->admin.allow_unauthenticated) {
    error = "admin: the admin API stays on " + started_->admin.address.str() +
            " (not loopback) until a restart, so the config needs admin.token_file (or "
            "allow_unauthenticated: true)";
  }
  SnapshotPtr snapshot;
  if (result.config && error.empty()) {
    snapshot = Snapshot::build(result.config, runtime_, &clusters_, &error);
  }
  if (!result.config || !snapshot || !install(snapshot, &error)) {
    for (const auto& e : result.errors) {
      log_line("error: " + e.str());
      out.errors.push_back(e.str());
    }
    if (!error.empty()) {
      log_line("error: " + error);
      out.errors.push_back(config_path_ + ": " + error);
    }
    log_line("config reload failed; the previous config stays in force");
    reloads_failed_.fetch_add(1);
    reload_history_.add(trigger, started, false, out.errors);
    // Not again for the same bad files: the next change to them is tried.
    if (watcher_) watched_fingerprint_ = *watched_now;
    return out;
  }
  out.ok = true;
  if (watcher_) watch_config_files(watched_now);
  reloads_ok_.fetch_add(1);
  reload_history_.add(trigger, started, true, {});
  log_line("config reloaded from " + config_path_);
  check_open_file_limit(*result.config, open_file_limit_);
  // These are set up once at start; say so rather than pretend they changed. Compared with
  // what is running, not with the previous file: setting a value back needs no restart.
  auto restart_needed = [&](const std::string& what) {
    std::string line = "a change of '" + what + "' takes effect only after a restart";
    log_line("warning: " + line);
    out.warnings.push_back(config_path_ + ": " + line);
  };
  if (result.config->workers != started_->workers) restart_needed("workers");
  if (result.config->admin.address.str() != started_->admin.address.str()) {
    restart_needed("admin.address");
  }
  return out;
}

namespace {

using ActionResult = admin::AdminContext::ActionResult;

std::string json_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + json_string(items[i]);
  return out + "]";
}

ActionResult action_error(unsigned status, const std::string& message) {
  return {status, "{\"result\": \"error\", \"error\": " + json_string(message) + "}\n", message};
}

}  // namespace

ActionResult Server::on_control_thread(std::function<ActionResult()> fn) {
  constexpr auto kWaitLimit = std::chrono::seconds(30);
  if (!control_running_.load()) return action_error(503, "starting: try again shortly");
  auto promise = std::make_shared<std::promise<ActionResult>>();
  std::future<ActionResult> done = promise->get_future();
  asio::post(control_, [this, promise, fn = std::move(fn)] {
    promise->set_value(control_stopped_.load() ? action_error(503, "shutting down") : fn());
  });
  // In slices, so that a shutdown (which joins this thread) is not held up by the wait.
  const auto give_up = std::chrono::steady_clock::now() + kWaitLimit;
  while (done.wait_for(std::chrono::milliseconds(50)) != std::future_status::ready) {
    if (control_stopped_.load()) return action_error(503, "shutting down");
    if (std::chrono::steady_clock::now() >= give_up) {
      return action_error(503, "the control thread did not get to it within 30s");
    }
  }
  return done.get();
}

ActionResult Server::reload_config() {
  return on_control_thread([this]() -> ActionResult {
    if (draining_) return action_error(409, "shutting down: not reloading");
    ReloadOutcome r = reload("api");
    std::string json = "{\"result\": " + json_string(r.ok ? "ok" : "failed") +
                       ", \"config\": " + json_string(config_path_) +
                       ",\n \"errors\": " + json_list(r.errors) +
                       ",\n \"warnings\": " + json_list(r.warnings) + "}\n";
    // A failed reload is the config's fault, not the request's; 422 lets `curl --fail` notice.
    std::string summary =
        r.ok ? "reloaded" : "failed (" + std::to_string(r.errors.size()) + " error(s))";
    return {r.ok ? 200u : 422u, std::move(json), std::move(summary)};
  });
}

ActionResult Server::set_draining(bool draining) {
  return on_control_thread([this, draining]() -> ActionResult {
    if (draining_) return action_error(409, "shutting down: drain state is final");
    const bool changed = drained_by_admin_ != draining;
    drained_by_admin_ = draining;
    ready_ = !draining;
    if (changed) {
      std::vector<std::future<void>> switched;
      for (auto& w : workers_) switched.push_back(w->set_draining(draining));
      // So that a request sent after the answer meets the new state. Bounded: a worker that
      // is stuck must not hold the control thread.
      for (auto& f : switched) f.wait_for(std::chrono::seconds(1));
    }
    std::string json =
        "{\"result\": \"ok\", \"draining\": " + std::string(draining ? "true" : "false") +
        ", \"changed\": " + std::string(changed ? "true" : "false") +
        ", \"active_connections\": " + std::to_string(active_connections()) + "}\n";
    std::string summary =
        std::string(changed ? "" : "already ") + (draining ? "draining" : "not draining");
    return {200, std::move(json), std::move(summary)};
  });
}

ActionResult Server::set_host_disabled(std::string_view cluster, std::string_view host,
                                       bool disabled) {
  return on_control_thread(
      [this, cluster = std::string(cluster), host = std::string(host), disabled]() -> ActionResult {
        upstream::SharedClusterPtr c = clusters_.find(cluster);
        if (!c) return action_error(404, "no cluster '" + cluster + "'");
        upstream::SharedCluster::Membership m = c->membership();
        upstream::HostPtr found;
        if (m.hosts) {
          for (const auto& h : m.hosts->hosts) {
            if (h->name() == host) found = h;
          }
        }
        if (!found) {
          return action_error(404, "cluster '" + cluster + "' has no host '" + host +
                                       "' (hosts are named by address, as GET /clusters shows)");
        }
        // The flag lives on the Host, which a reload or DNS refresh keeps while the address stays.
        const bool changed = found->set_disabled(disabled);
        m.hosts->refresh_available();
        std::string json = "{\"result\": \"ok\", \"cluster\": " + json_string(cluster) +
                           ", \"host\": " + json_string(host) +
                           ", \"disabled\": " + std::string(disabled ? "true" : "false") +
                           ", \"changed\": " + std::string(changed ? "true" : "false") +
                           ", \"available_hosts\": " + std::to_string(m.hosts->available_count()) +
                           ", \"hosts\": " + std::to_string(m.hosts->size()) + "}\n";
        std::string summary =
            std::string(changed ? "" : "already ") + (disabled ? "disabled" : "enabled");
        return {200, std::move(json), std::move(summary)};
      });
}

admin::TracingCounters Server::tracing_counters() const {
  const tracing::ExporterCounters c = tracer_.counters();
  return {c.exported, c.dropped_queue_full, c.dropped_export_failed, c.failed_requests};
}

int Server::run() {
  // Registered first: a signal that arrives while starting waits here instead of killing the
  // process (SIGHUP's default action) or being lost.
  asio::io_context& main_ioc = control_;
  asio::signal_set signals(main_ioc, SIGHUP, SIGTERM, SIGINT);
  open_file_limit_ = raise_open_file_limit();
  // From here on a stalled stderr costs dropped lines, not a stalled control thread.
  route_error_log(&log_writer_, error_log_dropped_);
  // On the way out: write what is buffered, then log directly, so lines stay in order.
  struct FlushLogsOnReturn {
    LogWriter& writer;
    ~FlushLogsOnReturn() {
      route_error_log(nullptr, nullptr);
      writer.stop();
    }
  } flush_logs_on_return{log_writer_};

  auto result = config::load_file(config_path_);
  // Same format as --check, so one tool can read both.
  for (const auto& w : result.warnings) std::cerr << w.str() << " (warning)\n";
  if (!result.config) {
    for (const auto& e : result.errors) std::cerr << e.str() << "\n";
    return 1;
  }
  std::string error;
  auto snapshot = Snapshot::build(result.config, runtime_, &clusters_, &error);
  if (!snapshot) {
    std::cerr << config_path_ << ": " << error << "\n";
    return 1;
  }
  started_ = result.config;
  unsigned n = result.config->workers;
  if (n == 0) n = usable_cpus();
  for (unsigned i = 0; i < n; ++i)
    workers_.push_back(std::make_unique<Worker>(i, n, log_writer_, &tracer_));
  if (!install(snapshot, &error)) {
    log_line("error: " + error);
    return 1;
  }

  admin::AdminServer admin(*this, result.config->admin.address);
  if (!admin.start(&error)) {
    log_line("error: " + error);
    return 1;
  }

  // Hostname endpoints get their first addresses before the first request.
  clusters_.wait_for_dns(std::chrono::seconds(5));
  for (auto& w : workers_) w->start();
  ready_ = true;
  for (const auto& l : result.config->listeners) {
    log_line("listening on " + l.address.str() + " (" + l.name + ")");
  }
  log_line("admin on " + result.config->admin.address.str() +
           (result.config->admin.token.empty() ? "" : " (token required)") + ", " +
           std::to_string(n) + " worker(s)");
  check_open_file_limit(*result.config, open_file_limit_);
  if (watch_) {
    watcher_ = std::make_unique<ConfigWatcher>(control_, [this] { on_watched_files_changed(); });
    watch_config_files();
    log_line("watching " + config_path_ + " for changes");
  }

  // Drain: stop accepting, let in-flight exchanges finish (polling the connection gauges)
  // until none is left or drain_timeout passes. A second SIGTERM/SIGINT cuts it short.
  std::chrono::steady_clock::time_point deadline;
  asio::steady_timer drain_timer(main_ioc);
  std::function<void()> poll_drain = [&] {
    size_t left = active_connections();
    if (left == 0) {
      main_ioc.stop();
      return;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      log_line("drain timeout: closing " + std::to_string(left) + " connection(s)");
      main_ioc.stop();
      return;
    }
    drain_timer.expires_after(std::chrono::milliseconds(20));
    drain_timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) poll_drain();
    });
  };
  std::function<void()> wait_signal = [&] {
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        if (draining_) {
          log_line("SIGHUP ignored while draining");
        } else {
          reload("signal");
        }
      } else if (!draining_) {
        draining_ = true;
        log_line(std::string(sig == SIGINT ? "SIGINT" : "SIGTERM") + ": draining (up to " +
                 std::to_string(config()->drain_timeout.count()) + "ms)");
        ready_ = false;
        deadline = std::chrono::steady_clock::now() + config()->drain_timeout;
        for (auto& w : workers_) {
          w->stop_accepting();
          w->drain();
        }
        poll_drain();
      } else {
        log_line("second signal: closing " + std::to_string(active_connections()) +
                 " connection(s) now");
        main_ioc.stop();
        return;
      }
      wait_signal();
    });
  };
  wait_signal();
  control_running_ = true;
  main_ioc.run();
  // Admin actions still waiting are answered (503) instead of holding up admin.stop().
  control_stopped_ = true;

  for (auto& w : workers_) w->stop();
  // The spans of the last requests, if the collector takes them quickly.
  tracer_.shutdown(std::chrono::seconds(2));
  admin.stop();
  clusters_.stop();
  log_line("stopped");
  return 0;
}

}  // namespace sluice
