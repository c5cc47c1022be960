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
  HeaderMap h;
  h.add("x-request-id", "from-client");
  std::string id = assign_request_ids(h, false);
  EXPECT_NE(id, "from-client");
  EXPECT_EQ(h.get("x-request-id"), id);

  HeaderMap trusted;
  trusted.add("x-request-id", "from-lb");
  EXPECT_EQ(assign_request_ids(trusted, true), "from-lb");

  HeaderMap spaces;
  spaces.add("x-request-id", "has space");
  EXPECT_NE(assign_request_ids(spaces, true), "has space");
}

TEST(RequestId, AssignStartsATraceOnlyWhenThereIsNoValidOne) {
  const std::string valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  HeaderMap h;
  h.add("traceparent", valid);
  h.add("tracestate", "a=1");
  assign_request_ids(h, false);
  EXPECT_EQ(h.get("traceparent"), valid);
  EXPECT_EQ(h.get("tracestate"), "a=1");

  HeaderMap none;
  none.add("tracestate", "a=1");
  assign_request_ids(none, false);
  ASSERT_TRUE(none.get("traceparent"));
  EXPECT_TRUE(is_valid_traceparent(*none.get("traceparent")));
  EXPECT_FALSE(none.get("tracestate"));
}

}  // namespace
}  // namespace sluice
