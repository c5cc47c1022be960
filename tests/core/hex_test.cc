// core/hex.h: bytes as hex digits, as digests are shown (x-forwarded-client-cert, Redis SHA1s).
#include <gtest/gtest.h>

#include <string>

#include "core/hex.h"

namespace sluice {
namespace {

TEST(AppendHex, TwoLowerCaseDigitsPerByteAfterWhatIsThere) {
  const unsigned char bytes[] = {0x00, 0x0f, 0xa5, 0xff};
  std::string out = "Hash=";
  append_hex(out, bytes, sizeof(bytes));
  EXPECT_EQ(out, "Hash=000fa5ff");
  append_hex(out, bytes, 0);
  EXPECT_EQ(out, "Hash=000fa5ff");
}

}  // namespace
}  // namespace sluice
