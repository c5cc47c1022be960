#include "filters/rate_limit/rate_limit_config.h"

#include <algorithm>
#include <charconv>

#include "config/values.h"
#include "config/yaml_reader.h"
#include "core/json.h"

namespace sluice::rate_limit {

using config::detail::Diagnostics;
using config::detail::Field;
using config::detail::MapReader;
using config::detail::quote;

namespace {

constexpr std::string_view kRuleKeys[] = {"name", "key",    "rate",    "burst",   "scope",
                                          "mode", "status", "headers", "max_keys"};
constexpr std::string_view kRedisKeys[] = {"address", "timeout", "on_error"};
constexpr std::string_view kKeyParts[] = {"client_ip", "header:NAME", "query:NAME", "route",
                                          "host",      "method",      "path"};
constexpr std::string_view kPlainParts[] = {"client_ip", "route", "host", "method", "path"};
constexpr std::string_view kScopes[] = {"local", "global"};
constexpr std::string_view kModes[] = {"enforce", "shadow"};
constexpr std::string_view kOnError[] = {"allow", "deny"};

std::optional<KeyPart> parse_key_part(Diagnostics& diag, const Field& f) {
  auto text = config::detail::read_nonempty(diag, f);
  if (!text) return std::nullopt;
  KeyPart part;
  const size_t colon = text->find(':');
  if (colon != std::string::npos) {
    const std::string kind = text->substr(0, colon);
    const std::string name = text->substr(colon + 1);
    if (kind == "header" || kind == "query") {
      if (name.empty() || (kind == "header" && !config::detail::is_token(name))) {
        diag.error(f.mark(), "key: " + quote(*text) + " needs a " +
                                 (kind == "header" ? "header name" : "query parameter name") +
                                 " after ':' (e.g. " + kind + ":x-api-key)");
        return std::nullopt;
      }
      part.kind = kind == "header" ? KeyPart::Kind::header : KeyPart::Kind::query;
      part.name = kind == "header" ? config::detail::lowercase(name) : name;
      return part;
    }
  }
  static constexpr std::pair<std::string_view, KeyPart::Kind> kPlain[] = {
      {"client_ip", KeyPart::Kind::client_ip},
      {"route", KeyPart::Kind::route},
      {"host", KeyPart::Kind::host},
      {"method", KeyPart::Kind::method},
      {"path", KeyPart::Kind::path}};
  for (const auto& [word, kind] : kPlain) {
    if (*text == word) {
      part.kind = kind;
      return part;
    }
  }
  std::string suggestion = config::detail::did_you_mean(*text, kPlainParts);
  if (suggestion.empty() && colon != std::string::npos) {
    // "heder:x-api-key": the kind is misspelt, the name is probably right.
    static constexpr std::string_view kNamed[] = {"header", "query"};
    if (auto kind = config::detail::closest(text->substr(0, colon), kNamed)) {
      suggestion = " (did you mean '" + std::string(*kind) + text->substr(colon) + "'?)";
    }
  }
  if (suggestion.empty()) {
    suggestion = " (known: ";
    for (size_t i = 0; i < std::size(kKeyParts); ++i) {
      suggestion += (i ? ", " : "") + std::string(kKeyParts[i]);
    }
    suggestion += ")";
  }
  diag.error(f.mark(), "key: unknown key part " + quote(*text) + suggestion);
  return std::nullopt;
}

std::optional<Rule> parse_rule(Diagnostics& diag, const YAML::Node& node,
                               std::map<std::string, YAML::Mark>& names) {
  MapReader m(diag, Field::item("rate limit", node), "rate limit", kRuleKeys);
  if (!m.is_map()) return std::nullopt;
  Rule rule;
  bool ok = true;
  if (const Field* f = m.require("name")) {
    if (auto name = config::detail::read_unique_name(diag, *f, "rate limit", names)) {
      rule.name = *name;
    } else {
      ok = false;
    }
  } else {
    ok = false;
  }
  if (const Field* f = m.require("key")) {
    if (config::detail::expect_list(diag, *f)) {
      if (f->value.size() == 0) {
        diag.error(f->mark(), "key: a rule needs at least one key part (e.g. [client_ip])");
        ok = false;
      }
      for (const YAML::Node& n : f->value) {
        if (auto part = parse_key_part(diag, Field::item("key", n))) {
          rule.key.push_back(*part);
        } else {
          ok = false;
        }
      }
    } else {
      ok = false;
    }
  } else {
    ok = false;
  }
  if (const Field* f = m.require("rate")) {
    auto text = config::detail::read_nonempty(diag, *f);
    auto rate = text ? parse_rate(*text) : std::nullopt;
    if (rate) {
      rule.count = rate->first;
      rule.period = rate->second;
      rule.rate_text = *text;
    } else {
      if (text) {
        diag.error(f->mark(),
                   "rate: expected N/s, N/min or N/h with N from 1 to 1000000000 (e.g. "
                   "100/s or 6000/min), got " +
                       quote(*text));
      }
      ok = false;
    }
  } else {
    ok = false;
  }
  rule.burst = rule.count;
  if (const Field* f = m.get("burst")) {
    if (f->value.IsScalar() && !f->value.Scalar().empty() && f->value.Scalar()[0] == '-') {
      diag.error(f->mark(), "burst: must be at least 1, got " + quote(f->value.Scalar()));
      ok = false;
    } else if (f->value.IsScalar() && f->value.Scalar() == "0") {
      diag.error(f->mark(), "burst: must be at least 1 (a burst of 0 admits nothing)");
      ok = false;
    } else if (auto n = config::detail::read_integer(diag, *f, 1, 1'000'000'000)) {
      rule.burst = static_cast<uint64_t>(*n);
    } else {
      ok = false;
    }
  }
  if (const Field* f = m.get("scope")) {
    if (auto s = config::detail::read_choice(diag, *f, kScopes)) {
      rule.scope = *s == "global" ? Rule::Scope::global : Rule::Scope::local;
    } else {
      ok = false;
    }
  }
  if (const Field* f = m.get("mode")) {
    if (auto s = config::detail::read_choice(diag, *f, kModes)) {
      rule.mode = *s == "shadow" ? Rule::Mode::shadow : Rule::Mode::enforce;
    } else {
      ok = false;
    }
  }
  if (const Field* f = m.get("status")) {
    if (auto n = config::detail::read_integer(diag, *f, 400, 599)) {
      rule.status = static_cast<unsigned>(*n);
    } else {
      ok = false;
    }
  }
  if (const Field* f = m.get("headers")) {
    if (auto b = config::detail::read_bool(diag, *f)) {
      rule.headers = *b;
    } else {
      ok = false;
    }
  }
  if (const Field* f = m.get("max_keys")) {
    // 10 million keys is a 512 MiB table; a rule needing more wants global scope.
    if (auto n = config::detail::read_integer(diag, *f, 1, 10'000'000)) {
      rule.max_keys = static_cast<uint64_t>(*n);
    } else {
      ok = false;
    }
  }
  return ok ? std::optional<Rule>(std::move(rule)) : std::nullopt;
}

std::optional<RedisSettings> parse_redis(Diagnostics& diag, const Field& f) {
  MapReader m(diag, f, "redis", kRedisKeys);
  if (!m.is_map()) return std::nullopt;
  RedisSettings redis;
  bool ok = true;
  if (const Field* a = m.require("address")) {
    // An IP literal: a worker never resolves names (no blocking DNS on the data path).
    auto addr = config::detail::read_address(diag, *a, /*bind=*/false);
    if (addr && addr->host == "localhost") addr->host = "127.0.0.1";
    if (addr && !config::detail::is_ip_literal(addr->host)) {
      diag.error(a->mark(),
                 "address: Redis is reached by IP address, not by name (workers do "
                 "not resolve names): got '" +
                     addr->host + "'");
      addr.reset();
    }
    if (addr) {
      redis.address = *addr;
    } else {
      ok = false;
    }
  } else {
    ok = false;
  }
  if (const Field* t = m.get("timeout")) {
    if (auto d = config::detail::read_duration(diag, *t, /*allow_zero=*/false)) {
      redis.timeout = *d;
    } else {
      ok = false;
    }
  }
  if (const Field* e = m.get("on_error")) {
    if (auto s = config::detail::read_choice(diag, *e, kOnError)) {
      redis.allow_on_error = *s == "allow";
    } else {
      ok = false;
    }
  }
  return ok ? std::optional<RedisSettings>(redis) : std::nullopt;
}

// `rate_limits: [names]` of one listener or route, as indices into `rules`.
std::vector<size_t> parse_refs(Diagnostics& diag, const Field& f,
                               const std::map<std::string, size_t>& by_name,
                               const std::map<std::string, YAML::Mark>& defined) {
  std::vector<size_t> out;
  if (!config::detail::expect_list(diag, f)) return out;
  std::vector<std::string_view> known;
  for (const auto& [name, mark] : defined) known.push_back(name);
  for (const YAML::Node& n : f.value) {
    const Field item = Field::item("rate limit", n);
    auto name = config::detail::read_nonempty(diag, item);
    if (!name) continue;
    auto it = by_name.find(*name);
    if (it == by_name.end()) {
      // A rule that exists but had its own errors is reported there, not here again.
      if (!defined.count(*name)) {
        diag.error(item.mark(), "rate_limits: unknown rate limit " + quote(*name) +
                                    config::detail::hint(*name, known));
      }
      continue;
    }
    if (std::find(out.begin(), out.end(), it->second) != out.end()) {
      diag.error(item.mark(), "rate_limits: " + quote(*name) + " is listed twice");
      continue;
    }
    out.push_back(it->second);
  }
  return out;
}

std::shared_ptr<const config::FilterConfig> parse(config::SectionContext& ctx) {
  Diagnostics& diag = ctx.diag();
  auto cfg = std::make_shared<RateLimitConfig>();
  std::map<std::string, YAML::Mark> names;
  std::vector<YAML::Mark> global_marks;
  if (const Field* f = ctx.root("rate_limits"); f && config::detail::expect_list(diag, *f)) {
    for (const YAML::Node& node : f->value) {
      // Checked on the raw node, so a rule with other mistakes still gets this one reported.
      if (node.IsMap()) {
        const YAML::Node scope = node["scope"];
        if (scope.IsDefined() && scope.IsScalar() && scope.Scalar() == "global") {
          global_marks.push_back(node.Mark());
        }
      }
      if (auto rule = parse_rule(diag, node, names)) cfg->rules.push_back(std::move(*rule));
    }
  }
  const Field* redis = ctx.root("redis");
  if (redis) cfg->redis = parse_redis(diag, *redis);
  if (!redis) {
    for (const YAML::Mark& mark : global_marks) {
      diag.error(mark,
                 "scope: global needs a Redis server: add a top-level 'redis: { address: "
                 "HOST:PORT }' or use scope: local");
    }
  }
  std::map<std::string, size_t> by_name;
  for (size_t i = 0; i < cfg->rules.size(); ++i) by_name.emplace(cfg->rules[i].name, i);
  for (const auto& [owner, field] : ctx.listener_fields("rate_limits")) {
    cfg->listener_rules[owner] = parse_refs(diag, *field, by_name, names);
  }
  for (const auto& [owner, field] : ctx.route_fields("rate_limits")) {
    cfg->route_rules[owner] = parse_refs(diag, *field, by_name, names);
  }
  return cfg;
}

}  // namespace

std::string KeyPart::str() const {
  switch (kind) {
    case Kind::client_ip:
      return "client_ip";
    case Kind::header:
      return "header:" + name;
    case Kind::query:
      return "query:" + name;
    case Kind::route:
      return "route";
    case Kind::host:
      return "host";
    case Kind::method:
      return "method";
    case Kind::path:
      return "path";
  }
  return "";
}

std::string Rule::state_key() const {
  std::string out = "rate_limit/" + name + "/" + std::to_string(count) + "/" +
                    std::to_string(period.count()) + "/" + std::to_string(burst) + "/" +
                    std::to_string(max_keys) + "/";
  for (const KeyPart& p : key) out += p.str() + ",";
  return out;
}

std::optional<std::pair<uint64_t, std::chrono::nanoseconds>> parse_rate(std::string_view s) {
  const size_t slash = s.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const std::string_view n = s.substr(0, slash);
  const std::string_view unit = s.substr(slash + 1);
  uint64_t count = 0;
  auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), count);
  if (ec != std::errc() || end != n.data() + n.size() || count == 0 || count > 1'000'000'000) {
    return std::nullopt;
  }
  using namespace std::chrono;
  if (unit == "s") return std::pair{count, nanoseconds(seconds(1))};
  if (unit == "min" || unit == "m") return std::pair{count, nanoseconds(minutes(1))};
  if (unit == "h") return std::pair{count, nanoseconds(hours(1))};
  return std::nullopt;
}

namespace {
std::string rule_names(const std::vector<Rule>& rules, const std::vector<size_t>& indices) {
  std::string out = "[";
  for (size_t i = 0; i < indices.size(); ++i) {
    out += (i ? ", " : "") + json_string(rules[indices[i]].name);
  }
  return out + "]";
}

config::FilterConfig::JsonMembers refs_json(const std::vector<Rule>& rules,
                                            const std::map<std::string, std::vector<size_t>>& refs,
                                            std::string_view owner) {
  auto it = refs.find(std::string(owner));
  if (it == refs.end()) return {};
  return {{"rate_limits", rule_names(rules, it->second)}};
}
}  // namespace

config::FilterConfig::JsonMembers RateLimitConfig::root_json() const {
  JsonMembers out;
  if (!rules.empty()) {
    std::string list = "[";
    for (size_t i = 0; i < rules.size(); ++i) {
      const Rule& r = rules[i];
      list += i ? ", " : "";
      list += "{\"name\": " + json_string(r.name) + ", \"key\": [";
      for (size_t k = 0; k < r.key.size(); ++k) {
        list += (k ? ", " : "") + json_string(r.key[k].str());
      }
      list += "], \"rate\": " + json_string(r.rate_text) +
              ", \"burst\": " + std::to_string(r.burst) +
              ", \"scope\": " + (r.scope == Rule::Scope::global ? "\"global\"" : "\"local\"") +
              ", \"mode\": " + (r.mode == Rule::Mode::shadow ? "\"shadow\"" : "\"enforce\"") +
              ", \"status\": " + std::to_string(r.status) +
              ", \"headers\": " + (r.headers ? "true" : "false") +
              ", \"max_keys\": " + std::to_string(r.max_keys) + "}";
    }
    out.emplace_back("rate_limits", list + "]");
  }
  if (redis) {
    out.emplace_back(
        "redis", "{\"address\": " + json_string(redis->address.str()) + ", \"timeout\": " +
                     json_string(config::detail::format_duration(redis->timeout)) +
                     ", \"on_error\": " + (redis->allow_on_error ? "\"allow\"" : "\"deny\"") + "}");
  }
  return out;
}

config::FilterConfig::JsonMembers RateLimitConfig::listener_json(std::string_view listener) const {
  return refs_json(rules, listener_rules, listener);
}

config::FilterConfig::JsonMembers RateLimitConfig::route_json(std::string_view route) const {
  return refs_json(rules, route_rules, route);
}

config::FilterSchema schema() {
  config::FilterSchema s;
  s.name = "rate_limit";
  s.root_keys = {"rate_limits", "redis"};
  s.listener_keys = {"rate_limits"};
  s.route_keys = {"rate_limits"};
  s.parse = parse;
  return s;
}

}  // namespace sluice::rate_limit
