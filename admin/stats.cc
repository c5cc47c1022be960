#include "admin/stats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <utility>
#include <vector>

#include "admin/admin_context.h"
#include "admin/clusters_json.h"
#include "core/json.h"
#include "core/version.h"
#include "filters/rate_limit/rate_limit_config.h"

namespace sluice::admin {
namespace {

// A JSON number; NaN and infinities (no data) become null.
void append_number(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  out += buf;
}

void append_counts(std::string& out, const std::array<uint64_t, 5>& counts) {
  out += '[';
  for (size_t i = 0; i < counts.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(counts[i]);
  }
  out += ']';
}

uint64_t delta(uint64_t now, uint64_t before) { return now >= before ? now - before : 0; }

std::string iso_time(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

void append_routes(std::string& out, const StatsTotals& totals, size_t max_routes) {
  struct Row {
    const std::string* name;
    std::array<uint64_t, 5> counts{};
    uint64_t total = 0;
  };
  std::vector<Row> rows;
  rows.reserve(totals.routes.size());
  for (const auto& [name, route] : totals.routes) {
    Row row{&name};
    for (size_t c = 0; c < route.by_class.size(); ++c) {
      for (uint64_t n : route.by_class[c].buckets) row.counts[c] += n;
      row.total += row.counts[c];
    }
    rows.push_back(row);
  }
  size_t omitted = 0;
  if (rows.size() > max_routes) {
    // The busiest, then back in name order so the list does not jump around between polls.
    std::stable_sort(rows.begin(), rows.end(),
                     [](const Row& a, const Row& b) { return a.total > b.total; });
    omitted = rows.size() - max_routes;
    rows.resize(max_routes);
    std::sort(rows.begin(), rows.end(),
              [](const Row& a, const Row& b) { return *a.name < *b.name; });
  }
  out += "\"routes\": [";
  for (size_t i = 0; i < rows.size(); ++i) {
    out += i ? ",\n  " : "\n  ";
    out += "{\"name\": ";
    append_json_string(out, *rows[i].name);
    out += ", \"requests\": ";
    append_counts(out, rows[i].counts);
    out += '}';
  }
  out += rows.empty() ? "]" : "\n]";
  out += ",\n\"routes_omitted\": " + std::to_string(omitted);
}

void append_rate_limits(std::string& out, const AdminContext& ctx, const StatsTotals& totals) {
  struct Rule {
    std::string mode, scope, rate;
    std::array<uint64_t, 5> decisions{};
  };
  std::map<std::string, Rule> rules;
  if (config::ConfigPtr cfg = ctx.config()) {
    if (const auto* rl =
            static_cast<const rate_limit::RateLimitConfig*>(cfg->filter_config("rate_limit"))) {
      for (const rate_limit::Rule& r : rl->rules) {
        Rule& rule = rules[r.name];
        rule.mode = r.mode == rate_limit::Rule::Mode::shadow ? "shadow" : "enforce";
        rule.scope = r.scope == rate_limit::Rule::Scope::global ? "global" : "local";
        rule.rate = r.rate_text;
      }
    }
  }
  // Counters of rules a reload removed stay, as in /metrics.
  for (const auto& [name, counts] : totals.rate_limits) rules[name].decisions = counts;
  static constexpr const char* kDecisions[] = {"allowed", "limited", "would_limit", "skipped",
                                               "error"};
  out += "\"rate_limits\": [";
  bool first = true;
  for (const auto& [name, r] : rules) {
    out += first ? "\n  " : ",\n  ";
    first = false;
    out += "{\"name\": ";
    append_json_string(out, name);
    if (!r.mode.empty()) {
      out += ", \"mode\": \"" + r.mode + "\", \"scope\": \"" + r.scope + "\", \"rate\": ";
      append_json_string(out, r.rate);
    }
    for (size_t i = 0; i < r.decisions.size(); ++i) {
      out += ", \"";
      out += kDecisions[i];
      out += "\": " + std::to_string(r.decisions[i]);
    }
    out += '}';
  }
  out += first ? "]" : "\n]";
}

void append_reloads(std::string& out, const AdminContext& ctx) {
  out += "\"reloads\": {\"succeeded\": " + std::to_string(ctx.reloads_succeeded()) +
         ", \"failed\": " + std::to_string(ctx.reloads_failed()) + ", \"recent\": [";
  std::vector<ReloadRecord> recent = ctx.recent_reloads();
  // Newest first, as the page lists them.
  for (size_t i = 0; i < recent.size(); ++i) {
    const ReloadRecord& r = recent[recent.size() - 1 - i];
    out += i ? ",\n  " : "\n  ";
    out += "{\"time_ms\": " + std::to_string(unix_ms(r.time)) + ", \"time\": \"" +
           iso_time(r.time) + "\", \"trigger\": ";
    append_json_string(out, r.trigger);
    out += ", \"result\": ";
    out += r.ok ? "\"ok\"" : "\"failed\"";
    out += ", \"duration_ms\": " + std::to_string(r.duration.count()) +
           ", \"error_count\": " + std::to_string(r.error_count) + ", \"errors\": [";
    for (size_t e = 0; e < r.errors.size(); ++e) {
      if (e) out += ", ";
      append_json_string(out, r.errors[e]);
    }
    out += "]}";
  }
  out += recent.empty() ? "]}" : "\n]}";
}

void append_series(std::string& out, const StatsSeries& series, int64_t since_ms) {
  out += "\"series\": {\"interval_ms\": " + std::to_string(StatsSeries::kInterval.count()) +
         ", \"capacity\": " + std::to_string(StatsSeries::kCapacity) +
         ",\n \"fields\": [\"time_ms\", \"requests_per_second\", \"errors_per_second\", "
         "\"p50_ms\", \"p99_ms\"],\n \"points\": [";
  bool first = true;
  for (size_t i = 0; i < series.size(); ++i) {
    const SeriesPoint& p = series.at(i);
    if (p.time_ms <= since_ms) continue;
    out += first ? "\n  [" : ",\n  [";
    first = false;
    out += std::to_string(p.time_ms);
    for (double v :
         {p.requests_per_second, p.errors_per_second, p.p50_seconds * 1000, p.p99_seconds * 1000}) {
      out += ',';
      append_number(out, v);
    }
    out += ']';
  }
  out += first ? "]}" : "\n]}";
}

}  // namespace

double histogram_quantile(double q, std::span<const uint64_t> buckets,
                          std::span<const double> bounds) {
  uint64_t total = 0;
  for (uint64_t n : buckets) total += n;
  if (total == 0 || buckets.empty() || bounds.size() + 1 != buckets.size()) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  const double rank = std::clamp(q, 0.0, 1.0) * static_cast<double>(total);
  uint64_t below = 0;
  for (size_t i = 0; i < buckets.size(); ++i) {
    // Empty buckets cannot hold the rank (for q = 0 it is in the first non-empty one).
    if (buckets[i] == 0 || static_cast<double>(below + buckets[i]) < rank) {
      below += buckets[i];
      continue;
    }
    if (i == bounds.size()) return bounds.back();  // +Inf: the highest bound we know
    const double lower = i == 0 ? 0.0 : bounds[i - 1];
    const double upper = bounds[i];
    const double within = (rank - static_cast<double>(below)) / static_cast<double>(buckets[i]);
    return lower + (upper - lower) * std::clamp(within, 0.0, 1.0);
  }
  return bounds.back();  // only by rounding: rank above the total
}

SampleCounts sample_counts(const StatsTotals& totals) {
  SampleCounts counts;
  for (const auto& [name, listener] : totals.listeners) {
    for (uint64_t n : listener.requests) counts.requests += n;
    counts.errors += listener.requests[4];
  }
  for (const auto& [name, route] : totals.routes) {
    for (const HistogramSum& h : route.by_class) {
      for (size_t i = 0; i < kBuckets; ++i) counts.latency[i] += h.buckets[i];
    }
  }
  return counts;
}

void StatsSeries::add(std::chrono::steady_clock::time_point now, int64_t unix_ms,
                      const SampleCounts& counts) {
  if (have_baseline_ && now > last_time_) {
    const double seconds = std::chrono::duration<double>(now - last_time_).count();
    SeriesPoint& p = ring_[next_];
    p.time_ms = unix_ms;
    p.requests_per_second = static_cast<double>(delta(counts.requests, last_.requests)) / seconds;
    p.errors_per_second = static_cast<double>(delta(counts.errors, last_.errors)) / seconds;
    std::array<uint64_t, kBuckets> latency{};
    for (size_t i = 0; i < kBuckets; ++i) latency[i] = delta(counts.latency[i], last_.latency[i]);
    p.p50_seconds = histogram_quantile(0.5, latency, Histogram::kBounds);
    p.p99_seconds = histogram_quantile(0.99, latency, Histogram::kBounds);
    next_ = (next_ + 1) % kCapacity;
    size_ = std::min(size_ + 1, kCapacity);
  }
  have_baseline_ = true;
  last_time_ = now;
  last_ = counts;
}

std::string stats_json(const AdminContext& ctx, const StatsTotals& totals,
                       const StatsSeries& series, int64_t now_ms, const StatsOptions& options) {
  std::string out;
  out.reserve(4096);
  out += "{\"version\": ";
  append_json_string(out, kVersion);
  out += ", \"time_ms\": " + std::to_string(now_ms) +
         ", \"workers\": " + std::to_string(ctx.worker_stats().size()) + ",\n\"status_classes\": [";
  for (size_t i = 0; i < kStatusClasses.size(); ++i) {
    out += i ? ", \"" : "\"";
    out += kStatusClasses[i];
    out += '"';
  }
  out += ']';

  std::array<uint64_t, 5> requests{};
  int64_t connections = 0;
  for (const auto& [name, l] : totals.listeners) {
    for (size_t i = 0; i < requests.size(); ++i) requests[i] += l.requests[i];
    connections += l.connections_active;
  }
  uint64_t total = 0;
  for (uint64_t n : requests) total += n;
  out += ",\n\"requests\": {\"total\": " + std::to_string(total) + ", \"by_class\": ";
  append_counts(out, requests);
  out += "}, \"connections_active\": " + std::to_string(connections);

  out += ",\n\"listeners\": [";
  bool first = true;
  for (const auto& [name, l] : totals.listeners) {
    out += first ? "\n  " : ",\n  ";
    first = false;
    out += "{\"name\": ";
    append_json_string(out, name);
    out += ", \"requests\": ";
    append_counts(out, l.requests);
    out += ", \"connections_active\": " + std::to_string(l.connections_active) +
           ", \"connections_total\": " + std::to_string(l.connections_total) + '}';
  }
  out += first ? "]" : "\n]";

  out += ",\n";
  append_routes(out, totals, options.max_routes);
  out += ",\n\"clusters\": " + clusters_json_array(ctx);
  out += ",\n";
  append_rate_limits(out, ctx, totals);
  out += ",\n";
  append_reloads(out, ctx);
  out += ",\n";
  append_series(out, series, options.since_ms);
  out += "}\n";
  return out;
}

}  // namespace sluice::admin
