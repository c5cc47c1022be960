#pragma once
// Everything a worker needs from one config generation, built once on the main thread and
// shared read-only. A stream keeps the snapshot it started with until it ends.
#include <map>
#include <memory>
#include <string>

#include "config/config.h"
#include "filters/chain.h"
#include "filters/router/route_table.h"
#include "proxy/tls_context.h"

namespace sluice {
class RuntimeState;

struct Snapshot {
  config::ConfigPtr config;
  std::shared_ptr<const router::RouteTable> routes;
  std::map<std::string, FilterChainFactoryPtr> chains;  // by listener name
  std::map<std::string, TlsServerContextPtr> tls;       // TLS listeners, by name

  // Null with `error` set if the config cannot be compiled. State that must outlive this
  // snapshot (rate-limit buckets) is taken from `runtime`.
  static std::shared_ptr<const Snapshot> build(config::ConfigPtr config, RuntimeState& runtime,
                                               std::string* error);
};

using SnapshotPtr = std::shared_ptr<const Snapshot>;

}  // namespace sluice
