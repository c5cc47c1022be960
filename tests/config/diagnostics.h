#pragma once
// The config loader's diagnostics for a YAML text loaded as "t.yaml", as the lines --check
// prints ("t.yaml:LINE:COL: message"), for tests.
#include <string>
#include <string_view>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.h"

namespace sluice::config {

// Every error. A config with errors must not be returned.
inline std::vector<std::string> errors_of(std::string_view yaml) {
  const LoadResult r = load_string(yaml, "t.yaml");
  std::vector<std::string> out;
  for (const Diagnostic& d : r.errors) out.push_back(d.str());
  EXPECT_EQ(r.config == nullptr, !r.errors.empty());
  return out;
}

// Every warning of a config that must load without errors.
inline std::vector<std::string> warnings_of(std::string_view yaml) {
  const LoadResult r = load_string(yaml, "t.yaml");
  EXPECT_THAT(r.errors, ::testing::IsEmpty());
  std::vector<std::string> out;
  for (const Diagnostic& d : r.warnings) out.push_back(d.str());
  return out;
}

}  // namespace sluice::config
