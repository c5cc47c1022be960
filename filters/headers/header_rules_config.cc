#include "filters/headers/header_rules_config.h"

#include <algorithm>

#include "config/values.h"
#include "config/yaml_reader.h"
#include "core/json.h"

namespace sluice::header_rules {

using config::detail::Diagnostics;
using config::detail::Field;
using config::detail::MapReader;
using config::detail::quote;

namespace {

constexpr std::string_view kBlockKeys[] = {"remove", "set", "add"};
constexpr std::string_view kVariables[] = {"client_ip", "request_id", "host"};

// Headers that describe one connection or frame the message: sluice writes them per hop.
constexpr std::string_view kHopByHop[] = {"connection", "keep-alive", "proxy-connection",
                                          "te",         "trailer",    "upgrade"};

YAML::Mark shifted(YAML::Mark mark, size_t by) {
  mark.column += static_cast<int>(by);
  mark.pos += static_cast<int>(by);
  return mark;
}

// Where character `offset` of a scalar value is: exact for a plain (unquoted) scalar, the start
// of the value otherwise (escapes make the mapping uncertain).
YAML::Mark mark_at(const Field& f, size_t offset) {
  const YAML::Mark mark = f.mark();
  if (f.value.IsScalar() && f.value.Tag() == "?") return shifted(mark, offset);
  return mark;
}

// Reads one header name of a rule: a token, lower-cased, allowed for `kind`.
std::optional<std::string> read_name(Diagnostics& diag, const Field& f, std::string_view kind,
                                     bool request) {
  auto text = config::detail::read_nonempty(diag, f);
  if (!text) return std::nullopt;
  if (text->front() == ':') {
    diag.error(f.mark(), quote(*text) +
                             " is a pseudo-header: sluice derives it from the request and "
                             "header rules cannot change it");
    return std::nullopt;
  }
  if (!config::detail::is_token(*text)) {
    diag.error(f.mark(), quote(*text) + " is not a valid header name (RFC 9110 token)");
    return std::nullopt;
  }
  std::string name = config::detail::lowercase(*text);
  if (std::string why = forbidden_reason(name, kind, request); !why.empty()) {
    diag.error(f.mark(), std::string(kind) + ": " + quote(name) + " cannot be changed: " + why);
    return std::nullopt;
  }
  return name;
}

void parse_values(Diagnostics& diag, const Field& f, std::string_view kind, bool request,
                  std::vector<HeaderValue>& out) {
  if (!f.value.IsMap()) {
    diag.error(f.mark(), std::string(kind) + ": expected a map of header names to values, got " +
                             config::detail::describe(f.value));
    return;
  }
  for (const auto& kv : f.value) {
    const Field key = Field::item("header name", kv.first);
    auto name = read_name(diag, key, kind, request);
    const Field value{name ? *name : std::string("value"), kv.first, kv.second};
    auto text = config::detail::read_string(diag, value);
    if (!name || !text) continue;
    if (std::any_of(out.begin(), out.end(),
                    [&](const HeaderValue& h) { return h.name == *name; })) {
      diag.error(key.mark(), std::string(kind) + ": " + quote(*name) +
                                 " is listed twice (names are case-insensitive)");
      continue;
    }
    HeaderValue hv;
    hv.name = *name;
    std::string why;
    size_t at = 0;
    ValueTemplate t;
    if (!compile_value(*text, t, &why, &at)) {
      diag.error(mark_at(value, at), *name + ": " + why);
      continue;
    }
    hv.value = std::move(t);
    out.push_back(std::move(hv));
  }
}

Rules parse_rules(Diagnostics& diag, const Field& f, bool request) {
  Rules rules;
  MapReader m(diag, f, f.name, kBlockKeys);
  if (!m.is_map()) return rules;
  if (const Field* r = m.get("remove")) {
    if (config::detail::expect_list(diag, *r)) {
      for (const YAML::Node& n : r->value) {
        const Field item = Field::item("remove", n);
        auto name = read_name(diag, item, "remove", request);
        if (!name) continue;
        if (std::find(rules.remove.begin(), rules.remove.end(), *name) != rules.remove.end()) {
          diag.error(item.mark(), "remove: " + quote(*name) + " is listed twice");
          continue;
        }
        rules.remove.push_back(*name);
      }
    }
  }
  if (const Field* s = m.get("set")) parse_values(diag, *s, "set", request, rules.set);
  if (const Field* a = m.get("add")) parse_values(diag, *a, "add", request, rules.add);
  return rules;
}

std::string values_json(const std::vector<HeaderValue>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    out += i ? ", " : "";
    out += json_string(values[i].name) + ": " + json_string(values[i].value.text);
  }
  return out + "}";
}

std::string rules_json(const Rules& r) {
  std::string out = "{";
  const char* sep = "";
  if (!r.remove.empty()) {
    out += "\"remove\": [";
    for (size_t i = 0; i < r.remove.size(); ++i) out += (i ? ", " : "") + json_string(r.remove[i]);
    out += "]";
    sep = ", ";
  }
  if (!r.set.empty()) {
    out += sep + std::string("\"set\": ") + values_json(r.set);
    sep = ", ";
  }
  if (!r.add.empty()) out += sep + std::string("\"add\": ") + values_json(r.add);
  return out + "}";
}

config::FilterConfig::JsonMembers set_json(const RuleSet* s) {
  config::FilterConfig::JsonMembers out;
  if (!s) return out;
  if (!s->request.empty()) out.emplace_back("request_headers", rules_json(s->request));
  if (!s->response.empty()) out.emplace_back("response_headers", rules_json(s->response));
  return out;
}

using Owned = config::SectionContext::Owned;

void collect(Diagnostics& diag, const std::vector<Owned>& fields, bool request,
             std::map<std::string, RuleSet, std::less<>>& into) {
  for (const auto& [owner, field] : fields) {
    Rules rules = parse_rules(diag, *field, request);
    if (rules.empty()) continue;
    (request ? into[owner].request : into[owner].response) = std::move(rules);
  }
}

std::shared_ptr<const config::FilterConfig> parse(config::SectionContext& ctx) {
  auto cfg = std::make_shared<HeaderRulesConfig>();
  collect(ctx.diag(), ctx.listener_fields("request_headers"), true, cfg->listeners);
  collect(ctx.diag(), ctx.listener_fields("response_headers"), false, cfg->listeners);
  collect(ctx.diag(), ctx.route_fields("request_headers"), true, cfg->routes);
  collect(ctx.diag(), ctx.route_fields("response_headers"), false, cfg->routes);
  for (const config::Listener& l : ctx.config().listeners) {
    bool active = cfg->for_listener(l.name) != nullptr;
    for (const config::Route& r : ctx.config().routes) {
      if (active) break;
      active = cfg->for_route(r.name) && route_matches_on(r, l.name);
    }
    if (active) cfg->active_listeners.push_back(l.name);
  }
  return cfg;
}

}  // namespace

bool compile_value(std::string_view text, ValueTemplate& out, std::string* error,
                   size_t* error_at) {
  out = ValueTemplate{};
  out.text = std::string(text);
  auto fail = [&](size_t at, std::string message) {
    if (error) *error = std::move(message);
    if (error_at) *error_at = at;
    return false;
  };
  auto literal = [&]() -> std::string& {
    if (out.parts.empty() || out.parts.back().is_variable) out.parts.emplace_back();
    return out.parts.back().literal;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7F) {
      const char* what = c == '\r'   ? "a carriage return"
                         : c == '\n' ? "a line feed"
                         : c == '\0' ? "a NUL"
                                     : "a control character";
      return fail(
          i, std::string("the value contains ") + what + ", which a header value cannot carry");
    }
    if (c != '%') {
      literal() += c;
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '%') {
      literal() += '%';
      ++i;
      continue;
    }
    if (i + 1 >= text.size() || text[i + 1] != '{') {
      return fail(i, "a lone '%': write '%%' for a literal '%', '%{NAME}' for a variable");
    }
    const size_t close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      return fail(i, "unterminated '%{' (variables are written %{NAME})");
    }
    const std::string_view name = text.substr(i + 2, close - i - 2);
    const auto* it = std::find(std::begin(kVariables), std::end(kVariables), name);
    if (it == std::end(kVariables)) {
      return fail(i, "unknown variable '%{" + std::string(name) + "}'" +
                         config::detail::hint(name, kVariables));
    }
    ValueTemplate::Part part;
    part.is_variable = true;
    part.variable = static_cast<Variable>(it - std::begin(kVariables));
    out.parts.push_back(std::move(part));
    i = close;
  }
  return true;
}

std::string forbidden_reason(std::string_view name, std::string_view kind, bool request) {
  if (std::find(std::begin(kHopByHop), std::end(kHopByHop), name) != std::end(kHopByHop)) {
    return "it is hop-by-hop (RFC 9110 §7.6.1), it describes one connection and sluice writes it "
           "for each hop";
  }
  if (name == "transfer-encoding" || name == "content-length") {
    return "it frames the message, and sluice writes it from the body it actually sends";
  }
  if (request && (name == "x-forwarded-for" || name == "x-forwarded-proto" ||
                  name == "x-forwarded-host" || name == "x-real-ip" || name == "forwarded")) {
    return "sluice writes it after the rules, from the connection and the listener's "
           "trusted_proxies";
  }
  if (request && name == "x-request-id") {
    return "sluice assigns the request id before the rules run (the access log and "
           "%{request_id} carry it)";
  }
  if (name == "host") {
    if (!request) return "'host' is a request header";
    if (kind != "set") {
      return "a request carries exactly one Host: use 'set' to change the upstream Host";
    }
  }
  return {};
}

bool route_matches_on(const config::Route& route, std::string_view listener) {
  const auto& names = route.match.listeners;
  return names.empty() || std::find(names.begin(), names.end(), listener) != names.end();
}

bool HeaderRulesConfig::applies_on(std::string_view listener) const {
  return std::find(active_listeners.begin(), active_listeners.end(), listener) !=
         active_listeners.end();
}

const RuleSet* HeaderRulesConfig::for_listener(std::string_view name) const {
  auto it = listeners.find(name);
  return it == listeners.end() ? nullptr : &it->second;
}

const RuleSet* HeaderRulesConfig::for_route(std::string_view name) const {
  auto it = routes.find(name);
  return it == routes.end() ? nullptr : &it->second;
}

config::FilterConfig::JsonMembers HeaderRulesConfig::listener_json(
    std::string_view listener) const {
  return set_json(for_listener(listener));
}

config::FilterConfig::JsonMembers HeaderRulesConfig::route_json(std::string_view route) const {
  return set_json(for_route(route));
}

config::FilterSchema schema() {
  config::FilterSchema s;
  s.name = "header_rules";
  s.listener_keys = {"request_headers", "response_headers"};
  s.route_keys = {"request_headers", "response_headers"};
  s.parse = parse;
  return s;
}

}  // namespace sluice::header_rules
