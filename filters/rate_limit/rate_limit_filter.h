#pragma once
// The rate_limit filter: applies the rules of its listener (`listeners[].rate_limits`) and of
// the request's route (`routes[].rate_limits`, through the stream's cached route) before the
// request goes anywhere. Local rules decide at once against a LocalLimiter shared by all
// workers; global rules ask Redis (a GCRA script, one round trip, pipelined per worker) and
// hold the request until every answer is in. A refused request gets the rule's status with
// Retry-After and the IETF RateLimit-Policy / RateLimit fields; allowed responses carry the
// fields when the rule says `headers: true`. Runs on the stream's worker thread.
#include <atomic>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "filters/rate_limit/local_limiter.h"
#include "filters/rate_limit/rate_limit_config.h"
#include "filters/registry.h"

namespace sluice {
struct RateLimitStats;
}
namespace sluice::upstream::redis {
class RedisClient;
}

namespace sluice::rate_limit {

// The GCRA step in Redis (Lua, run atomically by EVALSHA). KEYS[1]: the key; ARGV[1]: the
// emission interval in microseconds; ARGV[2]: the burst. Redis's own clock (TIME) is the one
// clock every sluice process shares. Returns {allowed 0|1, remaining, reset_us, retry_after_us}.
extern const std::string_view kGcraScript;

// One rule as a snapshot uses it.
struct RuleRuntime {
  const Rule* rule = nullptr;  // in the snapshot's config
  Quota quota;
  std::shared_ptr<LocalLimiter> limiter;  // local scope; kept across reloads by RuntimeState
  std::string policy;                     // RateLimit-Policy item: "name";q=100;w=1
  std::string redis_prefix;               // global scope: "sluice:rl:<name>:<settings>:"
  std::string interval_us;                // global scope: ARGV[1]
  std::string burst;                      // global scope: ARGV[2]
  // Each worker's counters for this rule, found by name once per worker and snapshot instead
  // of once per request. Written once per slot, read by its worker only.
  std::shared_ptr<std::atomic<RateLimitStats*>[]> worker_stats;
};

class RateLimitFactory : public FilterFactory {
 public:
  // Main thread. Null with `error` set when a rule's numbers cannot make a quota.
  static std::shared_ptr<const RateLimitFactory> build(const RateLimitConfig& config,
                                                       FactoryContext& context, std::string* error);
  FilterPtr create(WorkerServices& services) const override;

  const std::vector<RuleRuntime>& rules() const { return rules_; }
  // Indices of the rules a request on this listener meets: the listener's, then those of its
  // route (`route` is the config the stream's cached route points to; null: no route), each
  // once, local rules before global ones. Worked out when the factory is built.
  const std::vector<size_t>& rules_for(const config::Route* route) const;
  const RateLimitConfig& config() const { return *config_; }

 private:
  const RateLimitConfig* config_ = nullptr;
  std::vector<RuleRuntime> rules_;
  std::vector<size_t> listener_rules_;
  std::unordered_map<const config::Route*, std::vector<size_t>> route_rules_;  // with listener's
  std::string redis_service_key_;  // empty without global rules
};

// The registry entry: schema, when the filter runs on a listener, and the factory builder.
FilterRegistration registration();

// For the admin API's GET /ratelimits: every rule with its settings and key count (local
// rules; global rules keep their keys in Redis). JSON.
std::string status_json(const config::Config& config, const RuntimeState& runtime);

}  // namespace sluice::rate_limit
