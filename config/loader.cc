// YAML → Config: the top level, listeners, clusters and the checks that span sections.
// Routes are in route_loader.cc.
#include "config/loader.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <exception>
#include <limits>

#include "config/certificate.h"
#include "config/extensions.h"
#include "config/values.h"
#include "core/client_ip.h"

namespace sluice::config {
namespace detail {
namespace {

constexpr std::string_view kLbPolicies[] = {"round_robin", "least_request", "random", "ring_hash",
                                            "maglev"};
// The policies that pick a host by hashing part of the request (hash_on).
constexpr std::string_view kHashingPolicies[] = {"ring_hash", "maglev"};
constexpr std::string_view kHashOnValues[] = {"client_ip", "path", "header:NAME", "cookie:NAME"};
constexpr std::string_view kLogFormats[] = {"json"};

constexpr std::string_view kRootKeys[] = {"workers",    "drain_timeout", "admin",
                                          "access_log", "tracing",       "listeners",
                                          "routes",     "clusters",      "dns"};
constexpr std::string_view kDnsKeys[] = {"servers"};
constexpr std::string_view kAdminKeys[] = {"address", "token_file", "allow_unauthenticated"};
constexpr std::string_view kAccessLogKeys[] = {"path", "format", "fields"};
constexpr std::string_view kListenerKeys[] = {"name", "address", "limits",          "filters",
                                              "tls",  "http2",   "trusted_proxies", "request_id"};
constexpr std::string_view kRequestIdKeys[] = {"echo"};
constexpr std::string_view kHttp2Keys[] = {"cleartext", "max_concurrent_streams"};
constexpr std::string_view kLimitsKeys[] = {"max_connections",          "max_connections_per_ip",
                                            "max_request_header_bytes", "max_request_headers",
                                            "max_request_body_bytes",   "max_uri_bytes",
                                            "header_timeout",           "body_timeout",
                                            "request_timeout",          "idle_timeout"};
constexpr std::string_view kClusterKeys[] = {"name",
                                             "endpoints",
                                             "lb",
                                             "connect_timeout",
                                             "idle_timeout",
                                             "max_idle_connections",
                                             "tls",
                                             "protocol",
                                             "max_concurrent_streams",
                                             "hash_on",
                                             "health_check",
                                             "outlier_detection",
                                             "circuit_breakers",
                                             "panic_threshold",
                                             "dns_refresh"};
constexpr std::string_view kHealthCheckKeys[] = {"type",
                                                 "path",
                                                 "host",
                                                 "expected_statuses",
                                                 "interval",
                                                 "timeout",
                                                 "jitter",
                                                 "healthy_threshold",
                                                 "unhealthy_threshold"};
constexpr std::string_view kHealthCheckTypes[] = {"http", "tcp"};
// Keys that only make sense for an HTTP probe.
constexpr std::string_view kHttpHealthCheckKeys[] = {"path", "host", "expected_statuses"};
constexpr std::string_view kOutlierKeys[] = {"consecutive_failures", "base_ejection_time",
                                             "max_ejection_time", "max_ejection_percent"};
constexpr std::string_view kCircuitBreakerKeys[] = {"max_connections", "max_pending_requests",
                                                    "max_requests"};
constexpr std::string_view kClusterProtocols[] = {"http1", "h2"};
constexpr std::string_view kClusterTlsKeys[] = {"sni", "ca_file", "verify"};
constexpr std::string_view kEndpointKeys[] = {"address", "weight"};

constexpr uint64_t kMiB = uint64_t{1} << 20;

// Addresses compare by their binary form, so "::1" and "0:0::1" are the same.
std::string canonical_host(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  char text[INET6_ADDRSTRLEN];
  for (int family : {AF_INET, AF_INET6}) {
    if (inet_pton(family, host.c_str(), buf) == 1 &&
        inet_ntop(family, buf, text, sizeof(text)) != nullptr) {
      return text;
    }
  }
  return host;
}

bool same_address(const SocketAddress& a, const SocketAddress& b) {
  return a.port == b.port && canonical_host(a.host) == canonical_host(b.host);
}

// Reads the file at `path` into `text`, stopping once more than `max_bytes` were read (the
// caller reports that). Returns 0, or the errno of the open or read that failed (a directory
// fails with EISDIR at the read).
int read_file_text(const std::string& path, std::string& text,
                   size_t max_bytes = std::numeric_limits<size_t>::max()) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return err;
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > max_bytes) break;
  }
  ::close(fd);
  return 0;
}

// Reads an admin token: the file's text without its trailing line break(s). Returns an error
// message, or "" with `token` set.
std::string read_token_file(const std::string& path, std::string& token) {
  constexpr size_t kMaxToken = 4096;
  std::string text;
  if (int err = read_file_text(path, text, kMaxToken)) {
    return "cannot read " + path + ": " + strerror(err);
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (text.empty()) return path + " is empty";
  if (text.size() > kMaxToken) return path + " is longer than 4096 bytes";
  // It travels as "Authorization: Bearer <token>": one header value, no spaces or controls.
  const bool printable = std::all_of(text.begin(), text.end(), [](char c) {
    return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f;
  });
  if (!printable) {
    return path + ": the token must be one line of printable ASCII without spaces";
  }
  token = std::move(text);
  return "";
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "10%": a whole percentage from 0 to 100 with its sign, the way durations carry their unit.
std::optional<unsigned> read_percent(Diagnostics& diag, const Field& f) {
  if (!f.value.IsScalar()) {
    diag.error(f.mark(), f.name + ": expected a percentage, got " + describe(f.value));
    return std::nullopt;
  }
  const std::string& s = f.value.Scalar();
  const std::string_view digits =
      s.ends_with('%') ? std::string_view(s).substr(0, s.size() - 1) : std::string_view();
  if (!all_digits(digits)) {
    diag.error(f.mark(), f.name + ": invalid percentage " + describe(f.value) +
                             " (expected an integer from 0 to 100 followed by '%', as in 10%)");
    return std::nullopt;
  }
  unsigned n = 0;
  for (char c : digits) {
    n = n * 10 + static_cast<unsigned>(c - '0');
    if (n > 100) break;  // no overflow on long inputs
  }
  if (n > 100) {
    diag.error(f.mark(), f.name + ": must be from 0% to 100%, got " + s);
    return std::nullopt;
  }
  return n;
}

// A status from 100 to 599, or nullopt (also for anything that is not digits).
std::optional<unsigned> parse_status(std::string_view s) {
  if (!all_digits(s) || s.size() > 3) return std::nullopt;
  unsigned n = 0;
  for (char c : s) n = n * 10 + static_cast<unsigned>(c - '0');
  if (n < 100 || n > 599) return std::nullopt;
  return n;
}

// An expected_statuses item: 404 or "200-399" (inclusive).
std::optional<std::pair<unsigned, unsigned>> read_status_range(Diagnostics& diag, const Field& f) {
  const std::string expected = ": expected a status from 100 to 599 or a range like 200-399, got ";
  if (!f.value.IsScalar()) {
    diag.error(f.mark(), f.name + expected + describe(f.value));
    return std::nullopt;
  }
  const std::string& s = f.value.Scalar();
  const size_t dash = s.find('-');
  const std::string_view low = std::string_view(s).substr(0, dash);
  const std::string_view high =
      dash == std::string::npos ? low : std::string_view(s).substr(dash + 1);
  if (!all_digits(low) || !all_digits(high)) {
    diag.error(f.mark(), f.name + expected + describe(f.value));
    return std::nullopt;
  }
  const std::optional<unsigned> lo = parse_status(low);
  const std::optional<unsigned> hi = parse_status(high);
  if (!lo || !hi) {
    diag.error(f.mark(), f.name + ": statuses must be from 100 to 599, got " + s);
    return std::nullopt;
  }
  if (*lo > *hi) {
    diag.error(f.mark(), f.name + ": range " + s + " is empty (" + std::string(low) +
                             " is greater than " + std::string(high) + ")");
    return std::nullopt;
  }
  return std::pair(*lo, *hi);
}

// "client_ip", "path", "header:NAME" (lowercased) or "cookie:NAME" (case kept, as cookie
// names are case-sensitive).
std::optional<HashOn> read_hash_on(Diagnostics& diag, const Field& f) {
  const std::optional<std::string> text = read_nonempty(diag, f);
  if (!text) return std::nullopt;
  HashOn h;
  const size_t colon = text->find(':');
  if (colon != std::string::npos) {
    const std::string kind = text->substr(0, colon);
    const std::string name = text->substr(colon + 1);
    if (kind == "header" || kind == "cookie") {
      const std::string example = kind == "header" ? "header:x-user-id" : "cookie:session";
      if (name.empty()) {
        diag.error(f.mark(), f.name + ": " + quote(*text) + " needs a " + kind +
                                 " name after ':' (e.g. " + example + ")");
        return std::nullopt;
      }
      if (!is_token(name)) {
        diag.error(f.mark(), f.name + ": " + quote(name) + " is not a valid " + kind + " name");
        return std::nullopt;
      }
      h.kind = kind == "header" ? HashOn::Kind::header : HashOn::Kind::cookie;
      h.name = kind == "header" ? lowercase(name) : name;
      return h;
    }
  }
  if (*text == "client_ip" || *text == "path") {
    h.kind = *text == "path" ? HashOn::Kind::path : HashOn::Kind::client_ip;
    return h;
  }
  static constexpr std::string_view kPlain[] = {"client_ip", "path"};
  std::string suggestion = did_you_mean(*text, kPlain);
  if (suggestion.empty() && colon != std::string::npos) {
    // "heder:x-user-id": the kind is misspelt, the name is probably right.
    static constexpr std::string_view kNamed[] = {"header", "cookie"};
    if (auto kind = closest(std::string_view(*text).substr(0, colon), kNamed)) {
      suggestion = " (did you mean '" + std::string(*kind) + text->substr(colon) + "'?)";
    }
  }
  if (suggestion.empty()) {
    for (std::string_view v : kHashOnValues) {
      suggestion += (suggestion.empty() ? " (known: " : ", ") + std::string(v);
    }
    suggestion += ")";
  }
  diag.error(f.mark(), f.name + ": unknown value " + quote(*text) + suggestion);
  return std::nullopt;
}

// A name server: "10.0.0.2:53", "[fd00::2]:5353", or without a port (53).
std::optional<SocketAddress> read_name_server(Diagnostics& diag, const Field& f) {
  constexpr uint16_t kDnsPort = 53;
  if (f.value.IsScalar()) {
    const std::string& s = f.value.Scalar();
    if (s.size() > 2 && s.front() == '[' && s.back() == ']') {
      const std::string inner = s.substr(1, s.size() - 2);
      if (inner.find(':') != std::string::npos && is_ip_literal(inner)) {
        return SocketAddress{lowercase(inner), kDnsPort};
      }
    } else if (!s.empty() && s.find(':') == std::string::npos) {
      if (is_ip_literal(s)) return SocketAddress{s, kDnsPort};
      diag.error(f.mark(), f.name + ": " + quote(s) +
                               " must be an IP address (name servers are not looked up by name)");
      return std::nullopt;
    }
  }
  std::optional<SocketAddress> a = read_address(diag, f, /*bind=*/false);
  if (a && !is_ip_literal(a->host)) {
    diag.error(f.mark(), f.name + ": " + quote(a->host) +
                             " must be an IP address (name servers are not looked up by name)");
    return std::nullopt;
  }
  return a;
}

template <typename Keys>
std::vector<std::string_view> with(const Keys& core, const std::vector<std::string_view>& more) {
  std::vector<std::string_view> all(std::begin(core), std::end(core));
  all.insert(all.end(), more.begin(), more.end());
  return all;
}

// Section contexts over what the loader stashed.
class StashContext : public SectionContext {
 public:
  StashContext(Diagnostics& diag, const Config& config, const std::vector<StashedField>& root,
               const std::vector<StashedField>& listeners, const std::vector<StashedField>& routes)
      : diag_(diag), config_(config), root_(root), listeners_(listeners), routes_(routes) {}
  Diagnostics& diag() override { return diag_; }
  const Config& config() const override { return config_; }
  const Field* root(std::string_view key) const override {
    for (const auto& s : root_) {
      if (s.field.name == key) return &s.field;
    }
    return nullptr;
  }
  std::vector<Owned> listener_fields(std::string_view key) const override {
    return select(listeners_, key);
  }
  std::vector<Owned> route_fields(std::string_view key) const override {
    return select(routes_, key);
  }

 private:
  static std::vector<Owned> select(const std::vector<StashedField>& from, std::string_view key) {
    std::vector<Owned> out;
    for (const auto& s : from) {
      if (s.field.name == key) out.push_back({s.owner, &s.field});
    }
    return out;
  }
  Diagnostics& diag_;
  const Config& config_;
  const std::vector<StashedField>& root_;
  const std::vector<StashedField>& listeners_;
  const std::vector<StashedField>& routes_;
};

}  // namespace

std::string line_of(const YAML::Mark& m) { return "line " + std::to_string(m.line + 1); }

Loader::Loader(const std::string& file) : diag_(file) {
  config_.source = file;
  for (const FilterSchema& schema : FilterSchemas::all()) {
    for (const auto& k : schema.root_keys) filter_root_keys_.push_back(k);
    for (const auto& k : schema.listener_keys) filter_listener_keys_.push_back(k);
    for (const auto& k : schema.route_keys) filter_route_keys_.push_back(k);
  }
  root_keys_ = with(kRootKeys, filter_root_keys_);
  listener_keys_ = with(kListenerKeys, filter_listener_keys_);
  route_keys_ = with(core_route_keys(), filter_route_keys_);
}

void Loader::stash_filter_fields(const MapReader& m, const std::vector<std::string_view>& keys,
                                 const std::string& owner, std::vector<StashedField>& into) {
  for (std::string_view k : keys) {
    if (const Field* f = m.get(k)) into.push_back({owner, *f});
  }
}

void Loader::load_filter_sections() {
  StashContext context(diag_, config_, root_stash_, listener_stash_, route_stash_);
  for (const FilterSchema& schema : FilterSchemas::all()) {
    FilterConfigPtr parsed = schema.parse(context);
    config_.filter_configs.emplace_back(schema.name, std::move(parsed));
  }
}

namespace {

// An unquoted value that starts with `*` (a wildcard host, `*.example.com`) is a YAML alias to
// an anchor that does not exist; yaml-cpp's message says only that. Returns a hint to quote
// it, naming the value, or "" for any other error.
std::string alias_hint(std::string_view yaml, const YAML::Exception& e) {
  if (e.msg != YAML::ErrorMsg::UNKNOWN_ANCHOR || e.mark.is_null()) return {};
  size_t at = 0;
  for (int line = 0; line < e.mark.line && at != std::string_view::npos; ++line) {
    at = yaml.find('\n', at);
    if (at != std::string_view::npos) ++at;
  }
  if (at == std::string_view::npos) return {};
  at += static_cast<size_t>(e.mark.column);
  if (at >= yaml.size() || yaml[at] != '*') return "";
  size_t end = yaml.find_first_of(" \t\r\n,]}", at);
  std::string value(yaml.substr(at, end == std::string_view::npos ? end : end - at));
  return " (an unquoted value that starts with '*' is a YAML alias: quote it, \"" + value + "\")";
}

}  // namespace

LoadResult Loader::load(std::string_view yaml) {
  try {
    const std::vector<YAML::Node> docs = YAML::LoadAll(std::string(yaml));
    for (size_t i = 1; i < docs.size(); ++i) {
      if (!docs[i].IsNull()) {
        diag_.error(docs[i].Mark(),
                    "expected one YAML document, found " + std::to_string(docs.size()));
        break;
      }
    }
    load_root(docs.empty() ? YAML::Node() : docs.front());
    cross_check();
    load_filter_sections();
  } catch (const YAML::Exception& e) {
    diag_.error(e.mark, "YAML syntax error: " + e.msg + alias_hint(yaml, e));
  } catch (const std::exception& e) {
    diag_.error(YAML::Mark::null_mark(), std::string("cannot load config: ") + e.what());
  }
  LoadResult result;
  result.warnings = diag_.take_warnings();
  if (diag_.has_errors()) {
    result.errors = diag_.take_errors();
  } else {
    result.config = std::make_shared<const Config>(std::move(config_));
  }
  return result;
}

void Loader::load_root(const YAML::Node& doc) {
  if (doc.IsNull()) return;  // an empty file is an empty config
  MapReader root(diag_, Field::item("config", doc), "the top level", root_keys_);
  if (!root.is_map()) return;
  stash_filter_fields(root, filter_root_keys_, "", root_stash_);
  if (const Field* f = root.get("workers")) load_workers(*f);
  if (const Field* f = root.get("drain_timeout")) {
    if (auto d = read_duration(diag_, *f, /*allow_zero=*/true)) config_.drain_timeout = *d;
  }
  if (const Field* f = root.get("admin")) load_admin(*f);
  if (const Field* f = root.get("access_log")) load_access_log(*f);
  if (const Field* f = root.get("tracing")) load_tracing(*f);
  // Clusters first, so routes can be checked against them wherever they appear in the file.
  if (const Field* f = root.get("clusters"); f && expect_list(diag_, *f)) {
    for (const YAML::Node& node : f->value) load_cluster(node);
  }
  if (const Field* f = root.get("listeners"); f && expect_list(diag_, *f)) {
    for (const YAML::Node& node : f->value) load_listener(node);
  }
  if (const Field* f = root.get("routes"); f && expect_list(diag_, *f)) {
    for (const YAML::Node& node : f->value) load_route(node);
  }
  if (const Field* f = root.get("dns")) load_dns(*f);
}

void Loader::load_dns(const Field& f) {
  MapReader m(diag_, f, "dns", kDnsKeys);
  const Field* servers = m.get("servers");
  if (servers == nullptr || !expect_list(diag_, *servers)) return;
  if (servers->value.size() == 0) {
    diag_.error(servers->mark(),
                "servers: needs at least one address (leave 'dns' out to use /etc/resolv.conf)");
  }
  for (const YAML::Node& node : servers->value) {
    const Field item = Field::item("server", node);
    const std::optional<SocketAddress> a = read_name_server(diag_, item);
    if (!a) continue;
    const bool twice =
        std::any_of(config_.dns_servers.begin(), config_.dns_servers.end(),
                    [&](const SocketAddress& other) { return same_address(other, *a); });
    if (twice) {
      diag_.error(item.mark(), "server: " + a->str() + " is listed twice");
      continue;
    }
    config_.dns_servers.push_back(*a);
  }
}

void Loader::load_workers(const Field& f) {
  constexpr int64_t kMaxWorkers = 256;
  if (f.value.IsScalar() && f.value.Scalar() == "auto") {
    config_.workers = 0;
    return;
  }
  const bool integer = f.value.IsScalar() && !f.value.Scalar().empty() &&
                       f.value.Scalar().find_first_not_of("-0123456789") == std::string::npos;
  if (!integer) {
    diag_.error(f.mark(), "workers: expected 'auto' or an integer from 1 to " +
                              std::to_string(kMaxWorkers) + ", got " + describe(f.value));
    return;
  }
  if (auto n = read_integer(diag_, f, 1, kMaxWorkers)) config_.workers = static_cast<unsigned>(*n);
}

void Loader::load_admin(const Field& f) {
  MapReader m(diag_, f, "admin", kAdminKeys);
  if (!m.is_map()) return;
  Admin& admin = config_.admin;
  bool address_ok = true;
  if (const Field* a = m.get("address")) {
    if (auto addr = read_address(diag_, *a, /*bind=*/true)) {
      admin.address = *addr;
      admin_address_mark_ = a->mark();
    } else {
      address_ok = false;
    }
  }
  bool token_ok = true;
  if (const Field* t = m.get("token_file")) {
    token_ok = false;
    if (auto path = read_nonempty(diag_, *t)) {
      admin.token_file = resolve_path(*path);
      std::string error = read_token_file(admin.token_file, admin.token);
      if (error.empty()) {
        token_ok = true;
      } else {
        diag_.error(t->mark(), "token_file: " + error);
      }
    }
  }
  if (const Field* u = m.get("allow_unauthenticated")) {
    if (auto b = read_bool(diag_, *u)) admin.allow_unauthenticated = *b;
  }
  // Anyone who reaches an unauthenticated admin port can reload, drain and take hosts out of
  // rotation; off this machine that has to be asked for by name.
  if (!address_ok || !token_ok || !admin.token_file.empty() || is_loopback(admin.address)) return;
  const YAML::Mark at = admin_address_mark_.is_null() ? m.mark() : admin_address_mark_;
  if (admin.allow_unauthenticated) {
    diag_.warning(at, "address: the admin API on " + admin.address.str() +
                          " (not loopback) takes requests from anyone who can reach it "
                          "(allow_unauthenticated: true)");
  } else {
    diag_.error(at, "address: the admin API on " + admin.address.str() +
                        " (not loopback) needs 'token_file' (or 'allow_unauthenticated: true')");
  }
}

void Loader::load_access_log(const Field& f) {
  MapReader m(diag_, f, "access_log", kAccessLogKeys);
  if (const Field* p = m.get("path")) {
    if (auto s = read_nonempty(diag_, *p)) config_.access_log.path = *s;
  }
  if (const Field* fmt = m.get("format")) {
    if (auto s = read_nonempty(diag_, *fmt)) {
      if (std::find(std::begin(kLogFormats), std::end(kLogFormats), *s) == std::end(kLogFormats)) {
        diag_.error(fmt->mark(),
                    "format: unknown access log format " + quote(*s) + hint(*s, kLogFormats));
      } else {
        config_.access_log.format = *s;
      }
    }
  }
  if (const Field* fields = m.get("fields"); fields && expect_list(diag_, *fields)) {
    for (const YAML::Node& node : fields->value) {
      const Field item = Field::item("field", node);
      std::optional<std::string> name = read_nonempty(diag_, item);
      if (!name) continue;
      auto& chosen = config_.access_log.fields;
      if (std::find(std::begin(kAccessLogFields), std::end(kAccessLogFields), *name) ==
          std::end(kAccessLogFields)) {
        diag_.error(item.mark(), "fields: unknown access log field " + quote(*name) +
                                     hint(*name, kAccessLogFields));
      } else if (std::find(chosen.begin(), chosen.end(), *name) != chosen.end()) {
        diag_.error(item.mark(), "fields: " + quote(*name) + " is listed twice");
      } else {
        chosen.push_back(*name);
      }
    }
    if (fields->value.IsSequence() && fields->value.size() == 0) {
      diag_.error(fields->mark(), "fields: list at least one field (leave 'fields' out for all)");
    }
  }
}

void Loader::load_listener(const YAML::Node& node) {
  MapReader m(diag_, Field::item("listener", node), "listener", listener_keys_);
  if (!m.is_map()) return;
  Listener l;
  if (const Field* f = m.require("name")) {
    if (auto name = read_unique_name(diag_, *f, "listener", listener_names_)) l.name = *name;
  }
  stash_filter_fields(m, filter_listener_keys_, l.name, listener_stash_);
  if (const Field* f = m.require("address")) {
    if (auto addr = read_address(diag_, *f, /*bind=*/true)) {
      l.address = *addr;
      const auto same =
          std::find_if(listener_addresses_.begin(), listener_addresses_.end(),
                       [&](const BoundAddress& b) { return same_address(b.address, *addr); });
      if (same != listener_addresses_.end()) {
        diag_.error(f->mark(), "address: " + addr->str() + " is already used by listener " +
                                   quote(same->listener) + " at " + line_of(same->mark));
      } else {
        listener_addresses_.push_back({l.name, *addr, f->mark()});
      }
    }
  }
  if (const Field* f = m.get("limits")) load_limits(*f, l.limits);
  if (const Field* f = m.get("filters")) load_filters(*f, l.filters);
  if (const Field* f = m.get("trusted_proxies"); f && expect_list(diag_, *f)) {
    TrustedProxies check;
    for (const YAML::Node& node : f->value) {
      const Field item = Field::item("trusted proxy", node);
      std::string error;
      if (auto cidr = read_nonempty(diag_, item)) {
        if (check.add(*cidr, &error)) {
          l.trusted_proxies.push_back(*cidr);
        } else {
          diag_.error(item.mark(), "trusted_proxies: " + error);
        }
      }
    }
  }
  if (const Field* f = m.get("tls")) load_tls(*f, l.tls.emplace());
  if (const Field* f = m.get("http2")) {
    MapReader h(diag_, *f, "http2", kHttp2Keys);
    if (const Field* v = h.get("cleartext")) {
      if (auto b = read_bool(diag_, *v)) l.http2.cleartext = *b;
    }
    if (const Field* v = h.get("max_concurrent_streams")) {
      if (auto n = read_integer(diag_, *v, 1, 10000)) {
        l.http2.max_concurrent_streams = static_cast<uint32_t>(*n);
      }
    }
  }
  if (const Field* f = m.get("request_id")) {
    MapReader r(diag_, *f, "request_id", kRequestIdKeys);
    if (const Field* v = r.get("echo")) {
      if (auto b = read_bool(diag_, *v)) l.request_id.echo = *b;
    }
  }
  config_.listeners.push_back(std::move(l));
}

void Loader::load_limits(const Field& f, Limits& limits) {
  MapReader m(diag_, f, "limits", kLimitsKeys);
  if (const Field* v = m.get("max_connections")) {
    if (auto n = read_integer(diag_, *v, 1, 1'000'000)) {
      limits.max_connections = static_cast<uint32_t>(*n);
    }
  }
  if (const Field* v = m.get("max_connections_per_ip")) {
    if (auto n = read_integer(diag_, *v, 0, 1'000'000)) {
      limits.max_connections_per_ip = static_cast<uint32_t>(*n);
    }
  }
  if (const Field* v = m.get("max_request_header_bytes")) {
    if (auto n = read_size(diag_, *v, 1, 8 * kMiB)) limits.max_request_header_bytes = *n;
  }
  if (const Field* v = m.get("max_request_headers")) {
    if (auto n = read_integer(diag_, *v, 1, 10'000)) {
      limits.max_request_headers = static_cast<uint32_t>(*n);
    }
  }
  if (const Field* v = m.get("max_request_body_bytes")) {
    if (auto n = read_size(diag_, *v, 0, std::numeric_limits<uint64_t>::max())) {
      limits.max_request_body_bytes = *n;
    }
  }
  if (const Field* v = m.get("max_uri_bytes")) {
    if (auto n = read_size(diag_, *v, 1, 8 * kMiB)) limits.max_uri_bytes = *n;
  }
  if (const Field* v = m.get("header_timeout")) {
    if (auto d = read_duration(diag_, *v, /*allow_zero=*/false)) limits.header_timeout = *d;
  }
  if (const Field* v = m.get("body_timeout")) {
    if (auto d = read_duration(diag_, *v, /*allow_zero=*/false)) limits.body_timeout = *d;
  }
  if (const Field* v = m.get("request_timeout")) {
    if (auto d = read_duration(diag_, *v, /*allow_zero=*/true)) limits.request_timeout = *d;
  }
  if (const Field* v = m.get("idle_timeout")) {
    if (auto d = read_duration(diag_, *v, /*allow_zero=*/false)) limits.idle_timeout = *d;
  }
}

void Loader::load_filters(const Field& f, std::vector<std::string>& filters) {
  if (!expect_list(diag_, f)) return;
  for (const YAML::Node& node : f.value) {
    const Field item = Field::item("filter", node);
    const std::optional<std::string> name = read_nonempty(diag_, item);
    if (!name) continue;
    const FilterSchema* schema = FilterSchemas::find(*name);
    if (schema && schema->terminal) {
      diag_.error(item.mark(),
                  "filter " + quote(*name) + " is implicit: it always runs last; remove it");
    } else if (!schema) {
      std::vector<std::string_view> known;
      for (const FilterSchema& s : FilterSchemas::all()) {
        if (!s.terminal) known.push_back(s.name);
      }
      diag_.error(item.mark(), "unknown filter " + quote(*name) + hint(*name, known));
    } else if (std::find(filters.begin(), filters.end(), *name) != filters.end()) {
      diag_.error(item.mark(), "filter " + quote(*name) + " is listed twice");
    } else {
      filters.push_back(*name);
    }
  }
}

void Loader::load_cluster(const YAML::Node& node) {
  MapReader m(diag_, Field::item("cluster", node), "cluster", kClusterKeys);
  if (!m.is_map()) return;
  Cluster c;
  if (const Field* f = m.require("name")) {
    if (auto name = read_unique_name(diag_, *f, "cluster", cluster_names_)) c.name = *name;
  }
  if (const Field* f = m.require("endpoints"); f && expect_list(diag_, *f)) {
    if (f->value.size() == 0) {
      diag_.error(f->mark(), "endpoints: a cluster needs at least one endpoint");
    }
    for (const YAML::Node& e : f->value) load_endpoint(e, c);
  }
  bool lb_ok = true;  // false: lb has an error of its own, so hash_on is not checked against it
  if (const Field* f = m.get("lb")) {
    lb_ok = false;
    if (auto lb = read_nonempty(diag_, *f)) {
      if (std::find(std::begin(kLbPolicies), std::end(kLbPolicies), *lb) == std::end(kLbPolicies)) {
        diag_.error(f->mark(),
                    "lb: unknown load balancing policy " + quote(*lb) + hint(*lb, kLbPolicies));
      } else {
        c.lb = *lb;
        lb_ok = true;
      }
    }
  }
  if (const Field* f = m.get("hash_on")) {
    const std::optional<HashOn> h = read_hash_on(diag_, *f);
    const bool hashing = std::find(std::begin(kHashingPolicies), std::end(kHashingPolicies),
                                   c.lb) != std::end(kHashingPolicies);
    if (lb_ok && !hashing) {
      diag_.error(f->key.Mark(),
                  "hash_on: applies only to lb: ring_hash or maglev (this "
                  "cluster's lb is " +
                      quote(c.lb) + ")");
    } else if (h) {
      c.hash_on = *h;
    }
  }
  if (const Field* f = m.get("health_check")) load_health_check(*f, c.health_check.emplace());
  if (const Field* f = m.get("outlier_detection")) {
    load_outlier_detection(*f, c.outlier_detection.emplace());
  }
  if (const Field* f = m.get("circuit_breakers")) {
    MapReader b(diag_, *f, "circuit_breakers", kCircuitBreakerKeys);
    for (std::string_view key : kCircuitBreakerKeys) {
      const Field* v = b.get(key);
      if (v == nullptr) continue;
      const std::optional<int64_t> n = read_integer(diag_, *v, 1, 10'000'000);
      if (!n) continue;
      std::optional<uint32_t>& limit = key == "max_connections" ? c.circuit_breakers.max_connections
                                       : key == "max_pending_requests"
                                           ? c.circuit_breakers.max_pending_requests
                                           : c.circuit_breakers.max_requests;
      limit = static_cast<uint32_t>(*n);
    }
  }
  if (const Field* f = m.get("panic_threshold")) {
    if (auto p = read_percent(diag_, *f)) c.panic_threshold_percent = *p;
  }
  if (const Field* f = m.get("dns_refresh")) {
    if (auto d = read_duration(diag_, *f, /*allow_zero=*/true)) {
      if (*d < std::chrono::seconds(1)) {
        diag_.error(f->mark(), "dns_refresh: must be at least 1s, got " + f->value.Scalar());
      } else {
        c.dns_refresh = *d;
      }
    }
  }
  if (const Field* f = m.get("connect_timeout")) {
    if (auto d = read_duration(diag_, *f, /*allow_zero=*/false)) c.connect_timeout = *d;
  }
  if (const Field* f = m.get("idle_timeout")) {
    if (auto d = read_duration(diag_, *f, /*allow_zero=*/false)) c.idle_timeout = *d;
  }
  if (const Field* f = m.get("max_idle_connections")) {
    if (auto n = read_integer(diag_, *f, 0, 100'000)) {
      c.max_idle_connections = static_cast<uint32_t>(*n);
    }
  }
  if (const Field* f = m.get("protocol")) {
    if (auto p = read_nonempty(diag_, *f)) {
      if (*p == "h2") {
        c.protocol = Cluster::Protocol::h2;
      } else if (*p != "http1") {
        // "http2", "h2c", "HTTP/2": the spelling differs, the meaning is clear.
        std::string suggestion = p->find('2') != std::string::npos ? " (did you mean 'h2'?)"
                                                                   : hint(*p, kClusterProtocols);
        diag_.error(f->mark(), "protocol: unknown upstream protocol " + quote(*p) + suggestion);
      }
    }
  }
  if (const Field* f = m.get("max_concurrent_streams")) {
    if (auto n = read_integer(diag_, *f, 1, 1'000'000)) {
      c.max_concurrent_streams = static_cast<uint32_t>(*n);
    }
  }
  if (const Field* f = m.get("tls")) {
    MapReader t(diag_, *f, "tls", kClusterTlsKeys);
    ClusterTls& tls = c.tls.emplace();
    if (const Field* v = t.get("sni")) {
      if (auto s = read_nonempty(diag_, *v)) tls.sni = *s;
    }
    if (const Field* v = t.get("verify")) {
      if (auto b = read_bool(diag_, *v)) tls.verify = *b;
    }
    if (const Field* v = t.get("ca_file")) {
      if (auto s = read_nonempty(diag_, *v)) {
        tls.ca_file = resolve_path(*s);
        if (std::string error = check_ca_file(tls.ca_file); !error.empty()) {
          diag_.error(v->mark(), "ca_file: " + error);
        }
      }
    }
  }
  config_.clusters.push_back(std::move(c));
}

void Loader::load_health_check(const Field& f, HealthCheck& hc) {
  MapReader m(diag_, f, "health_check", kHealthCheckKeys);
  if (const Field* v = m.get("type")) {
    if (auto t = read_nonempty(diag_, *v)) {
      if (*t == "tcp") {
        hc.type = HealthCheck::Type::tcp;
      } else if (*t != "http") {
        diag_.error(v->mark(),
                    "type: unknown health check type " + quote(*t) + hint(*t, kHealthCheckTypes));
      }
    }
  }
  if (hc.type == HealthCheck::Type::tcp) {
    for (std::string_view key : kHttpHealthCheckKeys) {
      if (const Field* v = m.get(key)) {
        diag_.error(v->key.Mark(), v->name + ": applies only to health checks of type http");
      }
    }
  }
  if (const Field* v = m.get("path"); v && hc.type == HealthCheck::Type::http) {
    if (auto p = read_string(diag_, *v)) {
      // It becomes the request target of the probe, verbatim.
      const bool printable = std::none_of(p->begin(), p->end(), [](char c) {
        return static_cast<unsigned char>(c) <= ' ' || c == '\x7f';
      });
      if (p->empty() || p->front() != '/') {
        diag_.error(v->mark(), "path: must start with '/', got " + describe(v->value));
      } else if (!printable) {
        diag_.error(v->mark(), "path: must not contain spaces or control characters");
      } else {
        hc.path = *p;
      }
    }
  }
  if (const Field* v = m.get("host"); v && hc.type == HealthCheck::Type::http) {
    if (auto host = read_nonempty(diag_, *v)) {
      const std::string lower = lowercase(*host);
      const bool v6 = lower.size() > 2 && lower.front() == '[' && lower.back() == ']' &&
                      lower.find(':') != std::string::npos &&
                      is_ip_literal(std::string_view(lower).substr(1, lower.size() - 2));
      if (!v6 && (lower.find(':') != std::string::npos || !is_hostname(lower))) {
        diag_.error(v->mark(), "host: " + quote(*host) + " is not a host name or IP address");
      } else {
        hc.host = lower;
      }
    }
  }
  if (const Field* v = m.get("expected_statuses");
      v && hc.type == HealthCheck::Type::http && expect_list(diag_, *v)) {
    if (v->value.size() == 0) {
      diag_.error(v->mark(),
                  "expected_statuses: needs at least one status or range (e.g. [200-399])");
    }
    std::vector<std::pair<unsigned, unsigned>> ranges;
    for (const YAML::Node& node : v->value) {
      if (auto r = read_status_range(diag_, Field::item("expected_statuses", node))) {
        ranges.push_back(*r);
      }
    }
    if (!ranges.empty()) hc.expected_statuses = std::move(ranges);
  }
  const Field* interval = m.get("interval");
  const Field* timeout = m.get("timeout");
  bool times_ok = true;
  if (interval) {
    const std::optional<Duration> d = read_duration(diag_, *interval, /*allow_zero=*/false);
    times_ok = d.has_value();
    if (d) hc.interval = *d;
  }
  if (timeout) {
    const std::optional<Duration> d = read_duration(diag_, *timeout, /*allow_zero=*/false);
    times_ok = times_ok && d.has_value();
    if (d) hc.timeout = *d;
  }
  // A probe that may outlast the interval would overlap the next one.
  if (times_ok && hc.timeout > hc.interval) {
    if (timeout) {
      diag_.error(timeout->mark(), "timeout: must be at most the interval (" +
                                       format_duration(hc.interval) + "), got " +
                                       timeout->value.Scalar());
    } else {
      diag_.error(interval->mark(), "interval: must be at least the timeout (" +
                                        format_duration(hc.timeout) + ", the default), got " +
                                        interval->value.Scalar());
    }
  }
  if (const Field* v = m.get("jitter")) {
    if (auto p = read_percent(diag_, *v)) hc.jitter_percent = *p;
  }
  if (const Field* v = m.get("healthy_threshold")) {
    if (auto n = read_integer(diag_, *v, 1, 100)) hc.healthy_threshold = static_cast<unsigned>(*n);
  }
  if (const Field* v = m.get("unhealthy_threshold")) {
    if (auto n = read_integer(diag_, *v, 1, 100)) {
      hc.unhealthy_threshold = static_cast<unsigned>(*n);
    }
  }
}

void Loader::load_outlier_detection(const Field& f, OutlierDetection& od) {
  MapReader m(diag_, f, "outlier_detection", kOutlierKeys);
  if (const Field* v = m.get("consecutive_failures")) {
    if (auto n = read_integer(diag_, *v, 1, 1000)) {
      od.consecutive_failures = static_cast<unsigned>(*n);
    }
  }
  const Field* base = m.get("base_ejection_time");
  const Field* max = m.get("max_ejection_time");
  bool times_ok = true;
  if (base) {
    const std::optional<Duration> d = read_duration(diag_, *base, /*allow_zero=*/false);
    times_ok = d.has_value();
    if (d) od.base_ejection_time = *d;
  }
  if (max) {
    const std::optional<Duration> d = read_duration(diag_, *max, /*allow_zero=*/false);
    times_ok = times_ok && d.has_value();
    if (d) od.max_ejection_time = *d;
  }
  if (times_ok && od.max_ejection_time < od.base_ejection_time) {
    if (max) {
      diag_.error(max->mark(), "max_ejection_time: must be at least base_ejection_time (" +
                                   format_duration(od.base_ejection_time) + "), got " +
                                   max->value.Scalar());
    } else {
      diag_.error(base->mark(), "base_ejection_time: must be at most max_ejection_time (" +
                                    format_duration(od.max_ejection_time) + ", the default), got " +
                                    base->value.Scalar());
    }
  }
  if (const Field* v = m.get("max_ejection_percent")) {
    if (auto n = read_integer(diag_, *v, 0, 100)) {
      od.max_ejection_percent = static_cast<unsigned>(*n);
    }
  }
}

void Loader::load_endpoint(const YAML::Node& node, Cluster& cluster) {
  const Field item = Field::item("endpoint", node);
  Endpoint e;
  if (node.IsMap()) {
    MapReader m(diag_, item, "endpoint", kEndpointKeys);
    const Field* a = m.require("address");
    const std::optional<SocketAddress> addr = a ? read_address(diag_, *a, false) : std::nullopt;
    if (const Field* w = m.get("weight")) {
      if (auto n = read_integer(diag_, *w, 1, 10'000)) e.weight = static_cast<uint32_t>(*n);
    }
    if (!addr) return;
    e.address = *addr;
  } else {
    const std::optional<SocketAddress> addr = read_address(diag_, item, false);
    if (!addr) return;
    e.address = *addr;
  }
  for (const Endpoint& other : cluster.endpoints) {
    if (same_address(other.address, e.address)) {
      diag_.error(item.mark(),
                  "endpoint: " + e.address.str() + " is listed twice" +
                      (cluster.name.empty() ? "" : " in cluster " + quote(cluster.name)));
      return;
    }
  }
  cluster.endpoints.push_back(std::move(e));
}

void Loader::cross_check() {
  std::vector<std::string_view> cluster_names;
  for (const auto& [name, mark] : cluster_names_) cluster_names.push_back(name);
  for (const ClusterRef& ref : cluster_refs_) {
    if (cluster_names_.count(ref.cluster)) continue;
    diag_.error(ref.mark, "cluster: unknown cluster " + quote(ref.cluster) +
                              did_you_mean(ref.cluster, cluster_names));
  }
  for (const BoundAddress& l : listener_addresses_) {
    if (!admin_address_mark_.is_null() && same_address(l.address, config_.admin.address)) {
      diag_.error(admin_address_mark_, "address: " + l.address.str() +
                                           " is already used by listener " + quote(l.listener) +
                                           " at " + line_of(l.mark));
    }
  }
  if (config_.listeners.empty()) {
    diag_.warning(YAML::Mark::null_mark(), "no listeners: only the admin API will be served");
  }
  check_shadowed_routes();
}

}  // namespace detail

LoadResult load_string(std::string_view yaml, const std::string& file_name) {
  return detail::Loader(file_name).load(yaml);
}

LoadResult load_file(const std::string& path) {
  const auto fail = [&](int err) {
    LoadResult result;
    result.errors.push_back(
        Diagnostic{path, 0, 0, "cannot read file: " + std::string(strerror(err))});
    return result;
  };
  std::string text;
  if (int err = detail::read_file_text(path, text)) return fail(err);
  return load_string(text, path);
}

}  // namespace sluice::config
