#include "proxy/http1_connection.h"

#include <algorithm>
#include <cstring>

#include <boost/asio/defer.hpp>
#include <boost/asio/write.hpp>

#include "core/stats.h"
#include "proxy/listener.h"

namespace sluice {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
constexpr size_t kReadSize = 64 * 1024;
constexpr size_t kHighWatermark = 256 * 1024;
constexpr size_t kLowWatermark = 64 * 1024;
constexpr size_t kKeepCapacity = 4 * 1024;

http1::DecoderLimits decoder_limits(const config::Limits& l) {
  return http1::DecoderLimits{l.max_request_header_bytes, l.max_request_headers,
                              l.max_request_body_bytes, l.max_uri_bytes};
}

}  // namespace

Http1Connection::Http1Connection(asio::ip::tcp::socket socket, const asio::ip::tcp::endpoint& peer,
                                 std::shared_ptr<ListenerRuntime> listener, StreamContext& ctx,
                                 ConnectionLimiter::Slot slot)
    : socket_(std::move(socket)),
      listener_(std::move(listener)),
      slot_(std::move(slot)),
      ctx_(ctx),
      deadline_(
          socket_.get_executor(),
          [](void* self) { static_cast<Http1Connection*>(self)->on_deadline(); }, this),
      peer_(unmap_v4(peer.address()), peer.port()) {
  listener_->stats().connections_active.add(1);
  listener_->stats().connections_total.add();
  const Snapshot& snapshot = *listener_->snapshot();
  if (auto it = snapshot.tls.find(listener_->config().name); it != snapshot.tls.end()) {
    tls_ = std::make_unique<Tls>(it->second);
  }
}

Http1Connection::Work::Work(Http1Connection& c, const config::Limits& limits, SnapshotPtr s)
    : snapshot(std::move(s)), decoder(c, decoder_limits(limits)) {}

Http1Connection::Tls::Tls(TlsServerContextPtr c)
    : context(std::move(c)), session(context->context_at(0)) {}

void Http1Connection::make_work() {
  work_ = std::make_unique<Work>(*this, listener_->config().limits, listener_->snapshot());
}

Http1Connection::~Http1Connection() {
  stream_.reset();
  listener_->stats().connections_active.add(-1);
}

void Http1Connection::unregister() {
  slot_.release();  // the socket is closed: its place under the connection limits is free
  if (!registered_) return;
  registered_ = false;
  // Posted: the listener's reference may be the last one, and this may run inside one of
  // this connection's own callbacks.
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    self->stream_.reset();
    self->h2_.reset();
    self->listener_->remove(self->registration_);
  });
}

void Http1Connection::start() {
  registration_ = listener_->add(shared_from_this());
  registered_ = true;
  error_code ignored;
  socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
  socket_.non_blocking(true, ignored);
  if (tls_) {
    deadline_.expire_after(listener_->config().tls->handshake_timeout, weak_from_this());
  } else {
    arm_idle_timer();
  }
  read();
}

void Http1Connection::read() {
  if (reading_ || closed_ || paused_) return;
  // One request at a time: bytes of a pipelined request stay unread until this one is done;
  // after an upgrade request, until the backend says whether it switches protocols.
  if (stream_ && (request_complete_ || upgrade_pending_)) return;
  if (tls_ && tls_->session.more()) {
    // Plaintext is waiting inside OpenSSL, not on the socket.
    reading_ = true;
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      self->reading_ = false;
      if (self->closed_) return;
      self->prepare_read_space();
      self->on_read({}, 0);
    });
    return;
  }
  if (!stream_ && buffered() <= kKeepCapacity) {
    if (!input_watch_.armed()) {
      // Often the next request is here already. If not, the recv fails with EAGAIN and the
      // input watch waits, at no syscall (Asio's async_wait would add an epoll_ctl).
      prepare_read_space();
      error_code ec;
      size_t n = socket_.read_some(  // non-blocking socket
          asio::buffer(w().read_buf.data() + w().read_end, w().read_buf.size() - w().read_end), ec);
      if (ec != asio::error::would_block && ec != asio::error::try_again) {
        // Later, as an async read's completion: read() runs inside on_read's own callees.
        reading_ = true;
        asio::post(socket_.get_executor(),
                   [self = shared_from_this(), ec, n] { self->on_read(ec, n); });
        return;
      }
      input_watch_.arm(socket_, shared_from_this());
    }
    // Idle between requests, or the start of a request head waiting for the rest: wait for
    // readability holding no buffers (a partial head moves aside), then take one.
    if (buffered() > 0) {
      work_->partial_head.assign(work_->read_buf.data() + work_->read_begin, buffered());
    }
    release_idle();
    reading_ = true;
    idle_wait_ = true;  // the input watch calls read_ready()
    return;
  }
  prepare_read_space();
  reading_ = true;
  socket_.async_read_some(
      asio::buffer(w().read_buf.data() + w().read_end, w().read_buf.size() - w().read_end),
      [self = shared_from_this()](const error_code& ec, size_t n) { self->on_read(ec, n); });
}

void Http1Connection::prepare_read_space() {
  if (w().read_begin > 0 && w().read_begin == w().read_end) w().read_begin = w().read_end = 0;
  if (w().read_buf.empty()) w().read_buf = take_buffer();
  if (w().read_buf.size() - w().read_end < kReadSize / 4) {
    if (w().read_begin > 0) {
      std::memmove(w().read_buf.data(), w().read_buf.data() + w().read_begin,
                   w().read_end - w().read_begin);
      w().read_end -= w().read_begin;
      w().read_begin = 0;
    }
    if (w().read_buf.size() - w().read_end < kReadSize / 4)
      w().read_buf.resize(w().read_end + kReadSize);
  }
}

bool Http1Connection::tls_receive(size_t& n) {
  const bool was_done = tls_->session.handshake_done();
  TlsSession::Result r = tls_->session.decrypt_in_place(w().read_buf.data() + w().read_end, &n,
                                                        w().read_buf.size() - w().read_end);
  if (!was_done && tls_->session.handshake_done()) {
    listener_->stats().tls_handshakes_ok.add();
    tls_->client_certificate = tls_->session.client_certificate();
    protocol_decided_ = true;
    if (tls_->session.alpn() == "h2") start_http2();
    arm_idle_timer();
  }
  if (r == TlsSession::Result::error) {
    if (!tls_->session.handshake_done()) listener_->stats().tls_handshakes_failed.add();
    if (stream_) stream_->reset(tls_->session.error());
    send_tls_output_now();  // the alert OpenSSL queued
    close();
    return false;
  }
  if (r == TlsSession::Result::closed) {
    // close_notify: the client's end of the stream, as a TCP FIN would be.
    if (stream_) stream_->reset("downstream closed");
    close();
    return false;
  }
  if (tls_->session.has_output()) flush();  // handshake messages, session tickets
  return true;
}

void Http1Connection::send_tls_output_now() {
  std::string out;
  tls_->session.take_output(out);
  error_code ignored;
  if (!out.empty()) socket_.write_some(asio::buffer(out), ignored);  // a few bytes; best effort
}

void Http1Connection::read_ready() {
  if (w().read_buf.empty()) w().read_buf = take_buffer();
  w().read_begin = 0;
  w().read_end = w().partial_head.size();
  if (!w().partial_head.empty()) {
    std::memcpy(w().read_buf.data(), w().partial_head.data(), w().partial_head.size());
    std::string().swap(w().partial_head);
  }
  error_code ec;
  size_t n = socket_.read_some(  // non-blocking socket
      asio::buffer(w().read_buf.data() + w().read_end, w().read_buf.size() - w().read_end), ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    // A stale edge, or a TLS record still incomplete: wait again.
    input_watch_.arm(socket_, shared_from_this());
    read();
    return;
  }
  on_read(ec, n);
}

void Http1Connection::on_input_watch(void* target, ReadinessWatch::Outcome outcome) {
  auto* self = static_cast<Http1Connection*>(target);
  // Armed only on the way into an idle wait, which ends here or by closing.
  if (outcome == ReadinessWatch::Outcome::destroyed || self->closed_ || !self->idle_wait_) return;
  self->reading_ = false;
  self->idle_wait_ = false;
  if (outcome == ReadinessWatch::Outcome::aborted) {
    self->close();
    return;
  }
  self->read_ready();
}

std::string Http1Connection::take_buffer() {
  return ctx_.read_buffers ? ctx_.read_buffers->take() : std::string(kReadSize, '\0');
}

void Http1Connection::release_idle() {
  release_buffers();
  if (tls_ && (!h2_ || h2_->active_streams() == 0)) tls_->session.release_buffers();
}

void Http1Connection::release_buffers() {
  if (!work_) return;
  Work& w = *work_;
  if (!w.read_buf.empty() && ctx_.read_buffers) ctx_.read_buffers->give(std::move(w.read_buf));
  w.read_buf = std::string();
  w.read_begin = w.read_end = 0;
  if (!writing_ && w.out.empty() && !processing_ && !request_started_ && w.partial_head.empty()) {
    // Between requests: the parser, the response buffers and the request's snapshot go too.
    work_.reset();
    return;
  }
  // Response buffers keep the capacity of the largest response; an idle connection returns it.
  if (!writing_ && w.out.empty()) {
    if (w.out.capacity() > kKeepCapacity) w.out = std::string();
    if (w.in_flight.capacity() > kKeepCapacity) w.in_flight = std::string();
  }
  if (w.body.capacity() > kKeepCapacity) w.body = std::string();
}

void Http1Connection::on_read(const error_code& ec, size_t n) {
  reading_ = false;
  if (closed_) return;
  if (ec) {
    if (tunnel_ && ec == asio::error::eof) {
      end_tunnel_request();  // the client closed its side; the backend may still send
      return;
    }
    // The client went away (or half-closed). A request still being received can never
    // complete; a response in progress has no one to go to.
    if (stream_) stream_->reset("downstream closed");
    close();
    return;
  }
  if (tls_ && !tls_receive(n)) return;
  if (n == 0) {  // a handshake step, or a TLS record still incomplete
    read();
    return;
  }
  w().read_end += n;
  if (!protocol_decided_ && !tls_ && listener_->config().http2.cleartext &&
      w().read_end - w().read_begin >= 3) {
    // Prior knowledge: the connection preface starts "PRI", no HTTP/1.1 method does.
    protocol_decided_ = true;
    if (std::string_view(w().read_buf.data() + w().read_begin, 3) == "PRI") start_http2();
  }
  if (h2_) {
    arm_idle_timer();
    process();
    return;
  }
  if (!stream_ && !request_started_) {
    request_started_ = true;
    arm_header_timer();
  } else if (stream_ && !request_complete_ && !tunnel_) {
    arm_body_timer();
  }
  process();
}

void Http1Connection::process() {
  if (processing_) return;  // re-entered from a stream callback; the outer loop continues
  if (h2_) {
    std::string_view data(w().read_buf.data() + w().read_begin, w().read_end - w().read_begin);
    w().read_begin = w().read_end;
    bool ok = h2_->receive(data);
    // Opened while the listener drains (POST /drain keeps accepting): as an HTTP/1.1
    // connection is closed after its request, this one is told to go once it has sent one.
    if (ok && !draining_ && listener_->draining() && h2_->last_client_stream() > 0) drain();
    flush();
    if (!ok) {
      graceful_close();
      return;
    }
    if (!closed_) read();
    return;
  }
  if (tunnel_) {
    // The bytes are the new protocol's, passed on as they are.
    if (!paused_ && w().read_begin < w().read_end) {
      w().body.assign(w().read_buf.data() + w().read_begin, w().read_end - w().read_begin);
      w().read_begin = w().read_end = 0;
      stream_->decode_data(w().body, false);
    }
    if (!closed_) read();
    return;
  }
  processing_ = true;
  while (!closed_ && !paused_ && w().read_begin < w().read_end) {
    if (stream_ && (request_complete_ || upgrade_pending_)) break;  // wait for the response
    std::string_view data(w().read_buf.data() + w().read_begin, w().read_end - w().read_begin);
    size_t used = w().decoder.feed(data);
    w().read_begin += used;
    if (w().decoder.error()) {
      decode_error();
      break;
    }
    if (used == 0) break;  // need more bytes
  }
  processing_ = false;
  if (closed_) return;
  if (stream_ && response_complete_ && !writing_ && w().out.empty()) {
    maybe_finish_stream();
    return;
  }
  if (!w().decoder.header_done() && w().read_end - w().read_begin > 0 &&
      w().read_buf.size() > listener_->config().limits.max_request_header_bytes +
                                listener_->config().limits.max_uri_bytes + 2 * kReadSize) {
    // Beast reports the header limit itself; this only guards the buffer growth.
    close();
    return;
  }
  read();
}

const FilterChainFactory& Http1Connection::chain() const {
  return *work_->snapshot->chains.at(listener_->config().name);
}

void Http1Connection::on_request_head(RequestHead& head, bool end_stream) {
  deadline_.cancel();
  w().snapshot = listener_->snapshot();  // a reload applies from the next request on
  request_version_ = head.version;
  if (tls_) head.scheme = "https";
  set_forwarded_client_cert(head.headers, tls_ ? tls_->client_certificate : std::string_view());
  head_request_ = head.method == "HEAD";
  request_complete_ = false;
  response_complete_ = false;
  continue_sent_ = false;
  if (!w().decoder.keep_alive() || draining_ || listener_->draining()) {
    close_after_response_ = true;
  }

  StreamInfo info;
  info.listener = listener_->config().name;
  info.peer_ip = info.client_ip = peer_.address();
  info.peer_port = peer_.port();
  if (tls_) info.tls_version = tls_->session.version();
  request_complete_ = end_stream;
  stream_ = std::make_unique<Stream>(ctx_, *this, w().snapshot, chain(), std::move(info));
  if (!head.upgrade.empty()) {
    // The request may become a tunnel: it stays open until the backend answers, so the
    // decoder's end of message is not the request's end.
    upgrade_pending_ = true;
    request_complete_ = false;
    stream_->decode_headers(std::move(head), false);
    return;
  }
  if (!end_stream) arm_body_timer();
  stream_->decode_headers(std::move(head), end_stream);
}

void Http1Connection::end_tunnel_request() {
  request_complete_ = true;
  w().body.clear();
  if (stream_) stream_->decode_data(w().body, true);
}

void Http1Connection::on_request_data(std::string_view data) {
  if (!stream_) return;
  w().body.assign(data);
  stream_->decode_data(w().body, false);
}

void Http1Connection::on_request_complete() {
  if (!stream_ || request_complete_ || upgrade_pending_) return;
  request_complete_ = true;
  w().body.clear();
  stream_->decode_data(w().body, true);
}

void Http1Connection::decode_error() {
  const Error& err = *w().decoder.error();
  close_after_response_ = true;
  if (stream_) {
    // The head was valid but the body framing is not: whatever went upstream must never
    // look complete there, so the upstream request is abandoned.
    stream_->reset(err.detail);
    if (response_complete_) {
      // The answer is already out (a local reply); it just becomes the last one.
    } else if (!stream_->response_started()) {
      std::string body(reason_phrase(status_for(err)));
      body += '\n';
      stream_->send_local_reply(status_for(err), body, {});
    } else {
      abort_response();
    }
    request_complete_ = true;
    return;
  }
  // No stream yet: answer with a short local reply outside the filter chain and close.
  StreamInfo info;
  info.listener = listener_->config().name;
  info.peer_ip = info.client_ip = peer_.address();
  info.peer_port = peer_.port();
  if (tls_) info.tls_version = tls_->session.version();
  info.error = err.detail;
  stream_ = std::make_unique<Stream>(ctx_, *this, w().snapshot, chain(), std::move(info));
  if (const RequestHead* line = w().decoder.request_line()) {
    // Logged with what was read of it.
    stream_->request().method = line->method;
    stream_->request().target = line->target;
    stream_->request().version = line->version;
  }
  stream_->reset(err.detail);
  request_complete_ = true;
  response_complete_ = false;
  unsigned status = status_for(err);
  std::string body(reason_phrase(status));
  body += '\n';
  stream_->send_local_reply(status, body, {});
}

void Http1Connection::encode_1xx(const ResponseHead& head) {
  if (request_version_ < 11) return;  // HTTP/1.0 clients do not expect interim responses
  http1::encode_response_head(head, 11, w().out);
  flush();
}

void Http1Connection::encode_100_continue() {
  if (!w().decoder.expect_continue() || continue_sent_ || request_version_ < 11) return;
  continue_sent_ = true;
  w().out += "HTTP/1.1 100 Continue\r\n\r\n";
  flush();
}

void Http1Connection::encode_headers(ResponseHead& head, bool end_stream) {
  if (w().decoder.expect_continue() && !continue_sent_ && !request_complete_) {
    // The client is waiting for 100 Continue and will never get it: the body it may still
    // send can't be told apart from a next request, so this is the last response.
    close_after_response_ = true;
  }
  if (upgrade_pending_) {
    upgrade_pending_ = false;
    if (head.status == 101) {
      // Switched: from here on both directions are raw bytes, until either side closes, with
      // the route's upgrade_idle_timeout (the router's) instead of the request timeouts.
      tunnel_ = true;
      close_after_response_ = true;
      deadline_.cancel();
      head.headers.set("connection", "upgrade");
      head.headers.set("upgrade", stream_->request().upgrade);
      framing_ = Framing::until_close;
      http1::encode_response_head(head, request_version_, w().out);
      schedule_flush();
      // Bytes the client sent after its request are the tunnel's first.
      asio::post(socket_.get_executor(), [self = shared_from_this()] {
        if (!self->closed_) self->process();
      });
      return;
    }
    // Not switched: an ordinary response, and the request had no body.
    request_complete_ = true;
  }
  if (!request_complete_) close_after_response_ = true;
  if (draining_) close_after_response_ = true;

  bool no_body = head_request_ || status_has_no_body(head.status);
  if (no_body) {
    framing_ = Framing::none;
  } else if (head.headers.contains("content-length")) {
    framing_ = Framing::length;
  } else if (end_stream) {
    framing_ = Framing::length;
    head.headers.add("content-length", "0");
  } else if (request_version_ >= 11) {
    framing_ = Framing::chunked;
    head.headers.add("transfer-encoding", "chunked");
  } else {
    framing_ = Framing::until_close;
    close_after_response_ = true;
  }
  if (close_after_response_) {
    head.headers.set("connection", "close");
  } else if (request_version_ == 10) {
    head.headers.set("connection", "keep-alive");
  }
  http1::encode_response_head(head, request_version_, w().out);
  if (end_stream) {
    response_complete_ = true;
    flush();
    return;
  }
  // The body usually follows in the same upstream read: send head and body in one write.
  // The deferred flush sends the head alone when no body comes before it runs.
  schedule_flush();
}

void Http1Connection::encode_data(std::string_view data, bool end_stream) {
  if (closed_) return;
  if (framing_ == Framing::chunked) {
    if (!data.empty()) {
      char size_line[24];
      int n = std::snprintf(size_line, sizeof(size_line), "%zx\r\n", data.size());
      w().out.append(size_line, static_cast<size_t>(n));
      w().out.append(data);
      w().out += "\r\n";
    }
    if (end_stream) w().out += "0\r\n\r\n";
  } else if (framing_ != Framing::none) {
    w().out.append(data);
  }
  if (end_stream) response_complete_ = true;
  flush();
  if (!above_watermark_ && w().out.size() + w().in_flight.size() > kHighWatermark && stream_) {
    above_watermark_ = true;
    stream_->on_downstream_watermark(true);
  }
}

void Http1Connection::encode_trailers(const HeaderMap& trailers) {
  if (closed_) return;
  if (framing_ != Framing::chunked) {
    encode_data({}, true);  // a body framed otherwise has no place for them
    return;
  }
  append_last_chunk(trailers, w().out);
  response_complete_ = true;
  flush();
}

void Http1Connection::abort_response() {
  // Never let a truncated response look complete: close without the last byte or chunk.
  close_after_response_ = true;
  response_complete_ = false;
  close();
}

void Http1Connection::pause_request_body() {
  if (paused_) return;
  paused_ = true;
  // The client is held back by us (a slow upstream, a filter at work): no body timeout for it.
  if (stream_ && !request_complete_ && !tunnel_) arm_paused_timer();
}

void Http1Connection::resume_request_body() {
  if (!paused_) return;
  paused_ = false;
  if (stream_ && !request_complete_ && !closed_ && !tunnel_) arm_body_timer();
  // Resume asynchronously: this is called from deep inside a filter or upstream callback.
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    if (self->closed_) return;
    self->process();
  });
}

void Http1Connection::flush() {
  if (writing_ || closed_) return;
  if (h2_) {
    h2_->produce(w().out);
    if (w().out.empty() && h2_->finished()) {
      graceful_close();
      return;
    }
  }
  if (tls_) {
    // w().out holds plaintext until here; what goes to the socket is ciphertext.
    if (!w().out.empty() && tls_->session.write(w().out) != TlsSession::Result::ok) {
      if (stream_) stream_->reset(tls_->session.error());
      close();
      return;
    }
    w().out.clear();
    tls_->session.take_output(w().out);
  }
  if (w().out.empty()) {
    if (close_when_flushed_ && !stream_) {
      graceful_close();
      return;
    }
    maybe_finish_stream();
    return;
  }
  w().in_flight.swap(w().out);
  w().out.clear();
  writing_ = true;
  asio::async_write(
      socket_, asio::buffer(w().in_flight),
      [self = shared_from_this()](const error_code& ec, size_t) { self->on_write(ec); });
}

void Http1Connection::on_write(const error_code& ec) {
  writing_ = false;
  work_->in_flight.clear();
  if (closed_) return;
  if (ec) {
    if (stream_) stream_->reset("downstream write failed");
    close();
    return;
  }
  if (above_watermark_ && w().out.size() < kLowWatermark) {
    above_watermark_ = false;
    if (stream_) stream_->on_downstream_watermark(false);
  }
  flush();
  // The last bytes went out while the connection already waits for its next request (TLS
  // session tickets after the handshake, HTTP/2 frames): what the write needed goes now.
  if (idle_wait_ && !writing_ && !closed_ && !stream_) release_idle();
}

void Http1Connection::maybe_finish_stream() {
  if (!stream_ || !response_complete_ || writing_ || !w().out.empty() || processing_) return;
  finish_stream();
}

void Http1Connection::finish_stream() {
  stream_.reset();  // logs and counts the exchange
  above_watermark_ = false;
  paused_ = false;  // a pause belongs to the exchange that asked for it
  if (close_after_response_ || !request_complete_) {
    graceful_close();
    return;
  }
  w().decoder.reset();
  request_complete_ = false;
  response_complete_ = false;
  request_started_ = w().read_begin < w().read_end;
  if (request_started_) {
    arm_header_timer();
  } else {
    arm_idle_timer();
  }
  // Pipelined bytes may already hold the next request.
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    if (!self->closed_) self->process();
  });
}

void Http1Connection::start_http2() {
  Http2Codec::Env env;
  env.ctx = &ctx_;
  env.listener = listener_;
  env.peer = peer_;
  env.scheme = tls_ ? "https" : "http";
  if (tls_) env.client_certificate = tls_->client_certificate;
  if (tls_) env.tls_version = tls_->session.version();
  env.want_write = [this] { schedule_flush(); };  // only called while this connection lives
  const config::Listener& l = listener_->config();
  Http2Settings settings;
  settings.max_concurrent_streams = l.http2.max_concurrent_streams;
  settings.max_header_list_bytes =
      static_cast<uint32_t>(std::min<uint64_t>(l.limits.max_request_header_bytes, UINT32_MAX));
  settings.max_headers = l.limits.max_request_headers;
  h2_ = std::make_unique<Http2Codec>(std::move(env), settings);
  schedule_flush();  // the server's SETTINGS
}

void Http1Connection::schedule_flush() {
  if (flush_deferred_ || closed_) return;
  flush_deferred_ = true;
  asio::defer(socket_.get_executor(), [self = shared_from_this()] {
    self->flush_deferred_ = false;
    self->flush();
  });
}

void Http1Connection::arm_idle_timer() {
  deadline_.expire_after(listener_->config().limits.idle_timeout, weak_from_this());
}

void Http1Connection::arm_header_timer() {
  const config::Limits& l = listener_->config().limits;
  request_start_ = LazyTimer::Clock::now();
  config::Duration d = l.header_timeout;
  if (l.request_timeout.count() > 0) d = std::min(d, l.request_timeout);
  deadline_.expire_after(d, weak_from_this());
}

void Http1Connection::arm_body_timer() {
  const config::Limits& l = listener_->config().limits;
  LazyTimer::Clock::duration d = l.body_timeout;
  if (l.request_timeout.count() > 0) {
    d = std::min(d, request_start_ + l.request_timeout - LazyTimer::Clock::now());
  }
  deadline_.expire_after(d, weak_from_this());
}

void Http1Connection::arm_paused_timer() {
  const config::Limits& l = listener_->config().limits;
  if (l.request_timeout.count() == 0) {
    deadline_.cancel();
    return;
  }
  deadline_.expire_after(request_start_ + l.request_timeout - LazyTimer::Clock::now(),
                         weak_from_this());
}

bool Http1Connection::request_time_is_up() const {
  const config::Duration limit = listener_->config().limits.request_timeout;
  return limit.count() > 0 && LazyTimer::Clock::now() >= request_start_ + limit;
}

void Http1Connection::on_deadline() {
  if (tls_ && !tls_->session.handshake_done() && !closed_) {
    listener_->stats().tls_handshakes_timed_out.add();
    close();
    return;
  }
  if (lingering_) {
    error_code ignored;
    socket_.close(ignored);  // fails the pending linger read, which unregisters
    return;
  }
  if (closed_ || tunnel_) return;  // a tunnel's idle timeout is the router's
  if (h2_) {
    // Idle: no stream open for idle_timeout. Streams in progress have their route timeouts.
    if (h2_->active_streams() == 0) {
      // GOAWAY, then the close once it is written (flush sees the session finished).
      h2_->shutdown();
      flush();
    } else {
      arm_idle_timer();
    }
    return;
  }
  if (!stream_) {
    if (!request_started_) {
      close();  // idle keep-alive connection
      return;
    }
    // The head did not arrive in time (header_timeout, or request_timeout when shorter):
    // answer 408 and close (like nginx).
    w().out +=
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
        "content-length: 16\r\nconnection: close\r\n\r\nRequest Timeout\n";
    close_when_flushed_ = true;
    flush();
    return;
  }
  if (request_complete_) return;
  if (paused_ && !request_time_is_up()) return;  // a stale body deadline; we hold the client
  // A client that pauses its body for body_timeout, or has not sent all of its request within
  // request_timeout, gives up its connection: the request can never complete, and an upstream
  // may be waiting on it.
  close_after_response_ = true;
  stream_->reset(request_time_is_up() ? "request timeout" : "request body timeout");
  if (!stream_->response_started()) {
    stream_->send_local_reply(408, "Request Timeout\n", {});
  } else {
    abort_response();
  }
}

void Http1Connection::drain() {
  if (h2_) {
    draining_ = true;
    h2_->shutdown();  // GOAWAY; the connection closes once its streams are done
    schedule_flush();
    return;
  }
  draining_ = true;
  close_after_response_ = true;
  if (!stream_) close();
}

void Http1Connection::graceful_close() {
  if (closed_) return;
  closed_ = true;
  deadline_.cancel();
  if (stream_) stream_->reset("connection closed");
  if (h2_) h2_->reset_all("connection closed");
  // Half-close, then read and discard what the client is still sending for a moment: closing
  // with unread bytes makes the kernel send RST, which can destroy the response in the
  // client's receive buffer before it reads it (a 413 to a large upload, say).
  error_code ignored;
  if (tls_ && !writing_) {
    // close_notify first, so the client can tell a complete stream from a truncated one.
    tls_->session.shutdown();
    send_tls_output_now();
  }
  socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  lingering_ = true;
  deadline_.expire_after(std::chrono::seconds(2), weak_from_this());
  linger_read();
}

void Http1Connection::linger_read() {
  if (w().read_buf.size() < 4096) w().read_buf.resize(4096);
  socket_.async_read_some(asio::buffer(w().read_buf),
                          [self = shared_from_this()](const error_code& ec, size_t) {
                            if (ec) {
                              error_code ignored;
                              self->deadline_.cancel();
                              self->socket_.close(ignored);
                              self->unregister();
                              return;
                            }
                            self->linger_read();
                          });
}

void Http1Connection::close() {
  if (closed_) {
    if (lingering_) {
      // Stopping: no more waiting for the client to finish sending.
      lingering_ = false;
      error_code ignored;
      socket_.close(ignored);  // fails the linger read, which unregisters
    }
    return;
  }
  closed_ = true;
  deadline_.cancel();
  error_code ignored;
  socket_.close(ignored);
  if (stream_) stream_->reset("connection closed");
  if (h2_) h2_->reset_all("connection closed");
  unregister();  // also destroys the stream, later: close() may run inside its callbacks
}

}  // namespace sluice
