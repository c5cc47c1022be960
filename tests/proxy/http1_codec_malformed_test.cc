// RequestDecoder rejects every malformed or ambiguous request with the right error, whether
// the bytes arrive at once or one at a time, and never reports such a request complete.
#include "proxy/http1_codec.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "tests/proxy/http1_codec_test_util.h"

namespace sluice::http1 {
namespace {

using namespace codec_test;
using namespace std::string_literals;

// ------------------------------------------------------------------------------------------
// Malformed requests. `head_ok` says whether the head itself is valid (the error is in the
// body framing), in which case the head may have been delivered but the request must never
// be reported complete.

struct Bad {
  const char* name;
  std::string input;
  ErrorKind kind;
  bool head_ok = false;
  DecoderLimits limits = {};
};

void PrintTo(const Bad& b, std::ostream* os) { *os << b.name; }

std::vector<Bad> bad_requests() {
  const std::string h = "Host: example.test\r\n";
  const std::string post = "POST / HTTP/1.1\r\n" + h;
  std::vector<Bad> v = {
      // Framing: Content-Length and Transfer-Encoding.
      {"cl_then_te", post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       ErrorKind::bad_request},
      {"te_then_cl", post + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
       ErrorKind::bad_request},
      {"te_gzip_then_cl", post + "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello",
       ErrorKind::bad_request},
      {"cl_then_te_gzip", post + "Content-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\nhello",
       ErrorKind::bad_request},
      {"cl_duplicate_equal", post + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
       ErrorKind::bad_request},
      {"cl_conflicting", post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
       ErrorKind::bad_request},
      {"cl_list", post + "Content-Length: 5, 5\r\n\r\nhello", ErrorKind::bad_request},
      {"cl_letters", post + "Content-Length: abc\r\n\r\n", ErrorKind::bad_request},
      {"cl_plus", post + "Content-Length: +5\r\n\r\nhello", ErrorKind::bad_request},
      {"cl_negative", post + "Content-Length: -1\r\n\r\n", ErrorKind::bad_request},
      {"cl_hex", post + "Content-Length: 0x5\r\n\r\nhello", ErrorKind::bad_request},
      {"cl_trailing_junk", post + "Content-Length: 5a\r\n\r\nhello", ErrorKind::bad_request},
      {"cl_inner_space", post + "Content-Length: 5 5\r\n\r\nhello", ErrorKind::bad_request},
      {"cl_empty", post + "Content-Length:\r\n\r\n", ErrorKind::bad_request},
      {"cl_overflow_2_64", post + "Content-Length: 18446744073709551616\r\n\r\n",
       ErrorKind::bad_request},
      {"cl_overflow_huge", post + "Content-Length: 99999999999999999999999999\r\n\r\n",
       ErrorKind::bad_request},
      {"te_gzip", post + "Transfer-Encoding: gzip\r\n\r\n", ErrorKind::not_implemented},
      {"te_identity", post + "Transfer-Encoding: identity\r\n\r\n", ErrorKind::not_implemented},
      {"te_gzip_chunked", post + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
       ErrorKind::not_implemented},
      {"te_two_fields_gzip_chunked",
       post + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       ErrorKind::not_implemented},
      {"te_chunked_gzip", post + "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
       ErrorKind::bad_request},
      {"te_chunked_twice", post + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
       ErrorKind::bad_request},
      {"te_two_fields_chunked",
       post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       ErrorKind::bad_request},
      {"te_chunked_with_param", post + "Transfer-Encoding: chunked;x=1\r\n\r\n0\r\n\r\n",
       ErrorKind::bad_request},
      {"te_empty", post + "Transfer-Encoding:\r\n\r\n", ErrorKind::bad_request},
      {"te_only_commas", post + "Transfer-Encoding: , ,\r\n\r\n", ErrorKind::bad_request},
      {"te_not_a_token", post + "Transfer-Encoding: chun ked\r\n\r\n", ErrorKind::bad_request},
      {"te_chunkedx", post + "Transfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n",
       ErrorKind::not_implemented},
      {"te_http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       ErrorKind::bad_request},
      // Field syntax.
      {"obs_fold_space", get("X-A: one\r\n two\r\n"), ErrorKind::bad_request},
      {"obs_fold_tab", get("X-A: one\r\n\ttwo\r\n"), ErrorKind::bad_request},
      {"obs_fold_empty_first_line", get("X-A:\r\n two\r\n"), ErrorKind::bad_request},
      {"obs_fold_first_field", "GET / HTTP/1.1\r\n Host: example.test\r\n\r\n",
       ErrorKind::bad_request},
      {"obs_fold_host", "GET / HTTP/1.1\r\nHost: a\r\n .example\r\n\r\n", ErrorKind::bad_request},
      {"ctl_in_value",
       get("X-A: a\x01"
           "b\r\n"),
       ErrorKind::bad_request},
      {"del_in_value",
       get("X-A: a\x7f"
           "b\r\n"),
       ErrorKind::bad_request},
      {"esc_in_value", get("X-A: \x1b[31m\r\n"), ErrorKind::bad_request},
      {"nul_in_value", get("X-A: a"s + '\0' + "b\r\n"), ErrorKind::bad_request},
      {"bare_cr_in_value", get("X-A: a\rb\r\n"), ErrorKind::bad_request},
      {"bare_lf_in_value", get("X-A: a\nb\r\n"), ErrorKind::bad_request},
      {"bare_cr_value_end", get("X-A: ab\r\rX-B: c\r\n"), ErrorKind::bad_request},
      {"nul_in_name", get("X-"s + '\0' + "A: b\r\n"), ErrorKind::bad_request},
      {"cr_in_name", get("X-\rA: b\r\n"), ErrorKind::bad_request},
      {"ctl_in_name",
       get("X-\x01"
           "A: b\r\n"),
       ErrorKind::bad_request},
      {"space_before_colon", get("X-A : b\r\n"), ErrorKind::bad_request},
      {"tab_before_colon", get("X-A\t: b\r\n"), ErrorKind::bad_request},
      {"host_space_before_colon", "GET / HTTP/1.1\r\nHost : example.test\r\n\r\n",
       ErrorKind::bad_request},
      {"paren_in_name", get("X(A): b\r\n"), ErrorKind::bad_request},
      {"at_in_name", get("X@A: b\r\n"), ErrorKind::bad_request},
      {"slash_in_name", get("X/A: b\r\n"), ErrorKind::bad_request},
      {"non_ascii_name", get("X-\xc3\xa9: b\r\n"), ErrorKind::bad_request},
      {"empty_name", get(": b\r\n"), ErrorKind::bad_request},
      {"no_colon", get("X-A b\r\n"), ErrorKind::bad_request},
      {"bare_lf_lines", "GET / HTTP/1.1\nHost: example.test\n\n", ErrorKind::bad_request},
      {"bare_lf_end_of_head", "GET / HTTP/1.1\r\nHost: example.test\r\n\n", ErrorKind::bad_request},
      {"invalid_connection_list", get("Connection: close, \"x\"\r\n"), ErrorKind::bad_request},
      // Host.
      {"missing_host", "GET / HTTP/1.1\r\nX-A: b\r\n\r\n", ErrorKind::bad_request},
      {"repeated_host", get("Host: example.test\r\n"), ErrorKind::bad_request},
      {"repeated_host_different", get("Host: other.test\r\n"), ErrorKind::bad_request},
      {"repeated_host_http10", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
       ErrorKind::bad_request},
      {"host_with_space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", ErrorKind::bad_request},
      {"host_with_slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", ErrorKind::bad_request},
      {"host_with_userinfo", "GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", ErrorKind::bad_request},
      {"host_bad_port", "GET / HTTP/1.1\r\nHost: a:http\r\n\r\n", ErrorKind::bad_request},
      {"host_list", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", ErrorKind::bad_request},
      {"absolute_form_without_host", "GET http://a.test/ HTTP/1.1\r\n\r\n", ErrorKind::bad_request},
      // Request line.
      {"method_with_paren", "G(T / HTTP/1.1\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"method_with_nul", "G"s + '\0' + "T / HTTP/1.1\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"method_empty", " / HTTP/1.1\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"method_non_ascii", "G\xc3\x89T / HTTP/1.1\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"leading_space", " GET / HTTP/1.1\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"double_space", "GET  / HTTP/1.1\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"tab_separator", "GET\t/ HTTP/1.1\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"version_1_2", "GET / HTTP/1.2\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"version_2_0", "GET / HTTP/2.0\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"version_0_9_line", "GET / HTTP/0.9\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"version_lowercase", "GET / http/1.1\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"version_two_digits", "GET / HTTP/11\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"version_trailing_space", "GET / HTTP/1.1 \r\n" + h + "\r\n", ErrorKind::bad_request},
      {"version_missing", "GET / \r\n" + h + "\r\n", ErrorKind::bad_request},
      {"http09", "GET /\r\n\r\n", ErrorKind::bad_request},
      {"http09_no_crlf_pair", "GET /index.html\r\n", ErrorKind::bad_request},
      {"target_relative", "GET foo HTTP/1.1\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"target_star_get", "GET * HTTP/1.1\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"target_fragment", "GET /a#b HTTP/1.1\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"target_ctl", "GET /a\x01 HTTP/1.1\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"target_del", "GET /a\x7f HTTP/1.1\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"target_nul", "GET /a"s + '\0' + " HTTP/1.1\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"target_bad_percent", "GET /a%zz HTTP/1.1\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"target_non_ascii", "GET /\xc3\xa9 HTTP/1.1\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"target_backslash", "GET /a\\b HTTP/1.1\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"target_authority_form", "GET a.test:80 HTTP/1.1\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"target_ftp", "GET ftp://a.test/ HTTP/1.1\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"target_empty_host", "GET http:///a HTTP/1.1\r\n" + h + "\r\n", ErrorKind::bad_request},
      {"target_userinfo", "GET http://u:p@a.test/ HTTP/1.1\r\n" + h + "\r\n",
       ErrorKind::bad_request},
      {"connect", "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n",
       ErrorKind::not_implemented},
      // Chunked body framing: the head is valid.
      {"chunk_size_not_hex", kChunkedHead + "zz\r\nhello\r\n0\r\n\r\n", ErrorKind::bad_request,
       true},
      {"chunk_size_0x", kChunkedHead + "0x5\r\nhello\r\n0\r\n\r\n", ErrorKind::bad_request, true},
      {"chunk_size_negative", kChunkedHead + "-5\r\nhello\r\n0\r\n\r\n", ErrorKind::bad_request,
       true},
      {"chunk_size_plus", kChunkedHead + "+5\r\nhello\r\n0\r\n\r\n", ErrorKind::bad_request, true},
      {"chunk_size_overflow", kChunkedHead + "10000000000000000\r\nx\r\n0\r\n\r\n",
       ErrorKind::bad_request, true},
      {"chunk_size_empty", kChunkedHead + "\r\nhello\r\n0\r\n\r\n", ErrorKind::bad_request, true},
      {"chunk_size_leading_space", kChunkedHead + " 5\r\nhello\r\n0\r\n\r\n",
       ErrorKind::bad_request, true},
      {"chunk_size_trailing_space", kChunkedHead + "5 \r\nhello\r\n0\r\n\r\n",
       ErrorKind::bad_request, true},
      {"chunk_size_bare_lf", kChunkedHead + "5\nhello\r\n0\r\n\r\n", ErrorKind::bad_request, true},
      {"chunk_data_too_long", kChunkedHead + "3\r\nhello\r\n0\r\n\r\n", ErrorKind::bad_request,
       true},
      {"chunk_data_no_crlf", kChunkedHead + "5\r\nhelloXY0\r\n\r\n", ErrorKind::bad_request, true},
      {"chunk_data_bare_lf", kChunkedHead + "5\r\nhello\n0\r\n\r\n", ErrorKind::bad_request, true},
      {"chunk_lines_bare_lf_only", kChunkedHead + "5\r\nhello\r\n5\nhello\n0\n\n",
       ErrorKind::bad_request, true},
      {"first_chunk_line_bare_lf_only", kChunkedHead + "5\nhello\n", ErrorKind::bad_request, true},
      {"chunk_line_starts_with_lf", kChunkedHead + "5\r\nhello\r\n\n5\r\n", ErrorKind::bad_request,
       true},
      {"trailer_bare_lf", kChunkedHead + "0\r\nX-A: b\n\n", ErrorKind::bad_request, true},
      {"trailer_end_bare_lf", kChunkedHead + "0\r\nX-A: b\r\n\n", ErrorKind::bad_request, true},
      {"last_chunk_bare_lf", kChunkedHead + "5\r\nhello\r\n0\n\n\r\n\r\n", ErrorKind::bad_request,
       true},
      {"chunk_ext_ctl", kChunkedHead + "5;a=b\x01\r\nhello\r\n0\r\n\r\n", ErrorKind::bad_request,
       true},
      {"chunk_ext_ctl_quoted", kChunkedHead + "5;a=\"b\x01\"\r\nhello\r\n0\r\n\r\n",
       ErrorKind::bad_request, true},
      {"chunk_ext_del_quoted", kChunkedHead + "5;a=\"b\x7f\"\r\nhello\r\n0\r\n\r\n",
       ErrorKind::bad_request, true},
      {"chunk_ext_nul", kChunkedHead + "5;a"s + '\0' + "\r\nhello\r\n0\r\n\r\n",
       ErrorKind::bad_request, true},
      {"chunk_ext_bare_lf", kChunkedHead + "5;a\nb\r\nhello\r\n0\r\n\r\n", ErrorKind::bad_request,
       true},
      {"chunk_ext_bare_cr", kChunkedHead + "5;a\rb\r\nhello\r\n0\r\n\r\n", ErrorKind::bad_request,
       true},
      {"chunk_ext_no_name", kChunkedHead + "5;\r\nhello\r\n0\r\n\r\n", ErrorKind::bad_request,
       true},
      {"last_chunk_ext_ctl", kChunkedHead + "0;a=\x01\r\n\r\n", ErrorKind::bad_request, true},
      {"trailer_bad_name", kChunkedHead + "0\r\nX A: b\r\n\r\n", ErrorKind::bad_request, true},
      {"trailer_ctl_value", kChunkedHead + "0\r\nX-A: \x01\r\n\r\n", ErrorKind::bad_request, true},
      {"trailer_content_length", kChunkedHead + "0\r\nContent-Length: 5\r\n\r\n",
       ErrorKind::bad_request, true},
      {"trailer_transfer_encoding", kChunkedHead + "0\r\nTransfer-Encoding: chunked\r\n\r\n",
       ErrorKind::bad_request, true},
      {"trailer_obs_fold", kChunkedHead + "0\r\nX-A: a\r\n b\r\n\r\n", ErrorKind::bad_request,
       true},
  };

  // Limits (small, so the cases stay readable).
  DecoderLimits l = small_limits();
  v.push_back({"uri_too_long", "GET /" + std::string(32, 'a') + " HTTP/1.1\r\n" + h + "\r\n",
               ErrorKind::uri_too_long, false, l});
  v.push_back({"uri_too_long_no_line_end", "GET /" + std::string(1000, 'a'),
               ErrorKind::uri_too_long, false, l});
  v.push_back({"absolute_uri_too_long",
               "GET http://a.test/" + std::string(20, 'a') + " HTTP/1.1\r\n" + h + "\r\n",
               ErrorKind::uri_too_long, false, l});
  // Beyond the header limit too: still 414, not 431.
  v.push_back({"uri_beyond_header_limit",
               "GET /" + std::string(100 * 1024, 'a') + " HTTP/1.1\r\n" + h + "\r\n",
               ErrorKind::uri_too_long});
  v.push_back({"too_many_headers", get("A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n"),
               ErrorKind::header_too_large, false, l});
  v.push_back({"header_too_large", get("A: " + std::string(200, 'x') + "\r\n"),
               ErrorKind::header_too_large, false, l});
  v.push_back({"headers_too_large_total",
               get("A: " + std::string(60, 'x') + "\r\nB: " + std::string(60, 'x') +
                   "\r\nC: " + std::string(60, 'x') + "\r\n"),
               ErrorKind::header_too_large, false, l});
  v.push_back({"header_section_unterminated",
               "GET / HTTP/1.1\r\n" + h + "A: " + std::string(1000, 'x'),
               ErrorKind::header_too_large, false, l});
  v.push_back({"header_section_unterminated_default",
               "GET / HTTP/1.1\r\n" + h + "A: " + std::string(200 * 1024, 'x'),
               ErrorKind::header_too_large});
  v.push_back({"many_headers_default", get([] {
                 std::string s;
                 for (int i = 0; i < 101; ++i) s += "X-" + std::to_string(i) + ": v\r\n";
                 return s;
               }()),
               ErrorKind::header_too_large});
  v.push_back({"body_too_large_cl", post + "Content-Length: 11\r\n\r\n" + std::string(11, 'x'),
               ErrorKind::body_too_large, false, l});
  v.push_back({"body_too_large_cl_huge", post + "Content-Length: 18446744073709551615\r\n\r\n",
               ErrorKind::body_too_large});
  v.push_back({"body_too_large_chunked", kChunkedHead + "6\r\nhello!\r\n5\r\nhello\r\n0\r\n\r\n",
               ErrorKind::body_too_large, true, l});
  v.push_back({"body_too_large_one_chunk", kChunkedHead + "b\r\nhello world\r\n0\r\n\r\n",
               ErrorKind::body_too_large, true, l});
  {
    DecoderLimits big = l;
    big.max_header_bytes = 1024;
    big.max_uri_bytes = 1024;
    v.push_back({"chunk_line_unterminated", kChunkedHead + "5;a=" + std::string(4000, 'b'),
                 ErrorKind::bad_request, true, big});
    v.push_back({"trailers_unterminated",
                 kChunkedHead + "0\r\nX-A: b\r\nX-B: " + std::string(4000, 'b'),
                 ErrorKind::header_too_large, true, big});
    v.push_back({"too_many_trailers",
                 kChunkedHead + "0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n",
                 ErrorKind::header_too_large, true, big});
  }
  return v;
}

class Malformed : public ::testing::TestWithParam<Bad> {};

TEST_P(Malformed, RejectedAllAtOnce) {
  const Bad& b = GetParam();
  Result r = decode(b.input, 0, b.limits);
  ASSERT_TRUE(r.error.has_value()) << "accepted; heads=" << r.heads << " done=" << r.done;
  RecordProperty("detail", r.error->detail);
  EXPECT_EQ(to_string(r.error->kind), to_string(b.kind)) << r.error->detail;
  EXPECT_EQ(r.error->source, ErrorSource::downstream);
  EXPECT_EQ(r.completes, 0);
  EXPECT_FALSE(r.done);
  if (!b.head_ok) {
    EXPECT_EQ(r.heads, 0) << "a bad head must not be delivered";
  }
}

TEST_P(Malformed, RejectedByteByByte) {
  const Bad& b = GetParam();
  Result r = decode(b.input, 1, b.limits);
  ASSERT_TRUE(r.error.has_value()) << "accepted; heads=" << r.heads << " done=" << r.done;
  EXPECT_EQ(to_string(r.error->kind), to_string(b.kind)) << r.error->detail;
  EXPECT_EQ(r.completes, 0);
  if (!b.head_ok) {
    EXPECT_EQ(r.heads, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Http1, Malformed, ::testing::ValuesIn(bad_requests()),
                         [](const auto& info) { return std::string(info.param.name); });

// Beast looks at a head only once its empty line is there; a bad line end in an unfinished head
// must not wait for the header timeout.
TEST(RequestDecoder, BareLineEndInAnUnfinishedHeadIsRejectedAtOnce) {
  for (const std::string& head : std::vector<std::string>{
           "GET / HTTP/1.1\r\nX-A: a\nb", "GET / HTTP/1.1\r\nX-A: a\rb",
           "GET / HTTP/1.1\r\nHost: x\r\nX-A: " + std::string(2000, 'v') + "\r\r",
           "GET / HTTP/1.1\r\nHost: x\n"}) {
    Recorder rec;
    RequestDecoder d(rec, {});
    EXPECT_EQ(d.feed(head), 0u);
    ASSERT_TRUE(d.error()) << head;
    EXPECT_EQ(to_string(d.error()->kind), "bad_request") << head;
    EXPECT_EQ(rec.heads, 0);
  }
}

TEST(RequestDecoder, CrAtTheEndOfWhatArrivedWaitsForTheNextByte) {
  Recorder rec;
  RequestDecoder d(rec, {});
  std::string pending;
  // Each piece ends with a CR whose LF is in the next one; what feed() consumed is not passed
  // again, as the connection does.
  for (std::string_view piece : {"GET / HTTP/1.1\r", "\nX-A: a\r", "\nHost: x\r", "\n\r", "\n"}) {
    ASSERT_FALSE(d.message_done());
    pending += piece;
    pending.erase(0, d.feed(pending));
    ASSERT_FALSE(d.error()) << d.error()->detail;
  }
  EXPECT_TRUE(pending.empty());
  EXPECT_EQ(rec.heads, 1);
  EXPECT_TRUE(d.message_done());
}

TEST(RequestDecoder, ErrorIsStickyUntilReset) {
  Recorder rec;
  RequestDecoder d(rec, {});
  std::string bad = "GET / HTTP/1.1\r\nX-A : b\r\n\r\n";
  EXPECT_EQ(d.feed(bad), 0u);
  ASSERT_TRUE(d.error());
  EXPECT_EQ(d.feed(get()), 0u);
  EXPECT_EQ(rec.heads, 0);
  d.reset();
  EXPECT_FALSE(d.error());
  std::string good = get();
  EXPECT_EQ(d.feed(good), good.size());
  EXPECT_TRUE(d.message_done());
  EXPECT_EQ(rec.heads, 1);
}

}  // namespace
}  // namespace sluice::http1
