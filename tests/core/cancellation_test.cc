#include "core/cancellation.h"

#include <gtest/gtest.h>

#include <functional>

namespace sluice {
namespace {

TEST(Cancellation, TokensSeeTheSourceCancel) {
  CancellationSource source;
  CancellationToken a = source.token();
  int calls = 0;
  auto bound = a.bind([&](int n) { calls += n; });
  bound(2);
  EXPECT_EQ(calls, 2);
  EXPECT_FALSE(a.cancelled());
  source.cancel();
  EXPECT_TRUE(a.cancelled());
  bound(5);
  EXPECT_EQ(calls, 2);
  // A token taken after cancel() is cancelled too.
  EXPECT_TRUE(source.token().cancelled());
}

TEST(Cancellation, DestroyingTheSourceCancels) {
  std::function<void()> pending;
  bool ran = false;
  {
    CancellationSource source;
    pending = source.token().bind([&] { ran = true; });
  }
  pending();
  EXPECT_FALSE(ran);
  EXPECT_TRUE(CancellationToken().cancelled());
}

}  // namespace
}  // namespace sluice
