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
#include "upstream/shared_clusters.h"

namespace sluice {
class RuntimeState;

struct Snapshot {
  config::ConfigPtr config;
  std::shared_ptr<const router::RouteTable> routes;
  std::map<std::string, FilterChainFactoryPtr> chains;  // by listener name
  std::map<std::string, TlsServerContextPtr> tls;       // TLS listeners, by name
  // The clusters' shared hosts, by name; empty when built without `clusters` (--check).
  std::map<std::string, upstream::SharedClusterPtr> clusters;

  // Null with `error` set if the config cannot be compiled. State that must outlive this
  // snapshot (rate-limit buckets) is taken from `runtime`; the clusters' hosts from
  // `clusters` (control thread), updated last, once everything else compiled.
  static std::shared_ptr<const Snapshot> build(config::ConfigPtr config, RuntimeState& runtime,
                                               upstream::SharedClusters* clusters,
                                               std::string* error);
};

using SnapshotPtr = std::shared_ptr<const Snapshot>;

}  // namespace sluice
