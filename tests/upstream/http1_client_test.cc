// upstream/http1_client: one HTTP/1.1 exchange against a scripted loopback server, from the
// request bytes on the wire to the events the router's ResponseHandler sees.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "core/stats.h"
#include "tests/upstream/loopback_server.h"
#include "upstream/cluster_manager.h"
#include "upstream/http1_client.h"

namespace sluice::upstream {
namespace {

using namespace std::chrono_literals;
using test::PeerPtr;
using test::run_for;
using test::run_until;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Optional;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// Records every event in order; optional hooks let a test act from inside a callback.
struct FakeHandler : ResponseHandler {
  void on_upstream_1xx(ResponseHead& h) override {
    events.push_back("1xx " + std::to_string(h.status));
    interim.push_back(h);
  }
  void on_upstream_head(ResponseHead& h, bool end_stream) override {
    events.push_back(end_stream ? "head end" : "head");
    head = h;
    if (end_stream) complete = true;
    if (on_head) on_head();
  }
  void on_upstream_data(std::string& data, bool end_stream) override {
    events.push_back(end_stream ? "data end" : "data");
    body += data;
    if (end_stream) complete = true;
  }
  void on_upstream_trailers(HeaderMap& t) override {
    events.push_back("trailers");
    trailers = t;
    complete = true;
  }
  void on_upstream_error(const Error& e, bool response_started) override {
    events.push_back("error");
    error = e;
    error_started = response_started;
  }
  void on_upstream_writable() override { ++writable; }

  bool finished() const { return complete || error.has_value(); }

  std::vector<std::string> events;
  std::vector<ResponseHead> interim;
  std::optional<ResponseHead> head;
  std::string body;
  HeaderMap trailers;
  bool complete = false;
  std::optional<Error> error;
  bool error_started = false;
  int writable = 0;
  std::function<void()> on_head;
};

RequestHead make_request(std::string method = "GET", std::string target = "/") {
  RequestHead h;
  h.method = std::move(method);
  h.target = std::move(target);
  h.headers.add("Host", "backend");
  return h;
}

class Http1ClientTest : public ::testing::Test {
 protected:
  ~Http1ClientTest() override { pool_->close_idle(); }

  Http1ClientConnectionPtr connect() {
    Http1ClientConnectionPtr conn;
    bool called = false;
    pool_->acquire(2s, [&](UpstreamRequestPtr c, const Error* e) {
      called = true;
      conn = std::static_pointer_cast<Http1ClientConnection>(c);
      if (e) ADD_FAILURE() << "connect failed: " << e->detail;
    });
    EXPECT_TRUE(run_until(ioc_, [&] { return called; }));
    return conn;
  }
  PeerPtr peer(size_t i) {
    EXPECT_TRUE(run_until(ioc_, [&] { return server_.accepted() > i; }));
    return server_.accepted() > i ? server_.peers[i] : nullptr;
  }
  // Starts `request` on a new connection and waits until the server has read its head.
  std::pair<Http1ClientConnectionPtr, PeerPtr> start(FakeHandler& h, const RequestHead& request,
                                                     bool no_body = false) {
    const size_t index = server_.accepted();  // a new connection is the next one accepted
    auto conn = connect();
    if (!conn) return {};
    conn->start_request(h, request, BodyFraming::none, no_body);
    auto p = peer(index);
    EXPECT_TRUE(run_until(ioc_, [&] { return p && p->heads() >= 1; }));
    return {conn, p};
  }

  asio::io_context ioc_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_ = asio::make_work_guard(ioc_);
  WorkerStats stats_;
  test::LoopbackServer server_{ioc_};
  HostPoolPtr pool_ = std::make_shared<HostPool>(ioc_, server_.address(), stats_.cluster("c"));
};

TEST_F(Http1ClientTest, RequestHeadOnTheWire) {
  FakeHandler h;
  auto req = make_request("GET", "/x?y=1");
  req.headers.add("X-Multi", "a");
  req.headers.add("X-Multi", "b");
  auto [conn, p] = start(h, req);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->received,
            "GET /x?y=1 HTTP/1.1\r\nHost: backend\r\nX-Multi: a\r\nX-Multi: b\r\n\r\n");
}

TEST_F(Http1ClientTest, ContentLengthBodyInPieces) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request());
  ASSERT_TRUE(p);
  p->send("HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-A: 1\r\n\r\nhello");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.head.has_value() && !h.body.empty(); }));
  EXPECT_EQ(h.head->status, 200u);
  EXPECT_EQ(h.head->version, 11u);
  EXPECT_THAT(h.head->headers.get("x-a"), Optional(std::string_view("1")));
  EXPECT_THAT(h.head->headers.get("content-length"), Optional(std::string_view("11")));
  EXPECT_FALSE(h.complete);
  EXPECT_TRUE(conn->response_started());
  p->send(" world");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  EXPECT_FALSE(h.error) << h.error->detail;
  EXPECT_EQ(h.body, "hello world");
  EXPECT_EQ(h.events.back(), "data end");
  // Keep-alive exchange complete: back in the pool.
  EXPECT_EQ(pool_->idle_count(), 1u);
  EXPECT_TRUE(conn->is_open());
  EXPECT_TRUE(conn->reused());
}

TEST_F(Http1ClientTest, ChunkedBody) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request());
  ASSERT_TRUE(p);
  p->send(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  EXPECT_FALSE(h.error) << h.error->detail;
  EXPECT_EQ(h.body, "hello world");
  EXPECT_FALSE(h.head->headers.contains("transfer-encoding"));
  // The last chunk's fields end the response as trailers, after all the data.
  EXPECT_THAT(h.events, ElementsAre("head", "data", "trailers"));
  EXPECT_THAT(h.trailers.get("x-trailer"), Optional(std::string_view("t")));
  EXPECT_EQ(pool_->idle_count(), 1u);
}

TEST_F(Http1ClientTest, ChunkedBodySplitAcrossReads) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request());
  ASSERT_TRUE(p);
  p->send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhe");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.body == "he"; }));
  p->send("llo\r\n");
  run_for(ioc_, 10ms);
  p->send("0\r\n");
  run_for(ioc_, 10ms);
  EXPECT_FALSE(h.complete);
  p->send("\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  EXPECT_FALSE(h.error);
  EXPECT_EQ(h.body, "hello");
  EXPECT_EQ(pool_->idle_count(), 1u);
}

TEST_F(Http1ClientTest, HeadResponseKeepsContentLengthAndHasNoBody) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request("HEAD", "/big"), /*no_body=*/true);
  ASSERT_TRUE(p);
  p->send("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  EXPECT_FALSE(h.error);
  EXPECT_THAT(h.events, ElementsAre("head end"));
  EXPECT_THAT(h.head->headers.get("content-length"), Optional(std::string_view("1234")));
  // The parser did not wait for 1234 bytes: the connection is reusable at once.
  ASSERT_EQ(pool_->idle_count(), 1u);
  FakeHandler h2;
  auto conn2 = connect();
  ASSERT_EQ(conn2, conn);
  conn2->start_request(h2, make_request(), BodyFraming::none, false);
  ASSERT_TRUE(run_until(ioc_, [&] { return p->heads() == 2; }));
  p->send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  ASSERT_TRUE(run_until(ioc_, [&] { return h2.finished(); }));
  EXPECT_FALSE(h2.error);
  EXPECT_EQ(h2.body, "ok");
  EXPECT_EQ(server_.accepted(), 1u);
}

class NoBodyStatusTest : public Http1ClientTest, public ::testing::WithParamInterface<unsigned> {};

TEST_P(NoBodyStatusTest, EndsWithTheHead) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request());
  ASSERT_TRUE(p);
  // A (wrong) Content-Length on a 204/304 must not make the client wait for a body.
  p->send("HTTP/1.1 " + std::to_string(GetParam()) + " X\r\nContent-Length: 5\r\n\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  EXPECT_FALSE(h.error);
  EXPECT_THAT(h.events, ElementsAre("head end"));
  EXPECT_EQ(h.head->status, GetParam());
  EXPECT_EQ(pool_->idle_count(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Statuses, NoBodyStatusTest, ::testing::Values(204u, 304u));

TEST_F(Http1ClientTest, ZeroContentLengthEndsWithTheHead) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request());
  ASSERT_TRUE(p);
  p->send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  EXPECT_THAT(h.events, ElementsAre("head end"));
  EXPECT_EQ(pool_->idle_count(), 1u);
}

TEST_F(Http1ClientTest, InterimResponses103ForwardedAnd100Swallowed) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request());
  ASSERT_TRUE(p);
  p->send(
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  EXPECT_FALSE(h.error);
  EXPECT_THAT(h.events, ElementsAre("1xx 103", "head", "data end"));
  ASSERT_EQ(h.interim.size(), 1u);
  EXPECT_THAT(h.interim[0].headers.get("link"),
              Optional(std::string_view("</style.css>; rel=preload")));
  EXPECT_EQ(h.head->status, 200u);
  EXPECT_EQ(h.body, "ok");
  EXPECT_EQ(pool_->idle_count(), 1u);
}

TEST_F(Http1ClientTest, InterimResponsesInSeparateReads) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request());
  ASSERT_TRUE(p);
  p->send("HTTP/1.1 100 Continue\r\n\r\n");
  run_for(ioc_, 20ms);
  EXPECT_TRUE(h.events.empty());
  p->send("HTTP/1.1 103 Early Hints\r\nLink: </a.js>\r\n\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return !h.interim.empty(); }));
  EXPECT_FALSE(h.head);
  p->send("HTTP/1.1 204 No Content\r\n\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  EXPECT_THAT(h.events, ElementsAre("1xx 103", "head end"));
}

TEST_F(Http1ClientTest, GarbageResponseIsBadResponse) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request());
  ASSERT_TRUE(p);
  p->send("SSH-2.0-OpenSSH_9.2\r\n\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  ASSERT_TRUE(h.error);
  EXPECT_EQ(h.error->kind, ErrorKind::bad_response);
  EXPECT_EQ(h.error->source, ErrorSource::upstream);
  EXPECT_FALSE(h.error_started);
  EXPECT_FALSE(h.head);
  EXPECT_EQ(pool_->idle_count(), 0u);
  EXPECT_TRUE(run_until(ioc_, [&] { return p->eof; }));
}

TEST_F(Http1ClientTest, InvalidHeaderLineIsBadResponse) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request());
  ASSERT_TRUE(p);
  p->send("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  ASSERT_TRUE(h.error);
  EXPECT_EQ(h.error->kind, ErrorKind::bad_response);
}

TEST_F(Http1ClientTest, OversizedResponseHeadIsBadResponse) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request());
  ASSERT_TRUE(p);
  p->send("HTTP/1.1 200 OK\r\nX-Big: " + std::string(100 * 1024, 'a') + "\r\n\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  ASSERT_TRUE(h.error);
  EXPECT_EQ(h.error->kind, ErrorKind::bad_response);
  EXPECT_FALSE(h.error_started);
}

TEST_F(Http1ClientTest, EofBeforeHeadIsUpstreamReset) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request());
  ASSERT_TRUE(p);
  p->close();
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  ASSERT_TRUE(h.error);
  EXPECT_EQ(h.error->kind, ErrorKind::upstream_reset);
  EXPECT_FALSE(h.error_started);
  EXPECT_EQ(pool_->idle_count(), 0u);
  EXPECT_FALSE(conn->is_open());
}

TEST_F(Http1ClientTest, EofInsideHeadIsUpstreamReset) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request());
  ASSERT_TRUE(p);
  p->send("HTTP/1.1 200 OK\r\nContent-Le");
  run_for(ioc_, 10ms);
  p->close();
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  ASSERT_TRUE(h.error);
  EXPECT_EQ(h.error->kind, ErrorKind::upstream_reset);
  EXPECT_FALSE(h.error_started);
}

TEST_F(Http1ClientTest, CloseMidBodyIsErrorAfterResponseStarted) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request());
  ASSERT_TRUE(p);
  p->send("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.body == "abc"; }));
  p->close();
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  ASSERT_TRUE(h.error);
  EXPECT_TRUE(h.error_started);
  EXPECT_EQ(h.error->kind, ErrorKind::upstream_reset);
  EXPECT_FALSE(h.complete);
  EXPECT_EQ(pool_->idle_count(), 0u);
}

TEST_F(Http1ClientTest, ResetMidChunkedBodyIsErrorAfterResponseStarted) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request());
  ASSERT_TRUE(p);
  p->send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.body == "abc"; }));
  p->reset();
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  ASSERT_TRUE(h.error);
  EXPECT_TRUE(h.error_started);
  EXPECT_FALSE(h.complete);
}

TEST_F(Http1ClientTest, HopByHopResponseHeadersRemoved) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request());
  ASSERT_TRUE(p);
  p->send(
      "HTTP/1.1 200 OK\r\n"
      "Connection: keep-alive, X-Secret ,x-other\r\n"
      "Keep-Alive: timeout=5\r\n"
      "X-Secret: s\r\n"
      "X-Kept: 1\r\n"
      "Proxy-Connection: keep-alive\r\n"
      "X-Other: o\r\n"
      "Trailer: Expires\r\n"
      "TE: trailers\r\n"
      "uPGRADE: h2c\r\n"
      "KEEP-ALIVE: max=5\r\n"
      "Content-Length: 0\r\n\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  ASSERT_TRUE(h.head);
  std::vector<std::string> names;
  for (const auto& f : h.head->headers) names.emplace_back(f.name);
  EXPECT_THAT(names, ElementsAre("X-Kept", "Content-Length"));
  EXPECT_EQ(pool_->idle_count(), 1u);
}

TEST_F(Http1ClientTest, ConnectionCloseResponseIsNotPooled) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request());
  ASSERT_TRUE(p);
  p->send("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  EXPECT_FALSE(h.error);
  EXPECT_EQ(h.body, "ok");
  EXPECT_FALSE(h.head->headers.contains("connection"));
  EXPECT_EQ(pool_->idle_count(), 0u);
  EXPECT_TRUE(run_until(ioc_, [&] { return p->eof; }));
}

TEST_F(Http1ClientTest, Http10ResponseWithoutKeepAliveIsNotPooled) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request());
  ASSERT_TRUE(p);
  p->send("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  EXPECT_FALSE(h.error);
  EXPECT_EQ(h.head->version, 10u);
  EXPECT_EQ(pool_->idle_count(), 0u);
}

// A response delimited by connection close completes (end_stream) at EOF.
TEST_F(Http1ClientTest, ReadUntilCloseBodyCompletesAtEofAndIsNotReused) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request());
  ASSERT_TRUE(p);
  p->send("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.body == "until "; }));
  p->send("close");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.body == "until close"; }));
  p->close();
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  EXPECT_FALSE(h.error) << h.error->detail;
  EXPECT_TRUE(h.complete);
  EXPECT_EQ(h.body, "until close");
  EXPECT_EQ(h.events.back(), "data end");
  EXPECT_EQ(pool_->idle_count(), 0u);
  EXPECT_FALSE(conn->is_open());
}

TEST_F(Http1ClientTest, ReadUntilCloseBodyIsNotReused) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request());
  ASSERT_TRUE(p);
  p->send("HTTP/1.1 200 OK\r\n\r\nbody");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.body == "body"; }));
  EXPECT_FALSE(h.complete);
  p->close();
  ASSERT_TRUE(run_until(ioc_, [&] { return !conn->is_open(); }));
  EXPECT_FALSE(h.error);
  EXPECT_EQ(pool_->idle_count(), 0u);
}

TEST_F(Http1ClientTest, BytesAfterTheResponseMeanNoReuse) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request());
  ASSERT_TRUE(p);
  p->send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  EXPECT_FALSE(h.error);
  EXPECT_EQ(h.body, "ok");
  EXPECT_EQ(pool_->idle_count(), 0u);
  EXPECT_TRUE(run_until(ioc_, [&] { return p->eof; }));
}

TEST_F(Http1ClientTest, ChunkedRequestBodyFraming) {
  FakeHandler h;
  auto conn = connect();
  ASSERT_TRUE(conn);
  auto req = make_request("POST", "/upload");
  conn->start_request(h, req, BodyFraming::chunked, false);
  EXPECT_TRUE(conn->write_body("hello", false));
  EXPECT_TRUE(conn->write_body("", false));  // nothing: an empty chunk would end the body
  EXPECT_TRUE(conn->write_body(std::string(300, 'x'), false));
  EXPECT_TRUE(conn->write_body("", true));
  EXPECT_TRUE(conn->request_body_sent());
  auto p = peer(0);
  const std::string expected =
      "POST /upload HTTP/1.1\r\nHost: backend\r\n"
      "Transfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n12c\r\n" +
      std::string(300, 'x') + "\r\n0\r\n\r\n";
  ASSERT_TRUE(run_until(ioc_, [&] { return p->received.size() >= expected.size(); }));
  EXPECT_EQ(p->received, expected);
  p->send("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  EXPECT_FALSE(h.error);
  EXPECT_EQ(pool_->idle_count(), 1u);
}

TEST_F(Http1ClientTest, ChunkedRequestBodyLastChunkWithData) {
  FakeHandler h;
  auto conn = connect();
  ASSERT_TRUE(conn);
  conn->start_request(h, make_request("PUT", "/"), BodyFraming::chunked, false);
  EXPECT_TRUE(conn->write_body(std::string(16, 'y'), true));
  auto p = peer(0);
  const std::string tail = "\r\n\r\n10\r\n" + std::string(16, 'y') + "\r\n0\r\n\r\n";
  ASSERT_TRUE(run_until(ioc_, [&] { return p->received.size() >= tail.size() + 40; }));
  EXPECT_TRUE(p->received.ends_with(tail)) << p->received;
}

TEST_F(Http1ClientTest, RequestTrailersGoInTheLastChunk) {
  FakeHandler h;
  auto conn = connect();
  ASSERT_TRUE(conn);
  conn->start_request(h, make_request("POST", "/"), BodyFraming::chunked, false);
  EXPECT_TRUE(conn->write_body("abc", false));
  HeaderMap trailers;
  trailers.add("x-checksum", "42");
  conn->write_trailers(trailers);
  auto p = peer(0);
  const std::string tail = "3\r\nabc\r\n0\r\nx-checksum: 42\r\n\r\n";
  ASSERT_TRUE(run_until(ioc_, [&] { return p->received.ends_with(tail); })) << p->received;
  p->send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  EXPECT_EQ(pool_->idle_count(), 1u);  // the request was complete: reusable
}

TEST_F(Http1ClientTest, ContentLengthRequestBodyIsSentRaw) {
  FakeHandler h;
  auto conn = connect();
  ASSERT_TRUE(conn);
  auto req = make_request("POST", "/");
  req.headers.add("Content-Length", "8");
  conn->start_request(h, req, BodyFraming::content_length, false);
  conn->write_body("abcd", false);
  auto p = peer(0);
  ASSERT_TRUE(run_until(ioc_, [&] { return p->received.ends_with("abcd"); }));
  conn->write_body("efgh", true);
  ASSERT_TRUE(run_until(ioc_, [&] { return p->received.ends_with("\r\n\r\nabcdefgh"); }));
  EXPECT_EQ(test::count_of(p->received, "chunked"), 0u);
  p->send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  EXPECT_EQ(pool_->idle_count(), 1u);
}

TEST_F(Http1ClientTest, ResponseBeforeRequestBodyEndsMeansNoReuse) {
  // The upstream would read the rest of the body as a new request.
  FakeHandler h;
  auto conn = connect();
  ASSERT_TRUE(conn);
  auto req = make_request("POST", "/");
  req.headers.add("Content-Length", "100");
  conn->start_request(h, req, BodyFraming::content_length, false);
  conn->write_body("part", false);
  auto p = peer(0);
  ASSERT_TRUE(run_until(ioc_, [&] { return p->received.ends_with("part"); }));
  p->send("HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  EXPECT_FALSE(h.error);
  EXPECT_EQ(h.head->status, 413u);
  EXPECT_EQ(pool_->idle_count(), 0u);
  EXPECT_TRUE(run_until(ioc_, [&] { return p->eof; }));
}

TEST_F(Http1ClientTest, WriteBodyAboveWatermarkThenWritableAfterDrain) {
  // A connection of our own with small socket buffers and a server that does not read yet,
  // so the queued body cannot drain until the server starts reading.
  tcp::acceptor acceptor(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  acceptor.set_option(asio::socket_base::receive_buffer_size(4096));
  tcp::socket client(ioc_);
  client.open(tcp::v4());
  client.set_option(asio::socket_base::send_buffer_size(4096));
  client.connect(acceptor.local_endpoint());
  auto p = std::make_shared<test::Peer>(acceptor.accept());
  auto conn =
      std::make_shared<Http1ClientConnection>(std::move(client), std::weak_ptr<HostPool>(), false);
  FakeHandler h;
  const size_t total = 1024 * 1024;
  auto req = make_request("POST", "/");
  req.headers.add("Content-Length", std::to_string(total));
  conn->start_request(h, req, BodyFraming::content_length, false);

  const std::string chunk(64 * 1024, 'z');
  size_t written = 0;
  bool accepted = true;
  while (accepted && written < total) {
    accepted = conn->write_body(chunk, false);
    written += chunk.size();
  }
  EXPECT_FALSE(accepted);
  // 256 KiB high watermark: refused as soon as more than that is queued (head + 4 chunks).
  EXPECT_EQ(written, 256u * 1024);

  run_for(ioc_, 100ms);
  EXPECT_EQ(h.writable, 0) << "writable before the server read anything";

  p->start_reading();
  ASSERT_TRUE(run_until(ioc_, [&] { return h.writable == 1; }));
  while (written < total) {
    if (!conn->write_body(chunk, written + chunk.size() >= total)) {
      const int before = h.writable;
      ASSERT_TRUE(run_until(ioc_, [&] { return h.writable > before; }));
    }
    written += chunk.size();
  }
  const size_t head_size = p->received.find("\r\n\r\n") + 4;
  ASSERT_GT(head_size, 4u);
  ASSERT_TRUE(run_until(ioc_, [&] { return p->received.size() >= head_size + total; }));
  EXPECT_EQ(p->received.size() - head_size, total);
  p->send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  EXPECT_FALSE(h.error);
}

TEST_F(Http1ClientTest, PauseAndResumeReading) {
  FakeHandler h;
  auto conn = connect();
  ASSERT_TRUE(conn);
  h.on_head = [&] { conn->pause_reading(); };
  conn->start_request(h, make_request(), BodyFraming::none, false);
  auto p = peer(0);
  ASSERT_TRUE(run_until(ioc_, [&] { return p->heads() == 1; }));
  p->send("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.head.has_value(); }));
  p->send("data");
  run_for(ioc_, 30ms);
  EXPECT_EQ(h.body, "");
  conn->resume_reading();
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  EXPECT_EQ(h.body, "data");
  EXPECT_EQ(pool_->idle_count(), 1u);
}

TEST_F(Http1ClientTest, DetachMidResponseClosesAndStopsEvents) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request());
  ASSERT_TRUE(p);
  p->send("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.body == "ab"; }));
  conn->detach(h);
  p->send("cdefghij");
  ASSERT_TRUE(run_until(ioc_, [&] { return p->eof; }));
  run_for(ioc_, 10ms);
  EXPECT_EQ(h.body, "ab");
  EXPECT_FALSE(h.finished());
  EXPECT_EQ(pool_->idle_count(), 0u);
}

TEST_F(Http1ClientTest, DetachAfterCompletionLeavesThePooledConnection) {
  FakeHandler h;
  auto [conn, p] = start(h, make_request());
  ASSERT_TRUE(p);
  p->send("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(run_until(ioc_, [&] { return h.finished(); }));
  conn->detach(h);
  EXPECT_TRUE(conn->is_open());
  EXPECT_EQ(pool_->idle_count(), 1u);
}

}  // namespace
}  // namespace sluice::upstream
