#pragma once
// Helpers shared by the health checker's tests (plain and TLS probes).
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <utility>
#include <vector>

#include "config/config.h"
#include "upstream/health/health_checker.h"
#include "upstream/host.h"

namespace sluice::test {

inline upstream::HostSetPtr make_set(std::vector<upstream::HostPtr> hosts) {
  auto set = std::make_shared<upstream::HostSet>();
  set->hosts = std::move(hosts);
  set->refresh_available();
  return set;
}

// Probes every 50 ms, so thresholds are crossed quickly; `timeout` is generous for a shared,
// noisy machine (tests count probes, never time them).
inline config::HealthCheck fast_check(
    unsigned healthy_threshold, unsigned unhealthy_threshold,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(1000)) {
  config::HealthCheck c;
  c.interval = std::chrono::milliseconds(50);
  c.timeout = timeout;
  c.healthy_threshold = healthy_threshold;
  c.unhealthy_threshold = unhealthy_threshold;
  return c;
}

inline upstream::health::HealthChecker::HostStatus status_of(
    const upstream::health::HealthChecker& checker, const upstream::HostPtr& host) {
  for (auto& s : checker.status()) {
    if (s.host == host) return s;
  }
  ADD_FAILURE() << "no status for " << host->name();
  return {};
}

}  // namespace sluice::test
