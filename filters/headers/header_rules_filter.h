#pragma once
// The header_rules filter: a listener's and its routes' `request_headers` / `response_headers`
// rules (header_rules_config.h). It is in a listener's chain only when the listener or a route
// that can match there has rules, last before the router. Request rules run after routing
// (the route is the one matched on the client's request; a rule setting `host` does not route
// again); response rules run on every response the stream sends, sluice's own answers (404,
// 503, 429, …) included. Listener rules run before route rules. Runs on the stream's worker
// thread; the factory is immutable and shared by every worker.
#include <vector>

#include "filters/headers/header_rules_config.h"
#include "filters/registry.h"

namespace sluice::header_rules {

class HeaderRulesFactory : public FilterFactory {
 public:
  // `listener` (may be null) and the rule sets belong to the snapshot's config, which outlives
  // the chain holding this factory; `routes` is that config's route list.
  HeaderRulesFactory(const RuleSet* listener, const std::vector<config::Route>& routes,
                     std::vector<const RuleSet*> by_route);
  FilterPtr create(WorkerServices& services) const override;

  const RuleSet* listener_rules() const { return listener_; }
  bool has_route_rules() const { return has_route_rules_; }
  // The rules of `route` (a route of the snapshot), or null.
  const RuleSet* route_rules(const config::Route* route) const;

 private:
  const RuleSet* listener_;
  const config::Route* routes_base_;
  std::vector<const RuleSet*> by_route_;  // parallel to the config's routes
  bool has_route_rules_ = false;
};

// Applies one block to `headers`: remove, then set, then add. `scratch` holds expanded values.
void apply_rules(const Rules& rules, HeaderMap& headers, const StreamInfo& info,
                 std::string_view host, std::string& scratch);

// The registry entry: the schema, and in a listener's chain when a rule can apply there.
FilterRegistration registration();

}  // namespace sluice::header_rules
