#pragma once
// The rate_limit filter's config: rules (top-level `rate_limits:`), the Redis server global
// rules use (`redis:`), and which rules apply where (a listener's or a route's
// `rate_limits: [names]`). Parsed by the filter's own section parser with FILE:LINE:COL
// diagnostics; immutable afterwards.
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/extensions.h"

namespace sluice::rate_limit {

// One part of a rule's key.
struct KeyPart {
  enum class Kind { client_ip, header, query, route, host, method, path };
  Kind kind = Kind::client_ip;
  std::string name;         // header (lower case) or query parameter name
  std::string str() const;  // as written in the config: "header:x-api-key"
};

struct Rule {
  std::string name;
  std::vector<KeyPart> key;
  uint64_t count = 0;                  // requests per period
  std::chrono::nanoseconds period{0};  // 1s, 1min or 1h
  uint64_t burst = 0;                  // default: count
  enum class Scope { local, global };
  Scope scope = Scope::local;
  enum class Mode { enforce, shadow };
  Mode mode = Mode::enforce;
  unsigned status = 429;
  bool headers = false;  // RateLimit fields on allowed responses too
  uint64_t max_keys = 100'000;
  std::string rate_text;  // "100/s", as written

  // Names this rule's state in the runtime state and in Redis: a rule keeps its counts across
  // a reload only while every setting that shapes them is the same.
  std::string state_key() const;
};

struct RedisSettings {
  config::SocketAddress address;
  config::Duration timeout{50};
  bool allow_on_error = true;  // on_error: allow | deny
};

class RateLimitConfig : public config::FilterConfig {
 public:
  std::vector<Rule> rules;
  std::optional<RedisSettings> redis;
  // Indices into `rules`, by listener name and by route name, in the order listed.
  std::map<std::string, std::vector<size_t>> listener_rules;
  std::map<std::string, std::vector<size_t>> route_rules;

  JsonMembers root_json() const override;
  JsonMembers listener_json(std::string_view listener) const override;
  JsonMembers route_json(std::string_view route) const override;
};

// The filter's config schema: keys and parser, for the registry.
config::FilterSchema schema();

// "100/s", "6000/min", "5/h" → count and period. Nullopt when malformed.
std::optional<std::pair<uint64_t, std::chrono::nanoseconds>> parse_rate(std::string_view s);

}  // namespace sluice::rate_limit
