#include "filters/headers/header_rules_filter.h"

#include <algorithm>

#include "filters/router/route_table.h"

namespace sluice::header_rules {
namespace {

std::string_view expand(const ValueTemplate& value, const StreamInfo& info, std::string_view host,
                        std::string& scratch) {
  if (value.is_literal()) return value.literal();
  scratch.clear();
  for (const ValueTemplate::Part& part : value.parts) {
    if (!part.is_variable) {
      scratch += part.literal;
      continue;
    }
    switch (part.variable) {
      case Variable::client_ip:
        scratch += info.client_ip.to_string();
        break;
      case Variable::request_id:
        scratch += info.request_id;
        break;
      case Variable::host:
        scratch += host;
        break;
    }
  }
  return scratch;
}

class HeaderRulesFilter : public Filter {
 public:
  explicit HeaderRulesFilter(const HeaderRulesFactory& factory) : factory_(factory) {}

  FilterStatus on_request_headers(RequestHead& head, bool) override {
    routed_ = true;
    if (factory_.has_route_rules()) route_ = rules_of(callbacks().route());
    const StreamInfo& info = callbacks().info();
    if (const RuleSet* l = factory_.listener_rules()) {
      apply_rules(l->request, head.headers, info, head.authority, scratch_);
    }
    if (route_) apply_rules(route_->request, head.headers, info, head.authority, scratch_);
    return FilterStatus::Continue;
  }

  FilterStatus on_response_headers(ResponseHead& head, bool) override {
    // A filter before this one answered (a rate limit's 429, a sanitize 400): the route is
    // still the request's, so its rules apply to that answer as well.
    if (!routed_ && factory_.has_route_rules()) route_ = rules_of(callbacks().route());
    const StreamInfo& info = callbacks().info();
    const std::string_view host = callbacks().request().authority;
    if (const RuleSet* l = factory_.listener_rules()) {
      apply_rules(l->response, head.headers, info, host, scratch_);
    }
    if (route_) apply_rules(route_->response, head.headers, info, host, scratch_);
    return FilterStatus::Continue;
  }

 private:
  const RuleSet* rules_of(const router::CompiledRoute* route) const {
    return route ? factory_.route_rules(route->route) : nullptr;
  }

  const HeaderRulesFactory& factory_;
  const RuleSet* route_ = nullptr;
  bool routed_ = false;
  std::string scratch_;
};

}  // namespace

void apply_rules(const Rules& rules, HeaderMap& headers, const StreamInfo& info,
                 std::string_view host, std::string& scratch) {
  for (const std::string& name : rules.remove) headers.remove(name);
  for (const HeaderValue& h : rules.set) headers.set(h.name, expand(h.value, info, host, scratch));
  for (const HeaderValue& h : rules.add) headers.add(h.name, expand(h.value, info, host, scratch));
}

HeaderRulesFactory::HeaderRulesFactory(const RuleSet* listener,
                                       const std::vector<config::Route>& routes,
                                       std::vector<const RuleSet*> by_route)
    : listener_(listener), routes_base_(routes.data()), by_route_(std::move(by_route)) {
  has_route_rules_ = std::any_of(by_route_.begin(), by_route_.end(),
                                 [](const RuleSet* s) { return s != nullptr; });
}

const RuleSet* HeaderRulesFactory::route_rules(const config::Route* route) const {
  const auto i = route - routes_base_;
  if (i < 0 || static_cast<size_t>(i) >= by_route_.size()) return nullptr;
  return by_route_[static_cast<size_t>(i)];
}

FilterPtr HeaderRulesFactory::create(WorkerServices&) const {
  return std::make_unique<HeaderRulesFilter>(*this);
}

FilterRegistration registration() {
  FilterRegistration r;
  r.schema = schema();
  r.applies_to = [](const config::FilterConfig& fc, const config::Listener& listener) {
    return static_cast<const HeaderRulesConfig&>(fc).applies_on(listener.name);
  };
  r.make_factory = [](const config::FilterConfig& fc, FactoryContext& context,
                      std::string*) -> FilterFactoryPtr {
    const auto& cfg = static_cast<const HeaderRulesConfig&>(fc);
    std::vector<const RuleSet*> by_route;
    by_route.reserve(context.config.routes.size());
    for (const config::Route& route : context.config.routes) {
      by_route.push_back(route_matches_on(route, context.listener.name) ? cfg.for_route(route.name)
                                                                        : nullptr);
    }
    return std::make_shared<HeaderRulesFactory>(cfg.for_listener(context.listener.name),
                                                context.config.routes, std::move(by_route));
  };
  return r;
}

}  // namespace sluice::header_rules
