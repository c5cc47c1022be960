// proxy/http2_codec: the server side of HTTP/2 fed raw client frames, for the stream-identifier
// rules of RFC 9113 §5.1.1 that nghttp2 leaves to us (h2spec http2/5.1.1/2).
#include "proxy/http2_codec.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "core/stats.h"
#include "filters/chain.h"
#include "filters/worker_services.h"
#include "proxy/listener.h"
#include "proxy/snapshot.h"
#include "proxy/stream.h"
#include "upstream/cluster_manager.h"

namespace sluice {
namespace {

namespace asio = boost::asio;

constexpr uint8_t kData = 0x0, kHeaders = 0x1, kRstStream = 0x3, kSettings = 0x4, kGoaway = 0x7;
constexpr uint8_t kEndStream = 0x1, kEndHeaders = 0x4;
constexpr uint32_t kProtocolError = 0x1;

std::string frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string out;
  const uint32_t n = static_cast<uint32_t>(payload.size());
  out += static_cast<char>(n >> 16);
  out += static_cast<char>(n >> 8);
  out += static_cast<char>(n);
  out += static_cast<char>(type);
  out += static_cast<char>(flags);
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>(stream >> shift);
  return out + payload;
}

// HPACK without the dynamic table, so every block decodes the same whatever came before: a
// literal field without indexing and a new name.
std::string literal(const std::string& name, const std::string& value) {
  return std::string(1, '\0') + static_cast<char>(name.size()) + name +
         static_cast<char>(value.size()) + value;
}

// GET https://test/ (static-table :method GET, :path /, :scheme https; literal :authority).
std::string get_block() { return std::string("\x82\x84\x87\x01\x04test", 9); }

std::string request(uint32_t stream, bool end_stream = true) {
  return frame(kHeaders, kEndHeaders | (end_stream ? kEndStream : 0), stream, get_block());
}

struct Frame {
  uint8_t type;
  uint8_t flags;
  uint32_t stream;
  std::string payload;
};

std::vector<Frame> parse(const std::string& bytes) {
  std::vector<Frame> out;
  size_t pos = 0;
  auto u8 = [&](size_t i) { return static_cast<uint8_t>(bytes[i]); };
  while (bytes.size() - pos >= 9) {
    size_t n = (size_t{u8(pos)} << 16) | (size_t{u8(pos + 1)} << 8) | u8(pos + 2);
    uint32_t stream = ((uint32_t{u8(pos + 5)} << 24) | (uint32_t{u8(pos + 6)} << 16) |
                       (uint32_t{u8(pos + 7)} << 8) | u8(pos + 8)) &
                      0x7fffffff;
    out.push_back({u8(pos + 3), u8(pos + 4), stream, bytes.substr(pos + 9, n)});
    pos += 9 + n;
  }
  return out;
}

uint32_t be32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(s[at + i]);
  return v;
}

// The terminal filter: holds every request (an upstream that has not answered yet), or answers
// at once (a local reply, generated inside receive()).
class Terminal : public Filter {
 public:
  explicit Terminal(bool reply) : reply_(reply) {}
  FilterStatus on_request_headers(RequestHead&, bool) override {
    if (!reply_) return FilterStatus::Stop;
    callbacks().send_local_reply(200, "ok");
    return FilterStatus::Stop;
  }
  FilterStatus on_request_body(std::string&, bool) override { return FilterStatus::Stop; }

 private:
  bool reply_;
};

class TerminalFactory : public FilterFactory {
 public:
  explicit TerminalFactory(const bool& reply) : reply_(reply) {}
  FilterPtr create(WorkerServices&) const override { return std::make_unique<Terminal>(reply_); }

 private:
  const bool& reply_;
};

class Http2CodecTest : public ::testing::Test {
 protected:
  Http2CodecTest() {
    auto cfg = std::make_shared<config::Config>();
    cfg->source = "http2_codec_test.yaml";
    config::Listener l;
    l.name = "public";
    cfg->listeners.push_back(l);
    auto snap = std::make_shared<Snapshot>();
    snap->config = cfg;
    snap->routes = router::RouteTable::build(*cfg);
    snap->chains["public"] = std::make_shared<FilterChainFactory>(
        std::vector<FilterFactoryPtr>{std::make_shared<TerminalFactory>(reply_)}, snap->routes);
    listener_ =
        std::make_shared<ListenerRuntime>(asio::ip::tcp::acceptor(ioc_), l, ctx_, listener_stats_);
    listener_->update(l, snap);
  }
  ~Http2CodecTest() override {
    codec_.reset();
    ioc_.restart();
    ioc_.poll();
  }

  Http2Codec& codec() {
    if (!codec_) {
      Http2Codec::Env env;
      env.ctx = &ctx_;
      env.listener = listener_;
      env.peer = asio::ip::tcp::endpoint(asio::ip::make_address("192.0.2.1"), 4000);
      env.scheme = "https";
      env.want_write = [] {};
      codec_ = std::make_unique<Http2Codec>(std::move(env), Http2Settings{});
    }
    return *codec_;
  }
  // The connection preface and an empty SETTINGS frame, then `frames`, in one read.
  bool connect(const std::string& frames) {
    return codec().receive("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(kSettings, 0, 0, "") +
                           frames);
  }
  std::vector<Frame> produced() {
    std::string out;
    codec().produce(out);
    return parse(out);
  }
  // The GOAWAY among `frames` as {last stream id, error code}.
  static std::optional<std::pair<uint32_t, uint32_t>> goaway(const std::vector<Frame>& frames) {
    for (const Frame& f : frames) {
      if (f.type == kGoaway) return std::pair{be32(f.payload, 0) & 0x7fffffff, be32(f.payload, 4)};
    }
    return std::nullopt;
  }

  bool reply_ = false;
  asio::io_context ioc_;
  WorkerStats stats_;
  ListenerStats listener_stats_;
  upstream::ClusterManager cm_{ioc_, stats_};
  WorkerServices services_{ioc_.get_executor(), 0};
  StreamContext ctx_{ioc_.get_executor(), &cm_, &stats_, nullptr, nullptr, &services_};
  std::shared_ptr<ListenerRuntime> listener_;
  std::unique_ptr<Http2Codec> codec_;
};

// The h2spec case: stream 5 opens (implicitly closing idle streams 1 and 3), then HEADERS
// arrive on 3. nghttp2 alone ignores them and answers stream 5 as if nothing happened.
TEST_F(Http2CodecTest, HeadersOnAStreamIdBelowTheHighestOpenedIsAConnectionError) {
  EXPECT_FALSE(connect(request(5) + request(3)));
  auto frames = produced();
  ASSERT_TRUE(goaway(frames));
  EXPECT_EQ(goaway(frames)->first, 5u);
  EXPECT_EQ(goaway(frames)->second, kProtocolError);
  EXPECT_TRUE(codec().finished());  // nothing more is read or written: the connection closes
}

TEST_F(Http2CodecTest, TheLowerStreamIdInALaterReadIsAConnectionErrorToo) {
  ASSERT_TRUE(connect(request(5)));
  EXPECT_FALSE(goaway(produced()));
  EXPECT_FALSE(codec().receive(request(3)));
  ASSERT_TRUE(goaway(produced()));
}

// A response generated inside receive() (a local reply) may precede the GOAWAY, as its stream
// is within the GOAWAY's last stream id; the GOAWAY must still be sent.
TEST_F(Http2CodecTest, AnImmediateReplyDoesNotHideTheConnectionError) {
  reply_ = true;
  EXPECT_FALSE(connect(request(5) + request(3)));
  auto frames = produced();
  ASSERT_TRUE(goaway(frames));
  EXPECT_EQ(goaway(frames)->second, kProtocolError);
}

TEST_F(Http2CodecTest, SkippingStreamIdsUpwardsIsAllowed) {
  EXPECT_TRUE(connect(request(1) + request(7) + request(9)));
  EXPECT_FALSE(goaway(produced()));
  EXPECT_EQ(codec().active_streams(), 3u);
  // Going back into a skipped range is not, however far back.
  EXPECT_FALSE(codec().receive(request(3)));
  ASSERT_TRUE(goaway(produced()));
}

// Trailers for a stream the server has reset may cross the RST_STREAM on the wire: they are
// ignored (RFC 9113 §5.1), not a connection error, although their stream id is below the
// highest.
TEST_F(Http2CodecTest, TrailersRacingOurResetAreIgnored) {
  std::string too_many = get_block();
  for (int i = 0; i < 120; ++i) too_many += literal("x-h" + std::to_string(i), "v");
  ASSERT_TRUE(connect(frame(kHeaders, kEndHeaders, 1, too_many) + request(3)));
  auto frames = produced();
  bool reset = false;
  for (const Frame& f : frames) reset = reset || (f.type == kRstStream && f.stream == 1);
  ASSERT_TRUE(reset);
  EXPECT_TRUE(codec().receive(frame(kData, 0, 1, "body") +
                              frame(kHeaders, kEndHeaders | kEndStream, 1, literal("x-t", "1"))));
  EXPECT_FALSE(goaway(produced()));
  EXPECT_EQ(codec().active_streams(), 1u);  // stream 3, still waiting for its response
}

}  // namespace
}  // namespace sluice
