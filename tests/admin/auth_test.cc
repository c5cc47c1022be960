#include "admin/auth.h"

#include <gtest/gtest.h>

namespace sluice::admin {
namespace {

using namespace std::chrono_literals;
using Clock = AuthThrottle::Clock;

TEST(BearerToken, MatchesOnlyTheTokenUnderTheBearerScheme) {
  EXPECT_TRUE(bearer_token_matches("Bearer s3cret", "s3cret"));
  EXPECT_TRUE(bearer_token_matches("bearer   s3cret \t", "s3cret"));
  EXPECT_FALSE(bearer_token_matches("Bearer s3cre", "s3cret"));
  EXPECT_FALSE(bearer_token_matches("Bearer s3cretx", "s3cret"));
  EXPECT_FALSE(bearer_token_matches("Basic s3cret", "s3cret"));
  EXPECT_FALSE(bearer_token_matches("Bearers3cret", "s3cret"));
  EXPECT_FALSE(bearer_token_matches("Bearer ", "s3cret"));
  EXPECT_FALSE(bearer_token_matches("", "s3cret"));
}

TEST(AuthThrottle, TheTenthFailureWithinTheWindowShutsTheAddressOutUntilItEnds) {
  AuthThrottle t(10, 60s);
  const Clock::time_point t0 = Clock::now();
  for (int i = 0; i < 9; ++i) t.failed("10.0.0.1", t0 + std::chrono::seconds(i));
  EXPECT_EQ(t.wait_for("10.0.0.1", t0 + 9s), Clock::duration::zero());
  t.failed("10.0.0.1", t0 + 9s);
  EXPECT_EQ(t.wait_for("10.0.0.1", t0 + 10s), 50s);  // until the window that began at t0 ends
  EXPECT_EQ(t.wait_for("10.0.0.2", t0 + 10s), Clock::duration::zero());  // others are not held
  EXPECT_EQ(t.wait_for("10.0.0.1", t0 + 60s), Clock::duration::zero());
  // A new window: one more failure is not enough again.
  t.failed("10.0.0.1", t0 + 61s);
  EXPECT_EQ(t.wait_for("10.0.0.1", t0 + 61s), Clock::duration::zero());
}

TEST(AuthThrottle, FailuresInOldWindowsDoNotAddUp) {
  AuthThrottle t(3, 10s);
  const Clock::time_point t0 = Clock::now();
  t.failed("a", t0);
  t.failed("a", t0 + 1s);
  t.failed("a", t0 + 11s);  // a new window
  t.failed("a", t0 + 12s);
  EXPECT_EQ(t.wait_for("a", t0 + 12s), Clock::duration::zero());
  t.failed("a", t0 + 13s);
  EXPECT_EQ(t.wait_for("a", t0 + 13s), 8s);
}

TEST(AuthThrottle, SuccessClearsTheCount) {
  AuthThrottle t(3, 10s);
  const Clock::time_point t0 = Clock::now();
  t.failed("a", t0);
  t.failed("a", t0);
  t.succeeded("a");
  t.failed("a", t0);
  t.failed("a", t0);
  EXPECT_EQ(t.wait_for("a", t0), Clock::duration::zero());
}

TEST(AuthThrottle, TrackedAddressesAreBounded) {
  AuthThrottle t(2, 10s, /*max_tracked=*/4);
  const Clock::time_point t0 = Clock::now();
  for (int i = 0; i < 4; ++i) {
    t.failed("x" + std::to_string(i), t0);
    t.failed("x" + std::to_string(i), t0);
  }
  EXPECT_GT(t.wait_for("x0", t0), Clock::duration::zero());
  // A fifth address while the table is full of live entries: it starts over rather than grows.
  t.failed("y", t0 + 1s);
  t.failed("y", t0 + 1s);
  EXPECT_GT(t.wait_for("y", t0 + 1s), Clock::duration::zero());
  EXPECT_EQ(t.wait_for("x0", t0 + 1s), Clock::duration::zero());
}

}  // namespace
}  // namespace sluice::admin
