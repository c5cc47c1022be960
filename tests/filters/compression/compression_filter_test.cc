// The compression filter on its own: Accept-Encoding negotiation (q-values, '*', identity,
// malformed lists), each rule that makes a response compressible or not, the head rewrite
// (Content-Encoding, Content-Length, ETag, Accept-Ranges, Vary), and bodies streamed through the
// filter and decoded with the real libraries.
#include "filters/compression/compression_filter.h"

#include <gtest/gtest.h>

#include "core/stats.h"
#include "filters/registry.h"
#include "filters/worker_services.h"
#include "tests/filters/compression/decoders.h"
#include "tests/filters/fake_callbacks.h"

namespace sluice::compression {
namespace {

constexpr Algorithm kDefaultOrder[] = {Algorithm::br, Algorithm::zstd, Algorithm::gzip};

std::optional<Algorithm> choose(std::string_view accept,
                                std::span<const Algorithm> order = kDefaultOrder) {
  AcceptEncoding a;
  a.add(accept);
  return a.choose(order);
}

TEST(QValueTest, Grammar) {
  EXPECT_EQ(parse_qvalue("1"), 1000);
  EXPECT_EQ(parse_qvalue("1.000"), 1000);
  EXPECT_EQ(parse_qvalue("0"), 0);
  EXPECT_EQ(parse_qvalue("0.5"), 500);
  EXPECT_EQ(parse_qvalue("0.123"), 123);
  EXPECT_EQ(parse_qvalue("0.001"), 1);
  EXPECT_EQ(parse_qvalue("1."), 1000);
  for (const char* bad : {"", "2", "1.5", "0.1234", "-1", ".5", "0,5", "abc", "1.0a", "01"}) {
    EXPECT_EQ(parse_qvalue(bad), std::nullopt) << bad;
  }
}

TEST(AcceptEncodingTest, ServerOrderBreaksTies) {
  EXPECT_EQ(choose("gzip, deflate, br, zstd"), Algorithm::br);
  EXPECT_EQ(choose("gzip, zstd"), Algorithm::zstd);
  EXPECT_EQ(choose("gzip"), Algorithm::gzip);
  const Algorithm gzip_first[] = {Algorithm::gzip, Algorithm::br};
  EXPECT_EQ(choose("br, gzip", gzip_first), Algorithm::gzip);
  EXPECT_EQ(choose("zstd", gzip_first), std::nullopt);  // not among the route's algorithms
}

TEST(AcceptEncodingTest, QValuesAreRespected) {
  EXPECT_EQ(choose("gzip;q=1, br;q=0.5"), Algorithm::gzip);
  EXPECT_EQ(choose("br;q=0.9, gzip;q=0.9, zstd;q=0.8"), Algorithm::br);
  EXPECT_EQ(choose("gzip;q=0"), std::nullopt);
  EXPECT_EQ(choose("gzip;q=0, br"), Algorithm::br);
  EXPECT_EQ(choose("GZIP; Q=0.5"), Algorithm::gzip);  // case-insensitive, spaces allowed
  EXPECT_EQ(choose(" gzip ;q=0.5 , br;q=0.4"), Algorithm::gzip);
  EXPECT_EQ(choose("x-gzip"), Algorithm::gzip);
}

TEST(AcceptEncodingTest, StarCoversTheCodingsNotListed) {
  EXPECT_EQ(choose("*"), Algorithm::br);
  EXPECT_EQ(choose("br;q=0, *"), Algorithm::zstd);
  EXPECT_EQ(choose("*;q=0"), std::nullopt);
  EXPECT_EQ(choose("gzip, *;q=0"), Algorithm::gzip);
  EXPECT_EQ(choose("*;q=0.5, gzip"), Algorithm::gzip);
}

TEST(AcceptEncodingTest, IdentityPreferredMeansNoCoding) {
  EXPECT_EQ(choose("identity"), std::nullopt);
  EXPECT_EQ(choose("identity;q=1, gzip;q=0.5"), std::nullopt);
  EXPECT_EQ(choose("identity;q=0.5, gzip"), Algorithm::gzip);
  EXPECT_EQ(choose("gzip, identity;q=0"), Algorithm::gzip);
  EXPECT_EQ(choose("gzip, identity"), Algorithm::gzip);  // equal: the coding wins
}

TEST(AcceptEncodingTest, MalformedListsRefuseWhatIsUnclear) {
  EXPECT_EQ(choose(""), std::nullopt);
  EXPECT_EQ(choose(",,,"), std::nullopt);
  EXPECT_EQ(choose("gzip;q=abc"), std::nullopt);  // broken q: refused, like nginx
  EXPECT_EQ(choose("gzip;q=2, br;q="), std::nullopt);
  EXPECT_EQ(choose("gzip;q=abc, zstd"), Algorithm::zstd);
  EXPECT_EQ(choose("g zip, br"), Algorithm::br);  // not a token: skipped
  EXPECT_EQ(choose("\"gzip\""), std::nullopt);
  EXPECT_EQ(choose(";q=1"), std::nullopt);
  EXPECT_EQ(choose("gzip;level=9"), Algorithm::gzip);  // other parameters ignored
  EXPECT_EQ(choose("gzip;q=0.5;q=0"), std::nullopt);   // the last q counts
  EXPECT_EQ(choose("deflate, compress"), std::nullopt);
}

TEST(AcceptEncodingTest, SeveralFieldsAddUp) {
  AcceptEncoding a;
  a.add("gzip;q=0.5");
  a.add("zstd");
  EXPECT_EQ(a.choose(kDefaultOrder), Algorithm::zstd);
  EXPECT_TRUE(a.present());
  EXPECT_FALSE(AcceptEncoding().present());
}

ResponseHead html(std::string length = "2048") {
  ResponseHead h;
  h.headers.add("content-type", "text/html; charset=utf-8");
  if (!length.empty()) h.headers.add("content-length", length);
  return h;
}

TEST(CompressibleTest, ContentTypeMustBeListed) {
  Settings s;
  EXPECT_TRUE(compressible(s, html(), false));
  ResponseHead h = html();
  h.headers.set("content-type", "TEXT/HTML");
  EXPECT_TRUE(compressible(s, h, false));
  h.headers.set("content-type", "image/png");
  EXPECT_FALSE(compressible(s, h, false));
  h.headers.remove("content-type");
  EXPECT_FALSE(compressible(s, h, false));
  s.types = {"text/*"};
  h.headers.set("content-type", "text/x-anything;charset=utf-8");
  EXPECT_TRUE(compressible(s, h, false));
  h.headers.set("content-type", "textual/plain");
  EXPECT_FALSE(compressible(s, h, false));
  s.types = {"*/*"};
  h.headers.set("content-type", "image/png");
  EXPECT_TRUE(compressible(s, h, false));
}

TEST(CompressibleTest, LengthAtLeastMinBytesOrUnknown) {
  Settings s;
  EXPECT_FALSE(compressible(s, html("1023"), false));
  EXPECT_TRUE(compressible(s, html("1024"), false));
  EXPECT_TRUE(compressible(s, html(""), false));  // unknown length: streamed
  EXPECT_FALSE(compressible(s, html("12x"), false));
  s.min_bytes = 0;
  EXPECT_TRUE(compressible(s, html("1"), false));
}

TEST(CompressibleTest, EncodedNoTransformAndBodilessResponsesStay) {
  Settings s;
  ResponseHead h = html();
  h.headers.add("content-encoding", "gzip");
  EXPECT_FALSE(compressible(s, h, false));
  h.headers.set("content-encoding", "identity");
  EXPECT_TRUE(compressible(s, h, false));

  h = html();
  h.headers.add("cache-control", "public, No-Transform, max-age=60");
  EXPECT_FALSE(compressible(s, h, false));
  h = html();
  h.headers.add("cache-control", "max-age=60");
  h.headers.add("cache-control", "no-transform");
  EXPECT_FALSE(compressible(s, h, false));

  for (unsigned status : {101u, 103u, 204u, 206u, 304u}) {
    h = html();
    h.status = status;
    EXPECT_FALSE(compressible(s, h, false)) << status;
  }
  h = html();
  h.status = 404;
  EXPECT_TRUE(compressible(s, h, false));
  EXPECT_FALSE(compressible(s, html(), true));  // the head ends the response
}

TEST(HeadRewriteTest, VaryIsMergedOnce) {
  HeaderMap h;
  add_vary(h);
  EXPECT_EQ(h.get("vary"), "Accept-Encoding");
  add_vary(h);
  EXPECT_EQ(h.count("vary"), 1u);
  EXPECT_EQ(h.get("vary"), "Accept-Encoding");

  HeaderMap other;
  other.add("Vary", "Origin");
  add_vary(other);
  EXPECT_EQ(other.get("vary"), "Origin, Accept-Encoding");
  HeaderMap lower;
  lower.add("vary", "origin, accept-encoding");
  add_vary(lower);
  EXPECT_EQ(lower.get("vary"), "origin, accept-encoding");
  HeaderMap star;
  star.add("vary", "*");
  add_vary(star);
  EXPECT_EQ(star.get("vary"), "*");
}

TEST(HeadRewriteTest, EncodedResponseHead) {
  ResponseHead h = html();
  h.headers.add("etag", "\"abc\"");
  h.headers.add("accept-ranges", "bytes");
  rewrite_head(h, Algorithm::zstd);
  EXPECT_EQ(h.headers.get("content-encoding"), "zstd");
  EXPECT_FALSE(h.headers.contains("content-length"));
  EXPECT_FALSE(h.headers.contains("accept-ranges"));
  EXPECT_EQ(h.headers.get("etag"), "W/\"abc\"");
  EXPECT_EQ(h.headers.get("vary"), "Accept-Encoding");

  ResponseHead weak = html();
  weak.headers.add("etag", "W/\"abc\"");
  rewrite_head(weak, Algorithm::gzip);
  EXPECT_EQ(weak.headers.get("etag"), "W/\"abc\"");
}

// Records what the filter passes on, including the data it injects before trailers.
class RecordingCallbacks : public sluice::test::FakeCallbacks {
 public:
  using sluice::test::FakeCallbacks::FakeCallbacks;
  void encode_data(std::string& data, bool end_stream) override {
    injected += data;
    EXPECT_FALSE(end_stream);
    if (filter) filter->on_response_body(data, end_stream);  // the stream runs it through again
  }
  void abort_response(std::string_view) override { ++aborts; }
  std::string injected;
  Filter* filter = nullptr;
  int aborts = 0;
};

class CompressionFilterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { register_builtin_filters(); }

  void load(const std::string& listener_block, const std::string& route_blocks = "") {
    config::LoadResult r = config::load_string(
        "clusters: [{ name: api, endpoints: [127.0.0.1:9000] }]\n"
        "listeners: [{ name: public, address: 127.0.0.1:8080" +
            listener_block +
            " }]\n"
            "routes:\n"
            "  - { name: raw, match: { path: { prefix: /raw } }, cluster: api" +
            route_blocks +
            " }\n"
            "  - { name: rest, match: { path: { prefix: / } }, cluster: api }\n",
        "t.yaml");
    for (const auto& e : r.errors) ADD_FAILURE() << e.str();
    ASSERT_TRUE(r.config);
    config_ = r.config;
    routes_ = router::RouteTable::build(*config_);
    const auto& cfg = static_cast<const CompressionConfig&>(*config_->filter_config("compression"));
    factory_ = std::make_unique<CompressionFactory>(cfg, *config_, config_->listeners[0]);
  }

  struct Result {
    ResponseHead head;
    std::string body;  // as sent downstream (encoded or not)
  };

  // One exchange: `body` in `chunks` pieces through the response phases.
  Result exchange(std::string target, std::string accept, ResponseHead head, std::string body,
                  size_t chunks = 1, std::string method = "GET") {
    RecordingCallbacks cb(ioc_, *routes_, stats_, services_);
    cb.request_.method = std::move(method);
    cb.request_.target = std::move(target);
    if (!accept.empty()) cb.request_.headers.add("Accept-Encoding", accept);
    FilterPtr filter = factory_->create(services_);
    filter->set_callbacks(cb);
    EXPECT_EQ(filter->on_request_headers(cb.request_, true), FilterStatus::Continue);
    filter->on_response_headers(head, false);
    Result r;
    const size_t step = body.size() / chunks + 1;
    for (size_t at = 0; at < body.size() || at == 0; at += step) {
      std::string piece = body.substr(at, step);
      const bool last = at + step >= body.size();
      filter->on_response_body(piece, last);
      r.body += piece;
      if (last) break;
    }
    r.head = std::move(head);
    return r;
  }

  std::string decode(std::string_view encoding, std::string_view body) {
    auto d = test::make_decoder(*algorithm_from_name(encoding));
    std::string out;
    EXPECT_TRUE(d->feed(body, out));
    EXPECT_TRUE(d->finished());
    return out;
  }

  boost::asio::io_context ioc_;
  WorkerStats stats_;
  WorkerServices services_{ioc_.get_executor(), 0};
  config::ConfigPtr config_;
  std::shared_ptr<const router::RouteTable> routes_;
  std::unique_ptr<CompressionFactory> factory_;
};

TEST_F(CompressionFilterTest, CompressesWithTheClientsBestCodingAndCounts) {
  load(", compression: {}");
  const std::string body = test::sample_text(50000);
  for (const auto& [accept, coding] : std::vector<std::pair<std::string, std::string>>{
           {"gzip, deflate, br, zstd", "br"}, {"gzip", "gzip"}, {"zstd, gzip;q=0.5", "zstd"}}) {
    Result r = exchange("/", accept, html("50000"), body, 7);
    EXPECT_EQ(r.head.headers.get("content-encoding"), coding);
    EXPECT_FALSE(r.head.headers.contains("content-length"));
    EXPECT_EQ(r.head.headers.get("vary"), "Accept-Encoding");
    EXPECT_LT(r.body.size(), body.size() / 3);
    EXPECT_EQ(decode(coding, r.body), body) << coding;
  }
  EXPECT_EQ(stats_.compression[static_cast<size_t>(Algorithm::br)].responses.value(), 1u);
  EXPECT_EQ(stats_.compression[static_cast<size_t>(Algorithm::gzip)].bytes_in.value(), 50000u);
  EXPECT_GT(stats_.compression[static_cast<size_t>(Algorithm::gzip)].bytes_out.value(), 0u);
}

TEST_F(CompressionFilterTest, VaryButNoCodingWhenTheClientDidNotAsk) {
  load(", compression: {}");
  const std::string body = test::sample_text(5000);
  for (std::string accept : {"", "identity", "gzip;q=0", "deflate"}) {
    Result r = exchange("/", accept, html("5000"), body);
    EXPECT_FALSE(r.head.headers.contains("content-encoding")) << accept;
    EXPECT_EQ(r.head.headers.get("content-length"), "5000");
    EXPECT_EQ(r.head.headers.get("vary"), "Accept-Encoding");
    EXPECT_EQ(r.body, body);
  }
}

TEST_F(CompressionFilterTest, HeadGetsVaryOnly) {
  load(", compression: {}");
  Result r = exchange("/", "gzip", html("5000"), "", 1, "HEAD");
  EXPECT_FALSE(r.head.headers.contains("content-encoding"));
  EXPECT_EQ(r.head.headers.get("content-length"), "5000");
  EXPECT_EQ(r.head.headers.get("vary"), "Accept-Encoding");
}

TEST_F(CompressionFilterTest, UncompressibleResponsesPassUntouched) {
  load(", compression: { min_bytes: 4KiB, types: [application/json] }");
  const std::string body = test::sample_text(3000);
  Result small = exchange("/", "gzip", html("3000"), body);  // wrong type too
  EXPECT_FALSE(small.head.headers.contains("content-encoding"));
  EXPECT_FALSE(small.head.headers.contains("vary"));
  ResponseHead json;
  json.headers.add("content-type", "application/json");
  json.headers.add("content-length", "3000");
  Result r = exchange("/", "gzip", json, body);
  EXPECT_FALSE(r.head.headers.contains("content-encoding"));  // under 4 KiB
  EXPECT_EQ(r.body, body);
}

TEST_F(CompressionFilterTest, ARouteBlockReplacesTheListenersOne) {
  load(", compression: {}", ", compression: { enabled: false }");
  const std::string body = test::sample_text(5000);
  Result raw = exchange("/raw/x", "gzip", html(""), body);
  EXPECT_FALSE(raw.head.headers.contains("content-encoding"));
  EXPECT_FALSE(raw.head.headers.contains("vary"));
  EXPECT_EQ(raw.body, body);
  Result rest = exchange("/x", "gzip", html(""), body);
  EXPECT_EQ(rest.head.headers.get("content-encoding"), "gzip");

  load("", ", compression: { algorithms: [zstd] }");
  EXPECT_EQ(exchange("/raw", "gzip, zstd", html(""), body).head.headers.get("content-encoding"),
            "zstd");
  EXPECT_FALSE(exchange("/", "gzip", html(""), body).head.headers.contains("content-encoding"));
}

TEST_F(CompressionFilterTest, TrailersFollowTheEncodingsEnd) {
  load(", compression: {}");
  RecordingCallbacks cb(ioc_, *routes_, stats_, services_);
  cb.request_.method = "GET";
  cb.request_.target = "/";
  cb.request_.headers.add("accept-encoding", "gzip");
  FilterPtr filter = factory_->create(services_);
  filter->set_callbacks(cb);
  cb.filter = filter.get();
  filter->on_request_headers(cb.request_, true);
  ResponseHead head = html("");
  filter->on_response_headers(head, false);
  std::string data = "some streamed text, ";
  filter->on_response_body(data, false);
  std::string sent = data;
  HeaderMap trailers;
  trailers.add("x-checksum", "1");
  filter->on_response_trailers(trailers);
  EXPECT_FALSE(cb.injected.empty());
  sent += cb.injected;  // passed through unchanged the second time
  EXPECT_EQ(decode("gzip", sent), "some streamed text, ");
}

}  // namespace
}  // namespace sluice::compression
