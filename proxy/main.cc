// sluice: reverse proxy and edge load balancer.
#include <signal.h>

#include <cstring>
#include <iostream>
#include <string>

#include "config/config.h"
#include "core/runtime_state.h"
#include "core/version.h"
#include "filters/registry.h"
#include "proxy/server.h"

namespace {

void usage(std::ostream& out) {
  out << "usage: sluice -c FILE          run with the config in FILE (also --config FILE)\n"
         "       sluice -c FILE --watch  also reload when FILE, or a certificate or key it\n"
         "                               names, changes (as SIGHUP; ConfigMap and Secret\n"
         "                               volume updates included)\n"
         "       sluice --check -c FILE  validate FILE, print every error, exit 1 if any\n"
         "       sluice --version\n"
         "       sluice --help\n"
         "signals: SIGHUP reloads the config; SIGTERM/SIGINT drain and exit (a second one\n"
         "         exits at once)\n"
         "admin API (admin.address, default 127.0.0.1:9901): /healthz /ready /metrics\n"
         "         /config /clusters /ratelimits\n"
         "docs (in the source tree): docs/configuration.md (every key),\n"
         "         docs/operations.md (signals, logs, metrics, admin API),\n"
         "         docs/deploy.md (container image, Helm chart)\n";
}

int check(const std::string& path) {
  auto result = sluice::config::load_file(path);
  for (const auto& w : result.warnings) std::cerr << w.str() << " (warning)\n";
  if (!result.config) {
    for (const auto& e : result.errors) std::cerr << e.str() << "\n";
    return 1;
  }
  std::string error;
  sluice::RuntimeState runtime;
  if (!sluice::Snapshot::build(result.config, runtime, nullptr, &error)) {
    std::cerr << path << ": " << error << "\n";
    return 1;
  }
  const auto& c = *result.config;
  std::cout << path << ": ok (" << c.listeners.size() << " listener(s), " << c.routes.size()
            << " route(s), " << c.clusters.size() << " cluster(s))\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool check_only = false;
  bool watch = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(std::cout);
      return 0;
    } else if (arg == "--version") {
      std::cout << "sluice " << sluice::kVersion << "\n";
      return 0;
    } else if (arg == "--check") {
      check_only = true;
    } else if (arg == "--watch") {
      watch = true;
    } else if (arg == "-c" || arg == "--config") {
      if (i + 1 == argc) {
        std::cerr << "sluice: " << arg << " needs a FILE\n";
        usage(std::cerr);
        return 2;
      }
      config_path = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      config_path = arg.substr(9);
    } else {
      std::cerr << "sluice: unknown argument '" << arg << "'\n";
      usage(std::cerr);
      return 2;
    }
  }
  if (config_path.empty()) {
    std::cerr << "sluice: no config file given (-c FILE)\n";
    usage(std::cerr);
    return 2;
  }
  sluice::register_builtin_filters();
  if (check_only) return check(config_path);

  // A write to a socket the peer closed must fail with EPIPE, not kill the process.
  signal(SIGPIPE, SIG_IGN);
  sluice::Server server(config_path, watch);
  return server.run();
}
