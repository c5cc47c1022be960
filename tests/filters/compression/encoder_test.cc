// Each encoder round-tripped through the real decoder library: whole bodies, many small chunks,
// empty bodies, and the flush promise (every chunk decodes as soon as it is out).
#include "filters/compression/encoder.h"

#include <gtest/gtest.h>

#include "tests/filters/compression/decoders.h"

namespace sluice::compression {
namespace {

using test::make_decoder;
using test::sample_text;

class EncoderTest : public ::testing::TestWithParam<Algorithm> {};

INSTANTIATE_TEST_SUITE_P(All, EncoderTest,
                         ::testing::Values(Algorithm::gzip, Algorithm::br, Algorithm::zstd),
                         [](const auto& info) { return std::string(algorithm_name(info.param)); });

std::string decode_all(Algorithm a, std::string_view encoded) {
  auto d = make_decoder(a);
  std::string out;
  EXPECT_TRUE(d->feed(encoded, out));
  EXPECT_TRUE(d->finished());
  return out;
}

TEST_P(EncoderTest, WholeBodyRoundTrips) {
  const std::string body = sample_text(200 * 1024);
  auto e = make_encoder(GetParam());
  ASSERT_TRUE(e);
  std::string encoded;
  ASSERT_TRUE(e->encode(body, true, encoded));
  EXPECT_LT(encoded.size(), body.size() / 3);
  EXPECT_EQ(decode_all(GetParam(), encoded), body);
}

TEST_P(EncoderTest, ManySmallChunksRoundTrip) {
  const std::string body = sample_text(64 * 1024, 7);
  auto e = make_encoder(GetParam());
  std::string encoded;
  size_t at = 0;
  for (size_t n = 1; at < body.size(); n = n % 97 + 1) {
    const size_t len = std::min(n, body.size() - at);
    ASSERT_TRUE(e->encode(std::string_view(body).substr(at, len), false, encoded));
    at += len;
  }
  ASSERT_TRUE(e->encode({}, true, encoded));
  EXPECT_EQ(decode_all(GetParam(), encoded), body);
}

TEST_P(EncoderTest, EmptyBodyIsAValidEncoding) {
  auto e = make_encoder(GetParam());
  std::string encoded;
  ASSERT_TRUE(e->encode({}, true, encoded));
  EXPECT_FALSE(encoded.empty());
  EXPECT_EQ(decode_all(GetParam(), encoded), "");
}

TEST_P(EncoderTest, EmptyChunksBeforeTheEndAddNothing) {
  auto e = make_encoder(GetParam());
  std::string encoded;
  ASSERT_TRUE(e->encode("hello ", false, encoded));
  const size_t after_first = encoded.size();
  ASSERT_TRUE(e->encode({}, false, encoded));
  EXPECT_EQ(encoded.size(), after_first);
  ASSERT_TRUE(e->encode("world", true, encoded));
  EXPECT_EQ(decode_all(GetParam(), encoded), "hello world");
}

// What a server-sent-events stream needs: each event decodes from the bytes sent so far,
// before the stream ends.
TEST_P(EncoderTest, EachChunkDecodesAsSoonAsItIsOut) {
  auto e = make_encoder(GetParam());
  auto d = make_decoder(GetParam());
  std::string sent;
  std::string decoded;
  for (int i = 0; i < 50; ++i) {
    const std::string event = "data: event " + std::to_string(i) + "\n\n";
    sent += event;
    std::string piece;
    ASSERT_TRUE(e->encode(event, false, piece));
    ASSERT_FALSE(piece.empty());
    ASSERT_TRUE(d->feed(piece, decoded));
    ASSERT_EQ(decoded, sent) << "event " << i << " held back";
    EXPECT_FALSE(d->finished());
  }
  std::string tail;
  ASSERT_TRUE(e->encode({}, true, tail));
  ASSERT_TRUE(d->feed(tail, decoded));
  EXPECT_TRUE(d->finished());
  EXPECT_EQ(decoded, sent);
}

TEST_P(EncoderTest, IncompressibleDataRoundTrips) {
  std::string body(300 * 1024, '\0');
  uint64_t x = 88172645463325252ull;
  for (char& c : body) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  auto e = make_encoder(GetParam());
  std::string encoded;
  ASSERT_TRUE(e->encode(std::string_view(body).substr(0, 100000), false, encoded));
  ASSERT_TRUE(e->encode(std::string_view(body).substr(100000), true, encoded));
  EXPECT_EQ(decode_all(GetParam(), encoded), body);
}

TEST(AlgorithmTest, NamesRoundTrip) {
  for (Algorithm a : {Algorithm::gzip, Algorithm::br, Algorithm::zstd}) {
    EXPECT_EQ(algorithm_from_name(algorithm_name(a)), a);
  }
  EXPECT_EQ(algorithm_from_name("x-gzip"), Algorithm::gzip);
  EXPECT_EQ(algorithm_from_name("deflate"), std::nullopt);
}

}  // namespace
}  // namespace sluice::compression
