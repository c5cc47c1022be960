// core/error.h: the one mapping from error kinds to HTTP statuses.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace sluice {
namespace {

// Every ErrorKind with the status the design requires.
const std::vector<std::pair<ErrorKind, unsigned>> kExpected = {
    {ErrorKind::bad_request, 400},      {ErrorKind::not_implemented, 501},
    {ErrorKind::header_too_large, 431}, {ErrorKind::uri_too_long, 414},
    {ErrorKind::body_too_large, 413},   {ErrorKind::no_route, 404},
    {ErrorKind::no_healthy_host, 503},  {ErrorKind::overflow, 503},
    {ErrorKind::connect_failed, 503},   {ErrorKind::upstream_timeout, 504},
    {ErrorKind::bad_response, 502},     {ErrorKind::upstream_reset, 502},
    {ErrorKind::internal, 500},
};

TEST(StatusFor, EveryKind) {
  for (const auto& [kind, status] : kExpected) {
    EXPECT_EQ(status_for(kind), status) << to_string(kind);
  }
  // The table above covers the whole enum (internal is the last enumerator).
  EXPECT_EQ(kExpected.size(), static_cast<size_t>(ErrorKind::internal) + 1);
}

TEST(StatusFor, ErrorOverloadUsesKindOnly) {
  Error e{ErrorKind::upstream_timeout, ErrorSource::upstream, true, "detail"};
  EXPECT_EQ(status_for(e), 504u);
  e.source = ErrorSource::downstream;
  e.retry_safe = false;
  EXPECT_EQ(status_for(e), 504u);
}

TEST(StatusFor, DefaultErrorIsInternal) {
  Error e;
  EXPECT_EQ(e.kind, ErrorKind::internal);
  EXPECT_EQ(e.source, ErrorSource::internal);
  EXPECT_FALSE(e.retry_safe);
  EXPECT_EQ(status_for(e), 500u);
}

TEST(StatusFor, OutOfRangeKindIsInternal) {
  EXPECT_EQ(status_for(static_cast<ErrorKind>(999)), 500u);
  EXPECT_EQ(to_string(static_cast<ErrorKind>(999)), "internal");
}

TEST(ErrorKindName, DistinctSnakeCaseNames) {
  std::set<std::string_view> names;
  for (const auto& [kind, status] : kExpected) {
    auto n = to_string(kind);
    EXPECT_FALSE(n.empty());
    for (char c : n) EXPECT_TRUE((c >= 'a' && c <= 'z') || c == '_') << n;
    names.insert(n);
  }
  EXPECT_EQ(names.size(), kExpected.size());
  EXPECT_EQ(to_string(ErrorKind::connect_failed), "connect_failed");
  EXPECT_EQ(to_string(ErrorKind::upstream_reset), "upstream_reset");
}

}  // namespace
}  // namespace sluice
