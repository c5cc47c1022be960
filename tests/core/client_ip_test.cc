#include "core/client_ip.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

IpAddress ip(const char* s) { return boost::asio::ip::make_address(s); }

TrustedProxies trusted(std::initializer_list<const char*> cidrs) {
  TrustedProxies t;
  std::string error;
  for (const char* c : cidrs) EXPECT_TRUE(t.add(c, &error)) << error;
  return t;
}

HeaderMap xff(std::initializer_list<const char*> values) {
  HeaderMap h;
  for (const char* v : values) h.add("X-Forwarded-For", v);
  return h;
}

TEST(TrustedProxies, MatchesRangesOfBothFamilies) {
  TrustedProxies t = trusted({"10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "0.0.0.0/0"});
  EXPECT_TRUE(t.contains(ip("10.1.2.3")));
  EXPECT_TRUE(t.contains(ip("2001:db8:1::5")));
  EXPECT_FALSE(t.contains(ip("2001:db9::1")));
  EXPECT_TRUE(t.contains(ip("::ffff:10.1.2.3")));  // dual-stack view of an IPv4 peer
  TrustedProxies narrow = trusted({"10.0.0.0/8", "192.0.2.7", "fd00::/8"});
  EXPECT_FALSE(narrow.contains(ip("11.0.0.1")));
  EXPECT_TRUE(narrow.contains(ip("192.0.2.7")));
  EXPECT_FALSE(narrow.contains(ip("192.0.2.8")));
  EXPECT_TRUE(narrow.contains(ip("fd12::1")));
  EXPECT_FALSE(narrow.contains(ip("fe80::1")));
}

TEST(TrustedProxies, RejectsBadRangesWithAReason) {
  TrustedProxies t;
  std::string error;
  EXPECT_FALSE(t.add("10.0.0.0/33", &error));
  EXPECT_NE(error.find("0 to 32"), std::string::npos) << error;
  EXPECT_FALSE(t.add("10.0.0.1/8", &error));
  EXPECT_NE(error.find("did you mean 10.0.0.0/8"), std::string::npos) << error;
  EXPECT_FALSE(t.add("example.com/8", &error));
  EXPECT_FALSE(t.add("10.0.0.0/", &error));
  EXPECT_FALSE(t.add("::/129", &error));
  EXPECT_TRUE(t.empty());
}

TEST(ParseForwardedIp, AcceptsAddressesWithOptionalPorts) {
  EXPECT_EQ(parse_forwarded_ip(" 192.0.2.1 "), ip("192.0.2.1"));
  EXPECT_EQ(parse_forwarded_ip("192.0.2.1:8080"), ip("192.0.2.1"));
  EXPECT_EQ(parse_forwarded_ip("2001:db8::1"), ip("2001:db8::1"));
  EXPECT_EQ(parse_forwarded_ip("[2001:db8::1]:443"), ip("2001:db8::1"));
  EXPECT_EQ(parse_forwarded_ip("::ffff:192.0.2.1"), ip("192.0.2.1"));
  EXPECT_FALSE(parse_forwarded_ip("unknown"));
  EXPECT_FALSE(parse_forwarded_ip("192.0.2.1:99999"));
  EXPECT_FALSE(parse_forwarded_ip("[192.0.2.1]"));
  EXPECT_FALSE(parse_forwarded_ip("fe80::1%eth0"));
  EXPECT_FALSE(parse_forwarded_ip(""));
}

TEST(ResolveClientIp, AnUntrustedPeerIsTheClientWhateverItClaims) {
  const TrustedProxies t = trusted({"10.0.0.0/8"});
  EXPECT_EQ(resolve_client_ip(ip("203.0.113.9"), xff({"1.2.3.4"}), t), ip("203.0.113.9"));
  EXPECT_EQ(resolve_client_ip(ip("203.0.113.9"), xff({"1.2.3.4"}), TrustedProxies()),
            ip("203.0.113.9"));
}

TEST(ResolveClientIp, RightmostUntrustedEntryBehindTrustedProxies) {
  const TrustedProxies t = trusted({"10.0.0.0/8"});
  // The client can prepend anything; only what trusted hops appended counts.
  EXPECT_EQ(resolve_client_ip(ip("10.0.0.2"), xff({"6.6.6.6, 198.51.100.4, 10.0.0.1"}), t),
            ip("198.51.100.4"));
  // Several fields are one list, in order.
  EXPECT_EQ(resolve_client_ip(ip("10.0.0.2"), xff({"6.6.6.6", "198.51.100.4", "10.9.9.9"}), t),
            ip("198.51.100.4"));
  // Every hop trusted: the leftmost.
  EXPECT_EQ(resolve_client_ip(ip("10.0.0.2"), xff({"10.0.0.5, 10.0.0.6"}), t), ip("10.0.0.5"));
  // No header: the proxy itself.
  EXPECT_EQ(resolve_client_ip(ip("10.0.0.2"), HeaderMap(), t), ip("10.0.0.2"));
  // A malformed entry stops the walk at the last trusted hop.
  EXPECT_EQ(resolve_client_ip(ip("10.0.0.2"), xff({"1.1.1.1, garbage, 10.0.0.7"}), t),
            ip("10.0.0.7"));
  // Empty entries are skipped.
  EXPECT_EQ(resolve_client_ip(ip("10.0.0.2"), xff({"198.51.100.4,, "}), t), ip("198.51.100.4"));
}

TEST(SetForwardingHeaders, AnUntrustedPeerCannotClaimAnything) {
  HeaderMap h;
  h.add("X-Forwarded-For", "6.6.6.6");
  h.add("x-forwarded-for", "7.7.7.7");
  h.add("X-Real-IP", "6.6.6.6");
  h.add("Forwarded", "for=6.6.6.6;proto=https");
  h.add("X-Forwarded-Proto", "https");
  h.add("X-Forwarded-Host", "evil.example");
  set_forwarding_headers(h, ip("203.0.113.9"), false, ip("203.0.113.9"), "http", "shop.example");
  EXPECT_EQ(h.count("x-forwarded-for"), 1u);
  EXPECT_EQ(h.get("x-forwarded-for"), "203.0.113.9");
  EXPECT_EQ(h.get("x-real-ip"), "203.0.113.9");
  EXPECT_FALSE(h.contains("forwarded"));
  EXPECT_EQ(h.get("x-forwarded-proto"), "http");
  EXPECT_EQ(h.get("x-forwarded-host"), "shop.example");
  // Without an authority the client's X-Forwarded-Host goes too.
  HeaderMap bare;
  bare.add("X-Forwarded-Host", "evil.example");
  set_forwarding_headers(bare, ip("::1"), false, ip("::1"), "https", "");
  EXPECT_FALSE(bare.contains("x-forwarded-host"));
  EXPECT_EQ(bare.get("x-forwarded-for"), "::1");
}

TEST(SetForwardingHeaders, ATrustedProxyKeepsItsFieldsAndIsAppended) {
  HeaderMap h;
  h.add("X-Forwarded-For", "198.51.100.4");
  h.add("x-forwarded-for", "10.0.0.1");
  h.add("Forwarded", "for=198.51.100.4");
  h.add("X-Forwarded-Proto", "https");
  set_forwarding_headers(h, ip("10.0.0.2"), true, ip("198.51.100.4"), "http", "shop.example");
  EXPECT_EQ(h.get("x-forwarded-for"), "198.51.100.4, 10.0.0.1, 10.0.0.2");
  EXPECT_EQ(h.get("forwarded"), "for=198.51.100.4, for=10.0.0.2");
  EXPECT_EQ(h.get("x-forwarded-proto"), "https");  // the TLS was ended in front of us
  EXPECT_EQ(h.get("x-real-ip"), "198.51.100.4");   // absent: the resolved client
  EXPECT_EQ(h.get("x-forwarded-host"), "shop.example");

  HeaderMap v6;
  v6.add("forwarded", "for=192.0.2.1");
  v6.add("x-real-ip", "192.0.2.1");
  set_forwarding_headers(v6, ip("2001:db8::2"), true, ip("192.0.2.1"), "http", "");
  EXPECT_EQ(v6.get("forwarded"), "for=192.0.2.1, for=\"[2001:db8::2]\"");
  EXPECT_EQ(v6.get("x-forwarded-for"), "2001:db8::2");
  EXPECT_EQ(v6.get("x-real-ip"), "192.0.2.1");
}

TEST(SetForwardingHeaders, WritesEveryIpv4AddressAsAsioDoes) {
  for (const char* text : {"0.0.0.0", "255.255.255.255", "10.0.100.9", "1.20.255.0", "127.0.0.1"}) {
    HeaderMap h;
    set_forwarding_headers(h, ip(text), false, ip(text), "http", "");
    EXPECT_EQ(h.get("x-forwarded-for"), ip(text).to_string());
    EXPECT_EQ(h.get("x-real-ip"), text);
  }
}

TEST(FormatEndpoint, BracketsIpv6) {
  EXPECT_EQ(format_endpoint(ip("::1"), 80), "[::1]:80");
  EXPECT_EQ(format_endpoint(ip("127.0.0.1"), 8080), "127.0.0.1:8080");
}

}  // namespace
}  // namespace sluice
