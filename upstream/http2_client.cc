#include "upstream/http2_client.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <charconv>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "core/nghttp2_nv.h"
#include "upstream/pool/host_pool.h"

namespace sluice::upstream {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

constexpr size_t kReadSize = 64 * 1024;
constexpr size_t kHighWatermark = 256 * 1024;  // request body queued per stream
constexpr size_t kLowWatermark = 64 * 1024;
constexpr int32_t kStreamWindow = 256 * 1024;  // response bytes in flight per stream
constexpr int32_t kConnectionWindow = 16 * 1024 * 1024;
constexpr size_t kMaxResponseHeaderBytes = 64 * 1024;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return out;
}

// Header fields as nghttp2 wants them; `storage` owns the lowered names.
struct NvList {
  std::vector<std::string> storage;
  std::vector<nghttp2_nv> nva;

  void add(std::string name, std::string_view value) {
    storage.push_back(std::move(name));
    storage.emplace_back(value);
  }
  nghttp2_nv* build() {
    nva.clear();
    for (size_t i = 0; i + 1 < storage.size(); i += 2) {
      nva.push_back(make_nv(storage[i], storage[i + 1]));
    }
    return nva.data();
  }
};

void add_fields(NvList& list, const HeaderMap& headers) {
  for (const auto& h : headers) {
    // Host travels as :authority.
    if (is_connection_specific(h.name) || iequals(h.name, "host")) continue;
    // TE is hop-by-hop; HTTP/2 allows only "trailers", which gRPC servers require.
    if (iequals(h.name, "te") && !iequals(h.value, "trailers")) continue;
    list.add(lower(h.name), h.value);
  }
}

}  // namespace

struct Http2ClientCallbacks {
  static Http2ClientConnection& conn(void* p) { return *static_cast<Http2ClientConnection*>(p); }
  static std::shared_ptr<Http2ClientStream> stream(Http2ClientConnection& c, int32_t id) {
    auto it = c.streams_.find(id);
    return it == c.streams_.end() ? nullptr : it->second;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* p) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    auto s = stream(conn(p), frame->hd.stream_id);
    if (!s) return 0;
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    s->header_bytes_ += namelen + valuelen + 32;
    if (s->header_bytes_ > kMaxResponseHeaderBytes) {
      s->fail(
          Error{ErrorKind::bad_response, ErrorSource::upstream, false, "response head too large"});
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets the stream
    }
    if (n == ":status") {
      // nghttp2 has checked it is three digits.
      std::from_chars(v.data(), v.data() + v.size(), s->head_.status);
    } else if (!s->head_done_) {
      s->head_.headers.add(n, v);
    } else {
      s->trailers_in_.add(n, v);
    }
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* p) {
    Http2ClientConnection& c = conn(p);
    if (frame->hd.type == NGHTTP2_GOAWAY) {
      c.goaway_ = true;
      c.goaway_last_id_ = frame->goaway.last_stream_id;
      return 0;
    }
    if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK) && c.ready_) {
      auto ready = std::move(c.ready_);
      c.ready_ = nullptr;
      c.idle_timer_.cancel();
      ready(true);
      c.check_idle();
      return 0;
    }
    auto s = stream(c, frame->hd.stream_id);
    if (!s) return 0;
    const bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (frame->hd.type == NGHTTP2_HEADERS) {
      if (!s->head_done_) {
        if (s->head_.status < 200) {
          // Interim: the proxy answers Expect itself, other 1xx are passed on.
          if (s->head_.status != 100 && s->handler_) s->handler_->on_upstream_1xx(s->head_);
          s->head_ = ResponseHead{};
          return 0;
        }
        s->head_done_ = true;
        s->head_.version = 20;
        s->response_done_ = end;
        if (s->handler_) s->handler_->on_upstream_head(s->head_, end);
      } else {
        s->response_done_ = true;  // trailers always end the stream
        if (s->handler_) s->handler_->on_upstream_trailers(s->trailers_in_);
      }
    } else if (frame->hd.type == NGHTTP2_DATA) {
      if (!s->body_in_.empty() || end) {
        s->response_done_ = end;
        if (s->handler_) s->handler_->on_upstream_data(s->body_in_, end);
        s->body_in_.clear();
      }
    } else {
      return 0;
    }
    if (s->response_done_) {
      s->handler_ = nullptr;
      // A complete response before the whole request: the server does not want the rest.
      if (!s->request_done_) {
        nghttp2_submit_rst_stream(c.session_, NGHTTP2_FLAG_NONE, s->id_, NGHTTP2_NO_ERROR);
      }
    }
    return 0;
  }

  static int on_data_chunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data,
                           size_t len, void* p) {
    auto s = stream(conn(p), id);
    if (!s || !s->handler_) {
      nghttp2_session_consume(session, id, len);  // nobody reads it: keep the window open
      return 0;
    }
    s->body_in_.append(reinterpret_cast<const char*>(data), len);
    if (s->paused_) {
      s->unconsumed_ += len;
    } else {
      nghttp2_session_consume(session, id, len);
    }
    return 0;
  }

  static int on_stream_close(nghttp2_session*, int32_t id, uint32_t error_code, void* p) {
    Http2ClientConnection& c = conn(p);
    auto it = c.streams_.find(id);
    if (it == c.streams_.end()) return 0;
    auto s = std::move(it->second);
    c.streams_.erase(it);
    if (s->handler_ && !s->response_done_) {
      // Not processed by the server: safe to send again elsewhere (RFC 9113 §8.7).
      bool refused = error_code == NGHTTP2_REFUSED_STREAM || (c.goaway_ && id > c.goaway_last_id_);
      std::string detail =
          refused ? "upstream refused the stream"
                  : std::string("upstream reset the stream: ") + nghttp2_http2_strerror(error_code);
      s->fail(Error{ErrorKind::upstream_reset, ErrorSource::upstream, refused && !s->head_done_,
                    std::move(detail)});
    }
    c.check_idle();
    return 0;
  }

  static int on_frame_not_send(nghttp2_session*, const nghttp2_frame* frame, int lib_error,
                               void* p) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    Http2ClientConnection& c = conn(p);
    auto it = c.streams_.find(frame->hd.stream_id);
    if (it == c.streams_.end()) return 0;
    auto s = std::move(it->second);
    c.streams_.erase(it);
    // The request never left: another connection can take it.
    s->fail(Error{ErrorKind::upstream_reset, ErrorSource::upstream, true,
                  std::string("request not sent: ") + nghttp2_strerror(lib_error)});
    return 0;
  }

  static ssize_t read_body(nghttp2_session* session, int32_t id, uint8_t* buf, size_t length,
                           uint32_t* flags, nghttp2_data_source*, void* p) {
    auto s = stream(conn(p), id);
    if (!s) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    size_t n = std::min(length, s->out_.size() - s->out_pos_);
    std::copy_n(s->out_.data() + s->out_pos_, n, buf);
    s->out_pos_ += n;
    if (s->out_pos_ == s->out_.size()) {
      s->out_.clear();
      s->out_pos_ = 0;
      if (s->request_end_) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        s->request_done_ = true;
        if (s->has_trailers_) {
          *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
          NvList list;
          add_fields(list, s->trailers_out_);
          nghttp2_nv* nva = list.build();
          nghttp2_submit_trailer(session, id, nva, list.nva.size());
        }
      } else if (n == 0) {
        s->deferred_ = true;
        return NGHTTP2_ERR_DEFERRED;
      }
    } else if (s->out_pos_ > kLowWatermark) {
      s->out_.erase(0, s->out_pos_);
      s->out_pos_ = 0;
    }
    if (s->want_writable_ && s->out_.size() - s->out_pos_ < kLowWatermark) {
      s->want_writable_ = false;
      // Not from inside nghttp2: the router may write more at once.
      asio::post(conn(p).socket_.get_executor(), [s] {
        if (s->handler_) s->handler_->on_upstream_writable();
      });
    }
    return static_cast<ssize_t>(n);
  }
};

Http2ClientConnection::Http2ClientConnection(asio::ip::tcp::socket socket,
                                             std::unique_ptr<TlsSession> tls,
                                             std::weak_ptr<HostPool> pool, uint32_t max_streams,
                                             std::chrono::milliseconds idle_timeout)
    : socket_(std::move(socket)),
      tls_(std::move(tls)),
      pool_(std::move(pool)),
      max_streams_(max_streams),
      idle_timeout_(idle_timeout),
      idle_timer_(socket_.get_executor()) {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_header_callback(cbs, Http2ClientCallbacks::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, Http2ClientCallbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs,
                                                            Http2ClientCallbacks::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
                                                         Http2ClientCallbacks::on_stream_close);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs,
                                                           Http2ClientCallbacks::on_frame_not_send);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // Response windows open as the downstream takes the bytes (see pause_reading).
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_session_client_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  read_buf_.resize(kReadSize);
}

Http2ClientConnection::~Http2ClientConnection() { nghttp2_session_del(session_); }

void Http2ClientConnection::start(std::function<void(bool)> ready,
                                  std::chrono::milliseconds timeout) {
  ready_ = std::move(ready);
  idle_timer_.expires_after(timeout);
  idle_timer_.async_wait([weak = weak_from_this()](const error_code& ec) {
    auto self = weak.lock();
    if (!ec && self && self->ready_) self->fail("no SETTINGS from the upstream in time");
  });
  nghttp2_settings_entry entries[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamWindow},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, kMaxResponseHeaderBytes},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, entries, std::size(entries));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
  flush();
  read_more();
}

uint32_t Http2ClientConnection::stream_limit() const {
  return std::min(max_streams_, nghttp2_session_get_remote_settings(
                                    session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS));
}

bool Http2ClientConnection::can_take_stream() const {
  if (closed_ || goaway_ || draining_) return false;
  return streams_.size() + reserved_ < stream_limit();
}

std::shared_ptr<Http2ClientStream> Http2ClientConnection::new_stream() {
  ++reserved_;
  idle_timer_.cancel();
  return std::make_shared<Http2ClientStream>(shared_from_this(), served_ > 0);
}

void Http2ClientConnection::schedule_flush() {
  if (flush_posted_ || closed_) return;
  flush_posted_ = true;
  // Frames queued by several streams in this turn go out in one write.
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    self->flush_posted_ = false;
    self->flush();
  });
}

void Http2ClientConnection::flush() {
  if (writing_ || closed_) return;
  std::string plain;
  for (;;) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      fail(std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(n)));
      return;
    }
    if (n == 0) break;
    plain.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  if (tls_) {
    if (!plain.empty() && tls_->write(plain) != TlsSession::Result::ok) {
      fail("TLS: " + tls_->error());
      return;
    }
    tls_->take_output(out_);
  } else {
    out_.swap(plain);
  }
  if (out_.empty()) {
    if (nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0) {
      // GOAWAY exchanged (ours after a protocol error, or the server's): the session is over.
      fail("the HTTP/2 session with the upstream ended");
    }
    return;
  }
  writing_ = true;
  asio::async_write(socket_, asio::buffer(out_),
                    [self = shared_from_this()](const error_code& ec, size_t) {
                      self->writing_ = false;
                      self->out_.clear();
                      if (ec) {
                        if (!self->closed_) self->fail("write to upstream failed: " + ec.message());
                        return;
                      }
                      self->flush();
                    });
}

void Http2ClientConnection::read_more() {
  if (reading_ || closed_) return;
  reading_ = true;
  if (tls_ && tls_->more()) {
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->on_read({}, 0); });
    return;
  }
  socket_.async_read_some(
      asio::buffer(read_buf_),
      [self = shared_from_this()](const error_code& ec, size_t n) { self->on_read(ec, n); });
}

void Http2ClientConnection::on_read(const error_code& ec, size_t n) {
  reading_ = false;
  if (closed_) return;
  if (ec) {
    fail(ec == asio::error::eof ? "upstream closed the connection" : ec.message());
    return;
  }
  if (tls_) {
    switch (tls_->decrypt_in_place(read_buf_.data(), &n, read_buf_.size())) {
      case TlsSession::Result::ok:
        break;
      case TlsSession::Result::closed:
        fail("upstream closed the connection (close_notify)");
        return;
      case TlsSession::Result::error:
        fail("TLS: " + tls_->error());
        return;
    }
  }
  auto self = shared_from_this();  // callbacks may drop the last stream holding it
  ssize_t rc =
      nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(read_buf_.data()), n);
  if (rc < 0) {
    fail(std::string("HTTP/2 error from upstream: ") + nghttp2_strerror(static_cast<int>(rc)));
    return;
  }
  flush();
  read_more();
}

void Http2ClientConnection::fail(const std::string& detail) {
  if (closed_) return;
  auto self = shared_from_this();
  auto streams = std::move(streams_);
  streams_.clear();
  close();
  for (auto& [id, s] : streams) {
    // Streams the server had not seen (after its GOAWAY) can go elsewhere.
    bool unprocessed = goaway_ && id > goaway_last_id_ && !s->head_done_;
    s->fail(Error{ErrorKind::upstream_reset, ErrorSource::upstream, unprocessed,
                  s->head_done_ ? "upstream connection lost mid-response: " + detail : detail});
  }
}

void Http2ClientConnection::close() {
  if (closed_) return;
  closed_ = true;
  idle_timer_.cancel();
  error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto& [id, s] : streams) {
    s->fail(Error{ErrorKind::upstream_reset, ErrorSource::upstream, false,
                  "upstream connection closed"});
  }
  if (ready_) {
    auto ready = std::move(ready_);
    ready_ = nullptr;
    ready(false);
  }
  if (auto pool = pool_.lock()) pool->remove_h2(this);
}

void Http2ClientConnection::drain() {
  draining_ = true;
  check_idle();
}

void Http2ClientConnection::check_idle() {
  if (closed_ || ready_ || !streams_.empty() || reserved_ > 0) return;
  if (goaway_ || draining_) {
    close();
    return;
  }
  idle_timer_.expires_after(idle_timeout_);
  idle_timer_.async_wait([weak = weak_from_this()](const error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->closed_ || !self->streams_.empty() || self->reserved_ > 0) return;
    // Say goodbye properly: GOAWAY, then close once it is written.
    self->draining_ = true;
    nghttp2_session_terminate_session(self->session_, NGHTTP2_NO_ERROR);
    self->flush();
  });
}

void Http2ClientStream::start_request(ResponseHandler& handler, const RequestHead& head,
                                      BodyFraming framing, bool) {
  handler_ = &handler;
  if (!started_) {
    started_ = true;
    --conn_->reserved_;
  }
  if (conn_->closed_ || conn_->goaway_) {
    post_failure(Error{ErrorKind::upstream_reset, ErrorSource::upstream, true,
                       "upstream connection closed before the request was sent"});
    return;
  }
  NvList list;
  list.storage.reserve(8 + 2 * head.headers.size());
  list.add(":method", head.method);
  list.add(":scheme", conn_->tls_ ? "https" : "http");
  // The Host field is what an HTTP/1.1 upstream would get (header rules may have set it); the
  // client's authority only when there is none.
  std::string_view authority = head.headers.get("host").value_or(head.authority);
  if (head.method != "CONNECT") list.add(":path", head.target);
  list.add(":authority", authority);
  add_fields(list, head.headers);
  request_end_ = request_done_ = framing == BodyFraming::none;
  nghttp2_data_provider provider;
  provider.source.ptr = nullptr;
  provider.read_callback = &Http2ClientCallbacks::read_body;
  nghttp2_nv* nva = list.build();
  int32_t id = nghttp2_submit_request(conn_->session_, nullptr, nva, list.nva.size(),
                                      request_end_ ? nullptr : &provider, nullptr);
  if (id < 0) {
    post_failure(Error{ErrorKind::upstream_reset, ErrorSource::upstream, true,
                       std::string("HTTP/2 request not submitted: ") + nghttp2_strerror(id)});
    return;
  }
  id_ = id;
  ++conn_->served_;
  conn_->streams_[id] = shared_from_this();
  conn_->schedule_flush();
}

bool Http2ClientStream::write_body(std::string_view data, bool end_stream) {
  if (id_ < 0 || request_end_) return true;
  out_.append(data);
  if (end_stream) request_end_ = true;
  resume_body();
  if (out_.size() - out_pos_ > kHighWatermark) {
    want_writable_ = true;
    return false;
  }
  return true;
}

void Http2ClientStream::write_trailers(const HeaderMap& trailers) {
  if (id_ < 0 || request_end_) return;
  trailers_out_ = trailers;
  has_trailers_ = true;
  request_end_ = true;
  resume_body();
}

void Http2ClientStream::resume_body() {
  if (deferred_) {
    deferred_ = false;
    nghttp2_session_resume_data(conn_->session_, id_);
  }
  conn_->schedule_flush();
}

void Http2ClientStream::pause_reading() { paused_ = true; }

void Http2ClientStream::resume_reading() {
  if (!paused_) return;
  paused_ = false;
  if (unconsumed_ > 0 && id_ > 0 && !conn_->closed_) {
    nghttp2_session_consume(conn_->session_, id_, unconsumed_);
    unconsumed_ = 0;
    conn_->schedule_flush();
  }
}

void Http2ClientStream::detach(ResponseHandler& handler) {
  if (handler_ != &handler) return;
  handler_ = nullptr;
  if (id_ > 0 && !conn_->closed_ && conn_->streams_.count(id_)) {
    nghttp2_submit_rst_stream(conn_->session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
    if (unconsumed_ > 0) nghttp2_session_consume_connection(conn_->session_, unconsumed_);
    unconsumed_ = 0;
    conn_->schedule_flush();
  }
}

void Http2ClientStream::release_unused() {
  if (started_) return;
  started_ = true;
  --conn_->reserved_;
  conn_->check_idle();
}

void Http2ClientStream::fail(const Error& error) {
  ResponseHandler* h = handler_;
  handler_ = nullptr;
  if (h) h->on_upstream_error(error, head_done_);
}

void Http2ClientStream::post_failure(Error error) {
  asio::post(conn_->socket_.get_executor(),
             [self = shared_from_this(), error = std::move(error)] { self->fail(error); });
}

}  // namespace sluice::upstream
