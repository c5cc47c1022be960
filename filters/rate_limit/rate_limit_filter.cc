#include "filters/rate_limit/rate_limit_filter.h"

#include <algorithm>
#include <chrono>

#include "core/json.h"
#include "core/runtime_state.h"
#include "core/stats.h"
#include "filters/router/route_table.h"
#include "filters/worker_services.h"
#include "upstream/redis/redis_client.h"

namespace sluice::rate_limit {

const std::string_view kGcraScript = R"lua(
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tolerance = burst * interval
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > tolerance then
  return {0, 0, tat - now, new_tat - tolerance - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.floor((new_tat - now) / 1000) + 1)
return {1, math.floor((tolerance - (new_tat - now)) / interval), new_tat - now, 0}
)lua";

namespace {

using redis_client = upstream::redis::RedisClient;

// Workers with a slot in RuleRuntime::worker_stats (more than `workers` allows; any beyond
// look their counters up by name).
constexpr unsigned kWorkerSlots = 512;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t ceil_seconds(int64_t ns) { return (ns + 999'999'999) / 1'000'000'000; }

// Appends one key part, length-prefixed so that no two different requests make the same key
// whatever bytes their values hold.
// Little-endian, so that hosts of any byte order share one Redis key.
void append_part(std::string& key, std::string_view value) {
  const auto n = static_cast<uint32_t>(value.size());
  const char len[4] = {static_cast<char>(n & 0xff), static_cast<char>((n >> 8) & 0xff),
                       static_cast<char>((n >> 16) & 0xff), static_cast<char>(n >> 24)};
  key.append(len, sizeof(len));
  key.append(value);
}

// The value of query parameter `name` (as sent, not percent-decoded), if present.
std::optional<std::string_view> query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

class RateLimitFilter : public Filter {
 public:
  RateLimitFilter(const RateLimitFactory& factory, redis_client* redis, unsigned worker)
      : factory_(factory), redis_(redis), worker_(worker) {}

  FilterStatus on_request_headers(RequestHead& head, bool) override {
    const router::CompiledRoute* route = callbacks().route();
    const std::vector<size_t>& rules = factory_.rules_for(route ? route->route : nullptr);
    if (rules.empty()) return FilterStatus::Continue;
    const int64_t now = now_ns();
    for (size_t i : rules) {
      // Local rules come first: a request one of them refuses costs no Redis round trip and
      // is not charged to global quotas.
      if (report_limited_ && !factory_.rules()[i].limiter) break;
      check(i, head, now);
    }
    if (pending_ > 0) {
      waiting_ = true;
      return FilterStatus::Stop;
    }
    return decide();
  }

  FilterStatus on_response_headers(ResponseHead& head, bool) override {
    if (report_ && !report_limited_ && !redis_denied_) {
      add_fields(head.headers, *report_, report_decision_);
    }
    return FilterStatus::Continue;
  }

 private:
  RateLimitStats& stats_of(const RuleRuntime& rule) {
    if (worker_ >= kWorkerSlots) return callbacks().stats().rate_limit(rule.rule->name);
    std::atomic<RateLimitStats*>& slot = rule.worker_stats[worker_];
    RateLimitStats* stats = slot.load(std::memory_order_relaxed);
    if (!stats) {
      stats = &callbacks().stats().rate_limit(rule.rule->name);
      slot.store(stats, std::memory_order_relaxed);
    }
    return *stats;
  }

  void check(size_t index, const RequestHead& head, int64_t now) {
    const RuleRuntime& rule = factory_.rules()[index];
    RateLimitStats& stats = stats_of(rule);
    if (!build_key(*rule.rule, head)) {
      stats.skipped.add();
      return;
    }
    if (rule.limiter) {
      record(rule, stats, rule.limiter->acquire(key_, now));
      return;
    }
    if (!redis_) {  // global rules always come with redis: (the loader checks)
      stats.error.add();
      return;
    }
    ++pending_;
    std::string redis_key = rule.redis_prefix;
    redis_key += key_;
    const std::string_view keys[] = {redis_key};
    const std::string_view args[] = {rule.interval_us, rule.burst};
    redis_->eval_script(
        kGcraScript, keys, args,
        callbacks().cancellation().bind([this, index](upstream::redis::Result result) {
          on_redis_result(index, std::move(result));
        }));
  }

  void on_redis_result(size_t index, upstream::redis::Result result) {
    const RuleRuntime& rule = factory_.rules()[index];
    RateLimitStats& stats = stats_of(rule);
    const auto& r = result.reply;
    const bool good =
        result.ok() && r.type == upstream::redis::Reply::Type::array && r.elements.size() == 4 &&
        std::all_of(r.elements.begin(), r.elements.end(),
                    [](const auto& e) { return e.type == upstream::redis::Reply::Type::integer; });
    if (!good) {
      stats.error.add();
      callbacks().stats().redis_errors.add();
      // A shadow rule never refuses, not even for want of an answer.
      const bool enforce = rule.rule->mode == Rule::Mode::enforce;
      if (enforce && !factory_.config().redis->allow_on_error) redis_denied_ = true;
      if (callbacks().info().error.empty()) {
        callbacks().info().error =
            "rate limit redis: " +
            std::string(result.ok() ? std::string_view("unexpected reply") : result.error());
      }
    } else {
      Decision d;
      d.allowed = r.elements[0].integer == 1;
      d.remaining = std::max<int64_t>(0, r.elements[1].integer);
      d.reset = r.elements[2].integer * 1000;
      d.retry_after = r.elements[3].integer * 1000;
      record(rule, stats, d);
    }
    if (--pending_ == 0 && waiting_) {
      waiting_ = false;
      if (decide() == FilterStatus::Continue) callbacks().continue_request();
    }
  }

  // The key of `rule` for this request in key_; false when the request lacks a part.
  bool build_key(const Rule& rule, const RequestHead& head) {
    key_.clear();
    for (const KeyPart& part : rule.key) {
      switch (part.kind) {
        case KeyPart::Kind::client_ip: {
          const IpAddress& ip = callbacks().info().client_ip;
          if (ip.is_v4()) {
            const auto b = ip.to_v4().to_bytes();
            append_part(key_, std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
          } else {
            const auto b = ip.to_v6().to_bytes();
            append_part(key_, std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
          }
          break;
        }
        case KeyPart::Kind::header: {
          auto v = head.headers.get(part.name);
          if (!v) return false;
          append_part(key_, *v);
          break;
        }
        case KeyPart::Kind::query: {
          auto v = query_param(head.query(), part.name);
          if (!v) return false;
          append_part(key_, *v);
          break;
        }
        case KeyPart::Kind::route: {
          const router::CompiledRoute* r = callbacks().route();
          if (!r) return false;
          append_part(key_, r->route->name);
          break;
        }
        case KeyPart::Kind::host: {
          // Lowered in place in the key: no copy of the host per request.
          const size_t start = key_.size() + 4;  // after the length
          append_part(key_, authority_host(head.authority));
          for (size_t i = start; i < key_.size(); ++i) {
            key_[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(key_[i])));
          }
          break;
        }
        case KeyPart::Kind::method:
          append_part(key_, head.method);
          break;
        case KeyPart::Kind::path:
          append_part(key_, head.path());
          break;
      }
    }
    return true;
  }

  void record(const RuleRuntime& rule, RateLimitStats& stats, const Decision& d) {
    const bool shadow = rule.rule->mode == Rule::Mode::shadow;
    if (d.allowed) {
      stats.allowed.add();
    } else if (shadow) {
      stats.would_limit.add();
    } else {
      stats.limited.add();
    }
    if (shadow) return;  // a shadow rule is invisible to clients
    // Report the rule closest to its limit: a refusal over any admission (the longest wait
    // first), else the fewest requests left.
    const bool limited = !d.allowed;
    if (limited) {
      if (!report_limited_ || d.retry_after > report_decision_.retry_after) {
        report_ = &rule;
        report_decision_ = d;
        report_limited_ = true;
      }
      return;
    }
    if (report_limited_ || !rule.rule->headers) return;
    if (!report_ || d.remaining < report_decision_.remaining) {
      report_ = &rule;
      report_decision_ = d;
    }
  }

  FilterStatus decide() {
    if (report_limited_) {
      HeaderMap extra;
      const int64_t wait = std::max<int64_t>(1, ceil_seconds(report_decision_.retry_after));
      extra.add("retry-after", std::to_string(wait));
      add_fields(extra, *report_, report_decision_);
      callbacks().info().error = "rate_limited:" + report_->rule->name;
      callbacks().send_local_reply(report_->rule->status, "rate limit exceeded\n", extra);
      return FilterStatus::Stop;
    }
    if (redis_denied_) {
      callbacks().info().error = "rate_limit_unavailable";
      callbacks().send_local_reply(503, "rate limit service unavailable\n");
      return FilterStatus::Stop;
    }
    return FilterStatus::Continue;
  }

  static void add_fields(HeaderMap& headers, const RuleRuntime& rule, const Decision& d) {
    headers.add("ratelimit-policy", rule.policy);
    // t: when the client can act again: a refused one when one request is admitted, an
    // admitted one when the whole quota is back.
    const int64_t t = ceil_seconds(d.allowed ? d.reset : d.retry_after);
    std::string value = json_string(rule.rule->name);
    value += ";r=";
    value += std::to_string(d.allowed ? d.remaining : 0);
    value += ";t=";
    value += std::to_string(t);
    headers.add("ratelimit", value);
  }

  const RateLimitFactory& factory_;
  redis_client* redis_;
  unsigned worker_;
  std::string key_;
  const RuleRuntime* report_ = nullptr;
  Decision report_decision_;
  bool report_limited_ = false;
  bool redis_denied_ = false;
  unsigned pending_ = 0;
  bool waiting_ = false;
};

bool applies_to(const config::FilterConfig& fc, const config::Listener& listener) {
  const auto& cfg = static_cast<const RateLimitConfig&>(fc);
  auto it = cfg.listener_rules.find(listener.name);
  if (it != cfg.listener_rules.end() && !it->second.empty()) return true;
  // Route rules apply on every listener (routes are not tied to listeners).
  return std::any_of(cfg.route_rules.begin(), cfg.route_rules.end(),
                     [](const auto& entry) { return !entry.second.empty(); });
}

}  // namespace

std::shared_ptr<const RateLimitFactory> RateLimitFactory::build(const RateLimitConfig& config,
                                                                FactoryContext& context,
                                                                std::string* error) {
  auto factory = std::make_shared<RateLimitFactory>();
  factory->config_ = &config;
  for (const Rule& rule : config.rules) {
    auto quota = Quota::make(static_cast<int64_t>(rule.count), rule.period.count(),
                             static_cast<int64_t>(rule.burst));
    if (!quota) {
      if (error) *error = "rate limit '" + rule.name + "': rate and burst are out of range";
      return nullptr;
    }
    RuleRuntime rt{&rule, *quota, nullptr, {}, {}, {}, {}, nullptr};
    rt.worker_stats.reset(new std::atomic<RateLimitStats*>[kWorkerSlots]());
    rt.policy = json_string(rule.name) + ";q=" + std::to_string(quota->policy_limit()) +
                ";w=" + std::to_string(quota->policy_window_seconds());
    if (rule.scope == Rule::Scope::local) {
      rt.limiter = context.runtime.get_or_create<LocalLimiter>(
          rule.state_key(), [&] { return std::make_shared<LocalLimiter>(*quota, rule.max_keys); });
    } else {
      const int64_t interval_us = (quota->interval() + 999) / 1000;
      rt.interval_us = std::to_string(interval_us);
      rt.burst = std::to_string(rule.burst);
      rt.redis_prefix = "sluice:rl:" + rule.name + ":" + rt.interval_us + "/" + rt.burst + ":";
    }
    factory->rules_.push_back(std::move(rt));
  }
  // Each rule once, local ones first (stable: the configured order otherwise).
  const auto local_first = [&](std::vector<size_t> rules) {
    std::vector<size_t> once;
    for (size_t i : rules) {
      if (std::find(once.begin(), once.end(), i) == once.end()) once.push_back(i);
    }
    std::stable_partition(once.begin(), once.end(),
                          [&](size_t i) { return factory->rules_[i].limiter != nullptr; });
    return once;
  };
  if (auto it = config.listener_rules.find(context.listener.name);
      it != config.listener_rules.end()) {
    factory->listener_rules_ = local_first(it->second);
  }
  for (const config::Route& route : context.config.routes) {
    auto it = config.route_rules.find(route.name);
    if (it == config.route_rules.end() || it->second.empty()) continue;
    std::vector<size_t> both = factory->listener_rules_;
    both.insert(both.end(), it->second.begin(), it->second.end());
    factory->route_rules_.emplace(&route, local_first(std::move(both)));
  }
  const bool global = std::any_of(config.rules.begin(), config.rules.end(),
                                  [](const Rule& r) { return r.scope == Rule::Scope::global; });
  if (global && config.redis) {
    const RedisSettings& r = *config.redis;
    factory->redis_service_key_ =
        "redis/" + r.address.str() + "/" + std::to_string(r.timeout.count());
  }
  return factory;
}

const std::vector<size_t>& RateLimitFactory::rules_for(const config::Route* route) const {
  if (route) {
    auto it = route_rules_.find(route);
    if (it != route_rules_.end()) return it->second;
  }
  return listener_rules_;
}

FilterPtr RateLimitFactory::create(WorkerServices& services) const {
  redis_client* redis = nullptr;
  if (!redis_service_key_.empty()) {
    const RedisSettings& r = *config_->redis;
    redis = &services.get<redis_client>(redis_service_key_, [&] {
      upstream::redis::Settings s;
      s.host = r.address.host;
      s.port = r.address.port;
      s.timeout = r.timeout;
      return std::make_shared<redis_client>(services.executor(), s);
    });
  }
  return std::make_unique<RateLimitFilter>(*this, redis, services.worker_index());
}

FilterRegistration registration() {
  FilterRegistration r;
  r.schema = schema();
  r.applies_to = applies_to;
  r.make_factory = [](const config::FilterConfig& fc, FactoryContext& context,
                      std::string* error) -> FilterFactoryPtr {
    return RateLimitFactory::build(static_cast<const RateLimitConfig&>(fc), context, error);
  };
  return r;
}

std::string status_json(const config::Config& config, const RuntimeState& runtime) {
  const auto* cfg = static_cast<const RateLimitConfig*>(config.filter_config("rate_limit"));
  std::string out = "{\"rules\": [";
  if (cfg) {
    for (size_t i = 0; i < cfg->rules.size(); ++i) {
      const Rule& r = cfg->rules[i];
      out += i ? ",\n  " : "\n  ";
      out += "{\"name\": " + json_string(r.name) + ", \"rate\": " + json_string(r.rate_text) +
             ", \"burst\": " + std::to_string(r.burst) + ", \"key\": [";
      for (size_t k = 0; k < r.key.size(); ++k) {
        out += (k ? ", " : "") + json_string(r.key[k].str());
      }
      out += "], \"scope\": ";
      out += r.scope == Rule::Scope::global ? "\"global\"" : "\"local\"";
      out += ", \"mode\": ";
      out += r.mode == Rule::Mode::shadow ? "\"shadow\"" : "\"enforce\"";
      out += ", \"status\": " + std::to_string(r.status) +
             ", \"headers\": " + (r.headers ? "true" : "false") +
             ", \"max_keys\": " + std::to_string(r.max_keys);
      if (r.scope == Rule::Scope::local) {
        auto limiter = runtime.find<LocalLimiter>(r.state_key());
        out += ", \"keys\": " + std::to_string(limiter ? limiter->key_count() : 0);
        out += ", \"evictions\": " + std::to_string(limiter ? limiter->evictions() : 0);
      }
      out += "}";
    }
  }
  out += cfg && !cfg->rules.empty() ? "\n]}\n" : "]}\n";
  return out;
}

}  // namespace sluice::rate_limit
