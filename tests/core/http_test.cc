// core/http.h: the header map, status helpers and hop-by-hop handling.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/beast_fields.h"
#include "core/http.h"

namespace sluice {
namespace {

using ::testing::ElementsAre;
using ::testing::Optional;

std::vector<std::pair<std::string, std::string>> fields(const HeaderMap& h) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& f : h) out.emplace_back(f.name, f.value);
  return out;
}

using P = std::pair<std::string, std::string>;

TEST(Iequals, ComparesAsciiCaseInsensitively) {
  EXPECT_TRUE(iequals("Content-Length", "content-length"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("content-length", "content-lengt"));
  EXPECT_FALSE(iequals("a", "b"));
  // Non-letters are not folded onto letters.
  EXPECT_FALSE(iequals("@", "`"));
}

TEST(HeaderMap, GetIsCaseInsensitiveAndReturnsFirst) {
  HeaderMap h;
  h.add("Accept", "text/html");
  h.add("X-Multi", "one");
  h.add("x-multi", "two");
  EXPECT_THAT(h.get("accept"), Optional(std::string_view("text/html")));
  EXPECT_THAT(h.get("ACCEPT"), Optional(std::string_view("text/html")));
  EXPECT_THAT(h.get("X-MULTI"), Optional(std::string_view("one")));
  EXPECT_EQ(h.get("missing"), std::nullopt);
  EXPECT_TRUE(h.contains("x-Multi"));
  EXPECT_FALSE(h.contains("x-mult"));
  EXPECT_EQ(h.count("x-multi"), 2u);
  EXPECT_EQ(h.count("accept"), 1u);
  EXPECT_EQ(h.count("nope"), 0u);
  EXPECT_EQ(h.size(), 3u);
}

TEST(HeaderMap, EmptyValueIsPresent) {
  HeaderMap h;
  h.add("X-Empty", "");
  EXPECT_TRUE(h.contains("x-empty"));
  EXPECT_THAT(h.get("x-empty"), Optional(std::string_view("")));
}

TEST(HeaderMap, AddKeepsInsertionOrderAndSpelling) {
  HeaderMap h;
  h.add("Host", "a");
  h.add("User-Agent", "curl");
  h.add("accept", "*/*");
  h.add("X-Forwarded-For", "1.1.1.1");
  h.add("x-forwarded-for", "2.2.2.2");
  EXPECT_THAT(fields(h),
              ElementsAre(P{"Host", "a"}, P{"User-Agent", "curl"}, P{"accept", "*/*"},
                          P{"X-Forwarded-For", "1.1.1.1"}, P{"x-forwarded-for", "2.2.2.2"}));
}

TEST(HeaderMap, SetReplacesEveryFieldWithOne) {
  HeaderMap h;
  h.add("A", "1");
  h.add("Via", "x");
  h.add("B", "2");
  h.add("VIA", "y");
  h.set("via", "z");
  EXPECT_EQ(h.count("via"), 1u);
  EXPECT_THAT(h.get("Via"), Optional(std::string_view("z")));
  EXPECT_EQ(h.size(), 3u);
  // The other fields keep their relative order.
  std::vector<std::string> names;
  for (const auto& f : h) names.emplace_back(f.name);
  auto a = std::find(names.begin(), names.end(), "A");
  auto b = std::find(names.begin(), names.end(), "B");
  ASSERT_NE(a, names.end());
  ASSERT_NE(b, names.end());
  EXPECT_LT(a, b);
}

TEST(HeaderMap, RemoveAnyTakesEveryFieldOfEveryNameAndKeepsTheRest) {
  HeaderMap h;
  h.add("A", "1");
  h.add("X-Forwarded-For", "x");
  h.add("B", "2");
  h.add("forwarded", "y");
  h.add("x-forwarded-for", "z");
  h.add("C", "3");
  h.remove_any({"x-forwarded-for", "Forwarded", "absent"});
  EXPECT_THAT(fields(h), ElementsAre(P{"A", "1"}, P{"B", "2"}, P{"C", "3"}));
}

TEST(HeaderMap, RemoveAnyTellsNamesOfOneLengthApartAndHandlesLongNames) {
  const std::string long_name(70, 'l');
  HeaderMap h;
  h.add("accept-language", "en");  // as long as x-forwarded-for
  h.add("X-FORWARDED-FOR", "x");
  h.add(long_name, "1");
  h.add(std::string(71, 'l'), "2");
  h.add("", "3");
  h.remove_any({"x-forwarded-for", long_name});
  EXPECT_THAT(fields(h),
              ElementsAre(P{"accept-language", "en"}, P{std::string(71, 'l'), "2"}, P{"", "3"}));
}

TEST(HeaderMap, SetOnMissingNameAdds) {
  HeaderMap h;
  h.add("A", "1");
  h.set("B", "2");
  EXPECT_THAT(fields(h), ElementsAre(P{"A", "1"}, P{"B", "2"}));
}

TEST(HeaderMap, RemoveReturnsCountAndKeepsOrderOfRest) {
  HeaderMap h;
  h.add("A", "1");
  h.add("Cookie", "x");
  h.add("B", "2");
  h.add("cookie", "y");
  h.add("C", "3");
  EXPECT_EQ(h.remove("COOKIE"), 2u);
  EXPECT_THAT(fields(h), ElementsAre(P{"A", "1"}, P{"B", "2"}, P{"C", "3"}));
  EXPECT_EQ(h.remove("cookie"), 0u);
  EXPECT_EQ(h.size(), 3u);
  h.clear();
  EXPECT_TRUE(h.empty());
}

// The fields live in the map's own blocks: what a caller read stays valid while the map
// grows past its first block, and a single field larger than any block still fits.
TEST(HeaderMap, ViewsStayValidAsTheMapGrows) {
  HeaderMap h;
  h.add("host", "example.com");
  const std::string_view host = *h.get("host");
  const std::string big(5000, 'v');
  for (int i = 0; i < 200; ++i) h.add("x-field-" + std::to_string(i), "value " + std::to_string(i));
  h.add("big", big);
  EXPECT_EQ(host, "example.com");
  EXPECT_EQ(h.size(), 202u);
  EXPECT_THAT(h.get("x-field-199"), Optional(std::string_view("value 199")));
  EXPECT_THAT(h.get("big"), Optional(std::string_view(big)));
  // A value taken from the map itself can be set again: the old bytes stay put.
  h.set("host", *h.get("x-field-7"));
  EXPECT_THAT(h.get("host"), Optional(std::string_view("value 7")));
}

TEST(HeaderMap, CopyIsIndependentAndMoveKeepsViews) {
  auto original = std::make_unique<HeaderMap>();
  original->add("Accept", "text/html");
  original->add("Cookie", std::string(2000, 'c'));
  HeaderMap copy = *original;
  copy.set("accept", "*/*");
  EXPECT_THAT(original->get("accept"), Optional(std::string_view("text/html")));
  const std::string_view cookie = *original->get("cookie");
  HeaderMap moved = std::move(*original);
  EXPECT_TRUE(original->empty());
  original.reset();
  EXPECT_EQ(cookie, std::string(2000, 'c'));
  EXPECT_THAT(moved.get("accept"), Optional(std::string_view("text/html")));
  EXPECT_THAT(copy.get("accept"), Optional(std::string_view("*/*")));
  EXPECT_THAT(copy.get("cookie"), Optional(std::string_view(std::string(2000, 'c'))));
  copy = moved;  // copy-assignment replaces, deep
  moved.clear();
  EXPECT_THAT(fields(copy),
              ElementsAre(P{"Accept", "text/html"}, P{"Cookie", std::string(2000, 'c')}));
}

TEST(HeaderMap, ClearedMapIsReusable) {
  HeaderMap h;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 100; ++i) h.add("name-" + std::to_string(i), std::string(50, 'a' + round));
    EXPECT_THAT(h.get("name-99"), Optional(std::string_view(std::string(50, 'a' + round))));
    h.clear();
    EXPECT_TRUE(h.empty());
    EXPECT_FALSE(h.contains("name-0"));
  }
  h.add("after", "clear");
  EXPECT_THAT(fields(h), ElementsAre(P{"after", "clear"}));
}

TEST(HeaderMap, SetValueLowercaseNamesAndRemoveIf) {
  HeaderMap h;
  h.add("ETag", "\"x\"");
  h.add("X_Under", "1");
  h.add("Vary", "");
  h.set_value(0, "W/\"x\"");
  h.set_value(2, "Accept-Encoding");
  EXPECT_EQ(h.remove_if([](const Header& f) { return f.name.find('_') != f.name.npos; }), 1u);
  h.lowercase_names();
  EXPECT_THAT(fields(h), ElementsAre(P{"etag", "W/\"x\""}, P{"vary", "Accept-Encoding"}));
}

TEST(AppendFields, WritesEachFieldInOrderAfterWhatIsThere) {
  HeaderMap h;
  h.add("Host", "example.com");
  h.add("x-empty", "");
  h.add("x-long", std::string(300, 'v'));
  std::string out = "GET / HTTP/1.1\r\n";
  append_fields(h, out);
  EXPECT_EQ(out, "GET / HTTP/1.1\r\nHost: example.com\r\nx-empty: \r\nx-long: " +
                     std::string(300, 'v') + "\r\n");
}

TEST(AppendFields, NoFieldsWritesNothingAndLastChunkEndsTheBody) {
  std::string out = "x";
  append_fields(HeaderMap{}, out);
  EXPECT_EQ(out, "x");
  HeaderMap trailers;
  trailers.add("grpc-status", "0");
  append_last_chunk(trailers, out);
  EXPECT_EQ(out, "x0\r\ngrpc-status: 0\r\n\r\n");
}

TEST(RequestHead, PathAndQuery) {
  RequestHead r;
  r.target = "/a/b?x=1&y=2";
  EXPECT_EQ(r.path(), "/a/b");
  EXPECT_EQ(r.query(), "x=1&y=2");
  r.target = "/plain";
  EXPECT_EQ(r.path(), "/plain");
  EXPECT_EQ(r.query(), "");
  r.target = "/q?";
  EXPECT_EQ(r.path(), "/q");
  EXPECT_EQ(r.query(), "");
  r.target = "/q?a?b";
  EXPECT_EQ(r.path(), "/q");
  EXPECT_EQ(r.query(), "a?b");
}

TEST(StatusClass, Boundaries) {
  EXPECT_EQ(status_class(100), "1xx");
  EXPECT_EQ(status_class(199), "1xx");
  EXPECT_EQ(status_class(200), "2xx");
  EXPECT_EQ(status_class(299), "2xx");
  EXPECT_EQ(status_class(301), "3xx");
  EXPECT_EQ(status_class(400), "4xx");
  EXPECT_EQ(status_class(499), "4xx");
  EXPECT_EQ(status_class(500), "5xx");
  EXPECT_EQ(status_class(599), "5xx");
}

TEST(StatusClass, OutOfRangeStaysWithinTheFiveLabels) {
  // The label bounds metric cardinality, so nothing may invent a sixth value.
  const std::set<std::string_view> labels = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  for (unsigned s : {0u, 1u, 99u, 600u, 999u, 1000u, 65535u}) {
    EXPECT_TRUE(labels.count(status_class(s))) << s;
  }
}

TEST(ReasonPhrase, KnownAndUnknown) {
  EXPECT_EQ(reason_phrase(200), "OK");
  EXPECT_EQ(reason_phrase(100), "Continue");
  EXPECT_EQ(reason_phrase(103), "Early Hints");
  EXPECT_EQ(reason_phrase(204), "No Content");
  EXPECT_EQ(reason_phrase(304), "Not Modified");
  EXPECT_EQ(reason_phrase(404), "Not Found");
  EXPECT_EQ(reason_phrase(413), "Content Too Large");
  EXPECT_EQ(reason_phrase(414), "URI Too Long");
  EXPECT_EQ(reason_phrase(429), "Too Many Requests");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(502), "Bad Gateway");
  EXPECT_EQ(reason_phrase(503), "Service Unavailable");
  EXPECT_EQ(reason_phrase(504), "Gateway Timeout");
  EXPECT_EQ(reason_phrase(299), "Unknown");
  EXPECT_EQ(reason_phrase(0), "Unknown");
}

TEST(ReasonPhrase, EveryStatusTheProxyGeneratesHasOne) {
  // Statuses produced by status_for() and by local replies.
  for (unsigned s : {400u, 404u, 408u, 413u, 414u, 431u, 500u, 501u, 502u, 503u, 504u}) {
    EXPECT_NE(reason_phrase(s), "Unknown") << s;
  }
}

TEST(StatusHasNoBody, InformationalNoContentNotModified) {
  EXPECT_TRUE(status_has_no_body(100));
  EXPECT_TRUE(status_has_no_body(103));
  EXPECT_TRUE(status_has_no_body(204));
  EXPECT_TRUE(status_has_no_body(304));
  EXPECT_FALSE(status_has_no_body(200));
  EXPECT_FALSE(status_has_no_body(205));
  EXPECT_FALSE(status_has_no_body(404));
}

TEST(HopByHop, StandardNamesAnyCase) {
  for (const char* n : {"Connection", "keep-alive", "Proxy-Connection", "TE", "Trailer",
                        "Transfer-Encoding", "UPGRADE"}) {
    EXPECT_TRUE(is_hop_by_hop(n)) << n;
  }
  for (const char* n : {"Content-Length", "Host", "Trailers", "Connections", "X-Connection",
                        "Proxy-Authorization", ""}) {
    EXPECT_FALSE(is_hop_by_hop(n)) << n;
  }
}

TEST(ConnectionSpecific, TheFieldsHttp2Forbids) {
  for (const char* n :
       {"Connection", "keep-alive", "Proxy-Connection", "Transfer-Encoding", "UPGRADE"}) {
    EXPECT_TRUE(is_connection_specific(n)) << n;
  }
  // TE is allowed as "trailers"; Trailer announces trailers, which HTTP/2 carries.
  for (const char* n : {"TE", "Trailer", "Host", "Content-Length", "X-Connection", ""}) {
    EXPECT_FALSE(is_connection_specific(n)) << n;
  }
}

// The HTTP/1.1 codecs judge a field by the http::field Beast looked up; it must agree with the
// name test everyone else uses, for every field Beast knows.
TEST(HopByHop, BeastFieldAgreesWithTheName) {
  using boost::beast::http::field;
  int hop = 0;
  for (unsigned i = 1; i <= static_cast<unsigned>(field::xref); ++i) {
    const auto f = static_cast<field>(i);
    const auto name = boost::beast::http::to_string(f);
    EXPECT_EQ(is_hop_by_hop(f), is_hop_by_hop(std::string_view(name.data(), name.size()))) << name;
    hop += is_hop_by_hop(f) ? 1 : 0;
  }
  EXPECT_EQ(hop, 7);
  EXPECT_FALSE(is_hop_by_hop(field::unknown));
}

TEST(ListElements, TrimmedInOrderWithoutEmptyOnes) {
  std::vector<std::string> got;
  for_each_list_element(" gzip ,\tbr;q=0.5,, ,deflate,",
                        [&](std::string_view e) { got.emplace_back(e); });
  EXPECT_THAT(got, ElementsAre("gzip", "br;q=0.5", "deflate"));
  got.clear();
  for_each_list_element("", [&](std::string_view e) { got.emplace_back(e); });
  for_each_list_element(" , ", [&](std::string_view e) { got.emplace_back(e); });
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(trim_ows("\t a b \t"), "a b");
  EXPECT_EQ(trim_ows(" \t "), "");
}

TEST(AuthorityHost, StripsPort) {
  EXPECT_EQ(authority_host("example.com"), "example.com");
  EXPECT_EQ(authority_host("example.com:8080"), "example.com");
  EXPECT_EQ(authority_host("example.com:"), "example.com");
  EXPECT_EQ(authority_host("127.0.0.1:80"), "127.0.0.1");
  EXPECT_EQ(authority_host(""), "");
}

TEST(AuthorityHost, Ipv6Literals) {
  EXPECT_EQ(authority_host("[::1]:8080"), "[::1]");
  EXPECT_EQ(authority_host("[::1]"), "[::1]");
  EXPECT_EQ(authority_host("[2001:db8::1]:443"), "[2001:db8::1]");
  // Unbracketed (malformed) IPv6: no port can be told apart, so nothing is stripped.
  EXPECT_EQ(authority_host("::1"), "::1");
}

TEST(SplitAuthority, HostWithoutBracketsAndAValidPort) {
  auto check = [](std::string_view authority, std::string_view host, std::optional<uint16_t> port) {
    AuthorityParts p = split_authority(authority);
    EXPECT_EQ(p.host, host) << authority;
    EXPECT_EQ(p.port, port) << authority;
  };
  check("example.com", "example.com", std::nullopt);
  check("example.com:8080", "example.com", 8080);
  check("[::1]:443", "::1", 443);
  check("[::1]", "::1", std::nullopt);
  check("127.0.0.1:1", "127.0.0.1", 1);
  check("h:0", "h", std::nullopt);
  check("h:65536", "h", std::nullopt);
  check("h:99999999999", "h", std::nullopt);
  check("h:", "h", std::nullopt);
  check("h:8a", "h", std::nullopt);
  check("[::1", "[::1", std::nullopt);
  // Unbracketed (malformed) IPv6: the whole is the host, as authority_host() says.
  check("::1", "::1", std::nullopt);
  check("2001:db8::1:80", "2001:db8::1:80", std::nullopt);
}

}  // namespace
}  // namespace sluice
