#include "core/trace.h"

#include <gtest/gtest.h>

#include <set>

#include "core/request_id.h"

namespace sluice {
namespace {

TEST(Trace, SpanIdsAreSixteenHexDigitsAndDiffer) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    SpanId id = new_span_id();
    std::string_view v = to_view(id);
    ASSERT_EQ(v.find_first_not_of("0123456789abcdef"), std::string_view::npos) << v;
    ASSERT_NE(v, "0000000000000000");
    seen.emplace(v);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(Trace, FormattedTraceparentNamesTheSpanAsParent) {
  TraceId trace;
  std::string_view t = "4bf92f3577b34da6a3ce929d0e0e4736";
  std::copy(t.begin(), t.end(), trace.begin());
  SpanId span;
  std::string_view s = "00f067aa0ba902b7";
  std::copy(s.begin(), s.end(), span.begin());
  std::string value = format_traceparent(trace, span, true);
  EXPECT_EQ(value, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  EXPECT_TRUE(is_valid_traceparent(value));
  EXPECT_EQ(format_traceparent(trace, span, false),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
}

TEST(Trace, MethodsOutsideTheRegisteredOnesAreOther) {
  EXPECT_EQ(known_http_method("GET"), "GET");
  EXPECT_EQ(known_http_method("PATCH"), "PATCH");
  EXPECT_EQ(known_http_method("get"), "_OTHER");  // methods are case-sensitive
  EXPECT_EQ(known_http_method("PROPFIND"), "_OTHER");
}

TEST(Trace, UnixNowIsNanosecondsSinceTheEpoch) {
  const uint64_t now = unix_now_ns();
  EXPECT_GT(now, 1'700'000'000'000'000'000ull);  // after November 2023
  EXPECT_LT(now, 4'100'000'000'000'000'000ull);  // before 2100
}

}  // namespace
}  // namespace sluice
