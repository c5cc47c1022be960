#pragma once
// The loader's schema walk: YAML document → Config plus diagnostics. Internal to config/; one
// Loader per load, used on the loading thread only. Sections are split over loader.cc
// (top level, listeners, clusters, cross-checks), route_loader.cc (routes), tls_loader.cc
// (listener TLS) and tracing_loader.cc (tracing).
#include <yaml-cpp/yaml.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/yaml_reader.h"

namespace sluice::config::detail {

// The keys a route accepts before filters add theirs (route_loader.cc).
std::span<const std::string_view> core_route_keys();

// "line N" (1-based) for a message that points back at another place in the file.
std::string line_of(const YAML::Mark& m);

struct StashedField {
  std::string owner;  // listener or route name; empty at the top level
  Field field;
};

class Loader {
 public:
  explicit Loader(const std::string& file);

  // Never throws; yaml-cpp exceptions become diagnostics.
  LoadResult load(std::string_view yaml);

 private:
  void load_root(const YAML::Node& doc);
  void load_workers(const Field& f);
  void load_admin(const Field& f);
  void load_access_log(const Field& f);
  void load_dns(const Field& f);
  void load_listener(const YAML::Node& node);
  void load_limits(const Field& f, Limits& limits);
  void load_filters(const Field& f, std::vector<std::string>& filters);
  // tls_loader.cc
  void load_tls(const Field& f, ListenerTls& tls);
  void load_certificate(const YAML::Node& node, ListenerTls& tls);
  void load_client_auth(const Field& f, ClientAuth& auth);
  // tracing_loader.cc
  void load_tracing(const Field& f);
  void load_otlp_endpoint(const Field& f, Tracing& tracing);
  // Relative paths in the config are relative to the config file's directory.
  std::string resolve_path(const std::string& path) const;
  void load_cluster(const YAML::Node& node);
  void load_endpoint(const YAML::Node& node, Cluster& cluster);
  void load_health_check(const Field& f, HealthCheck& hc);
  void load_outlier_detection(const Field& f, OutlierDetection& od);
  void cross_check();
  // Filters' own sections (config/extensions.h), after the core sections.
  void load_filter_sections();
  // Keeps the fields of `m` that belong to filters, for load_filter_sections().
  void stash_filter_fields(const MapReader& m, const std::vector<std::string_view>& keys,
                           const std::string& owner, std::vector<StashedField>& into);

  // route_loader.cc
  void load_route(const YAML::Node& node);
  void load_match(const Field& f, RouteMatch& match);
  void load_path(const Field& f, PathMatch& path);
  void load_header_match(const YAML::Node& node, std::vector<HeaderMatch>& headers);
  void load_respond(const Field& f, Respond& respond);
  // A map of header names to values (respond.headers, tracing.headers): names are tokens,
  // values have no CR, LF or NUL, no name twice (case-insensitive), and none of `reserved`
  // (lower case), which are refused with "header 'X' <reserved_why>; remove it".
  void load_header_map(const Field& f, std::span<const std::string_view> reserved,
                       std::string_view reserved_why,
                       std::vector<std::pair<std::string, std::string>>& headers);
  void load_redirect(const Field& f, Redirect& redirect);
  void load_rewrite(const Field& f, Route& route, bool has_cluster);
  void load_retry(const Field& f, Route& route, bool has_cluster);
  void load_match_listeners(const Field& f, std::vector<std::string>& listeners);
  // Warns about each route an earlier route hides (cross_check()).
  void check_shadowed_routes();

  Diagnostics diag_;
  Config config_;
  // The keys each section accepts: the core schema's and the registered filters'.
  std::vector<std::string_view> root_keys_, listener_keys_, route_keys_;
  std::vector<std::string_view> filter_root_keys_, filter_listener_keys_, filter_route_keys_;
  std::vector<StashedField> root_stash_, listener_stash_, route_stash_;
  std::map<std::string, YAML::Mark> listener_names_;
  std::map<std::string, YAML::Mark> route_names_;
  std::map<std::string, YAML::Mark> cluster_names_;

  struct ClusterRef {
    std::string cluster;
    YAML::Mark mark;
  };
  std::vector<ClusterRef> cluster_refs_;
  struct BoundAddress {
    std::string listener;
    SocketAddress address;
    YAML::Mark mark;
  };
  std::vector<BoundAddress> listener_addresses_;
  YAML::Mark admin_address_mark_ = YAML::Mark::null_mark();
  std::vector<YAML::Mark> route_marks_;  // parallel to config_.routes
};

}  // namespace sluice::config::detail
