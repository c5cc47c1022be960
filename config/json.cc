// Config::to_json().
#include "core/json.h"

#include <charconv>
#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/values.h"

namespace sluice::config {
namespace {

// Writes indented JSON; the caller keeps begin/end calls balanced.
class JsonWriter {
 public:
  void begin_object() { open('{'); }
  void end_object() { close('}'); }
  void begin_array() { open('['); }
  void end_array() { close(']'); }

  void key(std::string_view k) {
    element();
    append_json_string(out_, k);
    out_ += ": ";
    after_key_ = true;
  }
  void value(std::string_view s) {
    element();
    append_json_string(out_, s);
  }
  void value(const char* s) { value(std::string_view(s)); }
  void value(uint64_t n) {
    element();
    out_ += std::to_string(n);
  }
  void value(bool b) {
    element();
    out_ += b ? "true" : "false";
  }
  // Already-encoded JSON (a filter's section).
  void raw(std::string_view json) {
    element();
    out_ += json;
  }

  void field(std::string_view k, std::string_view v) {
    key(k);
    value(v);
  }
  void field(std::string_view k, const char* v) { field(k, std::string_view(v)); }
  void field(std::string_view k, uint64_t v) {
    key(k);
    value(v);
  }
  void field(std::string_view k, bool v) {
    key(k);
    value(v);
  }
  void field(std::string_view k, Duration d) { field(k, detail::format_duration(d)); }
  void field(std::string_view k, const std::vector<std::string>& list) {
    key(k);
    begin_array();
    for (const std::string& s : list) value(s);
    end_array();
  }

  std::string take() {
    out_ += '\n';
    return std::move(out_);
  }

 private:
  void element() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (first_.empty()) return;
    if (!first_.back()) out_ += ',';
    first_.back() = false;
    newline(first_.size());
  }
  void open(char c) {
    element();
    out_ += c;
    first_.push_back(true);
  }
  void close(char c) {
    const bool empty = first_.back();
    first_.pop_back();
    if (!empty) newline(first_.size());
    out_ += c;
  }
  void newline(size_t depth) {
    out_ += '\n';
    out_.append(depth * 2, ' ');
  }

  std::string out_;
  std::vector<bool> first_;  // per open container: no element written yet
  bool after_key_ = false;
};

// The members filters add to one object of the config.
template <typename Members>
void write_filter_members(JsonWriter& w,
                          const std::vector<std::pair<std::string, FilterConfigPtr>>& filters,
                          Members members) {
  for (const auto& [name, filter] : filters) {
    if (!filter) continue;
    for (const auto& [key, json] : members(*filter)) {
      w.key(key);
      w.raw(json);
    }
  }
}

void write_limits(JsonWriter& w, const Limits& l) {
  w.key("limits");
  w.begin_object();
  w.field("max_connections", uint64_t{l.max_connections});
  w.field("max_connections_per_ip", uint64_t{l.max_connections_per_ip});
  w.field("max_request_header_bytes", l.max_request_header_bytes);
  w.field("max_request_headers", uint64_t{l.max_request_headers});
  w.field("max_request_body_bytes", l.max_request_body_bytes);
  w.field("max_uri_bytes", l.max_uri_bytes);
  w.field("header_timeout", l.header_timeout);
  w.field("body_timeout", l.body_timeout);
  w.field("request_timeout", l.request_timeout);
  w.field("idle_timeout", l.idle_timeout);
  w.end_object();
}

void write_match(JsonWriter& w, const RouteMatch& m) {
  w.key("match");
  w.begin_object();
  // Left out when empty, as the YAML must (an empty list is an error there).
  if (!m.listeners.empty()) w.field("listeners", m.listeners);
  w.field("hosts", m.hosts);
  // An "any" path is written as no path condition, the way the YAML spells it.
  if (m.path.kind != PathMatch::Kind::any) {
    w.key("path");
    w.begin_object();
    switch (m.path.kind) {
      case PathMatch::Kind::prefix:
        w.field("prefix", m.path.value);
        break;
      case PathMatch::Kind::exact:
        w.field("exact", m.path.value);
        break;
      case PathMatch::Kind::regex:
        w.field("regex", m.path.value);
        break;
      case PathMatch::Kind::any:
        break;
    }
    w.end_object();
  }
  w.field("methods", m.methods);
  w.key("headers");
  w.begin_array();
  for (const HeaderMatch& h : m.headers) {
    w.begin_object();
    w.field("name", h.name);
    switch (h.kind) {
      case HeaderMatch::Kind::exact:
        w.field("exact", h.value);
        break;
      case HeaderMatch::Kind::regex:
        w.field("regex", h.value);
        break;
      case HeaderMatch::Kind::present:
        w.field("present", true);
        break;
    }
    w.end_object();
  }
  w.end_array();
  w.end_object();
}

void write_retry(JsonWriter& w, const RetryPolicy& p) {
  w.key("retry");
  w.begin_object();
  w.field("attempts", uint64_t{p.attempts});
  // Always written: a missing "on" would load back as the default conditions.
  w.key("on");
  w.begin_array();
  if (p.on_connect_failure) w.value("connect-failure");
  if (p.on_reset) w.value("reset");
  if (p.on_refused_stream) w.value("refused-stream");
  if (p.on_per_try_timeout) w.value("per-try-timeout");
  for (unsigned status : p.on_statuses) w.value(std::to_string(status));
  w.end_array();
  if (p.per_try_timeout) w.field("per_try_timeout", *p.per_try_timeout);
  w.field("budget_percent", uint64_t{p.budget_percent});
  w.field("retry_non_idempotent", p.retry_non_idempotent);
  w.end_object();
}

std::string percent(unsigned n) { return std::to_string(n) + "%"; }

void write_health_check(JsonWriter& w, const HealthCheck& h) {
  w.key("health_check");
  w.begin_object();
  const bool http = h.type == HealthCheck::Type::http;
  w.field("type", http ? "http" : "tcp");
  // The http-only keys are rejected with type tcp, so they are left out there.
  if (http) {
    w.field("path", h.path);
    if (!h.host.empty()) w.field("host", h.host);
    w.key("expected_statuses");
    w.begin_array();
    for (const auto& [low, high] : h.expected_statuses) {
      if (low == high) {
        w.value(uint64_t{low});
      } else {
        w.value(std::to_string(low) + "-" + std::to_string(high));
      }
    }
    w.end_array();
  }
  w.field("interval", h.interval);
  w.field("timeout", h.timeout);
  w.field("jitter", percent(h.jitter_percent));
  w.field("healthy_threshold", uint64_t{h.healthy_threshold});
  w.field("unhealthy_threshold", uint64_t{h.unhealthy_threshold});
  w.end_object();
}

void write_outlier_detection(JsonWriter& w, const OutlierDetection& o) {
  w.key("outlier_detection");
  w.begin_object();
  w.field("consecutive_failures", uint64_t{o.consecutive_failures});
  w.field("base_ejection_time", o.base_ejection_time);
  w.field("max_ejection_time", o.max_ejection_time);
  w.field("max_ejection_percent", uint64_t{o.max_ejection_percent});
  w.end_object();
}

std::string hash_on_text(const HashOn& h) {
  switch (h.kind) {
    case HashOn::Kind::client_ip:
      return "client_ip";
    case HashOn::Kind::header:
      return "header:" + h.name;
    case HashOn::Kind::cookie:
      return "cookie:" + h.name;
    case HashOn::Kind::path:
      return "path";
  }
  return "client_ip";
}

template <typename Extra>
void write_route(JsonWriter& w, const Route& r, Extra extra) {
  w.begin_object();
  w.field("name", r.name);
  write_match(w, r.match);
  if (r.respond) {
    w.key("respond");
    w.begin_object();
    w.field("status", uint64_t{r.respond->status});
    w.field("body", r.respond->body);
    w.key("headers");
    w.begin_object();
    for (const auto& [name, value] : r.respond->headers) w.field(name, value);
    w.end_object();
    w.end_object();
  } else if (r.redirect) {
    const Redirect& d = *r.redirect;
    w.key("redirect");
    w.begin_object();
    w.field("status", uint64_t{d.status});
    if (d.scheme) w.field("scheme", *d.scheme);
    if (d.host) w.field("host", *d.host);
    if (d.port) w.field("port", uint64_t{*d.port});
    if (d.path) w.field("path", *d.path);
    w.field("strip_query", d.strip_query);
    w.end_object();
  } else {
    w.field("cluster", r.cluster);
  }
  if (r.rewrite_prefix) {
    w.key("rewrite");
    w.begin_object();
    w.field("prefix", *r.rewrite_prefix);
    w.end_object();
  }
  w.field("timeout", r.timeout);
  if (r.retry) write_retry(w, *r.retry);
  w.key("upgrades");
  w.begin_array();
  for (const auto& u : r.upgrades) w.value(u);
  w.end_array();
  w.field("upgrade_idle_timeout", r.upgrade_idle_timeout);
  extra(w);
  w.end_object();
}

void write_cluster(JsonWriter& w, const Cluster& c) {
  w.begin_object();
  w.field("name", c.name);
  w.key("endpoints");
  w.begin_array();
  for (const Endpoint& e : c.endpoints) {
    w.begin_object();
    w.field("address", e.address.str());
    w.field("weight", uint64_t{e.weight});
    w.end_object();
  }
  w.end_array();
  w.field("lb", c.lb);
  if (c.hash_on) w.field("hash_on", hash_on_text(*c.hash_on));
  if (c.health_check) write_health_check(w, *c.health_check);
  if (c.outlier_detection) write_outlier_detection(w, *c.outlier_detection);
  // Unset limits are no limit, and are left out; {} shows that none is set.
  w.key("circuit_breakers");
  w.begin_object();
  const CircuitBreakers& b = c.circuit_breakers;
  if (b.max_connections) w.field("max_connections", uint64_t{*b.max_connections});
  if (b.max_pending_requests) w.field("max_pending_requests", uint64_t{*b.max_pending_requests});
  if (b.max_requests) w.field("max_requests", uint64_t{*b.max_requests});
  w.end_object();
  w.field("panic_threshold", percent(c.panic_threshold_percent));
  w.field("dns_refresh", c.dns_refresh);
  w.field("connect_timeout", c.connect_timeout);
  w.field("idle_timeout", c.idle_timeout);
  if (c.max_idle_connections) {
    w.field("max_idle_connections", uint64_t{*c.max_idle_connections});
  }
  w.field("protocol", c.protocol == Cluster::Protocol::h2 ? "h2" : "http1");
  w.field("max_concurrent_streams", uint64_t{c.max_concurrent_streams});
  if (c.tls) {
    w.key("tls");
    w.begin_object();
    // Unset (empty) values are left out: the loader takes absent for "not set", not "".
    if (!c.tls->sni.empty()) w.field("sni", c.tls->sni);
    if (!c.tls->ca_file.empty()) w.field("ca_file", c.tls->ca_file);
    w.field("verify", c.tls->verify);
    w.end_object();
  }
  w.end_object();
}

}  // namespace

std::string Config::to_json() const {
  JsonWriter w;
  w.begin_object();
  w.field("source", source);
  if (workers == 0) {
    w.field("workers", "auto");
  } else {
    w.field("workers", uint64_t{workers});
  }
  w.field("drain_timeout", drain_timeout);
  w.key("admin");
  w.begin_object();
  w.field("address", admin.address.str());
  // The path only: the token itself is a secret.
  if (!admin.token_file.empty()) w.field("token_file", admin.token_file);
  if (admin.allow_unauthenticated) w.field("allow_unauthenticated", true);
  w.end_object();
  w.key("access_log");
  w.begin_object();
  w.field("path", access_log.path);
  w.field("format", access_log.format);
  if (!access_log.fields.empty()) {
    w.key("fields");
    w.begin_array();
    for (const auto& f : access_log.fields) w.value(f);
    w.end_array();
  }
  w.end_object();
  if (tracing.enabled()) {
    w.key("tracing");
    w.begin_object();
    w.field("otlp_endpoint", tracing.otlp_endpoint);
    w.field("service_name", tracing.service_name);
    w.key("sample_rate");
    char rate[32];
    auto end = std::to_chars(rate, rate + sizeof(rate), tracing.sample_rate).ptr;
    w.raw(std::string_view(rate, static_cast<size_t>(end - rate)));
    // Names only: header values are often API keys.
    if (!tracing.headers.empty()) {
      w.key("headers");
      w.begin_array();
      for (const auto& [name, value] : tracing.headers) w.value(name);
      w.end_array();
    }
    w.field("max_queue_spans", uint64_t{tracing.max_queue_spans});
    w.field("max_batch_spans", uint64_t{tracing.max_batch_spans});
    w.field("batch_delay", tracing.batch_delay);
    w.field("export_timeout", tracing.export_timeout);
    if (!tracing.ca_file.empty()) w.field("ca_file", tracing.ca_file);
    w.field("compression", tracing.gzip ? "gzip" : "none");
    w.end_object();
  }

  w.key("listeners");
  w.begin_array();
  for (const Listener& l : listeners) {
    w.begin_object();
    w.field("name", l.name);
    w.field("address", l.address.str());
    write_limits(w, l.limits);
    w.field("filters", l.filters);
    w.field("trusted_proxies", l.trusted_proxies);
    write_filter_members(w, filter_configs,
                         [&](const FilterConfig& f) { return f.listener_json(l.name); });
    w.key("http2");
    w.begin_object();
    w.field("cleartext", l.http2.cleartext);
    w.field("max_concurrent_streams", uint64_t{l.http2.max_concurrent_streams});
    w.end_object();
    w.key("request_id");
    w.begin_object();
    w.field("echo", l.request_id.echo);
    w.end_object();
    if (l.tls) {
      w.key("tls");
      w.begin_object();
      w.key("certificates");
      w.begin_array();
      for (const Certificate& c : l.tls->certificates) {
        w.begin_object();
        // Paths only: key material never leaves. The names read from the certificate are
        // left out: they are not a configuration key, and the dump must load back.
        w.field("cert_file", c.cert_file);
        w.field("key_file", c.key_file);
        w.end_object();
      }
      w.end_array();
      w.field("min_version", l.tls->min_version);
      w.field("alpn", l.tls->alpn);
      w.field("handshake_timeout", l.tls->handshake_timeout);
      w.key("client_auth");
      w.begin_object();
      const auto mode = l.tls->client_auth.mode;
      w.field("mode", mode == ClientAuth::Mode::none       ? "none"
                      : mode == ClientAuth::Mode::optional ? "optional"
                                                           : "require");
      // Unset with mode none: left out, since an empty ca_file does not load.
      if (!l.tls->client_auth.ca_file.empty()) w.field("ca_file", l.tls->client_auth.ca_file);
      w.end_object();
      w.end_object();
    }
    w.end_object();
  }
  w.end_array();

  w.key("routes");
  w.begin_array();
  for (const Route& r : routes) {
    write_route(w, r, [&](JsonWriter& out) {
      write_filter_members(out, filter_configs,
                           [&](const FilterConfig& f) { return f.route_json(r.name); });
    });
  }
  w.end_array();

  w.key("clusters");
  w.begin_array();
  for (const Cluster& c : clusters) write_cluster(w, c);
  w.end_array();
  // Left out when empty: "servers: []" is an error, and no "dns" means /etc/resolv.conf.
  if (!dns_servers.empty()) {
    w.key("dns");
    w.begin_object();
    w.key("servers");
    w.begin_array();
    for (const SocketAddress& a : dns_servers) w.value(a.str());
    w.end_array();
    w.end_object();
  }
  write_filter_members(w, filter_configs, [](const FilterConfig& f) { return f.root_json(); });
  w.end_object();
  return w.take();
}

}  // namespace sluice::config
