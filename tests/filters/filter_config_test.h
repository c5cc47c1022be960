#pragma once
// A fixture for the tests of a filter's config section: load a YAML text as "t.yaml" with every
// built-in filter registered, get the filter's typed config, and build a listener's chain to
// see whether the filter is in it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config.h"
#include "core/runtime_state.h"
#include "filters/chain.h"
#include "filters/registry.h"
#include "filters/router/route_table.h"
#include "tests/config/diagnostics.h"

namespace sluice {

// `Config` is the filter's FilterConfig type, registered as `name`.
template <typename Config>
class FilterConfigTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { register_builtin_filters(); }

  static std::vector<std::string> errors_of(const std::string& yaml) {
    return config::errors_of(yaml);
  }
  // The filter's config of a YAML text that must load without errors.
  const Config& parsed(const std::string& yaml, const std::string& name) {
    const config::LoadResult r = config::load_string(yaml, "t.yaml");
    for (const auto& d : r.errors) ADD_FAILURE() << d.str();
    config_ = r.config;
    return static_cast<const Config&>(*config_->filter_config(name));
  }
  // The filter names of listener `listener`'s chain in the config parsed last.
  std::vector<std::string> chain_of(size_t listener) {
    RuntimeState runtime;
    std::string error;
    auto chain = FilterChainFactory::build(*config_, config_->listeners.at(listener),
                                           router::RouteTable::build(*config_), runtime, &error);
    EXPECT_TRUE(chain) << error;
    return chain ? chain->names() : std::vector<std::string>{};
  }

  config::ConfigPtr config_;
};

}  // namespace sluice
