#include "filters/router/route_table.h"

#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace sluice::router {
namespace {

bool iends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && iequals(s.substr(s.size() - suffix.size()), suffix);
}

// Host for comparison: brackets of an IPv6 literal and one trailing dot removed.
std::string_view comparable_host(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  return host;
}

// `host` already has its port removed and is in comparable form.
bool host_pattern_matches(std::string_view pattern, std::string_view host) {
  if (pattern == "*") return true;
  if (pattern.size() >= 2 && pattern[0] == '*' && pattern[1] == '.') {
    std::string_view suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() && iends_with(host, suffix);
  }
  return iequals(comparable_host(pattern), host);
}

bool path_matches(const config::PathMatch& match, const re2::RE2* regex, std::string_view path) {
  switch (match.kind) {
    case config::PathMatch::Kind::any:
      return true;
    case config::PathMatch::Kind::prefix:
      return path.starts_with(match.value);
    case config::PathMatch::Kind::exact:
      return path == match.value;
    case config::PathMatch::Kind::regex:
      return regex != nullptr &&
             re2::RE2::FullMatch(re2::StringPiece(path.data(), path.size()), *regex);
  }
  return false;
}

bool header_matches(const config::HeaderMatch& match, const re2::RE2* regex,
                    const HeaderMap& headers) {
  for (const Header& field : headers) {
    if (!iequals(field.name, match.name)) continue;
    switch (match.kind) {
      case config::HeaderMatch::Kind::present:
        return true;
      case config::HeaderMatch::Kind::exact:
        if (field.value == match.value) return true;
        break;
      case config::HeaderMatch::Kind::regex:
        if (regex != nullptr && re2::RE2::FullMatch(field.value, *regex)) return true;
        break;
    }
  }
  return false;
}

bool route_matches(const CompiledRoute& compiled, std::string_view host, std::string_view path,
                   const RequestHead& request) {
  const config::RouteMatch& m = compiled.route->match;
  // Cheapest conditions first.
  if (!m.methods.empty() &&
      std::find(m.methods.begin(), m.methods.end(), request.method) == m.methods.end()) {
    return false;
  }
  if (!m.hosts.empty() &&
      std::none_of(m.hosts.begin(), m.hosts.end(), [&](const std::string& pattern) {
        return host_pattern_matches(pattern, host);
      })) {
    return false;
  }
  if (!path_matches(m.path, compiled.path_regex.get(), path)) return false;
  for (size_t i = 0; i < m.headers.size(); ++i) {
    if (!header_matches(m.headers[i], compiled.header_regexes[i].get(), request.headers)) {
      return false;
    }
  }
  return true;
}

std::shared_ptr<const re2::RE2> compile(const std::string& pattern, std::string* error,
                                        std::string_view what) {
  re2::RE2::Options options;
  options.set_log_errors(false);
  auto regex = std::make_shared<const re2::RE2>(pattern, options);
  if (!regex->ok()) {
    if (error != nullptr) {
      *error = std::string(what) + ": invalid regex \"" + pattern + "\": " + regex->error();
    }
    return nullptr;
  }
  return regex;
}

uint16_t default_port(std::string_view scheme) {
  if (iequals(scheme, "http")) return 80;
  if (iequals(scheme, "https")) return 443;
  return 0;
}

}  // namespace

bool host_matches(std::string_view pattern, std::string_view authority) {
  return host_pattern_matches(pattern, comparable_host(authority_host(authority)));
}

std::shared_ptr<const RouteTable> RouteTable::build(const config::Config& config,
                                                    std::string* error) {
  std::shared_ptr<RouteTable> table(new RouteTable());
  table->routes_.reserve(config.routes.size());
  for (const config::Route& route : config.routes) {
    CompiledRoute compiled;
    compiled.route = &route;
    const std::string what = "route \"" + route.name + "\"";
    if (!route.cluster.empty()) {
      for (const config::Cluster& cluster : config.clusters) {
        if (cluster.name == route.cluster) {
          compiled.cluster = &cluster;
          break;
        }
      }
      if (compiled.cluster == nullptr) {
        if (error != nullptr) *error = what + ": unknown cluster \"" + route.cluster + "\"";
        return nullptr;
      }
    }
    if (route.match.path.kind == config::PathMatch::Kind::regex) {
      compiled.path_regex = compile(route.match.path.value, error, what + " path");
      if (compiled.path_regex == nullptr) return nullptr;
    }
    compiled.header_regexes.resize(route.match.headers.size());
    for (size_t i = 0; i < route.match.headers.size(); ++i) {
      const config::HeaderMatch& header = route.match.headers[i];
      if (header.kind != config::HeaderMatch::Kind::regex) continue;
      compiled.header_regexes[i] = compile(header.value, error, what + " header " + header.name);
      if (compiled.header_regexes[i] == nullptr) return nullptr;
    }
    table->routes_.push_back(std::move(compiled));
  }
  table->index_ = RouteIndex(table->routes_);
  return table;
}

std::shared_ptr<const RouteTable> RouteTable::for_listener(std::shared_ptr<const RouteTable> all,
                                                           std::string_view listener) {
  if (!all) return all;
  const auto applies = [&](const CompiledRoute& compiled) {
    const std::vector<std::string>& names = compiled.route->match.listeners;
    return names.empty() || std::find(names.begin(), names.end(), listener) != names.end();
  };
  if (std::all_of(all->routes_.begin(), all->routes_.end(), applies)) return all;
  std::shared_ptr<RouteTable> view(new RouteTable());
  for (const CompiledRoute& compiled : all->routes_) {
    if (applies(compiled)) view->routes_.push_back(compiled);
  }
  view->index_ = RouteIndex(view->routes_);
  return view;
}

const CompiledRoute* RouteTable::match(const RequestHead& request) const {
  const std::string_view host = comparable_host(authority_host(request.authority));
  const std::string_view path = request.path();
  RouteIndex::Walk walk;
  index_.start(host, path, walk);
  if (walk.everything()) return match_linear(request);
  // Small batches: candidates past the first that matches are wasted work (a regex set asked).
  uint32_t batch[8];
  while (size_t n = index_.next(walk, batch, std::size(batch))) {
    for (size_t i = 0; i < n; ++i) {
      const CompiledRoute& compiled = routes_[batch[i]];
      if (route_matches(compiled, host, path, request)) return &compiled;
    }
  }
  return nullptr;
}

const CompiledRoute* RouteTable::match_linear(const RequestHead& request) const {
  const std::string_view host = comparable_host(authority_host(request.authority));
  const std::string_view path = request.path();
  for (const CompiledRoute& compiled : routes_) {
    if (route_matches(compiled, host, path, request)) return &compiled;
  }
  return nullptr;
}

std::string RouteTable::rewrite_target(const CompiledRoute& route, const RequestHead& request) {
  const std::optional<std::string>& rewrite = route.route->rewrite_prefix;
  if (!rewrite) return request.target;
  const std::string_view target = request.target;
  const std::string_view path = request.path();
  const std::string_view query_part = target.substr(path.size());  // "?…" or empty

  const config::PathMatch& match = route.route->match.path;
  std::string out;
  out.reserve(rewrite->size() + target.size() + 1);
  out += *rewrite;
  if (match.kind == config::PathMatch::Kind::prefix && path.starts_with(match.value)) {
    std::string_view rest = path.substr(match.value.size());
    if (out.ends_with('/') && rest.starts_with('/')) rest.remove_prefix(1);
    out += rest;
  }
  // An origin-form target always starts with '/', even if the rewrite value does not.
  if (!out.starts_with('/')) out.insert(out.begin(), '/');
  out += query_part;
  return out;
}

std::string RouteTable::redirect_location(const config::Redirect& redirect,
                                          const RequestHead& request) {
  const std::string_view target = request.target;
  const std::string_view request_path = request.path();
  const std::string_view authority = request.authority;
  const std::string_view request_host = authority_host(authority);

  const std::string_view scheme =
      redirect.scheme ? std::string_view(*redirect.scheme) : std::string_view(request.scheme);
  const bool scheme_changed = redirect.scheme && !iequals(*redirect.scheme, request.scheme);

  std::string host;
  if (redirect.host) {
    host = *redirect.host;
    // A bare IPv6 literal needs brackets in a URL.
    if (host.find(':') != std::string::npos && !host.starts_with('[')) host = "[" + host + "]";
  } else {
    host = request_host;
  }

  uint16_t port = 0;
  if (redirect.port) {
    port = *redirect.port;
  } else if (!redirect.host && !scheme_changed && request_host.size() < authority.size() &&
             authority[request_host.size()] == ':') {
    std::string_view digits = authority.substr(request_host.size() + 1);
    uint16_t parsed = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), parsed);
    if (ec == std::errc() && end == digits.data() + digits.size()) port = parsed;
  }
  if (port == default_port(scheme)) port = 0;

  std::string out;
  out.reserve(scheme.size() + host.size() + target.size() + 16);
  if (!host.empty()) {
    out += scheme;
    out += "://";
    out += host;
    if (port != 0) {
      out += ':';
      out += std::to_string(port);
    }
  }
  const std::string_view path = redirect.path ? std::string_view(*redirect.path) : request_path;
  if (!path.starts_with('/')) out += '/';
  out += path;
  const bool path_has_query = redirect.path && redirect.path->find('?') != std::string::npos;
  const std::string_view query_part = target.substr(request_path.size());  // "?…" or empty
  if (!path_has_query && !redirect.strip_query && query_part.size() > 1) out += query_part;
  return out;
}

}  // namespace sluice::router
