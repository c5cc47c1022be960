#include "upstream/health/probe_codec.h"

#include <charconv>
#include <optional>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>

#include <nghttp2/nghttp2.h>

#include "core/nghttp2_nv.h"

namespace sluice::upstream::health {

namespace http = boost::beast::http;
using State = ProbeCodec::Result::State;

namespace {

// A health endpoint's response head is small; a bigger one is a bad response, not a reason to
// grow a buffer.
constexpr uint32_t kMaxResponseHead = 16 * 1024;

ProbeCodec::Result failed(std::string error) { return {State::failed, 0, std::move(error)}; }

class Http1Probe final : public ProbeCodec {
 public:
  explicit Http1Probe(std::string request) : request_(std::move(request)) {
    parser_.header_limit(kMaxResponseHead);
  }

  void take_output(std::string& out) override {
    out += request_;
    request_.clear();
  }

  Result receive(std::string_view data) override {
    in_.append(data);
    boost::system::error_code ec;
    const size_t used = parser_.put(boost::asio::buffer(in_), ec);
    in_.erase(0, used);
    if (ec == http::error::need_more) return {};
    if (ec) return failed("bad response: " + ec.message());
    if (!parser_.is_header_done()) return {};
    return {State::done, parser_.get().result_int(), {}};
  }

  Result end_of_stream() override {
    if (in_.empty() && !parser_.got_some()) return failed("closed without a response");
    return failed("bad response: " +
                  boost::system::error_code(http::error::partial_message).message());
  }

 private:
  std::string request_;
  std::string in_;  // a head not yet complete
  http::response_parser<http::empty_body> parser_;
};

class H2Probe final : public ProbeCodec {
 public:
  H2Probe(const std::string& path, const std::string& authority, bool tls) {
    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_error_callback2(cbs, on_error);
    nghttp2_session_client_new(&session_, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
    const std::string scheme = tls ? "https" : "http";
    const nghttp2_nv head[] = {make_nv(":method", "GET"), make_nv(":scheme", scheme),
                               make_nv(":authority", authority), make_nv(":path", path),
                               make_nv("user-agent", "sluice-health-check")};
    stream_id_ = nghttp2_submit_request(session_, nullptr, head, std::size(head), nullptr, this);
  }
  ~H2Probe() override { nghttp2_session_del(session_); }
  H2Probe(const H2Probe&) = delete;
  H2Probe& operator=(const H2Probe&) = delete;

  void take_output(std::string& out) override {
    for (;;) {
      const uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n <= 0) break;
      out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
  }

  Result receive(std::string_view data) override {
    if (stream_id_ < 0) return failed("http2: " + std::string(nghttp2_strerror(stream_id_)));
    const ssize_t rv = nghttp2_session_mem_recv(
        session_, reinterpret_cast<const uint8_t*>(data.data()), data.size());
    if (rv < 0)
      return failed("bad response: " + std::string(nghttp2_strerror(static_cast<int>(rv))));
    if (status_) return {State::done, *status_, {}};
    if (!error_.empty()) return failed(error_);
    // A connection error (the server does not speak HTTP/2, a bad frame): nghttp2 ends the
    // session without a call above.
    if (nghttp2_session_want_read(session_) == 0) return failed("bad response: not HTTP/2");
    return {};
  }

  Result end_of_stream() override {
    return failed(error_.empty() ? "closed without a response" : error_);
  }

 private:
  static H2Probe& self(void* user) { return *static_cast<H2Probe*>(user); }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    H2Probe& p = self(user);
    if (frame->hd.stream_id != p.stream_id_ || frame->hd.type != NGHTTP2_HEADERS) return 0;
    if (std::string_view(reinterpret_cast<const char*>(name), namelen) != ":status") return 0;
    unsigned status = 0;
    const char* v = reinterpret_cast<const char*>(value);
    auto [end, ec] = std::from_chars(v, v + valuelen, status);
    // nghttp2 checks the value's form; an interim 1xx head is followed by the final one.
    if (ec == std::errc() && end == v + valuelen && status >= 200) p.status_ = status;
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    H2Probe& p = self(user);
    if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.last_stream_id < p.stream_id_ &&
        p.error_.empty()) {
      p.error_ = std::string("goaway: ") + nghttp2_http2_strerror(frame->goaway.error_code);
    }
    return 0;
  }

  static int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user) {
    H2Probe& p = self(user);
    if (stream_id == p.stream_id_ && !p.status_ && p.error_.empty()) {
      p.error_ = error_code == NGHTTP2_NO_ERROR
                     ? std::string("closed without a response")
                     : std::string("stream reset: ") + nghttp2_http2_strerror(error_code);
    }
    return 0;
  }

  static int on_error(nghttp2_session*, int, const char* msg, size_t len, void* user) {
    H2Probe& p = self(user);
    if (p.error_.empty()) p.error_ = "bad response: " + std::string(msg, len);
    return 0;
  }

  nghttp2_session* session_ = nullptr;
  int32_t stream_id_ = -1;
  std::optional<unsigned> status_;
  std::string error_;
};

}  // namespace

std::unique_ptr<ProbeCodec> make_http1_probe(std::string request) {
  return std::make_unique<Http1Probe>(std::move(request));
}

std::unique_ptr<ProbeCodec> make_h2_probe(const std::string& path, const std::string& authority,
                                          bool tls) {
  return std::make_unique<H2Probe>(path, authority, tls);
}

}  // namespace sluice::upstream::health
