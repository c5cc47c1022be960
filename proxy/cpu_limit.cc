#include "proxy/cpu_limit.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <thread>

#include "core/file.h"

namespace sluice {
namespace {

std::optional<double> parse_number(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  if (s.empty() || s.find_first_not_of("-0123456789") != std::string_view::npos)
    return std::nullopt;
  try {
    return std::stod(std::string(s));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// A limit from `dir`, by `read` (which returns nullopt when there is none), and from each
// directory above it up to `top`: the smallest.
template <typename Read>
std::optional<double> smallest_up_to(std::string dir, const std::string& top, Read read) {
  std::optional<double> smallest;
  for (;;) {
    if (std::optional<double> limit = read(dir)) {
      smallest = smallest ? std::min(*smallest, *limit) : *limit;
    }
    if (dir.size() <= top.size()) break;
    dir.erase(dir.rfind('/'));
  }
  return smallest;
}

// "max 100000" or "150000 100000".
std::optional<double> read_cpu_max(const std::string& dir) {
  std::optional<std::string> text = read_file(dir + "/cpu.max");
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  std::string quota, period;
  in >> quota >> period;
  std::optional<double> q = parse_number(quota), p = parse_number(period);
  if (!q || !p || *q <= 0 || *p <= 0) return std::nullopt;
  return *q / *p;
}

// cpu.cfs_quota_us is -1 without a limit.
std::optional<double> read_cfs_quota(const std::string& dir) {
  std::optional<std::string> quota = read_file(dir + "/cpu.cfs_quota_us");
  std::optional<std::string> period = read_file(dir + "/cpu.cfs_period_us");
  if (!quota || !period) return std::nullopt;
  std::optional<double> q = parse_number(*quota), p = parse_number(*period);
  if (!q || !p || *q <= 0 || *p <= 0) return std::nullopt;
  return *q / *p;
}

std::string trimmed_path(std::string_view path) {
  std::string p(path);
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p == "/" ? "" : p;
}

}  // namespace

std::optional<double> cgroup_cpu_quota(std::string_view self_cgroup, const std::string& root) {
  std::optional<double> smallest;
  auto take = [&](std::optional<double> limit) {
    if (limit) smallest = smallest ? std::min(*smallest, *limit) : *limit;
  };
  // Lines are "ID:CONTROLLERS:PATH": "0::/path" for v2, "4:cpu,cpuacct:/path" for v1.
  std::istringstream lines{std::string(self_cgroup)};
  for (std::string line; std::getline(lines, line);) {
    const size_t first = line.find(':');
    const size_t second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = trimmed_path(std::string_view(line).substr(second + 1));
    if (controllers.empty()) {
      // v2: the unified hierarchy (mounted at root, or at root/unified beside v1 ones).
      for (const std::string& mount : {root, root + "/unified"}) {
        take(smallest_up_to(mount + path, mount, read_cpu_max));
      }
      continue;
    }
    std::istringstream names(controllers);
    for (std::string name; std::getline(names, name, ',');) {
      if (name != "cpu") continue;
      // v1 mounts the cpu controller under its own name or with cpuacct.
      for (const std::string& mount :
           {root + "/cpu", root + "/cpu,cpuacct", root + "/" + controllers}) {
        take(smallest_up_to(mount + path, mount, read_cfs_quota));
      }
    }
  }
  return smallest;
}

unsigned usable_cpus() {
  unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    cpus = std::max(1, std::min(static_cast<int>(cpus), CPU_COUNT(&set)));
  }
  if (std::optional<std::string> self = read_file("/proc/self/cgroup")) {
    if (std::optional<double> quota = cgroup_cpu_quota(*self, "/sys/fs/cgroup")) {
      cpus = std::min(cpus, std::max(1u, static_cast<unsigned>(std::ceil(*quota - 1e-9))));
    }
  }
  return cpus;
}

}  // namespace sluice
