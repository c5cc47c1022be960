// Value syntax: durations, sizes, addresses, diagnostics formatting and JSON strings.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "config/config.h"
#include "core/json.h"

namespace sluice::config {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

TEST(ParseDuration, AcceptsEveryUnit) {
  EXPECT_EQ(parse_duration("250ms"), milliseconds(250));
  EXPECT_EQ(parse_duration("5s"), seconds(5));
  EXPECT_EQ(parse_duration("1m"), minutes(1));
  EXPECT_EQ(parse_duration("1h"), hours(1));
  EXPECT_EQ(parse_duration("0s"), milliseconds(0));
  EXPECT_EQ(parse_duration("007s"), seconds(7));
}

TEST(ParseDuration, RejectsMalformed) {
  for (const char* bad : {"", "5", "s", "ms", "-1s", "+1s", "1.5s", " 5s", "5s ", "5 s", "5S",
                          "5sec", "5d", "1h30m", "0x10s", "5ms5"}) {
    EXPECT_EQ(parse_duration(bad), std::nullopt) << bad;
  }
}

TEST(ParseDuration, RejectsOverflow) {
  // The largest number of milliseconds fits; one more, or any unit that multiplies it, does not.
  const auto max = std::numeric_limits<Duration::rep>::max();
  EXPECT_EQ(parse_duration(std::to_string(max) + "ms"), Duration(max));
  EXPECT_EQ(parse_duration(std::to_string(max) + "s"), std::nullopt);
  EXPECT_EQ(parse_duration("9223372036854775808ms"), std::nullopt);
  EXPECT_EQ(parse_duration("99999999999999999999999h"), std::nullopt);
  // max / 3600000 = 2562047788015.2
  EXPECT_EQ(parse_duration("2562047788015h"), hours(2562047788015));
  EXPECT_EQ(parse_duration("2562047788016h"), std::nullopt);
}

TEST(ParseSize, AcceptsBinaryAndDecimalUnits) {
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("512"), 512u);
  EXPECT_EQ(parse_size("64KiB"), 64u * 1024);
  EXPECT_EQ(parse_size("10MiB"), 10u * 1024 * 1024);
  EXPECT_EQ(parse_size("1GiB"), uint64_t{1} << 30);
  EXPECT_EQ(parse_size("1KB"), 1000u);
  EXPECT_EQ(parse_size("2MB"), 2'000'000u);
  EXPECT_EQ(parse_size("3GB"), 3'000'000'000u);
}

TEST(ParseSize, RejectsMalformedAndOverflow) {
  for (const char* bad : {"", "KiB", "-1", "+1", "1.5MiB", "1 KiB", "1kib", "1kb", "1K", "1B",
                          "1TiB", "1KiBs", "18446744073709551616", "17179869184GiB"}) {
    EXPECT_EQ(parse_size(bad), std::nullopt) << bad;
  }
  EXPECT_EQ(parse_size("18446744073709551615"), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(parse_size("17179869183GiB"), uint64_t{17179869183} << 30);
}

TEST(ParseAddress, AcceptsHostsAndIpLiterals) {
  auto a = parse_address("127.0.0.1:8080");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8080);

  a = parse_address("[::1]:1");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 1);

  a = parse_address("Backend-1.Example.com:65535");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "backend-1.example.com");
  EXPECT_EQ(a->port, 65535);

  a = parse_address("localhost:80");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "localhost");
}

TEST(ParseAddress, RejectsMalformed) {
  for (const char* bad : {"",
                          ":80",
                          "127.0.0.1",
                          "127.0.0.1:",
                          "127.0.0.1:0",
                          "127.0.0.1:65536",
                          "127.0.0.1:-1",
                          "127.0.0.1:+80",
                          "127.0.0.1:80x",
                          "127.0.0.1:0080000",
                          "::1:80",
                          "[::1]",
                          "[::1]80",
                          "[::1:80",
                          "[1.2.3.4]:80",
                          "[nope]:80",
                          "1.2.3:80",
                          "bad_host:80",
                          "-a.com:80",
                          "a..b:80",
                          "a b:80"}) {
    EXPECT_EQ(parse_address(bad), std::nullopt) << bad;
  }
}

TEST(SocketAddress, StrBracketsIpv6) {
  EXPECT_EQ((SocketAddress{"127.0.0.1", 80}).str(), "127.0.0.1:80");
  EXPECT_EQ((SocketAddress{"::1", 80}).str(), "[::1]:80");
  EXPECT_EQ((SocketAddress{"localhost", 9901}).str(), "localhost:9901");
  EXPECT_EQ(parse_address("[2001:db8::1]:443")->str(), "[2001:db8::1]:443");
}

TEST(Diagnostic, StrFormats) {
  EXPECT_EQ((Diagnostic{"a.yaml", 3, 7, "bad"}).str(), "a.yaml:3:7: bad");
  EXPECT_EQ((Diagnostic{"a.yaml", 3, 0, "bad"}).str(), "a.yaml:3: bad");
  EXPECT_EQ((Diagnostic{"a.yaml", 0, 0, "bad"}).str(), "a.yaml: bad");
}

TEST(JsonString, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(json_string(""), R"("")");
  EXPECT_EQ(json_string("plain"), R"("plain")");
  EXPECT_EQ(json_string("a\"b\\c/d"), R"("a\"b\\c/d")");
  EXPECT_EQ(json_string("\b\f\n\r\t"), R"("\b\f\n\r\t")");
  EXPECT_EQ(json_string(std::string_view("\x00\x01\x1f\x7f", 4)), R"("\u0000\u0001\u001f)"
                                                                  "\x7f\"");
}

TEST(JsonString, KeepsValidUtf8AndReplacesInvalid) {
  EXPECT_EQ(json_string("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "\"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  EXPECT_EQ(json_string("\xff"), R"("\ufffd")");
  EXPECT_EQ(json_string("a\xc3"), R"("a\ufffd")");                              // truncated
  EXPECT_EQ(json_string("\xc0\xaf"), R"("\ufffd\ufffd")");                      // overlong '/'
  EXPECT_EQ(json_string("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");            // surrogate
  EXPECT_EQ(json_string("\xf4\x90\x80\x80"), R"("\ufffd\ufffd\ufffd\ufffd")");  // > U+10FFFF
}

}  // namespace
}  // namespace sluice::config
