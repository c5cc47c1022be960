#include "admin/process_metrics.h"

#include <openssl/crypto.h>
#include <unistd.h>

#include <charconv>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string_view>
#include <utility>

#include "core/file.h"
#include "core/version.h"

namespace sluice::admin {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

std::optional<uint64_t> to_u64(std::string_view s) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// Fields of /proc/PID/stat from field 3 (state) on; `comm` (field 2) may hold spaces and
// parentheses, so the split starts after its last ')'.
std::vector<std::string_view> stat_fields(std::string_view text) {
  std::vector<std::string_view> fields;
  size_t paren = text.rfind(')');
  if (paren == std::string_view::npos) return fields;
  std::string_view rest = text.substr(paren + 1);
  while (!rest.empty()) {
    size_t start = rest.find_first_not_of(" \n");
    if (start == std::string_view::npos) break;
    rest.remove_prefix(start);
    size_t end = rest.find_first_of(" \n");
    fields.push_back(rest.substr(0, end));
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end);
  }
  return fields;
}

// "btime N" of /proc/stat: boot time, seconds since the epoch.
std::optional<uint64_t> boot_time(const std::string& proc) {
  std::optional<std::string> text = read_file(proc + "/stat");
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("btime ", 0) == 0) return to_u64(line.substr(6));
  }
  return std::nullopt;
}

// The soft limit of "Max open files" in /proc/PID/limits.
std::optional<uint64_t> max_open_files(const std::string& proc) {
  std::optional<std::string> text = read_file(proc + "/self/limits");
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  std::string line;
  constexpr std::string_view kName = "Max open files";
  while (std::getline(in, line)) {
    if (line.rfind(kName, 0) != 0) continue;
    std::istringstream fields(line.substr(kName.size()));
    std::string soft;
    fields >> soft;
    return to_u64(soft);  // "unlimited" gives none
  }
  return std::nullopt;
}

MetricFamily gauge_or_counter(std::string name, std::string help, MetricType type, double value) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  ClientMetric m;
  if (type == MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
  return f;
}

}  // namespace

ProcessStats read_process_stats(const std::string& proc) {
  ProcessStats out;
  const long ticks = sysconf(_SC_CLK_TCK);
  const long page = sysconf(_SC_PAGESIZE);
  if (std::optional<std::string> text = read_file(proc + "/self/stat")) {
    std::vector<std::string_view> f = stat_fields(*text);
    // Indexes are the stat(5) field numbers minus 3: utime 14, stime 15, starttime 22,
    // vsize 23, rss 24.
    auto field = [&](size_t number) -> std::optional<uint64_t> {
      if (number - 3 >= f.size()) return std::nullopt;
      return to_u64(f[number - 3]);
    };
    auto utime = field(14), stime = field(15);
    if (utime && stime && ticks > 0) {
      out.cpu_seconds = static_cast<double>(*utime + *stime) / static_cast<double>(ticks);
    }
    if (auto vsize = field(23)) out.virtual_bytes = static_cast<double>(*vsize);
    if (auto rss = field(24); rss && page > 0) {
      out.resident_bytes = static_cast<double>(*rss) * static_cast<double>(page);
    }
    auto start = field(22);
    auto boot = boot_time(proc);
    if (start && boot && ticks > 0) {
      out.start_time_seconds =
          static_cast<double>(*boot) + static_cast<double>(*start) / static_cast<double>(ticks);
    }
  }
  std::error_code ec;
  std::filesystem::directory_iterator it(proc + "/self/fd", ec);
  if (!ec) {
    uint64_t n = 0;
    for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
      if (ec) break;
      ++n;
    }
    if (!ec) out.open_fds = static_cast<double>(n);
  }
  if (auto max = max_open_files(proc)) out.max_fds = static_cast<double>(*max);
  return out;
}

std::vector<MetricFamily> process_metric_families(const ProcessStats& s) {
  std::vector<MetricFamily> out;
  if (s.cpu_seconds) {
    out.push_back(gauge_or_counter("process_cpu_seconds_total",
                                   "Total user and system CPU time spent in seconds.",
                                   MetricType::Counter, *s.cpu_seconds));
  }
  if (s.open_fds) {
    out.push_back(gauge_or_counter("process_open_fds", "Number of open file descriptors.",
                                   MetricType::Gauge, *s.open_fds));
  }
  if (s.max_fds) {
    out.push_back(gauge_or_counter("process_max_fds", "Maximum number of open file descriptors.",
                                   MetricType::Gauge, *s.max_fds));
  }
  if (s.virtual_bytes) {
    out.push_back(gauge_or_counter("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                                   MetricType::Gauge, *s.virtual_bytes));
  }
  if (s.resident_bytes) {
    out.push_back(gauge_or_counter("process_resident_memory_bytes",
                                   "Resident memory size in bytes.", MetricType::Gauge,
                                   *s.resident_bytes));
  }
  if (s.start_time_seconds) {
    out.push_back(gauge_or_counter("process_start_time_seconds",
                                   "Start time of the process since unix epoch in seconds.",
                                   MetricType::Gauge, *s.start_time_seconds));
  }
  MetricFamily build = gauge_or_counter(
      "sluice_build_info",
      "Always 1; the labels name the sluice version, the compiler that built it and the OpenSSL "
      "library in use.",
      MetricType::Gauge, 1);
  build.metric.front().label = {{"version", kVersion},
                                {"compiler", kCompiler},
                                {"openssl", OpenSSL_version(OPENSSL_VERSION_STRING)}};
  out.push_back(std::move(build));
  return out;
}

}  // namespace sluice::admin
