// core/json.h: append_json_string escapes and always produces valid JSON (UTF-8).
#include <gtest/gtest.h>

#include <string>

#include "core/json.h"

namespace sluice {
namespace {

std::string js(std::string_view s) { return json_string(s); }

// True when `s` is a single well-formed JSON string literal per RFC 8259 whose unescaped
// bytes are valid UTF-8.
bool valid_json_string(std::string_view s) {
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return false;
  for (size_t i = 1; i + 1 < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20) return false;
    if (c == '"') return false;
    if (c == '\\') {
      ++i;
      if (i + 1 >= s.size()) return false;
      const char e = s[i];
      if (e == 'u') {
        if (i + 4 >= s.size()) return false;
        for (int k = 1; k <= 4; ++k) {
          if (!std::isxdigit(static_cast<unsigned char>(s[i + k]))) return false;
        }
        i += 4;
      } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
        return false;
      }
      continue;
    }
    if (c >= 0x80) {
      size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
      if (n == 0 || c > 0xF4 || i + n >= s.size()) return false;
      for (size_t k = 1; k < n; ++k) {
        const unsigned char cc = static_cast<unsigned char>(s[i + k]);
        if (cc < 0x80 || cc > 0xBF) return false;
      }
      i += n - 1;
    }
  }
  return true;
}

TEST(JsonString, PlainTextIsQuoted) {
  EXPECT_EQ(js(""), R"("")");
  EXPECT_EQ(js("hello world"), R"("hello world")");
  EXPECT_EQ(js("/a/b?c=d&e"), R"("/a/b?c=d&e")");
}

TEST(JsonString, QuotesAndBackslashes) {
  EXPECT_EQ(js(R"(say "hi")"), R"("say \"hi\"")");
  EXPECT_EQ(js(R"(C:\dir\)"), R"("C:\\dir\\")");
}

TEST(JsonString, ControlCharacters) {
  EXPECT_EQ(js("\b\f\n\r\t"), R"("\b\f\n\r\t")");
  EXPECT_EQ(js(std::string_view("\0", 1)), R"("\u0000")");
  EXPECT_EQ(js("\x01"), R"("\u0001")");
  EXPECT_EQ(js("\x1b[31m"), R"("\u001b[31m")");
  EXPECT_EQ(js("\x1f"), R"("\u001f")");
  // DEL needs no escape in JSON.
  EXPECT_EQ(js("\x7f"), "\"\x7f\"");
}

TEST(JsonString, ValidUtf8PassesThrough) {
  EXPECT_EQ(js("caf\xc3\xa9"), "\"caf\xc3\xa9\"");            // é
  EXPECT_EQ(js("\xe2\x82\xac"), "\"\xe2\x82\xac\"");          // €
  EXPECT_EQ(js("\xf0\x9f\x98\x80"), "\"\xf0\x9f\x98\x80\"");  // U+1F600
  EXPECT_EQ(js("\xf4\x8f\xbf\xbf"), "\"\xf4\x8f\xbf\xbf\"");  // U+10FFFF
  EXPECT_EQ(js("\xed\x9f\xbf"), "\"\xed\x9f\xbf\"");          // U+D7FF
}

TEST(JsonString, InvalidUtf8BecomesReplacementPerByte) {
  EXPECT_EQ(js("\x80"), R"("\ufffd")");
  EXPECT_EQ(js("a\xff"
               "b"),
            R"("a\ufffdb")");
  EXPECT_EQ(js("\xc0\xaf"), R"("\ufffd\ufffd")");                      // overlong '/'
  EXPECT_EQ(js("\xe0\x80\xaf"), R"("\ufffd\ufffd\ufffd")");            // overlong 3-byte
  EXPECT_EQ(js("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");            // surrogate U+D800
  EXPECT_EQ(js("\xf4\x90\x80\x80"), R"("\ufffd\ufffd\ufffd\ufffd")");  // > U+10FFFF
  EXPECT_EQ(js("\xf5\x80\x80\x80"), R"("\ufffd\ufffd\ufffd\ufffd")");
  EXPECT_EQ(js("x\xe2\x82"), R"("x\ufffd\ufffd")");  // truncated at the end
  EXPECT_EQ(js("\xe2\x82"
               "A"),
            R"("\ufffd\ufffdA")");  // truncated before ASCII
  // An invalid lead byte does not swallow the quote that follows it.
  EXPECT_EQ(js("\xc3\""), R"("\ufffd\"")");
}

TEST(JsonString, AppendsToExistingOutput) {
  std::string out = "{\"k\":";
  append_json_string(out, "v");
  out += '}';
  EXPECT_EQ(out, R"({"k":"v"})");
}

TEST(JsonString, EveryByteAndPairGivesValidJson) {
  for (int a = 0; a < 256; ++a) {
    std::string one(1, static_cast<char>(a));
    EXPECT_TRUE(valid_json_string(js(one))) << a;
    for (int b = 0x70; b < 256; b += 3) {
      std::string two = one + static_cast<char>(b);
      ASSERT_TRUE(valid_json_string(js(two))) << a << " " << b;
    }
  }
}

}  // namespace
}  // namespace sluice
