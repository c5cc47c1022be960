#pragma once
// The HTTP/2 server side of a downstream connection, on nghttp2: frames in, one Stream per
// HTTP/2 stream (the same filter chain and router as HTTP/1.1), frames out. The connection
// keeps the socket, TLS and timers; it feeds bytes in with receive() and sends what
// produce() appends. nghttp2 validates the messaging rules (pseudo-headers, connection-specific
// fields, field characters, content-length) and resets offending streams.
//
// Owned by its connection, on the connection's worker thread. Streams are destroyed from a
// posted handler, never inside nghttp2 or Stream callbacks.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "core/lazy_timer.h"
#include "proxy/stream.h"

struct nghttp2_session;

namespace sluice {

class ListenerRuntime;
class Http2Stream;

struct Http2Settings {
  uint32_t max_concurrent_streams = 100;
  uint32_t max_header_list_bytes = 64 * 1024;
  uint32_t max_headers = 100;
};

class Http2Codec {
 public:
  struct Env {
    StreamContext* ctx = nullptr;
    std::shared_ptr<ListenerRuntime> listener;
    boost::asio::ip::tcp::endpoint peer;
    std::string scheme;                 // "http" or "https": the connection's, not the client's
    std::string client_certificate;     // x-forwarded-client-cert value, or ""
    const char* tls_version = nullptr;  // TLS connections: the negotiated version
    // Output is waiting: the connection schedules a flush (never runs it inline).
    std::function<void()> want_write;
  };

  Http2Codec(Env env, const Http2Settings& settings);
  ~Http2Codec();

  // Bytes from the client. False on a connection error: produce() the GOAWAY, then close.
  bool receive(std::string_view data);
  // Appends frames ready to go out.
  void produce(std::string& out);
  // Nothing more to read or write: the connection may close.
  bool finished() const;
  // Graceful shutdown: GOAWAY now, streams in progress finish.
  void shutdown();
  // Immediate: every stream is reset (the connection is going away).
  void reset_all(std::string_view reason);
  size_t active_streams() const { return streams_.size(); }
  // The highest stream id the client has opened; 0 before its first request.
  int32_t last_client_stream() const { return last_client_stream_; }

 private:
  friend class Http2Stream;
  friend struct Http2Callbacks;  // nghttp2's C callbacks, in the .cc
  void schedule_cleanup();
  // A HEADERS frame's header arrived on client stream `id`: false if that id is one the client
  // skipped, i.e. a stream it can no longer open (RFC 9113 §5.1.1).
  bool check_client_stream_id(int32_t id);

  Env env_;
  Http2Settings settings_;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, std::unique_ptr<Http2Stream>> streams_;
  // The last stream found in streams_ (id 0: none). A frame's fields arrive one callback each,
  // all for one stream: a browser's head was 20 map lookups.
  int32_t last_stream_id_ = 0;
  Http2Stream* last_stream_ = nullptr;
  std::vector<std::unique_ptr<Http2Stream>> closed_;  // destroyed by a posted handler
  bool cleanup_posted_ = false;
  bool failed_ = false;  // a connection error was seen
  // Client stream ids: the highest a HEADERS frame came on, and the ids passed over on the way
  // there as [first, last] ranges (opening 5 first closes 1 and 3 for good). Clients count up
  // without gaps, so this is normally empty; a client making gaps has the oldest forgotten.
  int32_t last_client_stream_ = -1;
  std::vector<std::pair<int32_t, int32_t>> skipped_ids_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  // The listener's request timeouts (header_timeout, body_timeout, request_timeout) for every
  // stream, on one timer set to the earliest deadline; deadlines that moved later since are
  // checked when it fires, so a body piece costs a clock read, not a timer update.
  void watch_request(LazyTimer::Clock::time_point deadline);
  void check_request_deadlines();
  LazyTimer request_timer_;
  LazyTimer::Clock::time_point request_timer_at_{};
  bool request_timer_armed_ = false;
};

}  // namespace sluice
