#pragma once
// The configuration as plain, validated values. Built once per load by config::load_*() on the
// main thread and then shared read-only (shared_ptr<const Config>) with every worker.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::config {

using Duration = std::chrono::milliseconds;

struct SocketAddress {
  std::string host;  // literal IPv4/IPv6 address or a hostname ("localhost")
  uint16_t port = 0;
  std::string str() const;  // "127.0.0.1:80", "[::1]:80"
  bool operator==(const SocketAddress&) const = default;
};

struct Endpoint {
  SocketAddress address;
  uint32_t weight = 1;
  bool operator==(const Endpoint&) const = default;
};

struct ClusterTls {
  std::string sni;      // empty: the endpoint's host when it is a name
  std::string ca_file;  // empty: the system's CA store
  bool verify = true;   // check the chain and the name (sni, else the endpoint's host)
  bool operator==(const ClusterTls&) const = default;
};

// Active health checking (upstream/health/): every `interval` (± jitter) each host gets a
// probe; `healthy_threshold` passes in a row make an unhealthy host healthy again and
// `unhealthy_threshold` failures in a row make a healthy one unhealthy.
struct HealthCheck {
  enum class Type { http, tcp };
  Type type = Type::http;
  std::string path = "/healthz";  // http: the request target
  std::string host;               // http: the Host header; empty: the endpoint's address
  // http: inclusive ranges of statuses that pass; default [200, 399].
  std::vector<std::pair<unsigned, unsigned>> expected_statuses{{200, 399}};
  Duration interval{std::chrono::seconds(5)};
  Duration timeout{std::chrono::seconds(1)};
  unsigned jitter_percent = 10;  // each interval is drawn from interval × (1 ± jitter)
  unsigned healthy_threshold = 2;
  unsigned unhealthy_threshold = 3;
  bool operator==(const HealthCheck&) const = default;
};

// Passive health: a host whose requests fail `consecutive_failures` times in a row (5xx from
// it, or a gateway failure: connect error, reset, timeout) is ejected for
// base_ejection_time × the number of times it has been ejected; at most
// max_ejection_percent of a cluster's hosts are ejected at once.
struct OutlierDetection {
  unsigned consecutive_failures = 5;
  Duration base_ejection_time{std::chrono::seconds(30)};
  Duration max_ejection_time{std::chrono::seconds(300)};
  unsigned max_ejection_percent = 50;
};

// Limits over the whole cluster (all workers): over one, a request gets 503 at once. Unset:
// no limit (Envoy's fixed default of 1024 is a known source of surprise 503s under load).
struct CircuitBreakers {
  std::optional<uint32_t> max_connections;       // upstream connections open
  std::optional<uint32_t> max_pending_requests;  // requests waiting for a connection
  std::optional<uint32_t> max_requests;          // requests in flight
};

// What the hashing policies (ring_hash, maglev) hash: one part of the request.
struct HashOn {
  enum class Kind { client_ip, header, cookie, path };
  Kind kind = Kind::client_ip;
  std::string name;  // header (lower case) or cookie name
};

struct Cluster {
  std::string name;
  std::vector<Endpoint> endpoints;
  // round_robin | least_request | random | ring_hash | maglev
  std::string lb = "round_robin";
  std::optional<HashOn> hash_on;  // ring_hash and maglev: default client_ip
  std::optional<HealthCheck> health_check;
  std::optional<OutlierDetection> outlier_detection;
  CircuitBreakers circuit_breakers;
  // Under this share of healthy hosts, balance over all of them (Envoy's panic mode).
  unsigned panic_threshold_percent = 50;
  // Hostname endpoints are re-resolved this often (sooner when a record's TTL is shorter,
  // down to 1s).
  Duration dns_refresh{std::chrono::seconds(30)};
  Duration connect_timeout{std::chrono::seconds(2)};
  Duration idle_timeout{std::chrono::seconds(60)};  // idle pooled upstream connections
  // Idle HTTP/1.1 connections kept per worker per host. Unset: as many as recent concurrency
  // left idle (each closes after idle_timeout), so a steady load never churns connections, up
  // to kDefaultMaxIdleConnections (each idle connection still holds a read buffer).
  std::optional<uint32_t> max_idle_connections;
  static constexpr uint32_t kDefaultMaxIdleConnections = 1024;
  std::optional<ClusterTls> tls;  // HTTPS to the endpoints
  enum class Protocol { http1, h2 };
  Protocol protocol = Protocol::http1;
  uint32_t max_concurrent_streams = 100;  // h2: streams per connection before another opens
};

struct Limits {
  // Open connections of the listener, counted over all workers (one shared count, so the
  // kernel's spread of connections over the workers' sockets does not change the limit).
  uint32_t max_connections = 10000;
  // Open connections from one client address (the TCP peer), over all workers. 0: no limit,
  // the default: many clients can share an address (NAT, a load balancer in front).
  uint32_t max_connections_per_ip = 0;
  uint64_t max_request_header_bytes = 64 * 1024;
  uint32_t max_request_headers = 100;
  uint64_t max_request_body_bytes = 10 * 1024 * 1024;  // 0 = unlimited
  uint64_t max_uri_bytes = 8 * 1024;
  Duration header_timeout{std::chrono::seconds(10)};  // first byte of a request to its last header
  Duration body_timeout{std::chrono::seconds(60)};    // longest pause within a request body
  // First byte of a request to its last byte. 0: no limit, the default: a long upload or a
  // streaming request (gRPC) has no natural bound, and the pauses are bounded by body_timeout.
  Duration request_timeout{0};
  Duration idle_timeout{std::chrono::seconds(60)};  // keep-alive connections between requests
};

struct Certificate {
  std::string cert_file;  // as resolved: relative paths are relative to the config file
  std::string key_file;
  // DNS names from the certificate's subjectAltName (its CN when it has none), lower case;
  // "*.example.com" for wildcards. Read by the loader; used to pick a certificate by SNI.
  std::vector<std::string> names;
};

struct ClientAuth {
  enum class Mode { none, optional, require };
  Mode mode = Mode::none;
  std::string ca_file;  // resolved like cert_file; client certificates must chain to it
};

struct ListenerTls {
  std::vector<Certificate> certificates;  // the first is served when no SNI name matches
  ClientAuth client_auth;
  std::string min_version = "1.2";  // "1.2" or "1.3"
  std::vector<std::string> alpn = {"h2", "http/1.1"};
  Duration handshake_timeout{std::chrono::seconds(10)};
};

struct ListenerHttp2 {
  bool cleartext = false;  // also accept prior-knowledge HTTP/2 (h2c) without TLS
  uint32_t max_concurrent_streams = 100;
};

struct Listener {
  std::string name;
  SocketAddress address;
  Limits limits;
  // Names of filters before the router, in order, as listed; filters whose config applies to
  // the listener run too (after these) without being listed.
  std::vector<std::string> filters;
  // CIDR ranges whose X-Forwarded-For is believed (validated; compiled into the chain).
  std::vector<std::string> trusted_proxies;
  std::optional<ListenerTls> tls;  // unset: plaintext
  struct RequestId {
    bool echo = false;  // copy the request's x-request-id into its response
  } request_id;
  ListenerHttp2 http2;
};

struct PathMatch {
  enum class Kind { any, prefix, exact, regex };
  Kind kind = Kind::any;
  std::string value;
};

struct HeaderMatch {
  enum class Kind { exact, regex, present };
  std::string name;
  Kind kind = Kind::present;
  std::string value;
};

struct RouteMatch {
  // Names of listeners the route applies on (each defined, none twice); empty = every listener.
  // Not checked per request: each listener's chain matches against only its own routes.
  std::vector<std::string> listeners;
  std::vector<std::string> hosts;  // exact names or "*.example.com"; empty = any
  PathMatch path;
  std::vector<std::string> methods;  // empty = any
  std::vector<HeaderMatch> headers;  // all must match
};

struct Respond {
  unsigned status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Each set part replaces that part of the request URL; unset parts keep the request's.
struct Redirect {
  unsigned status = 301;
  std::optional<std::string> scheme;
  std::optional<std::string> host;
  std::optional<uint16_t> port;
  std::optional<std::string> path;
  bool strip_query = false;
};

// When and how often a route's request is tried again on another host.
struct RetryPolicy {
  unsigned attempts = 2;  // retries after the first try
  // connect-failure, reset, refused-stream, timeout (per try), and statuses "502" "503" "504"
  bool on_connect_failure = true;
  bool on_reset = true;
  bool on_refused_stream = true;
  bool on_per_try_timeout = false;
  std::vector<unsigned> on_statuses;
  std::optional<Duration> per_try_timeout;  // unset: the route's timeout bounds every try
  unsigned budget_percent = 20;  // retries in flight ≤ this share of the cluster's requests
  bool retry_non_idempotent = false;
};

struct Route {
  std::string name;
  RouteMatch match;
  std::string cluster;  // exactly one of cluster, respond, redirect is set
  std::optional<Respond> respond;
  std::optional<Redirect> redirect;
  std::optional<std::string> rewrite_prefix;  // replaces the matched path prefix
  Duration timeout{std::chrono::seconds(15)};
  std::optional<RetryPolicy> retry;
  // Protocols a client may switch to with Upgrade (HTTP/1.1) or extended CONNECT (HTTP/2),
  // lower case; a request for another one is refused with 403.
  std::vector<std::string> upgrades{"websocket"};
  // An upgraded connection (a tunnel) closes after this long without a byte either way.
  Duration upgrade_idle_timeout{std::chrono::hours(1)};
};

struct Admin {
  SocketAddress address{"127.0.0.1", 9901};
  // With a token file, every admin request but /healthz and /ready must carry
  // "Authorization: Bearer <token>". The file is read at each load (its trailing newline
  // dropped); `token` is a secret: never logged or shown by /config.
  std::string token_file;
  std::string token;
  // Lets the admin port listen off loopback without a token (a warning, not an error).
  bool allow_unauthenticated = false;
};

// OpenTelemetry tracing (docs/operations.md): one server span per request and one client span
// per upstream attempt, exported as OTLP/HTTP JSON on a background thread.
struct Tracing {
  // "http://collector:4318/v1/traces" as written; empty: tracing is off.
  std::string otlp_endpoint;
  // Parsed from otlp_endpoint.
  std::string endpoint_host;
  uint16_t endpoint_port = 0;
  std::string endpoint_target;  // path and query
  bool endpoint_tls = false;    // https: the collector's certificate is checked against its host
  std::string ca_file;          // https: the CAs to trust; empty: the system's CA store
  bool gzip = false;            // export bodies sent with Content-Encoding: gzip
  std::string service_name = "sluice";
  // Share of new traces recorded (0 to 1). A request that carries a sampled traceparent is
  // always recorded, one that carries an unsampled one never (parent-based, as OpenTelemetry's
  // default sampler).
  double sample_rate = 1.0;
  // Sent with every export (an API key, say): values are secrets, /config shows names only.
  std::vector<std::pair<std::string, std::string>> headers;
  size_t max_queue_spans = 2048;                      // beyond it, spans are dropped and counted
  size_t max_batch_spans = 512;                       // an export holds at most this many spans
  Duration batch_delay{std::chrono::seconds(1)};      // longest wait before a partial batch goes
  Duration export_timeout{std::chrono::seconds(10)};  // per export request, retries included
  bool enabled() const { return !otlp_endpoint.empty(); }
};

// Every field an access-log line can have, in the default order (docs/configuration.md says
// what each holds).
inline constexpr std::string_view kAccessLogFields[] = {
    "time",
    "listener",
    "client",
    "peer",
    "method",
    "path",
    "host",
    "protocol",
    "status",
    "bytes_in",
    "bytes_out",
    "duration_ms",
    "request_id",
    "trace_id",
    "route",
    "cluster",
    "upstream",
    "upstream_status",
    "upstream_time_ms",
    "user_agent",
    "referer",
    "tls_version",
    "upgrade",
    "aborted",
    "error",
};

struct AccessLog {
  std::string path = "stdout";  // "stdout", "stderr", "off" or a file path
  std::string format = "json";
  // The fields of each line, in order (names from kAccessLogFields); empty: all of them.
  std::vector<std::string> fields;
};

// A filter's own config, parsed by the filter (config/extensions.h); each filter downcasts to
// its type. Immutable once loaded.
class FilterConfig {
 public:
  virtual ~FilterConfig() = default;
  // The filter's keys as the config file has them, for the admin API's /config (whose JSON
  // loads back as the same config): (key, encoded JSON value) pairs of the top level, and of
  // one listener or route.
  using JsonMembers = std::vector<std::pair<std::string, std::string>>;
  virtual JsonMembers root_json() const { return {}; }
  virtual JsonMembers listener_json(std::string_view /*listener*/) const { return {}; }
  virtual JsonMembers route_json(std::string_view /*route*/) const { return {}; }
};
using FilterConfigPtr = std::shared_ptr<const FilterConfig>;

struct Config {
  std::string source;    // file name the config came from
  unsigned workers = 0;  // 0 = auto (hardware threads)
  Duration drain_timeout{std::chrono::seconds(15)};
  Admin admin;
  AccessLog access_log;
  Tracing tracing;
  std::vector<Listener> listeners;
  std::vector<Route> routes;
  std::vector<Cluster> clusters;
  // Name servers for hostname endpoints ("127.0.0.1:5353"); empty: /etc/resolv.conf.
  std::vector<SocketAddress> dns_servers;
  // By filter name, for every registered filter (whether or not any listener uses it).
  std::vector<std::pair<std::string, FilterConfigPtr>> filter_configs;

  const Cluster* find_cluster(std::string_view name) const;
  const FilterConfig* filter_config(std::string_view name) const;
  // The active config as JSON, for the admin API.
  std::string to_json() const;
};

using ConfigPtr = std::shared_ptr<const Config>;

struct Diagnostic {
  std::string file;
  int line = 0;  // 1-based; 0 when unknown
  int column = 0;
  std::string message;
  std::string str() const;  // "FILE:LINE:COL: message"
};

struct LoadResult {
  ConfigPtr config;  // null when there are errors
  std::vector<Diagnostic> errors;
  std::vector<Diagnostic> warnings;
};

// Reads, parses and validates; never throws. Every error found is reported, not only the first.
LoadResult load_file(const std::string& path);
LoadResult load_string(std::string_view yaml, const std::string& file_name);

// Value syntax shared with other parsers. Return nullopt on bad input.
std::optional<Duration> parse_duration(std::string_view s);  // "250ms", "5s", "1m", "1h"
std::optional<uint64_t> parse_size(std::string_view s);  // "512", "64KiB", "10MiB", "1GiB", "1KB"
std::optional<SocketAddress> parse_address(std::string_view s);  // "host:port", "[v6]:port"
// 127.0.0.0/8, ::1, ::ffff:127.x.x.x or "localhost": reachable from this machine only.
bool is_loopback(const SocketAddress& a);

}  // namespace sluice::config
