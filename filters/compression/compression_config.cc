#include "filters/compression/compression_config.h"

#include <algorithm>

#include "config/values.h"
#include "config/yaml_reader.h"
#include "core/http.h"
#include "core/json.h"

namespace sluice::compression {

using config::detail::Diagnostics;
using config::detail::Field;
using config::detail::MapReader;
using config::detail::quote;

namespace {

constexpr std::string_view kKeys[] = {"enabled", "types", "min_bytes", "algorithms"};
constexpr std::string_view kAlgorithms[] = {"br", "zstd", "gzip"};
constexpr uint64_t kMaxMinBytes = uint64_t{1} << 40;

const std::vector<std::string>& default_types() {
  static const std::vector<std::string> types = {
      "text/html",
      "text/css",
      "text/plain",
      "text/javascript",
      "text/xml",
      "text/csv",
      "text/markdown",
      "application/javascript",
      "application/x-javascript",
      "application/json",
      "application/ld+json",
      "application/manifest+json",
      "application/problem+json",
      "application/geo+json",
      "application/vnd.api+json",
      "application/xml",
      "application/xhtml+xml",
      "application/rss+xml",
      "application/atom+xml",
      "application/wasm",
      "image/svg+xml",
      "image/x-icon",
      "image/vnd.microsoft.icon",
      "font/ttf",
      "font/otf",
  };
  return types;
}

// "type/subtype" or "type/*" (or "*/*"), both parts tokens.
bool valid_media_range(std::string_view s) {
  const size_t slash = s.find('/');
  if (slash == std::string_view::npos) return false;
  const std::string_view type = s.substr(0, slash);
  const std::string_view sub = s.substr(slash + 1);
  if (type == "*") return sub == "*";
  return config::detail::is_token(type) && type.find('*') == std::string_view::npos &&
         (sub == "*" || (config::detail::is_token(sub) && sub.find('*') == std::string::npos));
}

Settings parse_settings(Diagnostics& diag, const Field& f) {
  Settings s;
  MapReader m(diag, f, "compression", kKeys);
  if (!m.is_map()) return s;
  if (const Field* v = m.get("enabled")) {
    if (auto b = config::detail::read_bool(diag, *v)) s.enabled = *b;
  }
  if (const Field* v = m.get("types")) {
    if (config::detail::expect_list(diag, *v)) {
      s.types.clear();
      if (v->value.size() == 0) {
        diag.error(v->mark(),
                   "types: list at least one media type (or set 'enabled: false' to turn "
                   "compression off)");
      }
      for (const YAML::Node& n : v->value) {
        const Field item = Field::item("type", n);
        auto text = config::detail::read_nonempty(diag, item);
        if (!text) continue;
        std::string type = config::detail::lowercase(*text);
        if (type.find(';') != std::string::npos) {
          diag.error(item.mark(), "types: " + quote(*text) +
                                      " has parameters; give the media type alone "
                                      "(parameters are ignored when matching)");
          continue;
        }
        if (!valid_media_range(type)) {
          diag.error(item.mark(), "types: " + quote(*text) +
                                      " is not a media type like 'text/html' or 'text/*'");
          continue;
        }
        if (std::find(s.types.begin(), s.types.end(), type) != s.types.end()) {
          diag.error(item.mark(), "types: " + quote(*text) + " is listed twice");
          continue;
        }
        s.types.push_back(std::move(type));
      }
    }
  }
  if (const Field* v = m.get("min_bytes")) {
    if (auto n = config::detail::read_size(diag, *v, 0, kMaxMinBytes)) s.min_bytes = *n;
  }
  if (const Field* v = m.get("algorithms")) {
    if (config::detail::expect_list(diag, *v)) {
      s.algorithms.clear();
      if (v->value.size() == 0) {
        diag.error(v->mark(),
                   "algorithms: list at least one of br, zstd, gzip (or set 'enabled: false' to "
                   "turn compression off)");
      }
      for (const YAML::Node& n : v->value) {
        const Field item = Field::item("algorithm", n);
        auto name = config::detail::read_choice(diag, item, kAlgorithms);
        if (!name) continue;
        const Algorithm a = *algorithm_from_name(*name);
        if (std::find(s.algorithms.begin(), s.algorithms.end(), a) != s.algorithms.end()) {
          diag.error(item.mark(), "algorithms: " + quote(*name) + " is listed twice");
          continue;
        }
        s.algorithms.push_back(a);
      }
    }
  }
  return s;
}

std::shared_ptr<const config::FilterConfig> parse(config::SectionContext& ctx) {
  auto cfg = std::make_shared<CompressionConfig>();
  for (const auto& [owner, field] : ctx.listener_fields("compression")) {
    cfg->listeners[owner] = parse_settings(ctx.diag(), *field);
  }
  for (const auto& [owner, field] : ctx.route_fields("compression")) {
    cfg->routes[owner] = parse_settings(ctx.diag(), *field);
  }
  for (const config::Route& r : ctx.config().routes) {
    if (cfg->routes.count(r.name)) cfg->route_listeners[r.name] = r.match.listeners;
  }
  return cfg;
}

std::string settings_json(const Settings& s) {
  std::string out = "{\"enabled\": ";
  out += s.enabled ? "true" : "false";
  out += ", \"types\": [";
  for (size_t i = 0; i < s.types.size(); ++i) out += (i ? ", " : "") + json_string(s.types[i]);
  out += "], \"min_bytes\": " + std::to_string(s.min_bytes) + ", \"algorithms\": [";
  for (size_t i = 0; i < s.algorithms.size(); ++i) {
    out += (i ? ", " : "") + json_string(algorithm_name(s.algorithms[i]));
  }
  return out + "]}";
}

}  // namespace

Settings::Settings() : types(default_types()) {}

bool Settings::type_matches(std::string_view content_type) const {
  std::string_view media = content_type.substr(0, content_type.find(';'));
  while (!media.empty() && (media.back() == ' ' || media.back() == '\t')) media.remove_suffix(1);
  while (!media.empty() && (media.front() == ' ' || media.front() == '\t')) media.remove_prefix(1);
  const size_t slash = media.find('/');
  if (slash == std::string_view::npos) return false;
  for (const std::string& t : types) {
    if (t.size() >= 2 && t.ends_with("/*")) {
      // "text/*" matches "text/…"; "*/*" anything.
      if (t[0] == '*' ||
          (slash == t.size() - 2 && iequals(media.substr(0, slash), t.substr(0, slash)))) {
        return true;
      }
    } else if (iequals(media, t)) {
      return true;
    }
  }
  return false;
}

config::FilterConfig::JsonMembers CompressionConfig::listener_json(
    std::string_view listener) const {
  auto it = listeners.find(std::string(listener));
  if (it == listeners.end()) return {};
  return {{"compression", settings_json(it->second)}};
}

config::FilterConfig::JsonMembers CompressionConfig::route_json(std::string_view route) const {
  auto it = routes.find(std::string(route));
  if (it == routes.end()) return {};
  return {{"compression", settings_json(it->second)}};
}

config::FilterSchema schema() {
  config::FilterSchema s;
  s.name = "compression";
  s.listener_keys = {"compression"};
  s.route_keys = {"compression"};
  s.parse = parse;
  return s;
}

}  // namespace sluice::compression
