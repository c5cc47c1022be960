#include "core/request_id.h"

#include <set>
#include <vector>

#include <gtest/gtest.h>

namespace sluice {
namespace {

bool is_hex(const std::string& s) {
  return s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

TEST(RequestId, RandomHexIsHexOfTheLengthAskedAndDiffers) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string id = random_hex(32);
    EXPECT_EQ(id.size(), 32u);
    EXPECT_TRUE(is_hex(id)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_EQ(random_hex(5).size(), 5u);
}

TEST(RequestId, EveryDigitTurnsUpAtEveryPosition) {
  // Lengths that end inside a 64-bit draw too. 2000 draws leave a digit out of a position
  // with odds of about 16 * (15/16)^2000.
  for (size_t length : {16u, 21u, 32u}) {
    std::vector<std::set<char>> digits(length);
    for (int i = 0; i < 2000; ++i) {
      std::string id = random_hex(length);
      ASSERT_EQ(id.size(), length);
      ASSERT_TRUE(is_hex(id)) << id;
      for (size_t at = 0; at < length; ++at) digits[at].insert(id[at]);
    }
    for (size_t at = 0; at < length; ++at) EXPECT_EQ(digits[at].size(), 16u) << "position " << at;
  }
}

TEST(RequestId, Traceparent) {
  EXPECT_TRUE(is_valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_TRUE(is_valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
  // A later version may carry more fields after a dash.
  EXPECT_TRUE(is_valid_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz"));
  EXPECT_FALSE(is_valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz"));
  EXPECT_FALSE(is_valid_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(is_valid_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(is_valid_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
  EXPECT_FALSE(is_valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
  EXPECT_FALSE(is_valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"));
  EXPECT_FALSE(is_valid_traceparent(""));
}

TEST(RequestId, AssignKeepsOnlyATrustedPeersId) {
  TraceContext trace;
  HeaderMap h;
  h.add("x-request-id", "from-client");
  std::string id = assign_request_ids(h, false, trace);
  EXPECT_NE(id, "from-client");
  EXPECT_EQ(h.get("x-request-id"), id);

  HeaderMap trusted;
  trusted.add("x-request-id", "from-lb");
  EXPECT_EQ(assign_request_ids(trusted, true, trace), "from-lb");

  HeaderMap spaces;
  spaces.add("x-request-id", "has space");
  EXPECT_NE(assign_request_ids(spaces, true, trace), "has space");
}

TEST(RequestId, AssignStartsATraceOnlyWhenThereIsNoValidOne) {
  const std::string valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  HeaderMap h;
  h.add("traceparent", valid);
  h.add("tracestate", "a=1");
  TraceContext trace;
  assign_request_ids(h, false, trace);
  EXPECT_EQ(h.get("traceparent"), valid);
  EXPECT_EQ(h.get("tracestate"), "a=1");
  // The caller's trace, parent and sampled flag, for the stream's sampling decision.
  EXPECT_EQ(to_view(trace.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(to_view(trace.parent_id), "00f067aa0ba902b7");
  EXPECT_TRUE(trace.has_parent);
  EXPECT_TRUE(trace.parent_sampled);
  EXPECT_FALSE(trace.sampled);  // the stream decides that

  HeaderMap none;
  none.add("tracestate", "a=1");
  TraceContext fresh;
  assign_request_ids(none, false, fresh);
  ASSERT_TRUE(none.get("traceparent"));
  EXPECT_TRUE(is_valid_traceparent(*none.get("traceparent")));
  EXPECT_FALSE(none.get("tracestate"));
  EXPECT_EQ(to_view(fresh.trace_id), none.get("traceparent")->substr(3, 32));
  EXPECT_FALSE(fresh.has_parent);
}

TEST(RequestId, AssignReadsEveryFieldOfOneHeadBeforeChangingAny) {
  // A replaced id moves the fields after it: the traceparent must have been read already.
  const std::string valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
  HeaderMap h;
  h.add("X-Request-ID", "from-client");
  h.add("accept", "*/*");
  h.add("TraceParent", valid);
  h.add("x-request-id", "second");
  TraceContext trace;
  const std::string id = assign_request_ids(h, false, trace);
  EXPECT_EQ(h.count("x-request-id"), 1u);
  EXPECT_EQ(h.get("x-request-id"), id);
  EXPECT_EQ(h.get("traceparent"), valid);
  EXPECT_EQ(to_view(trace.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_TRUE(trace.has_parent);
  EXPECT_FALSE(trace.parent_sampled);

  HeaderMap invalid;
  invalid.add("tracestate", "a=1");
  invalid.add("traceparent", "00-not-a-trace");
  TraceContext fresh;
  assign_request_ids(invalid, false, fresh);
  EXPECT_EQ(invalid.count("traceparent"), 1u);
  EXPECT_TRUE(is_valid_traceparent(*invalid.get("traceparent")));
  EXPECT_FALSE(invalid.get("tracestate"));
  EXPECT_FALSE(fresh.has_parent);
}

TEST(RequestId, TheSampledFlagIsTheLowestBitOfTheFlags) {
  for (auto [flags, sampled] : {std::pair{"00", false},
                                {"01", true},
                                {"03", true},
                                {"0a", false},
                                {"0b", true},
                                {"ff", true},
                                {"fe", false}}) {
    HeaderMap h;
    h.add("traceparent",
          std::string("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-") + flags);
    TraceContext trace;
    assign_request_ids(h, false, trace);
    EXPECT_EQ(trace.parent_sampled, sampled) << flags;
  }
}

}  // namespace
}  // namespace sluice
