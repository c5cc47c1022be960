// YAML → Config: routes (match conditions and the one action each route takes).
#include <algorithm>
#include <array>

#include "config/loader.h"
#include "config/values.h"

namespace sluice::config::detail {
namespace {

constexpr std::string_view kRouteKeys[] = {
    "name",    "match",   "cluster", "respond",  "redirect",
    "rewrite", "timeout", "retry",   "upgrades", "upgrade_idle_timeout"};
constexpr std::string_view kMatchKeys[] = {"listeners", "hosts", "path", "methods", "headers"};
constexpr std::string_view kPathKeys[] = {"prefix", "exact", "regex"};
constexpr std::string_view kHeaderMatchKeys[] = {"name", "exact", "regex", "present"};
constexpr std::string_view kRespondKeys[] = {"status", "body", "headers"};
constexpr std::string_view kRedirectKeys[] = {"status", "scheme", "host",
                                              "port",   "path",   "strip_query"};
constexpr std::string_view kRewriteKeys[] = {"prefix"};
constexpr std::string_view kRetryKeys[] = {"attempts", "on", "per_try_timeout", "budget_percent",
                                           "retry_non_idempotent"};
constexpr std::string_view kRetryConditions[] = {"connect-failure", "reset", "refused-stream",
                                                 "per-try-timeout"};
constexpr std::string_view kRedirectSchemes[] = {"http", "https"};
constexpr unsigned kRedirectStatuses[] = {301, 302, 303, 307, 308};
// Framing headers sluice derives from the body; letting config set them would let a route
// produce a response whose framing disagrees with its body.
constexpr std::string_view kFramingHeaders[] = {"content-length", "transfer-encoding",
                                                "connection"};

constexpr std::string_view kStandardMethods[] = {"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                                 "CONNECT", "OPTIONS", "TRACE", "PATCH"};

std::string uppercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

std::string or_list(std::span<const std::string_view> keys) {
  std::string out;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i > 0) out += i + 1 == keys.size() ? " or " : ", ";
    out += quote(keys[i]);
  }
  return out;
}

bool before(const Field* a, const Field* b) {
  const YAML::Mark ma = a->key.Mark();
  const YAML::Mark mb = b->key.Mark();
  return std::pair(ma.line, ma.column) < std::pair(mb.line, mb.column);
}

// The fields of `m` among `keys`, in file order. Reports none or several at the map or at the
// extra keys; returns the first one present (or null).
const Field* one_of(Diagnostics& diag, const MapReader& m, std::span<const std::string_view> keys,
                    const std::string& who) {
  std::vector<const Field*> present;
  for (std::string_view k : keys) {
    if (const Field* f = m.get(k)) present.push_back(f);
  }
  std::sort(present.begin(), present.end(), before);
  if (present.empty()) {
    if (m.is_map()) diag.error(m.mark(), who + " needs one of " + or_list(keys));
    return nullptr;
  }
  for (size_t i = 1; i < present.size(); ++i) {
    diag.error(present[i]->key.Mark(), who + " has both " + quote(present[0]->name) + " and " +
                                           quote(present[i]->name) + "; set only one of " +
                                           or_list(keys));
  }
  return present.front();
}

std::optional<std::string> read_path(Diagnostics& diag, const Field& f) {
  std::optional<std::string> s = read_string(diag, f);
  if (s && (s->empty() || s->front() != '/')) {
    diag.error(f.mark(), f.name + ": must start with '/', got " + describe(f.value));
    return std::nullopt;
  }
  return s;
}

// "api.example.com", "*.example.com", "127.0.0.1" or "[::1]"; lowercased.
std::optional<std::string> read_host_pattern(Diagnostics& diag, const Field& f) {
  std::optional<std::string> s = read_nonempty(diag, f);
  if (!s) return std::nullopt;
  std::string host = lowercase(*s);
  if (host == "*") {
    diag.error(f.mark(),
               f.name + ": '*' is not a host pattern; leave 'hosts' out to match any host");
    return std::nullopt;
  }
  const bool wildcard = host.starts_with("*.");
  const bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
  const std::string_view name = wildcard    ? std::string_view(host).substr(2)
                                : bracketed ? std::string_view(host).substr(1, host.size() - 2)
                                            : std::string_view(host);
  const bool ok = bracketed ? name.find(':') != std::string_view::npos && is_ip_literal(name)
                            : name.find(':') == std::string_view::npos && is_hostname(name) &&
                                  !(wildcard && is_ip_literal(name));
  if (!ok) {
    diag.error(f.mark(), f.name + ": " + quote(*s) +
                             " is not a host name or a wildcard like '*.example.com'");
    return std::nullopt;
  }
  return host;
}

std::optional<std::string> read_token(Diagnostics& diag, const Field& f, std::string_view what) {
  std::optional<std::string> s = read_nonempty(diag, f);
  if (s && !is_token(*s)) {
    diag.error(f.mark(), f.name + ": " + quote(*s) + " is not a valid " + std::string(what));
    return std::nullopt;
  }
  return s;
}

// Shadowing (check_shadowed_routes): does `earlier` match every request `later` matches? Each
// test may answer "no" when unsure (a missed warning), never "yes" (a false one).

// Every element of `later` is in `earlier`; an empty list means "any", so only an empty
// `earlier` covers an empty `later`.
bool list_covers(const std::vector<std::string>& earlier, const std::vector<std::string>& later) {
  if (earlier.empty()) return true;
  if (later.empty()) return false;
  return std::all_of(later.begin(), later.end(), [&](const std::string& x) {
    return std::find(earlier.begin(), earlier.end(), x) != earlier.end();
  });
}

// Host patterns are lowercased by the loader; one trailing dot is ignored, as when matching.
std::string_view without_trailing_dot(std::string_view host) {
  if (host.ends_with('.')) host.remove_suffix(1);
  return host;
}

// Every host `later` matches, `earlier` matches: the same pattern, or earlier "*.example.com"
// and later "a.example.com" or "*.a.example.com".
bool host_covers(std::string_view earlier, std::string_view later) {
  earlier = without_trailing_dot(earlier);
  later = without_trailing_dot(later);
  if (earlier == later) return true;
  if (!earlier.starts_with("*.")) return false;
  const std::string_view suffix = earlier.substr(1);  // ".example.com"
  return later.size() > suffix.size() && later.ends_with(suffix);
}

bool hosts_cover(const std::vector<std::string>& earlier, const std::vector<std::string>& later) {
  if (earlier.empty()) return true;
  if (later.empty()) return false;
  return std::all_of(later.begin(), later.end(), [&](const std::string& l) {
    return std::any_of(earlier.begin(), earlier.end(),
                       [&](const std::string& e) { return host_covers(e, l); });
  });
}

bool path_covers(const PathMatch& earlier, const PathMatch& later) {
  switch (earlier.kind) {
    case PathMatch::Kind::any:
      return true;
    case PathMatch::Kind::prefix:
      // Every origin-form path starts with '/'.
      if (earlier.value == "/") return true;
      return (later.kind == PathMatch::Kind::prefix || later.kind == PathMatch::Kind::exact) &&
             later.value.starts_with(earlier.value);
    case PathMatch::Kind::exact:
      return later.kind == PathMatch::Kind::exact && later.value == earlier.value;
    case PathMatch::Kind::regex:
      // Regex containment is not decided; the same expression is the only sure case.
      return later.kind == PathMatch::Kind::regex && later.value == earlier.value;
  }
  return false;
}

// Every header condition of `earlier` is also one of `later`'s, to the letter.
bool headers_cover(const std::vector<HeaderMatch>& earlier, const std::vector<HeaderMatch>& later) {
  return std::all_of(earlier.begin(), earlier.end(), [&](const HeaderMatch& e) {
    return std::any_of(later.begin(), later.end(), [&](const HeaderMatch& l) {
      return l.name == e.name && l.kind == e.kind && l.value == e.value;
    });
  });
}

bool shadows(const RouteMatch& earlier, const RouteMatch& later) {
  return list_covers(earlier.listeners, later.listeners) &&
         list_covers(earlier.methods, later.methods) && hosts_cover(earlier.hosts, later.hosts) &&
         path_covers(earlier.path, later.path) && headers_cover(earlier.headers, later.headers);
}

bool matches_everything(const RouteMatch& m) {
  return m.listeners.empty() && m.hosts.empty() && m.path.kind == PathMatch::Kind::any &&
         m.methods.empty() && m.headers.empty();
}

}  // namespace

std::span<const std::string_view> core_route_keys() { return kRouteKeys; }

void Loader::load_route(const YAML::Node& node) {
  MapReader m(diag_, Field::item("route", node), "route", route_keys_);
  if (!m.is_map()) return;
  Route r;
  if (const Field* f = m.require("name")) {
    if (auto name = read_unique_name(diag_, *f, "route", route_names_)) r.name = *name;
  }
  stash_filter_fields(m, filter_route_keys_, r.name, route_stash_);
  const std::string who = r.name.empty() ? "route" : "route " + quote(r.name);
  if (const Field* f = m.get("match")) load_match(*f, r.match);

  static constexpr std::string_view kActions[] = {"cluster", "respond", "redirect"};
  one_of(diag_, m, kActions, who);
  // Each action present is checked, even when there are several, so one run reports all.
  if (const Field* f = m.get("cluster")) {
    if (auto name = read_nonempty(diag_, *f)) {
      r.cluster = *name;
      cluster_refs_.push_back({*name, f->mark()});
    }
  }
  if (const Field* f = m.get("respond")) load_respond(*f, r.respond.emplace());
  if (const Field* f = m.get("redirect")) load_redirect(*f, r.redirect.emplace());
  if (const Field* f = m.get("rewrite")) load_rewrite(*f, r, m.get("cluster") != nullptr);
  if (const Field* f = m.get("timeout")) {
    if (auto d = read_duration(diag_, *f, /*allow_zero=*/false)) r.timeout = *d;
  }
  // After timeout: per_try_timeout is checked against it.
  if (const Field* f = m.get("retry")) load_retry(*f, r, m.get("cluster") != nullptr);
  if (const Field* f = m.get("upgrades"); f && expect_list(diag_, *f)) {
    r.upgrades.clear();
    for (const YAML::Node& node : f->value) {
      const Field item = Field::item("upgrade", node);
      // protocol-name ["/" protocol-version] (RFC 9110 §7.8), each a token.
      std::optional<std::string> protocol = read_nonempty(diag_, item);
      if (!protocol) continue;
      const size_t slash = protocol->find('/');
      if (!is_token(protocol->substr(0, slash)) ||
          (slash != std::string::npos && !is_token(protocol->substr(slash + 1)))) {
        diag_.error(item.mark(), "upgrades: " + quote(*protocol) +
                                     " is not a protocol (a token, optionally /version)");
        continue;
      }
      *protocol = lowercase(*protocol);
      if (*protocol == "h2c") {
        // Clients get HTTP/2 from sluice itself; an h2c upgrade is never forwarded.
        diag_.error(item.mark(),
                    "upgrades: 'h2c' cannot be forwarded (sluice speaks HTTP/2 to "
                    "clients itself: see listeners[].http2)");
        continue;
      }
      r.upgrades.push_back(*protocol);
    }
  }
  if (const Field* f = m.get("upgrade_idle_timeout")) {
    if (auto d = read_duration(diag_, *f, /*allow_zero=*/false)) r.upgrade_idle_timeout = *d;
  }
  route_marks_.push_back(m.mark());
  config_.routes.push_back(std::move(r));
}

void Loader::load_match(const Field& f, RouteMatch& match) {
  MapReader m(diag_, f, "match", kMatchKeys);
  if (const Field* listeners = m.get("listeners"))
    load_match_listeners(*listeners, match.listeners);
  if (const Field* hosts = m.get("hosts"); hosts && expect_list(diag_, *hosts)) {
    for (const YAML::Node& node : hosts->value) {
      if (auto h = read_host_pattern(diag_, Field::item("host", node))) match.hosts.push_back(*h);
    }
  }
  if (const Field* path = m.get("path")) load_path(*path, match.path);
  if (const Field* methods = m.get("methods"); methods && expect_list(diag_, *methods)) {
    for (const YAML::Node& node : methods->value) {
      const Field item = Field::item("method", node);
      std::optional<std::string> method = read_token(diag_, item, "method token");
      if (!method) continue;
      // Methods are case-sensitive (RFC 9110 §9.1), so "get" is legal but never matches GET.
      const std::string upper = uppercase(*method);
      if (upper != *method && std::find(std::begin(kStandardMethods), std::end(kStandardMethods),
                                        upper) != std::end(kStandardMethods)) {
        diag_.warning(item.mark(), "method " + quote(*method) +
                                       " is case-sensitive and does not "
                                       "match " +
                                       quote(upper) + " requests");
      }
      match.methods.push_back(*method);
    }
  }
  if (const Field* headers = m.get("headers"); headers && expect_list(diag_, *headers)) {
    for (const YAML::Node& node : headers->value) load_header_match(node, match.headers);
  }
}

// Listeners are loaded before routes, so names are checked here.
void Loader::load_match_listeners(const Field& f, std::vector<std::string>& listeners) {
  if (!expect_list(diag_, f)) return;
  if (f.value.size() == 0) {
    diag_.error(f.mark(),
                "listeners: needs at least one listener (to match on every listener, leave "
                "'listeners' out)");
    return;
  }
  std::vector<std::string_view> known;
  for (const auto& [name, mark] : listener_names_) known.push_back(name);
  for (const YAML::Node& node : f.value) {
    const Field item = Field::item("listener", node);
    const std::optional<std::string> name = read_nonempty(diag_, item);
    if (!name) continue;
    if (!listener_names_.count(*name)) {
      diag_.error(item.mark(), "listeners: unknown listener " + quote(*name) + hint(*name, known));
    } else if (std::find(listeners.begin(), listeners.end(), *name) != listeners.end()) {
      diag_.error(item.mark(), "listeners: " + quote(*name) + " is listed twice");
    } else {
      listeners.push_back(*name);
    }
  }
}

void Loader::check_shadowed_routes() {
  const std::vector<Route>& routes = config_.routes;
  for (size_t j = 1; j < routes.size(); ++j) {
    for (size_t i = 0; i < j; ++i) {
      if (!shadows(routes[i].match, routes[j].match)) continue;
      diag_.warning(route_marks_[j],
                    "route " + quote(routes[j].name) + " can never match: route " +
                        quote(routes[i].name) + " at " + line_of(route_marks_[i]) +
                        (matches_everything(routes[i].match) ? " matches every request"
                                                             : " matches every request it would"));
      break;  // the first route that hides it is enough
    }
  }
}

void Loader::load_path(const Field& f, PathMatch& path) {
  MapReader m(diag_, f, "path", kPathKeys);
  const Field* kind = one_of(diag_, m, kPathKeys, "path");
  if (kind == nullptr) return;
  std::optional<std::string> value;
  if (kind->name == "regex") {
    value = read_regex(diag_, *kind);
    path.kind = PathMatch::Kind::regex;
  } else {
    value = read_path(diag_, *kind);
    path.kind = kind->name == "prefix" ? PathMatch::Kind::prefix : PathMatch::Kind::exact;
  }
  if (value) path.value = *value;
}

void Loader::load_header_match(const YAML::Node& node, std::vector<HeaderMatch>& headers) {
  MapReader m(diag_, Field::item("header match", node), "header match", kHeaderMatchKeys);
  if (!m.is_map()) return;
  HeaderMatch h;
  if (const Field* name = m.require("name")) {
    if (auto n = read_token(diag_, *name, "header name")) h.name = lowercase(*n);
  }
  static constexpr std::string_view kKinds[] = {"exact", "regex", "present"};
  const Field* kind = one_of(diag_, m, kKinds, "header match");
  if (kind == nullptr) return;
  if (kind->name == "exact") {
    h.kind = HeaderMatch::Kind::exact;
    if (auto v = read_string(diag_, *kind)) h.value = *v;
  } else if (kind->name == "regex") {
    h.kind = HeaderMatch::Kind::regex;
    if (auto v = read_regex(diag_, *kind)) h.value = *v;
  } else {
    h.kind = HeaderMatch::Kind::present;
    if (auto present = read_bool(diag_, *kind); present && !*present) {
      diag_.error(kind->mark(),
                  "present: only 'true' is supported (to ignore a header, "
                  "leave it out of the match)");
    }
  }
  headers.push_back(std::move(h));
}

void Loader::load_respond(const Field& f, Respond& respond) {
  MapReader m(diag_, f, "respond", kRespondKeys);
  if (const Field* s = m.get("status")) {
    if (auto n = read_integer(diag_, *s, 100, 599)) respond.status = static_cast<unsigned>(*n);
  }
  if (const Field* b = m.get("body")) {
    if (auto s = read_string(diag_, *b)) respond.body = *s;
  }
  if (const Field* h = m.get("headers")) {
    load_header_map(*h, kFramingHeaders, "is set by sluice from the body", respond.headers);
  }
}

void Loader::load_header_map(const Field& f, std::span<const std::string_view> reserved,
                             std::string_view reserved_why,
                             std::vector<std::pair<std::string, std::string>>& headers) {
  if (!f.value.IsMap()) {
    diag_.error(f.mark(), "headers: expected a map, got " + describe(f.value));
    return;
  }
  for (auto it = f.value.begin(); it != f.value.end(); ++it) {
    const Field name_field{"header name", it->first, it->first};
    const std::optional<std::string> name = read_token(diag_, name_field, "header name");
    const std::optional<std::string> value =
        read_string(diag_, Field{name ? *name : "header", it->first, it->second});
    if (!name || !value) continue;
    const std::string lower = lowercase(*name);
    if (std::find(reserved.begin(), reserved.end(), lower) != reserved.end()) {
      diag_.error(name_field.mark(),
                  "header " + quote(*name) + " " + std::string(reserved_why) + "; remove it");
      continue;
    }
    if (value->find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      diag_.error(it->second.Mark(), *name + ": header values must not contain CR, LF or NUL");
      continue;
    }
    const bool duplicate = std::any_of(headers.begin(), headers.end(),
                                       [&](const auto& h) { return lowercase(h.first) == lower; });
    if (duplicate) {
      diag_.error(name_field.mark(), "duplicate header " + quote(*name));
      continue;
    }
    headers.emplace_back(*name, *value);
  }
}

void Loader::load_redirect(const Field& f, Redirect& redirect) {
  MapReader m(diag_, f, "redirect", kRedirectKeys);
  if (const Field* s = m.get("status")) {
    if (auto n = read_integer(diag_, *s, 0, 999)) {
      const unsigned status = static_cast<unsigned>(*n);
      if (std::find(std::begin(kRedirectStatuses), std::end(kRedirectStatuses), status) ==
          std::end(kRedirectStatuses)) {
        diag_.error(s->mark(), "status: a redirect status must be 301, 302, 303, 307 or 308, got " +
                                   std::to_string(status));
      } else {
        redirect.status = status;
      }
    }
  }
  if (const Field* s = m.get("scheme")) {
    if (auto scheme = read_nonempty(diag_, *s)) {
      const std::string lower = lowercase(*scheme);
      if (std::find(std::begin(kRedirectSchemes), std::end(kRedirectSchemes), lower) ==
          std::end(kRedirectSchemes)) {
        diag_.error(s->mark(), "scheme: expected 'http' or 'https', got " + quote(*scheme) +
                                   did_you_mean(lower, kRedirectSchemes));
      } else {
        redirect.scheme = lower;
      }
    }
  }
  if (const Field* h = m.get("host")) {
    if (auto host = read_nonempty(diag_, *h)) {
      const std::string lower = lowercase(*host);
      // IPv6 literals go in brackets, as they will appear in the Location URL.
      const bool v6 = lower.size() > 2 && lower.front() == '[' && lower.back() == ']' &&
                      lower.find(':') != std::string::npos &&
                      is_ip_literal(std::string_view(lower).substr(1, lower.size() - 2));
      if (!v6 && (lower.find(':') != std::string::npos || !is_hostname(lower))) {
        diag_.error(h->mark(), "host: " + quote(*host) +
                                   " is not a host name or IP address (set the port with 'port')");
      } else {
        redirect.host = lower;
      }
    }
  }
  if (const Field* p = m.get("port")) {
    if (auto n = read_integer(diag_, *p, 1, 65535)) redirect.port = static_cast<uint16_t>(*n);
  }
  if (const Field* p = m.get("path")) {
    if (auto path = read_path(diag_, *p)) redirect.path = *path;
  }
  if (const Field* q = m.get("strip_query")) {
    if (auto b = read_bool(diag_, *q)) redirect.strip_query = *b;
  }
  if (m.is_map() && !m.get("scheme") && !m.get("host") && !m.get("port") && !m.get("path") &&
      !redirect.strip_query) {
    diag_.warning(m.mark(), "redirect changes nothing in the URL, so clients will loop");
  }
}

void Loader::load_rewrite(const Field& f, Route& route, bool has_cluster) {
  MapReader m(diag_, f, "rewrite", kRewriteKeys);
  const Field* prefix = m.require("prefix");
  if (!has_cluster) {
    diag_.error(f.key.Mark(), "rewrite: applies only to routes that forward to a 'cluster'");
  }
  if (prefix) {
    if (auto p = read_path(diag_, *prefix)) route.rewrite_prefix = *p;
  }
}

void Loader::load_retry(const Field& f, Route& route, bool has_cluster) {
  MapReader m(diag_, f, "retry", kRetryKeys);
  if (!has_cluster) {
    diag_.error(f.key.Mark(), "retry: applies only to routes that forward to a 'cluster'");
  }
  RetryPolicy& retry = route.retry.emplace();
  if (const Field* v = m.get("attempts")) {
    if (auto n = read_integer(diag_, *v, 1, 10)) retry.attempts = static_cast<unsigned>(*n);
  }
  if (const Field* on = m.get("on"); on && expect_list(diag_, *on)) {
    if (on->value.size() == 0) {
      diag_.error(on->mark(),
                  "on: needs at least one condition (to never retry, leave 'retry' out)");
    }
    // The list replaces the default conditions.
    retry.on_connect_failure = retry.on_reset = retry.on_refused_stream = false;
    retry.on_per_try_timeout = false;
    std::vector<std::string> seen;
    for (const YAML::Node& node : on->value) {
      const Field item = Field::item("on", node);
      const std::optional<std::string> text = read_nonempty(diag_, item);
      if (!text) continue;
      if (std::find(seen.begin(), seen.end(), *text) != seen.end()) {
        diag_.error(item.mark(), "on: " + quote(*text) + " is listed twice");
        continue;
      }
      const bool digits =
          std::all_of(text->begin(), text->end(), [](char c) { return c >= '0' && c <= '9'; });
      bool ok = true;
      if (digits) {
        // Only server errors: a 4xx is the request's own fault and would fail again.
        ok = text->size() == 3 && (*text)[0] == '5';
        if (ok) {
          retry.on_statuses.push_back(static_cast<unsigned>(std::stoul(*text)));
        } else {
          diag_.error(item.mark(), "on: " + *text + " is not a status from 500 to 599");
        }
      } else if (*text == "connect-failure") {
        retry.on_connect_failure = true;
      } else if (*text == "reset") {
        retry.on_reset = true;
      } else if (*text == "refused-stream") {
        retry.on_refused_stream = true;
      } else if (*text == "per-try-timeout") {
        retry.on_per_try_timeout = true;
      } else {
        ok = false;
        std::string suggestion = did_you_mean(*text, kRetryConditions);
        if (suggestion.empty()) {
          suggestion = " (known: " + std::string(kRetryConditions[0]);
          for (size_t i = 1; i < std::size(kRetryConditions); ++i) {
            suggestion += ", " + std::string(kRetryConditions[i]);
          }
          suggestion += ", or a status from 500 to 599)";
        }
        diag_.error(item.mark(), "on: unknown retry condition " + quote(*text) + suggestion);
      }
      if (ok) seen.push_back(*text);
    }
  }
  if (const Field* v = m.get("per_try_timeout")) {
    if (auto d = read_duration(diag_, *v, /*allow_zero=*/false)) {
      if (*d > route.timeout) {
        diag_.error(v->mark(), "per_try_timeout: must be at most the route's timeout (" +
                                   format_duration(route.timeout) + "), got " + v->value.Scalar());
      } else {
        retry.per_try_timeout = *d;
      }
    }
  }
  if (const Field* v = m.get("budget_percent")) {
    if (auto n = read_integer(diag_, *v, 0, 100)) retry.budget_percent = static_cast<unsigned>(*n);
  }
  if (const Field* v = m.get("retry_non_idempotent")) {
    if (auto b = read_bool(diag_, *v)) retry.retry_non_idempotent = *b;
  }
}

}  // namespace sluice::config::detail
