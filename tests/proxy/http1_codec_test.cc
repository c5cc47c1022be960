// RequestDecoder on valid requests: the same result whether the bytes arrive at once or in
// pieces; pipelined requests are left to the caller; response heads are encoded.
#include "proxy/http1_codec.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <boost/url/parse.hpp>

#include "tests/proxy/http1_codec_test_util.h"

namespace sluice::http1 {
namespace {

using namespace codec_test;
using namespace std::string_literals;

// ------------------------------------------------------------------------------------------
// Valid requests: the same result at once and byte by byte.

class BothWays : public ::testing::TestWithParam<size_t> {};
INSTANTIATE_TEST_SUITE_P(Http1, BothWays, ::testing::Values(0, 1, 7), [](const auto& info) {
  return info.param == 0 ? "all_at_once"s : "step_"s + std::to_string(info.param);
});

TEST_P(BothWays, SimpleGet) {
  std::string in = get("Accept: */*\r\nX-Tab: a\tb\r\nX-Obs: caf\xe9\r\n", "/a/b?x=1&y=%20");
  Result r = decode(in, GetParam());
  ASSERT_FALSE(r.error) << r.error->detail;
  EXPECT_EQ(r.consumed, in.size());
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.heads, 1);
  EXPECT_TRUE(r.end_stream);
  EXPECT_EQ(r.completes, 1);
  EXPECT_EQ(r.head.method, "GET");
  EXPECT_EQ(r.head.target, "/a/b?x=1&y=%20");
  EXPECT_EQ(r.head.authority, "example.test");
  EXPECT_EQ(r.head.version, 11u);
  EXPECT_EQ(r.head.headers.get("accept"), "*/*");
  EXPECT_EQ(r.head.headers.get("x-tab"), "a\tb");
  EXPECT_EQ(r.head.headers.get("x-obs"), "caf\xe9");
  EXPECT_EQ(r.head.headers.get("host"), "example.test");
  EXPECT_TRUE(r.keep_alive);
  EXPECT_FALSE(r.chunked);
}

TEST_P(BothWays, ContentLengthBody) {
  std::string in = "POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 011\r\n\r\nhello world";
  Result r = decode(in, GetParam());
  ASSERT_FALSE(r.error) << r.error->detail;
  EXPECT_EQ(r.consumed, in.size());
  EXPECT_FALSE(r.end_stream);
  EXPECT_EQ(r.body, "hello world");
  EXPECT_EQ(r.completes, 1);
  EXPECT_EQ(r.content_length, 11u);
  EXPECT_EQ(r.head.headers.get("content-length"), "011");
}

TEST_P(BothWays, ContentLengthZero) {
  std::string in = "POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\n\r\n";
  Result r = decode(in, GetParam());
  ASSERT_FALSE(r.error) << r.error->detail;
  EXPECT_TRUE(r.end_stream);
  EXPECT_EQ(r.completes, 1);
}

TEST_P(BothWays, ChunkedWithExtensionsAndTrailers) {
  std::string in = kChunkedHead +
                   "5;name=value;quoted=\"a b\\\"c\"\r\nhello\r\n"
                   "6 ; bws = x\r\n world\r\n"
                   "A\r\n0123456789\r\n"
                   "000;last\r\n"
                   "X-Checksum: abc\r\nX-Other: d\te\r\n\r\n";
  Result r = decode(in, GetParam());
  ASSERT_FALSE(r.error) << r.error->detail;
  EXPECT_EQ(r.consumed, in.size());
  EXPECT_TRUE(r.done);
  EXPECT_FALSE(r.end_stream);
  EXPECT_TRUE(r.chunked);
  EXPECT_EQ(r.body, "hello world0123456789");
  EXPECT_EQ(r.completes, 1);
  // Framing and trailers are not part of the forwarded head.
  EXPECT_FALSE(r.head.headers.contains("transfer-encoding"));
  EXPECT_FALSE(r.head.headers.contains("x-checksum"));
}

TEST_P(BothWays, ChunkedCaseInsensitiveAndEmptyListElements) {
  std::string in =
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , CHUNKED\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n";
  Result r = decode(in, GetParam());
  ASSERT_FALSE(r.error) << r.error->detail;
  EXPECT_EQ(r.body, "abc");
  EXPECT_EQ(r.completes, 1);
}

TEST_P(BothWays, ChunkedEmptyBody) {
  std::string in = kChunkedHead + "0\r\n\r\n";
  Result r = decode(in, GetParam());
  ASSERT_FALSE(r.error) << r.error->detail;
  EXPECT_EQ(r.consumed, in.size());
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(r.completes, 1);
}

TEST_P(BothWays, AbsoluteFormTarget) {
  std::string in = "GET http://Upstream.Test:8080/p/q?x=1 HTTP/1.1\r\nHost: other.test\r\n\r\n";
  Result r = decode(in, GetParam());
  ASSERT_FALSE(r.error) << r.error->detail;
  EXPECT_EQ(r.head.target, "/p/q?x=1");
  EXPECT_EQ(r.head.authority, "Upstream.Test:8080");
  EXPECT_EQ(r.head.headers.get("host"), "Upstream.Test:8080");
  EXPECT_EQ(r.head.headers.count("host"), 1u);
}

TEST_P(BothWays, AbsoluteFormEmptyPath) {
  std::string in = "GET https://a.test HTTP/1.1\r\nHost: a.test\r\n\r\n";
  Result r = decode(in, GetParam());
  ASSERT_FALSE(r.error) << r.error->detail;
  EXPECT_EQ(r.head.target, "/");
  EXPECT_EQ(r.head.authority, "a.test");
}

TEST_P(BothWays, AbsoluteFormSchemeIsCaseInsensitive) {
  Result r = decode("GET HTTP://a.test/x HTTP/1.1\r\nHost: a.test\r\n\r\n", GetParam());
  ASSERT_FALSE(r.error) << r.error->detail;
  EXPECT_EQ(r.head.target, "/x");
}

TEST_P(BothWays, OptionsStar) {
  std::string in = "OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n";
  Result r = decode(in, GetParam());
  ASSERT_FALSE(r.error) << r.error->detail;
  EXPECT_EQ(r.head.method, "OPTIONS");
  EXPECT_EQ(r.head.target, "*");
  EXPECT_EQ(r.completes, 1);
}

TEST_P(BothWays, Http10WithoutHost) {
  std::string in = "GET /old HTTP/1.0\r\nUser-Agent: x\r\n\r\n";
  Result r = decode(in, GetParam());
  ASSERT_FALSE(r.error) << r.error->detail;
  EXPECT_EQ(r.head.version, 10u);
  EXPECT_EQ(r.head.authority, "");
  EXPECT_FALSE(r.keep_alive);
  EXPECT_EQ(r.completes, 1);
}

TEST_P(BothWays, Http10KeepAlive) {
  std::string in = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
  Result r = decode(in, GetParam());
  ASSERT_FALSE(r.error) << r.error->detail;
  EXPECT_TRUE(r.keep_alive);
  EXPECT_FALSE(r.head.headers.contains("connection"));
}

TEST_P(BothWays, ExtensionMethodAndIpv6Host) {
  std::string in = "PURGE /x HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n";
  Result r = decode(in, GetParam());
  ASSERT_FALSE(r.error) << r.error->detail;
  EXPECT_EQ(r.head.method, "PURGE");
  EXPECT_EQ(r.head.authority, "[::1]:8080");
}

TEST_P(BothWays, EmptyHostIsAllowed) {
  // RFC 9112 §3.2: an empty Host is valid when the target has no authority.
  Result r = decode("GET / HTTP/1.1\r\nHost:\r\n\r\n", GetParam());
  ASSERT_FALSE(r.error) << r.error->detail;
  EXPECT_EQ(r.head.authority, "");
}

TEST_P(BothWays, OneLeadingEmptyLineIsIgnored) {
  // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request-line.
  std::string in = "\r\n" + get();
  Result r = decode(in, GetParam());
  ASSERT_FALSE(r.error) << r.error->detail;
  EXPECT_EQ(r.consumed, in.size());
  EXPECT_EQ(r.completes, 1);
}

TEST_P(BothWays, ConnectionCloseAndHopByHop) {
  std::string in =
      get("Connection: close, X-Private\r\nX-Private: secret\r\nKeep-Alive: 5\r\nTE: trailers\r\n"
          "Upgrade: h2c\r\nProxy-Connection: keep-alive\r\nX-Kept: yes\r\n");
  Result r = decode(in, GetParam());
  ASSERT_FALSE(r.error) << r.error->detail;
  EXPECT_FALSE(r.keep_alive);
  for (auto name : {"connection", "x-private", "keep-alive", "te", "upgrade", "proxy-connection"}) {
    EXPECT_FALSE(r.head.headers.contains(name)) << name;
  }
  EXPECT_EQ(r.head.headers.get("x-kept"), "yes");
}

TEST_P(BothWays, ConnectionCannotStripEndToEndFraming) {
  // Naming Host or Content-Length in Connection must not drop them from the forwarded head.
  std::string in =
      "POST / HTTP/1.1\r\nHost: a.test\r\nConnection: host, content-length\r\n"
      "Content-Length: 2\r\n\r\nhi";
  Result r = decode(in, GetParam());
  ASSERT_FALSE(r.error) << r.error->detail;
  EXPECT_EQ(r.head.headers.get("host"), "a.test");
  EXPECT_EQ(r.head.headers.get("content-length"), "2");
  EXPECT_EQ(r.body, "hi");
}

TEST_P(BothWays, ExpectContinue) {
  std::string in =
      "PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc";
  Result r = decode(in, GetParam());
  ASSERT_FALSE(r.error) << r.error->detail;
  EXPECT_TRUE(r.expect_continue);
  EXPECT_FALSE(r.head.headers.contains("expect"));
  EXPECT_EQ(r.body, "abc");
}

TEST_P(BothWays, LimitsAreInclusive) {
  DecoderLimits l = small_limits();
  std::string in = "POST /" + std::string(31, 'a') +
                   " HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nContent-Length: 10\r\n\r\n0123456789";
  Result r = decode(in, GetParam(), l);
  ASSERT_FALSE(r.error) << r.error->detail;
  EXPECT_EQ(r.head.target.size(), 32u);
  EXPECT_EQ(r.body, "0123456789");
  EXPECT_EQ(r.completes, 1);
}

TEST_P(BothWays, UnlimitedBody) {
  DecoderLimits l;
  l.max_body_bytes = 0;
  std::string body(300 * 1024, 'z');
  std::string in = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(body.size()) +
                   "\r\n\r\n" + body;
  Result r = decode(in, GetParam() == 0 ? 0 : 4096, l);
  ASSERT_FALSE(r.error) << r.error->detail;
  EXPECT_EQ(r.body.size(), body.size());
  EXPECT_EQ(r.completes, 1);
}

// ------------------------------------------------------------------------------------------
// Pipelining: one message per feed; the rest stays with the caller.

TEST(RequestDecoder, PipelinedStopsAfterOneMessage) {
  Recorder rec;
  RequestDecoder d(rec, {});
  std::string first = "POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
  std::string second = kChunkedHead + "2\r\nde\r\n0\r\n\r\n";
  std::string third = get("", "/3");
  std::string all = first + second + third;

  size_t n = d.feed(all);
  EXPECT_EQ(n, first.size());
  EXPECT_TRUE(d.message_done());
  EXPECT_EQ(rec.heads, 1);
  EXPECT_EQ(rec.completes, 1);
  EXPECT_EQ(rec.body, "abc");
  EXPECT_EQ(d.feed(std::string_view(all).substr(n)), 0u) << "done until reset";

  d.reset();
  std::string_view rest = std::string_view(all).substr(n);
  size_t m = d.feed(rest);
  EXPECT_EQ(m, second.size());
  EXPECT_EQ(rec.head.target, "/up");
  EXPECT_EQ(rec.body, "abcde");
  EXPECT_EQ(rec.completes, 2);

  d.reset();
  rest.remove_prefix(m);
  EXPECT_EQ(d.feed(rest), third.size());
  EXPECT_EQ(rec.head.target, "/3");
  EXPECT_EQ(rec.completes, 3);
}

TEST(RequestDecoder, PipelinedBadRequestAfterGoodOne) {
  Recorder rec;
  RequestDecoder d(rec, {});
  std::string first = get("", "/ok");
  std::string all = first + "GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n";
  EXPECT_EQ(d.feed(all), first.size());
  EXPECT_FALSE(d.error());
  d.reset();
  EXPECT_EQ(d.feed(std::string_view(all).substr(first.size())), 0u);
  ASSERT_TRUE(d.error());
  EXPECT_EQ(rec.heads, 1);
}

TEST(RequestDecoder, ObsFoldInBodyIsNotAHeaderProblem) {
  // "\r\n " inside a body is just data, also when the body arrives with the head.
  Recorder rec;
  RequestDecoder d(rec, {});
  std::string in = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\n\r\n x\r\n";
  EXPECT_EQ(d.feed(in), in.size());
  EXPECT_FALSE(d.error());
  EXPECT_EQ(rec.body, "\r\n x\r\n");
}

TEST(RequestDecoder, IncompleteHeadWaitsForMore) {
  Recorder rec;
  RequestDecoder d(rec, {});
  std::string pending = "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n";
  pending.erase(0, d.feed(pending));
  EXPECT_FALSE(d.error());
  EXPECT_FALSE(d.header_done());
  EXPECT_EQ(rec.heads, 0);
  pending.erase(0, d.feed(pending));  // nothing new: still waiting
  EXPECT_FALSE(d.header_done());
  pending += "\r\n";
  pending.erase(0, d.feed(pending));
  EXPECT_TRUE(d.message_done());
  EXPECT_TRUE(pending.empty());
  EXPECT_EQ(rec.head.headers.get("x-a"), "b");
}

TEST(RequestDecoder, LastChunkArrivingInPieces) {
  // Beast asserts (debug builds) when the last chunk is parsed again from fewer than 5
  // bytes, e.g. "0\r\n" and then "0\r\n\r"; the decoder must hold such pieces back.
  Recorder rec;
  RequestDecoder d(rec, {});
  EXPECT_EQ(d.feed(kChunkedHead), kChunkedHead.size());
  for (std::string_view piece : {"0", "0\r", "0\r\n", "0\r\n\r"}) {
    EXPECT_EQ(d.feed(piece), 0u) << piece.size();
    EXPECT_FALSE(d.error());
  }
  EXPECT_EQ(d.feed("0\r\n\r\n"), 5u);
  EXPECT_TRUE(d.message_done());
  EXPECT_EQ(rec.completes, 1);
}

TEST_P(BothWays, ChunkDataMayHoldLineFeeds) {
  // Held-back chunk data is not mistaken for a chunk line.
  std::string in = kChunkedHead + "1\r\n\n\r\n3\r\n\n\n\n\r\n0\r\n\r\n";
  Result r = decode(in, GetParam());
  ASSERT_FALSE(r.error) << r.error->detail;
  EXPECT_EQ(r.body, "\n\n\n\n");
  EXPECT_EQ(r.completes, 1);
}

TEST(EncodeResponseHead, StatusLineAndHeaders) {
  ResponseHead h;
  h.status = 404;
  h.headers.add("content-length", "0");
  std::string out;
  encode_response_head(h, 11, out);
  EXPECT_EQ(out, "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
  out.clear();
  h.reason = "Gone Fishing";
  encode_response_head(h, 10, out);
  EXPECT_EQ(out, "HTTP/1.0 404 Gone Fishing\r\ncontent-length: 0\r\n\r\n");
}

// The decoder accepts a plain target or Host without asking Boost.URL (a fast path); what it
// accepts must stay exactly what Boost.URL's grammar accepts. Random strings over an alphabet
// of every class of character the grammars treat differently.
TEST(RequestDecoder, TargetAndHostAcceptedExactlyAsBoostUrlDoes) {
  const std::string alphabet = "aZ09-._~!$&'()*+,;=:@/?%#[]{}|\\^` \"<>\x7f\x80\xff";
  std::mt19937 rng(12345);
  auto random_text = [&](size_t max_len) {
    std::string s;
    const size_t n = rng() % (max_len + 1);
    for (size_t i = 0; i < n; ++i) s += alphabet[rng() % alphabet.size()];
    return s;
  };
  for (int i = 0; i < 4000; ++i) {
    const std::string target = "/" + random_text(12);
    if (target.find_first_of(" \x7f") != std::string::npos) continue;  // ends the request line
    Result r = decode(get("", target));
    EXPECT_EQ(!r.error, bool(boost::urls::parse_origin_form(target))) << target;

    const std::string host = random_text(10);
    if (host.find_first_of(" \x7f\x80\xff") != std::string::npos) continue;  // field rules
    std::string in = "GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n";
    auto authority = boost::urls::parse_authority(host);
    const bool valid = host.empty() || (authority && !authority->has_userinfo() &&
                                        !authority->encoded_host().empty());
    EXPECT_EQ(!decode(in).error, valid) << host;
  }
}

}  // namespace
}  // namespace sluice::http1
