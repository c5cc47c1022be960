#include "core/runtime_state.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

struct Counter {
  int value = 0;
};

TEST(RuntimeState, SameKeyGivesTheSameObjectWhileItIsUsed) {
  RuntimeState state;
  auto make = [] { return std::make_shared<Counter>(); };
  auto a = state.get_or_create<Counter>("rule/a/10/1s", make);
  a->value = 7;
  auto again = state.get_or_create<Counter>("rule/a/10/1s", make);
  EXPECT_EQ(again.get(), a.get());
  EXPECT_EQ(again->value, 7);
  // Other settings, other state.
  auto changed = state.get_or_create<Counter>("rule/a/20/1s", make);
  EXPECT_NE(changed.get(), a.get());
  EXPECT_EQ(state.size(), 2u);
}

TEST(RuntimeState, StateGoesAwayWithItsLastUser) {
  RuntimeState state;
  auto make = [] { return std::make_shared<Counter>(); };
  {
    auto a = state.get_or_create<Counter>("k", make);
    a->value = 3;
  }
  EXPECT_EQ(state.size(), 0u);
  EXPECT_EQ(state.get_or_create<Counter>("k", make)->value, 0);
}

}  // namespace
}  // namespace sluice
