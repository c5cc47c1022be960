#pragma once
// A downstream HTTP/1.1 connection: reads and decodes requests one at a time (pipelined ones
// wait in the buffer, so responses go out in order), runs each as a Stream, and encodes the
// response with the framing the client understands. Owned by its worker, via shared_ptr
// held by pending async operations; lives on the worker's thread.
#include <cstdint>
#include <list>
#include <memory>
#include <string>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "core/lazy_timer.h"
#include "core/readiness_watch.h"
#include "core/tls_session.h"
#include "proxy/connection_limiter.h"
#include "proxy/http1_codec.h"
#include "proxy/http2_codec.h"
#include "proxy/stream.h"
#include "proxy/tls_context.h"

namespace sluice {

class ListenerRuntime;

class Http1Connection : public std::enable_shared_from_this<Http1Connection>,
                        public http1::DecoderCallbacks,
                        public StreamEncoder {
 public:
  // `slot` is the connection's place in the listener's connection counts, held until the
  // socket is closed.
  Http1Connection(boost::asio::ip::tcp::socket socket, const boost::asio::ip::tcp::endpoint& peer,
                  std::shared_ptr<ListenerRuntime> listener, StreamContext& ctx,
                  ConnectionLimiter::Slot slot);
  ~Http1Connection() override;

  void start();
  // Graceful stop: close now if idle, else after the current response.
  void drain();
  // Immediate stop.
  void close();

  // http1::DecoderCallbacks
  void on_request_head(RequestHead& head, bool end_stream) override;
  void on_request_data(std::string_view data) override;
  void on_request_complete() override;

  // StreamEncoder
  void encode_1xx(const ResponseHead& head) override;
  void encode_100_continue() override;
  void encode_headers(ResponseHead& head, bool end_stream) override;
  void encode_data(std::string_view data, bool end_stream) override;
  void encode_trailers(const HeaderMap& trailers) override;
  void abort_response() override;
  void pause_request_body() override;
  void resume_request_body() override;

 private:
  enum class Framing : uint8_t { none, length, chunked, until_close };

  void read();
  void on_read(const boost::system::error_code& ec, size_t n);
  void read_ready();
  void prepare_read_space();
  // TLS: turns the n ciphertext bytes just read into plaintext in place (n becomes its
  // length). False when the connection was closed (bad handshake or record, close_notify).
  bool tls_receive(size_t& n);
  static void on_input_watch(void* self, ReadinessWatch::Outcome outcome);
  // Writes queued TLS records (an alert, close_notify) at once, without waiting: the
  // connection is about to close.
  void send_tls_output_now();
  std::string take_buffer();
  void release_buffers();
  // Going idle: release_buffers(), and OpenSSL's record buffers.
  void release_idle();
  void process();
  void decode_error();
  // The client closed its side of a tunnel: the request ends, the response may go on.
  void end_tunnel_request();
  void flush();
  void on_write(const boost::system::error_code& ec);
  void maybe_finish_stream();
  void finish_stream();
  void arm_idle_timer();
  // From the first byte of a request: header_timeout (and request_timeout) start.
  void arm_header_timer();
  // While the body is awaited: body_timeout from now, within what request_timeout leaves.
  void arm_body_timer();
  // The body is paused by the proxy, not the client: only request_timeout counts on.
  void arm_paused_timer();
  // Whether request_timeout (not a pause) ran out for the request in progress.
  bool request_time_is_up() const;
  void on_deadline();
  void start_http2();
  void schedule_flush();  // flush at the end of the current handler
  void graceful_close();
  void linger_read();
  void unregister();
  const FilterChainFactory& chain() const;

  // What a request in progress needs: made on the first bytes of a request (or when a write
  // needs its buffers) and dropped when the connection goes back to waiting for the next
  // request, so an idle keep-alive connection holds none of it.
  struct Work {
    Work(Http1Connection& c, const config::Limits& limits, SnapshotPtr s);
    SnapshotPtr snapshot;  // the request's; taken from the listener at each request head
    http1::RequestDecoder decoder;
    std::string read_buf;
    size_t read_begin = 0;  // unparsed bytes are [read_begin, read_end)
    size_t read_end = 0;
    // The start of a request head that arrives slowly, kept while waiting for the rest so
    // that the connection holds no read buffer (a trickling client costs its bytes, not
    // 64 KiB).
    std::string partial_head;
    std::string out;
    std::string in_flight;
    std::string body;  // request body pieces
  };
  Work& w() {
    if (!work_) make_work();
    return *work_;
  }
  void make_work();
  // Unparsed bytes in the read buffer.
  size_t buffered() const { return work_ ? work_->read_end - work_->read_begin : 0; }
  bool output_pending() const { return work_ && !work_->out.empty(); }

  // TLS listeners only.
  struct Tls {
    explicit Tls(TlsServerContextPtr c);
    TlsServerContextPtr context;  // certificates for the handshake (SNI may switch)
    TlsSession session;
    std::string client_certificate;  // x-forwarded-client-cert value, once verified
  };

  boost::asio::ip::tcp::socket socket_;
  std::shared_ptr<ListenerRuntime> listener_;
  std::list<std::shared_ptr<Http1Connection>>::iterator registration_;
  ConnectionLimiter::Slot slot_;
  StreamContext& ctx_;
  std::unique_ptr<Work> work_;
  std::unique_ptr<Stream> stream_;
  LazyTimer deadline_;  // idle, header, request body, whole request and lingering-close timeouts
  LazyTimer::Clock::time_point request_start_;  // first byte of the request in progress
  boost::asio::ip::tcp::endpoint peer_;         // IPv4-mapped addresses as IPv4
  std::unique_ptr<Tls> tls_;
  std::unique_ptr<Http2Codec> h2_;  // set when the connection speaks HTTP/2
  // The idle wait for the next request, armed after a recv found nothing: no syscall.
  ReadinessWatch input_watch_{&Http1Connection::on_input_watch, this};

  Framing framing_ = Framing::none;
  uint8_t request_version_ = 11;
  bool registered_ : 1 = false;
  bool protocol_decided_ : 1 = false;  // h2c preface checked (cleartext listeners)
  bool head_request_ : 1 = false;
  bool upgrade_pending_ : 1 = false;  // an upgrade request waits for the backend's answer
  bool tunnel_ : 1 = false;           // switched protocols (101): raw bytes both ways
  bool request_complete_ : 1 = false;
  bool response_complete_ : 1 = false;
  bool close_after_response_ : 1 = false;
  bool continue_sent_ : 1 = false;
  bool reading_ : 1 = false;
  bool writing_ : 1 = false;
  bool paused_ : 1 = false;           // request body flow control
  bool above_watermark_ : 1 = false;  // response flow control
  bool processing_ : 1 = false;
  bool closed_ : 1 = false;
  bool draining_ : 1 = false;
  bool request_started_ : 1 = false;  // some bytes of the current request arrived
  bool close_when_flushed_ : 1 = false;
  bool flush_deferred_ : 1 = false;  // a flush of the response head is queued
  bool lingering_ : 1 = false;       // discarding what the client still sends
  bool idle_wait_ : 1 = false;       // the pending read is the bufferless wait for readability
};

}  // namespace sluice
