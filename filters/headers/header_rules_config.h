#pragma once
// The header_rules filter's config: `request_headers:` and `response_headers:` of each listener
// and each route, each a block of `remove: [NAME]`, `set: {NAME: VALUE}` and `add: {NAME: VALUE}`
// applied in that order. Names are validated and lower-cased, framing and hop-by-hop headers
// refused, values compiled once into literal and variable parts (`%{client_ip}`,
// `%{request_id}`, `%{host}`; `%%` is a literal '%'). Parsed with FILE:LINE:COL diagnostics on
// the loading thread; immutable afterwards and shared read-only by every worker.
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "config/extensions.h"

namespace sluice::header_rules {

// What a value may refer to, read from the stream when the rule runs.
enum class Variable { client_ip, request_id, host };

// A value as compiled: literal text and variables, in order.
struct ValueTemplate {
  struct Part {
    bool is_variable = false;
    Variable variable = Variable::client_ip;
    std::string literal;  // when !is_variable
  };
  std::vector<Part> parts;
  std::string text;  // as written in the config, for the JSON dump

  // A value without variables: `literal()` is the whole of it.
  bool is_literal() const { return parts.size() <= 1 && (parts.empty() || !parts[0].is_variable); }
  std::string_view literal() const {
    return parts.empty() ? std::string_view() : std::string_view(parts[0].literal);
  }
};

struct HeaderValue {
  std::string name;  // lower case
  ValueTemplate value;
};

// One `request_headers:` or `response_headers:` block. Applied as remove, then set, then add.
struct Rules {
  std::vector<std::string> remove;  // lower case
  std::vector<HeaderValue> set;
  std::vector<HeaderValue> add;
  bool empty() const { return remove.empty() && set.empty() && add.empty(); }
};

// The two blocks of one listener or route.
struct RuleSet {
  Rules request;
  Rules response;
  bool empty() const { return request.empty() && response.empty(); }
};

class HeaderRulesConfig : public config::FilterConfig {
 public:
  // By listener (route) name; only those with at least one rule.
  std::map<std::string, RuleSet, std::less<>> listeners;
  std::map<std::string, RuleSet, std::less<>> routes;

  // Listeners whose chain runs the filter: their own rules, or a route that can match there has
  // some.
  std::vector<std::string> active_listeners;

  const RuleSet* for_listener(std::string_view name) const;
  bool applies_on(std::string_view listener) const;
  const RuleSet* for_route(std::string_view name) const;

  JsonMembers listener_json(std::string_view listener) const override;
  JsonMembers route_json(std::string_view route) const override;
};

// Whether `route` can match on `listener` (no match.listeners, or one naming it).
bool route_matches_on(const config::Route& route, std::string_view listener);

// Compiles one value; on failure returns false with `error` saying what is wrong (an unknown
// variable, an unterminated `%{`, a lone '%', a control character) and `error_at` the offset
// of the offending character in `text`.
bool compile_value(std::string_view text, ValueTemplate& out, std::string* error,
                   size_t* error_at = nullptr);

// Why `name` (lower case) may not appear in a rule of `kind` ("set", "add", "remove") of a
// request (or response) block; empty when it may.
std::string forbidden_reason(std::string_view name, std::string_view kind, bool request);

config::FilterSchema schema();

}  // namespace sluice::header_rules
