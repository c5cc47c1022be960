#pragma once
// How many CPUs this process may use, for `workers: auto`: the CPUs its affinity mask allows,
// lowered by a cgroup CPU quota (a container's CPU limit: cgroup v2 `cpu.max`, v1
// `cpu.cfs_quota_us` / `cpu.cfs_period_us`, the smallest along the path up to the root),
// rounded up. hardware_concurrency() counts the host's CPUs, so a pod limited to 2 CPUs on a
// 64-CPU node would run 64 workers competing for 2 CPUs' time.
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

// The quota in CPUs (1.5 for "150000 100000"), or nullopt when there is none. `self_cgroup` is
// /proc/self/cgroup's text; `root` is where the cgroup file systems are mounted.
std::optional<double> cgroup_cpu_quota(std::string_view self_cgroup, const std::string& root);

// At least 1.
unsigned usable_cpus();

}  // namespace sluice
