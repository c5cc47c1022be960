#pragma once
// The sanitize filter, first in every listener's chain unless a listener turns it off: the
// request path becomes its one canonical form before anything routes, limits or logs on it
// (path_canonicalizer.h); targets a backend could read differently are refused with 400;
// header names with '_' are dropped (or refused); deny rules answer matching requests with
// their status. Each refusal is counted in sluice_sanitize_rejections_total{listener,reason}
// and its reason goes to the access log. Runs on the stream's worker thread; the factory and
// its settings are immutable and shared by every worker.
#include <string>

#include "filters/registry.h"
#include "filters/sanitize/sanitize_config.h"

namespace sluice::sanitize {

class SanitizeFactory : public FilterFactory {
 public:
  // `settings` belong to the snapshot's config, which outlives the chain holding this factory.
  SanitizeFactory(const Settings& settings, std::string listener)
      : settings_(settings), listener_(std::move(listener)) {}
  FilterPtr create(WorkerServices& services) const override;

  const Settings& settings() const { return settings_; }
  const std::string& listener() const { return listener_; }

 private:
  const Settings& settings_;
  std::string listener_;
};

// The registry entry: schema, on by default on every listener, first in the chain.
FilterRegistration registration();

}  // namespace sluice::sanitize
