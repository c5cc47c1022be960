#pragma once
// One HTTP/1.1 connection to an upstream host, owned by its host's pool on one worker.
// A connection serves one request at a time; when the exchange ends cleanly and both sides
// allow keep-alive it goes back to the pool's idle list.
//
// All methods run on the owning worker's thread. The handler is the router's upstream
// request; it is notified of response events and may detach at any time (the stream went
// away), after which the connection closes itself unless it was idle-safe.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "core/error.h"
#include "core/http.h"
#include "core/tls_session.h"

namespace sluice::upstream {

class HostPool;
class ResponseParser;

class ResponseHandler {
 public:
  virtual ~ResponseHandler() = default;
  virtual void on_upstream_1xx(ResponseHead& head) = 0;
  virtual void on_upstream_head(ResponseHead& head, bool end_stream) = 0;
  virtual void on_upstream_data(std::string& data, bool end_stream) = 0;
  // The exchange failed. `response_started` tells whether on_upstream_head was called.
  virtual void on_upstream_error(const Error& error, bool response_started) = 0;
  // The request body buffer drained below the low watermark (after write_body returned false).
  virtual void on_upstream_writable() = 0;
};

enum class BodyFraming { none, content_length, chunked };

class Http1ClientConnection : public std::enable_shared_from_this<Http1ClientConnection> {
 public:
  // `tls` set: an HTTPS connection; call handshake() before the first request.
  Http1ClientConnection(boost::asio::ip::tcp::socket socket, std::weak_ptr<HostPool> pool,
                        bool reused_before, std::unique_ptr<TlsSession> tls = nullptr);
  ~Http1ClientConnection();

  // Sends the request head. `head` is already prepared for the upstream (hop-by-hop headers
  // removed, framing headers set by the caller according to `framing`).
  void start_request(ResponseHandler& handler, const RequestHead& head, BodyFraming framing,
                     bool expect_no_response_body);
  // Queues request body bytes. Returns false when the caller should pause its producer until
  // on_upstream_writable().
  bool write_body(std::string_view data, bool end_stream);
  void pause_reading();
  void resume_reading();
  // `handler` is going away. If its exchange was complete the connection is already back in
  // the pool (perhaps serving someone else) and this does nothing; otherwise it is closed.
  void detach(ResponseHandler& handler);

  // True when this connection had served a request before this one: a failure before any
  // response byte may then be the backend having closed an idle connection, safe to retry
  // on a fresh connection.
  bool reused() const { return reused_; }
  bool response_started() const { return head_received_; }
  bool request_body_sent() const { return body_bytes_written_ > 0; }

  // Runs the TLS handshake; `done("")` on success, else with the reason. Runs later, never
  // inline.
  void handshake(std::function<void(const std::string& error)> done);

  // Idle-pool support: starts watching the idle socket so a close by the backend removes it
  // from the pool immediately.
  void watch_idle();
  // True when the idle socket has not been closed by the peer (non-blocking peek).
  bool idle_socket_usable();
  void close();
  bool is_open() const { return socket_.is_open(); }

 private:
  friend class ResponseParser;
  void flush();
  void on_write(const boost::system::error_code& ec, size_t n);
  void read_more();
  void on_read(const boost::system::error_code& ec, size_t n);
  void on_readable(const boost::system::error_code& ec);
  void handshake_step(std::shared_ptr<std::function<void(const std::string&)>> done);
  // Decrypts the n bytes just read at read_len_ in place (n becomes the plaintext length).
  TlsSession::Result tls_receive(size_t& n);
  void parse_buffered();
  void fail(ErrorKind kind, std::string detail);
  void finish_exchange();

  // Parser callbacks.
  void parsed_head(ResponseHead&& head, bool end_stream);
  void parsed_body(std::string_view data);
  void parsed_done();

  boost::asio::ip::tcp::socket socket_;
  std::weak_ptr<HostPool> pool_;
  ResponseHandler* handler_ = nullptr;
  std::unique_ptr<ResponseParser> parser_;
  bool reused_ = false;
  bool expect_no_body_ = false;
  bool request_chunked_ = false;
  bool request_done_ = false;   // every request byte was written
  bool request_ended_ = false;  // the caller said end_stream
  bool head_received_ = false;
  bool end_delivered_ = false;  // the handler has seen end_stream
  bool response_done_ = false;
  bool keep_alive_ = true;
  bool reading_ = false;
  bool paused_ = false;
  bool writing_ = false;
  bool want_writable_ = false;
  bool idle_watch_ = false;
  uint64_t body_bytes_written_ = 0;
  std::string out_;        // queued, not yet handed to the socket
  std::string in_flight_;  // being written
  std::string read_buf_;
  size_t read_len_ = 0;
  std::string body_chunk_;  // reused buffer handed to the handler
  std::unique_ptr<TlsSession> tls_;
};

using Http1ClientConnectionPtr = std::shared_ptr<Http1ClientConnection>;

}  // namespace sluice::upstream
