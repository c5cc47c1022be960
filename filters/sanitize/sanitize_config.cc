#include "filters/sanitize/sanitize_config.h"

#include <algorithm>

#include "config/values.h"
#include "config/yaml_reader.h"
#include "core/json.h"

namespace sluice::sanitize {

using config::detail::Diagnostics;
using config::detail::Field;
using config::detail::MapReader;
using config::detail::quote;

namespace {

constexpr std::string_view kKeys[] = {"enabled",
                                      "normalize_path",
                                      "merge_slashes",
                                      "escaped_slashes",
                                      "encoded_characters",
                                      "underscores_in_headers",
                                      "deny"};
constexpr std::string_view kEncodedKeys[] = {"allow"};
constexpr std::string_view kDenyKeys[] = {"name",  "path_regex", "query_regex", "header",
                                          "regex", "method",     "status",      "body"};
constexpr std::string_view kEscapedSlashes[] = {"reject", "keep", "decode"};
constexpr std::string_view kUnderscores[] = {"allow", "drop", "reject"};

std::shared_ptr<const RE2> compile(Diagnostics& diag, const Field& f) {
  auto text = config::detail::read_regex(diag, f);
  if (!text) return nullptr;
  return std::make_shared<const RE2>(*text, RE2::Quiet);
}

std::optional<DenyRule> parse_deny_rule(Diagnostics& diag, const YAML::Node& node,
                                        std::map<std::string, YAML::Mark>& names) {
  MapReader m(diag, Field::item("deny rule", node), "deny rule", kDenyKeys);
  if (!m.is_map()) return std::nullopt;
  DenyRule rule;
  bool ok = true;
  if (const Field* f = m.require("name")) {
    auto name = config::detail::read_unique_name(diag, *f, "deny rule", names);
    ok = ok && name;
    if (name) rule.name = *name;
  } else {
    ok = false;
  }
  if (const Field* f = m.get("path_regex")) ok = (rule.path_regex = compile(diag, *f)) && ok;
  if (const Field* f = m.get("query_regex")) ok = (rule.query_regex = compile(diag, *f)) && ok;
  const Field* header = m.get("header");
  const Field* regex = m.get("regex");
  if (header) {
    auto name = config::detail::read_nonempty(diag, *header);
    if (name && !config::detail::is_token(*name)) {
      diag.error(header->mark(), "header: " + quote(*name) + " is not a valid header name");
      name.reset();
    }
    ok = ok && name;
    if (name) rule.header = config::detail::lowercase(*name);
    if (!regex) {
      diag.error(header->mark(),
                 "header: needs 'regex' beside it, the pattern the header's value must match "
                 "(\".*\" for any value)");
      ok = false;
    }
  }
  if (regex) {
    if (!header) {
      diag.error(regex->mark(), "regex: matches a header's value; add 'header: NAME' beside it");
      ok = false;
    } else {
      ok = (rule.header_regex = compile(diag, *regex)) && ok;
    }
  }
  if (const Field* f = m.get("method")) {
    auto add = [&](const Field& item) {
      auto method = config::detail::read_nonempty(diag, item);
      if (method && !config::detail::is_token(*method)) {
        diag.error(item.mark(), "method: " + quote(*method) + " is not a valid method");
        method.reset();
      }
      if (method) rule.methods.push_back(*method);
      return method.has_value();
    };
    if (f->value.IsSequence()) {
      if (f->value.size() == 0) {
        diag.error(f->mark(), "method: list at least one method");
        ok = false;
      }
      for (const YAML::Node& n : f->value) ok = add(Field::item("method", n)) && ok;
    } else {
      ok = add(*f) && ok;
    }
  }
  if (const Field* f = m.get("status")) {
    auto status = config::detail::read_integer(diag, *f, 400, 599);
    ok = ok && status;
    if (status) rule.status = static_cast<unsigned>(*status);
  }
  if (const Field* f = m.get("body")) {
    auto body = config::detail::read_string(diag, *f);
    ok = ok && body;
    if (body) rule.body = *body;
  }
  if (ok && !rule.path_regex && !rule.query_regex && !rule.header_regex && rule.methods.empty()) {
    diag.error(m.mark(),
               "deny rule " + quote(rule.name) +
                   " matches every request: give at least one of path_regex, query_regex, "
                   "header + regex, method");
    ok = false;
  }
  rule.reason = "deny:" + rule.name;
  return ok ? std::optional<DenyRule>(std::move(rule)) : std::nullopt;
}

// The keys of one `sanitize:` map, over `base` (each key given replaces base's value).
Settings parse_settings(Diagnostics& diag, const Field& f, const Settings& base) {
  Settings s = base;
  MapReader m(diag, f, "sanitize", kKeys);
  if (!m.is_map()) return s;
  if (const Field* v = m.get("enabled")) {
    if (auto b = config::detail::read_bool(diag, *v)) s.enabled = *b;
  }
  if (const Field* v = m.get("normalize_path")) {
    if (auto b = config::detail::read_bool(diag, *v)) s.path.normalize_path = *b;
  }
  if (const Field* v = m.get("merge_slashes")) {
    if (auto b = config::detail::read_bool(diag, *v)) s.path.merge_slashes = *b;
  }
  const Field* allow_field = nullptr;
  if (const Field* v = m.get("encoded_characters")) {
    MapReader e(diag, *v, "encoded_characters", kEncodedKeys);
    if (e.is_map()) allow_field = e.get("allow");
    if (allow_field && config::detail::expect_list(diag, *allow_field)) {
      s.path.allowed_encoded = 0;
      for (const YAML::Node& n : allow_field->value) {
        const Field item = Field::item("allow", n);
        auto text = config::detail::read_nonempty(diag, item);
        if (!text) continue;
        std::string upper = *text;
        std::transform(upper.begin(), upper.end(), upper.begin(),
                       [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
        int which = 0;
        while (which < kEncodedCharCount &&
               encoded_char_text(static_cast<EncodedChar>(which)) != upper) {
          ++which;
        }
        if (which == kEncodedCharCount) {
          diag.error(item.mark(), "allow: " + quote(*text) +
                                      " is not one of the escapes refused by default (" +
                                      "%2F, %5C, %00, %25, %3B, %3F, %23); other escapes "
                                      "always pass");
          continue;
        }
        s.path.allow(static_cast<EncodedChar>(which));
      }
    }
  }
  if (const Field* v = m.get("escaped_slashes")) {
    if (auto c = config::detail::read_choice(diag, *v, kEscapedSlashes)) {
      if (*c == "reject") {
        if (s.path.allows(EncodedChar::slash) && allow_field) {
          diag.error(v->mark(),
                     "escaped_slashes: reject contradicts '%2F' in encoded_characters.allow");
        }
        s.path.allowed_encoded &= static_cast<uint8_t>(~1u);
      } else {
        s.path.allow(EncodedChar::slash);
        s.path.escaped_slashes = *c == "decode" ? PathOptions::EscapedSlashes::decode
                                                : PathOptions::EscapedSlashes::keep;
      }
    }
  }
  if (const Field* v = m.get("underscores_in_headers")) {
    if (auto c = config::detail::read_choice(diag, *v, kUnderscores)) {
      s.underscores_in_headers = *c == "allow"  ? Settings::Underscores::allow
                                 : *c == "drop" ? Settings::Underscores::drop
                                                : Settings::Underscores::reject;
    }
  }
  if (const Field* v = m.get("deny")) {
    s.deny.clear();
    if (config::detail::expect_list(diag, *v)) {
      std::map<std::string, YAML::Mark> names;
      for (const YAML::Node& n : v->value) {
        if (auto rule = parse_deny_rule(diag, n, names)) s.deny.push_back(std::move(*rule));
      }
    }
  }
  return s;
}

std::shared_ptr<const config::FilterConfig> parse(config::SectionContext& ctx) {
  auto cfg = std::make_shared<SanitizeConfig>();
  if (const Field* f = ctx.root("sanitize")) {
    cfg->defaults = parse_settings(ctx.diag(), *f, Settings{});
    cfg->has_root = true;
  }
  for (const auto& [owner, field] : ctx.listener_fields("sanitize")) {
    cfg->listeners[owner] = parse_settings(ctx.diag(), *field, cfg->defaults);
  }
  return cfg;
}

std::string settings_json(const Settings& s) {
  std::string out = "{\"enabled\": ";
  out += s.enabled ? "true" : "false";
  out += ", \"normalize_path\": ";
  out += s.path.normalize_path ? "true" : "false";
  out += ", \"merge_slashes\": ";
  out += s.path.merge_slashes ? "true" : "false";
  out += ", \"escaped_slashes\": ";
  out += !s.path.allows(EncodedChar::slash)                              ? "\"reject\""
         : s.path.escaped_slashes == PathOptions::EscapedSlashes::decode ? "\"decode\""
                                                                         : "\"keep\"";
  out += ", \"encoded_characters\": {\"allow\": [";
  bool first = true;
  for (int i = 0; i < kEncodedCharCount; ++i) {
    if (!s.path.allows(static_cast<EncodedChar>(i))) continue;
    out += first ? "" : ", ";
    out += json_string(encoded_char_text(static_cast<EncodedChar>(i)));
    first = false;
  }
  out += "]}, \"underscores_in_headers\": ";
  out += s.underscores_in_headers == Settings::Underscores::allow  ? "\"allow\""
         : s.underscores_in_headers == Settings::Underscores::drop ? "\"drop\""
                                                                   : "\"reject\"";
  out += ", \"deny\": [";
  for (size_t i = 0; i < s.deny.size(); ++i) {
    const DenyRule& r = s.deny[i];
    out += i ? ", " : "";
    out += "{\"name\": " + json_string(r.name);
    if (r.path_regex) out += ", \"path_regex\": " + json_string(r.path_regex->pattern());
    if (r.query_regex) out += ", \"query_regex\": " + json_string(r.query_regex->pattern());
    if (r.header_regex) {
      out += ", \"header\": " + json_string(r.header) +
             ", \"regex\": " + json_string(r.header_regex->pattern());
    }
    if (!r.methods.empty()) {
      out += ", \"method\": [";
      for (size_t k = 0; k < r.methods.size(); ++k) {
        out += (k ? ", " : "") + json_string(r.methods[k]);
      }
      out += "]";
    }
    out += ", \"status\": " + std::to_string(r.status) + ", \"body\": " + json_string(r.body) + "}";
  }
  return out + "]}";
}

}  // namespace

config::FilterConfig::JsonMembers SanitizeConfig::root_json() const {
  if (!has_root) return {};
  return {{"sanitize", settings_json(defaults)}};
}

config::FilterConfig::JsonMembers SanitizeConfig::listener_json(std::string_view listener) const {
  auto it = listeners.find(std::string(listener));
  if (it == listeners.end()) return {};
  return {{"sanitize", settings_json(it->second)}};
}

config::FilterSchema schema() {
  config::FilterSchema s;
  s.name = "sanitize";
  s.root_keys = {"sanitize"};
  s.listener_keys = {"sanitize"};
  s.parse = parse;
  return s;
}

}  // namespace sluice::sanitize
