#pragma once
// HTTP/2 to an upstream host (cluster `protocol: h2`), on nghttp2's client session. One
// connection carries many requests; each is an Http2ClientStream, the UpstreamRequest the
// router drives. The host's pool opens another connection when every open one is at its
// stream limit (the server's SETTINGS_MAX_CONCURRENT_STREAMS, capped by the cluster's
// max_concurrent_streams). After a GOAWAY the connection takes no new stream; streams the
// server did not process (above its last stream id, or REFUSED_STREAM) fail with
// `retry_safe` so the router sends them again on another connection.
//
// Owned by the pool and by the streams in flight (each holds its connection); everything runs
// on the pool's worker thread. nghttp2 callbacks never destroy the connection: it is kept
// alive by the handler that called into nghttp2.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "core/tls_session.h"
#include "upstream/upstream_request.h"

struct nghttp2_session;

namespace sluice::upstream {

class HostPool;
class Http2ClientStream;

class Http2ClientConnection : public std::enable_shared_from_this<Http2ClientConnection> {
 public:
  Http2ClientConnection(boost::asio::ip::tcp::socket socket, std::unique_ptr<TlsSession> tls,
                        std::weak_ptr<HostPool> pool, uint32_t max_streams,
                        std::chrono::milliseconds idle_timeout);
  ~Http2ClientConnection();

  // Sends the connection preface and SETTINGS, and starts reading. `ready(true)` once the
  // server's SETTINGS arrived (its stream limit is known), `ready(false)` if the connection
  // failed first or they did not come within `timeout`.
  void start(std::function<void(bool)> ready, std::chrono::milliseconds timeout);
  // Open, no GOAWAY seen, and below the stream limit.
  bool can_take_stream() const;
  // The server's SETTINGS_MAX_CONCURRENT_STREAMS capped by the cluster's limit.
  uint32_t stream_limit() const;
  // Reserves a stream slot until the request starts (or is given back unused).
  std::shared_ptr<Http2ClientStream> new_stream();
  bool is_open() const { return !closed_; }
  // Closes at once; requests in progress fail.
  // Something released when the connection object goes (a circuit breaker's slot).
  void hold(std::shared_ptr<void> slot) { slot_ = std::move(slot); }
  void close();
  // Takes no new stream and closes when the last one ends (a reload dropped the host, or the
  // worker is stopping).
  void drain();

 private:
  std::shared_ptr<void> slot_;
  friend class Http2ClientStream;
  friend struct Http2ClientCallbacks;
  void schedule_flush();
  void flush();
  void read_more();
  void on_read(const boost::system::error_code& ec, size_t n);
  void fail(const std::string& detail);
  // No stream left: closes after the idle timeout (or at once after a GOAWAY).
  void check_idle();

  boost::asio::ip::tcp::socket socket_;
  std::unique_ptr<TlsSession> tls_;
  std::weak_ptr<HostPool> pool_;
  uint32_t max_streams_;
  std::chrono::milliseconds idle_timeout_;
  boost::asio::steady_timer idle_timer_;  // the SETTINGS wait, then the idle timeout
  std::function<void(bool)> ready_;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, std::shared_ptr<Http2ClientStream>> streams_;
  size_t reserved_ = 0;    // handed out by new_stream(), not yet started
  uint64_t served_ = 0;    // streams started so far
  bool goaway_ = false;    // the server sent GOAWAY: no new streams
  bool draining_ = false;  // we stop using it
  int32_t goaway_last_id_ = 0;
  bool closed_ = false;
  bool reading_ = false;
  bool writing_ = false;
  bool flush_posted_ = false;
  std::string read_buf_;
  std::string out_;  // frames (or TLS records) being written
};

class Http2ClientStream : public UpstreamRequest,
                          public std::enable_shared_from_this<Http2ClientStream> {
 public:
  Http2ClientStream(std::shared_ptr<Http2ClientConnection> conn, bool reused)
      : conn_(std::move(conn)), reused_(reused) {}

  // UpstreamRequest
  void start_request(ResponseHandler& handler, const RequestHead& head, BodyFraming framing,
                     bool expect_no_response_body) override;
  bool write_body(std::string_view data, bool end_stream) override;
  void write_trailers(const HeaderMap& trailers) override;
  void pause_reading() override;
  void resume_reading() override;
  void detach(ResponseHandler& handler) override;
  void release_unused() override;
  bool reused() const override { return reused_; }

 private:
  friend class Http2ClientConnection;
  friend struct Http2ClientCallbacks;
  // Reports `error` to the handler (once) and forgets it.
  void fail(const Error& error);
  void post_failure(Error error);
  void resume_body();

  std::shared_ptr<Http2ClientConnection> conn_;
  bool reused_;
  ResponseHandler* handler_ = nullptr;
  int32_t id_ = -1;
  bool started_ = false;  // start_request() or release_unused() consumed the reservation
  // Response.
  ResponseHead head_;
  HeaderMap trailers_in_;
  size_t header_bytes_ = 0;
  bool head_done_ = false;  // the final head was delivered
  bool response_done_ = false;
  std::string body_in_;    // DATA of the frame being received
  size_t unconsumed_ = 0;  // received while paused: not yet acknowledged to the server
  bool paused_ = false;
  // Request body, taken by nghttp2's data provider.
  std::string out_;
  size_t out_pos_ = 0;
  HeaderMap trailers_out_;
  bool has_trailers_ = false;
  bool request_end_ = false;   // the caller ended the request
  bool request_done_ = false;  // nghttp2 took the end of the request
  bool deferred_ = false;
  bool want_writable_ = false;
};

}  // namespace sluice::upstream
