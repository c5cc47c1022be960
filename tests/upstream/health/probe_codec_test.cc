// upstream/health/probe_codec.h: the HTTP/1.1 probe reads a status line however the head is
// split, and the HTTP/2 probe, against nghttp2's server session in memory, sends one GET and
// reads its `:status`.
#include "upstream/health/probe_codec.h"

#include <map>
#include <string>

#include <gtest/gtest.h>

#include <nghttp2/nghttp2.h>

namespace sluice::upstream::health {
namespace {

using State = ProbeCodec::Result::State;

TEST(Http1Probe, SendsTheRequestOnceAndReadsAStatusSplitAnywhere) {
  const std::string head = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 3\r\n\r\nno\n";
  for (size_t split = 1; split < head.size(); ++split) {
    auto probe = make_http1_probe("GET / HTTP/1.1\r\n\r\n");
    std::string out;
    probe->take_output(out);
    EXPECT_EQ(out, "GET / HTTP/1.1\r\n\r\n");
    probe->take_output(out);
    EXPECT_EQ(out, "GET / HTTP/1.1\r\n\r\n");  // nothing more
    auto r = probe->receive(std::string_view(head).substr(0, split));
    if (r.state == State::more) r = probe->receive(std::string_view(head).substr(split));
    ASSERT_EQ(r.state, State::done) << split;
    EXPECT_EQ(r.status, 503u);
  }
}

TEST(Http1Probe, ClosedOrGarbledResponsesFail) {
  auto silent = make_http1_probe("x");
  EXPECT_EQ(silent->end_of_stream().error, "closed without a response");
  auto partial = make_http1_probe("x");
  EXPECT_EQ(partial->receive("HTTP/1.1 200 OK\r\nConte").state, State::more);
  EXPECT_EQ(partial->end_of_stream().error, "bad response: partial message");
  auto garbage = make_http1_probe("x");
  auto r = garbage->receive("\x16\x03\x01 not http\r\n\r\n");
  EXPECT_EQ(r.state, State::failed);
  EXPECT_EQ(r.error.rfind("bad response: ", 0), 0u) << r.error;
}

// An HTTP/2 server in memory: answers each request with `status` (after an interim 103 when
// `early_hints`), or resets it with `reset`.
class H2Server {
 public:
  H2Server() {
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                const uint8_t* value, size_t valuelen, uint8_t, void* user) {
          static_cast<H2Server*>(user)
              ->headers[std::string(reinterpret_cast<const char*>(name), namelen)] =
              std::string(reinterpret_cast<const char*>(value), valuelen);
          static_cast<H2Server*>(user)->stream = frame->hd.stream_id;
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(
        cbs, [](nghttp2_session* session, const nghttp2_frame* frame, void* user) {
          auto* self = static_cast<H2Server*>(user);
          if (frame->hd.type == NGHTTP2_HEADERS && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            self->respond(session, frame->hd.stream_id);
          }
          return 0;
        });
    nghttp2_session_server_new(&session_, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~H2Server() { nghttp2_session_del(session_); }

  // Takes the client's bytes, returns the server's.
  std::string exchange(const std::string& in) {
    EXPECT_GE(
        nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(in.data()), in.size()),
        0);
    std::string out;
    const uint8_t* data = nullptr;
    for (ssize_t n; (n = nghttp2_session_mem_send(session_, &data)) > 0;) {
      out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    return out;
  }

  std::string status = "200";
  bool early_hints = false;
  uint32_t reset = 0;
  std::map<std::string, std::string> headers;
  int32_t stream = 0;

 private:
  void respond(nghttp2_session* session, int32_t id) {
    if (reset != 0) {
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, reset);
      return;
    }
    auto nv = [](const char* n, const std::string& v) {
      return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(n)),
                        reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())),
                        std::char_traits<char>::length(n), v.size(), NGHTTP2_NV_FLAG_NONE};
    };
    static const std::string k103 = "103";
    if (early_hints) {
      const nghttp2_nv hints[] = {nv(":status", k103)};
      nghttp2_submit_headers(session, NGHTTP2_FLAG_NONE, id, nullptr, hints, 1, nullptr);
    }
    const nghttp2_nv head[] = {nv(":status", status)};
    nghttp2_submit_response(session, id, head, 1, nullptr);
  }

  nghttp2_session* session_ = nullptr;
};

ProbeCodec::Result run(ProbeCodec& probe, H2Server& server) {
  ProbeCodec::Result r;
  for (int round = 0; round < 4 && r.state == State::more; ++round) {
    std::string out;
    probe.take_output(out);
    r = probe.receive(server.exchange(out));
  }
  return r;
}

TEST(H2Probe, SendsOneGetAndReadsTheStatus) {
  H2Server server;
  server.status = "503";
  auto probe = make_h2_probe("/healthz?deep=1", "api.internal:8443", true);
  auto r = run(*probe, server);
  ASSERT_EQ(r.state, State::done) << r.error;
  EXPECT_EQ(r.status, 503u);
  EXPECT_EQ(server.stream, 1);
  EXPECT_EQ(server.headers[":method"], "GET");
  EXPECT_EQ(server.headers[":scheme"], "https");
  EXPECT_EQ(server.headers[":authority"], "api.internal:8443");
  EXPECT_EQ(server.headers[":path"], "/healthz?deep=1");
  EXPECT_EQ(server.headers["user-agent"], "sluice-health-check");
}

TEST(H2Probe, InterimHeadIsNotTheAnswer) {
  H2Server server;
  server.early_hints = true;
  auto probe = make_h2_probe("/", "h", false);
  auto r = run(*probe, server);
  ASSERT_EQ(r.state, State::done) << r.error;
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(server.headers[":scheme"], "http");
}

TEST(H2Probe, ResetStreamAndNonHttp2AnswersFail) {
  H2Server server;
  server.reset = NGHTTP2_REFUSED_STREAM;
  auto probe = make_h2_probe("/", "h", false);
  auto r = run(*probe, server);
  ASSERT_EQ(r.state, State::failed);
  EXPECT_EQ(r.error, "stream reset: REFUSED_STREAM");

  auto http1 = make_h2_probe("/", "h", false);
  std::string out;
  http1->take_output(out);
  r = http1->receive("HTTP/1.1 400 Bad Request\r\n\r\n");
  ASSERT_EQ(r.state, State::failed);
  EXPECT_EQ(r.error.rfind("bad response: ", 0), 0u) << r.error;
  EXPECT_EQ(make_h2_probe("/", "h", false)->end_of_stream().error, "closed without a response");
}

}  // namespace
}  // namespace sluice::upstream::health
