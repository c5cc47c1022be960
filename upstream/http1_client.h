#pragma once
// One HTTP/1.1 connection to an upstream host, owned by its host's pool on one worker.
// A connection serves one request at a time; when the exchange ends cleanly and both sides
// allow keep-alive it goes back to the pool's idle list.
//
// All methods run on the owning worker's thread. The handler is the router's upstream
// request; it is notified of response events and may detach at any time (the stream went
// away), after which the connection closes itself unless it was idle-safe.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/ip/tcp.hpp>

#include "core/error.h"
#include "core/http.h"
#include "core/readiness_watch.h"
#include "core/tls_session.h"
#include "upstream/upstream_request.h"

namespace sluice::upstream {

class HostPool;
class ResponseParser;

class Http1ClientConnection : public UpstreamRequest,
                              public std::enable_shared_from_this<Http1ClientConnection> {
 public:
  // `tls` set: an HTTPS connection whose handshake is done (see connector.h).
  Http1ClientConnection(boost::asio::ip::tcp::socket socket, std::weak_ptr<HostPool> pool,
                        bool reused_before, std::unique_ptr<TlsSession> tls = nullptr);
  ~Http1ClientConnection() override;

  // UpstreamRequest
  void start_request(ResponseHandler& handler, const RequestHead& head, BodyFraming framing,
                     bool expect_no_response_body) override;
  bool write_body(std::string_view data, bool end_stream) override;
  void write_trailers(const HeaderMap& trailers) override;
  void pause_reading() override;
  void resume_reading() override;
  void detach(ResponseHandler& handler) override;
  // Closes it: an unused connection is cheap to replace and may have gone stale meanwhile.
  void release_unused() override { close(); }
  bool reused() const override { return reused_; }
  bool response_started() const { return head_received_; }
  bool request_body_sent() const { return body_bytes_written_ > 0; }

  // Idle-pool support: starts watching the idle socket so a close by the backend removes it
  // from the pool immediately.
  void watch_idle();
  // True when the idle socket has not been closed by the peer (non-blocking peek).
  bool idle_socket_usable();
  // Something released when the connection object goes (a circuit breaker's slot).
  void hold(std::shared_ptr<void> slot) { slot_ = std::move(slot); }
  void close();
  bool is_open() const { return socket_.is_open(); }

 private:
  std::shared_ptr<void> slot_;
  friend class ResponseParser;
  void flush();
  void on_write(const boost::system::error_code& ec, size_t n);
  void read_more();
  void on_read(const boost::system::error_code& ec, size_t n);
  void on_idle_read(const boost::system::error_code& ec, size_t n);
  // Waits for the next bytes: a recv first, then, if it found nothing, the input watch. When
  // `idle` (the exchange is over), a short read just before is trusted to have drained the
  // socket and the recv is skipped. It is not exact: a FIN that came with the last bytes goes
  // unseen. That is safe only while idle: the pool probes the socket before handing it to a
  // request that could not be resent, and a resendable one is resent when the connection
  // turns out closed.
  void wait_for_input(bool idle);
  static void on_input_watch(void* self, ReadinessWatch::Outcome outcome);
  // Decrypts the n bytes just read at read_len_ in place (n becomes the plaintext length).
  TlsSession::Result tls_receive(size_t& n);
  void parse_buffered();
  // Tunnel (after a 101 to an upgrade): hands what was read to the handler as response data.
  void pass_tunnel_bytes();
  // Tunnel: the request side ended; the backend sees our FIN and may still answer.
  void half_close();
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
  bool upgrade_ = false;  // the request asks to switch protocols (BodyFraming::upgrade)
  bool tunnel_ = false;   // ... and the backend answered 101: raw bytes both ways
  bool half_closed_ = false;
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
  // True only inside on_input_watch, after a read that returned less than asked for: no
  // epoll_wait has run since (see wait_for_input).
  bool short_read_ = false;
  ReadinessWatch input_watch_{&Http1ClientConnection::on_input_watch, this};
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
