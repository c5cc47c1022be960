#include "proxy/http2_codec.h"

#include <nghttp2/nghttp2.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cctype>

#include <boost/asio/post.hpp>

#include "core/nghttp2_nv.h"
#include "core/stats.h"
#include "proxy/listener.h"

namespace sluice {

namespace {

constexpr size_t kHighWatermark = 256 * 1024;  // response bytes queued per stream

constexpr size_t kLowWatermark = 64 * 1024;
constexpr int32_t kInitialWindow = 64 * 1024;  // request body bytes in flight per stream
constexpr size_t kMaxSkippedRanges = 16;       // per connection; see Http2Codec::skipped_ids_

// A fresh Sec-WebSocket-Key (RFC 6455 §4.1: 16 random bytes, base64): an HTTP/1.1 backend
// needs one, and a client of WebSocket over HTTP/2 sends none (RFC 8441 §5). A nonce, not a
// secret: should RAND_bytes fail, the zeros still make a well-formed key.
std::string websocket_key() {
  unsigned char bytes[16] = {};
  RAND_bytes(bytes, sizeof(bytes));
  unsigned char out[32];
  int n = EVP_EncodeBlock(out, bytes, sizeof(bytes));
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

// Reused to submit header blocks; nghttp2 copies what it points to.
thread_local std::vector<nghttp2_nv> t_nva;

}  // namespace

// One HTTP/2 stream: collects the request head, runs it as a Stream, and queues the response
// for nghttp2's data provider.
class Http2Stream : public StreamEncoder {
 public:
  Http2Stream(Http2Codec& codec, int32_t id) : codec_(codec), id_(id) {}
  ~Http2Stream() override { stream_.reset(); }

  using Clock = LazyTimer::Clock;
  // When the client must have sent more of its request by (the head until header_timeout, each
  // body piece within body_timeout unless we hold the body back, all of it within
  // request_timeout), or max() when nothing is awaited.
  Clock::time_point request_deadline(const config::Limits& l) const {
    Clock::time_point t = Clock::time_point::max();
    if (request_ended_ || timed_out_ || tunnel_) return t;
    if (l.request_timeout.count() > 0) t = begun_ + l.request_timeout;
    if (!stream_) return std::min(t, begun_ + l.header_timeout);
    if (!paused_) t = std::min(t, last_read_ + l.body_timeout);
    return t;
  }
  // The deadline passed. False when the head is incomplete: the connection is inside its header
  // block, where nothing else may be sent or received, so the whole connection must go.
  bool expire_request(const config::Limits& l, Clock::time_point now) {
    timed_out_ = true;
    if (!stream_) return false;
    const bool whole = l.request_timeout.count() > 0 && now >= begun_ + l.request_timeout;
    stream_->reset(whole ? "request timeout" : "request body timeout");
    if (!stream_->response_started()) {
      stream_->send_local_reply(408, "Request Timeout\n", {});  // then RST_STREAM(NO_ERROR)
    } else {
      abort_response();
    }
    return true;
  }

  bool add_header(std::string_view name, std::string_view value) {
    // The limits HTTP/1.1 answers with 431; here the stream is refused. 32 bytes per field as
    // in SETTINGS_MAX_HEADER_LIST_SIZE's accounting (RFC 9113 §6.5.2).
    header_bytes_ += name.size() + value.size() + 32;
    if (++header_count_ > codec_.settings_.max_headers ||
        header_bytes_ > codec_.settings_.max_header_list_bytes) {
      return false;
    }
    if (name.empty()) return false;
    if (name.front() == ':') {
      if (name == ":method") {
        head_.method = value;
      } else if (name == ":path") {
        head_.target = value;
      } else if (name == ":authority") {
        head_.authority = value;
      } else if (name == ":scheme") {
        scheme_seen_ = true;
      } else if (name == ":protocol") {
        // Extended CONNECT (RFC 8441); nghttp2 allows it only with CONNECT.
        head_.upgrade.clear();
        for (char c : value) {
          head_.upgrade += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
      }
      return true;  // nghttp2 rejects unknown pseudo-headers itself
    }
    if (name == "host") {
      if (head_.authority.empty()) host_ = value;  // :authority wins
      return true;
    }
    // TE is hop-by-hop, but nghttp2 lets only "trailers" through, which gRPC servers need to
    // see; the router drops it for HTTP/1.1 upstreams.
    head_.headers.add(name, value);
    return true;
  }

  bool add_trailer(std::string_view name, std::string_view value) {
    header_bytes_ += name.size() + value.size() + 32;
    if (++header_count_ > codec_.settings_.max_headers ||
        header_bytes_ > codec_.settings_.max_header_list_bytes) {
      return false;
    }
    trailers_.add(name, value);
    return true;
  }

  // The request head is complete.
  void start(bool end_stream) {
    Http2Codec::Env& env = codec_.env_;
    if (head_.authority.empty()) head_.authority = host_;
    head_.version = 20;
    head_.scheme = env.scheme;
    // The HTTP/1.1 upstream needs Host; it is the authority.
    if (!head_.authority.empty()) head_.headers.add("host", head_.authority);
    set_forwarded_client_cert(head_.headers, env.client_certificate);
    if (head_.method == "CONNECT" && !head_.upgrade.empty()) {
      // RFC 8441 §5: an extended CONNECT is the HTTP/1.1 GET with Upgrade; the stream's DATA
      // frames carry the new protocol both ways once the backend has switched.
      extended_connect_ = true;
      head_.method = "GET";
      if (head_.upgrade == "websocket" && !head_.headers.contains("sec-websocket-key")) {
        head_.headers.add("sec-websocket-key", websocket_key());
      }
    }
    SnapshotPtr snapshot = env.listener->snapshot();
    StreamInfo info;
    info.listener = env.listener->config().name;
    info.peer_ip = info.client_ip = env.peer.address();
    info.peer_port = env.peer.port();
    info.tls_version = env.tls_version;
    const FilterChainFactory& chain = *snapshot->chains.at(info.listener);
    stream_ =
        std::make_unique<Stream>(*env.ctx, *this, std::move(snapshot), chain, std::move(info));
    request_ended_ = end_stream;
    last_read_ = Clock::now();
    if (!end_stream) codec_.watch_request(request_deadline(env.listener->config().limits));
    stream_->decode_headers(std::move(head_), end_stream);
  }

  void data(std::string_view chunk) {
    if (!stream_) return;
    last_read_ = Clock::now();
    body_.assign(chunk);
    stream_->decode_data(body_, false);
  }
  void end_request() {
    if (!stream_ || request_ended_) return;
    request_ended_ = true;
    body_.clear();
    stream_->decode_data(body_, true);
  }
  void end_request_with_trailers() {
    if (!stream_ || request_ended_) return;
    request_ended_ = true;
    stream_->decode_trailers(std::move(trailers_));
  }
  void closed(uint32_t error_code) {
    if (stream_ && !stream_->response_complete()) {
      stream_->reset(error_code == NGHTTP2_NO_ERROR ? "stream closed" : "stream reset");
    }
  }
  // Request body bytes nghttp2 may acknowledge (WINDOW_UPDATE) now or when resumed.
  void received(size_t n) {
    if (paused_) {
      unconsumed_ += n;
    } else {
      nghttp2_session_consume(codec_.session_, id_, n);
    }
  }

  // StreamEncoder
  void encode_1xx(const ResponseHead& interim) override {
    ResponseHead head = interim;
    std::string status;
    auto& nva = build_nva(head, status);
    nghttp2_submit_headers(codec_.session_, NGHTTP2_FLAG_NONE, id_, nullptr, nva.data(), nva.size(),
                           nullptr);
    codec_.env_.want_write();
  }
  void encode_100_continue() override {}  // HTTP/2 clients send the body without asking
  void encode_headers(ResponseHead& head, bool end_stream) override {
    if (extended_connect_ && head.status == 101) {
      // The backend switched: over HTTP/2 that is a 2xx to the CONNECT (RFC 8441 §5), and the
      // key's answer belongs to the HTTP/1.1 handshake only.
      head.status = 200;
      head.headers.remove("sec-websocket-accept");
      tunnel_ = true;
    }
    std::string status;
    auto& nva = build_nva(head, status);
    response_ended_ = end_stream;
    nghttp2_data_provider provider;
    provider.source.ptr = this;
    provider.read_callback = &Http2Stream::read_body;
    nghttp2_submit_response(codec_.session_, id_, nva.data(), nva.size(),
                            end_stream ? nullptr : &provider);
    if (end_stream) stop_unfinished_request();
    codec_.env_.want_write();
  }
  void encode_data(std::string_view data, bool end_stream) override {
    out_.append(data);
    if (end_stream) response_ended_ = true;
    if (deferred_) {
      deferred_ = false;
      nghttp2_session_resume_data(codec_.session_, id_);
    }
    if (!above_watermark_ && out_.size() > kHighWatermark && stream_) {
      above_watermark_ = true;
      stream_->on_downstream_watermark(true);
    }
    codec_.env_.want_write();
  }
  void encode_trailers(const HeaderMap& trailers) override {
    trailers_out_ = trailers;
    has_trailers_ = true;
    response_ended_ = true;
    if (deferred_) {
      deferred_ = false;
      nghttp2_session_resume_data(codec_.session_, id_);
    }
    codec_.env_.want_write();
  }
  void abort_response() override {
    nghttp2_submit_rst_stream(codec_.session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_INTERNAL_ERROR);
    codec_.env_.want_write();
  }
  void pause_request_body() override { paused_ = true; }
  void resume_request_body() override {
    if (!paused_) return;
    paused_ = false;
    last_read_ = Clock::now();  // the body timeout starts again from here
    codec_.watch_request(request_deadline(codec_.env_.listener->config().limits));
    if (unconsumed_ > 0) {
      nghttp2_session_consume(codec_.session_, id_, unconsumed_);
      unconsumed_ = 0;
      codec_.env_.want_write();
    }
  }

 private:
  // The fields point into `head` (names lowered in place; nghttp2 copies them on submit) and
  // `status`.
  std::vector<nghttp2_nv>& build_nva(ResponseHead& head, std::string& status) {
    static const std::string kStatus = ":status";
    status = std::to_string(head.status);
    auto& nva = t_nva;
    nva.clear();
    nva.push_back(make_nv(kStatus, status));
    add_fields(head.headers, nva);
    return nva;
  }
  static void add_fields(HeaderMap& headers, std::vector<nghttp2_nv>& nva) {
    headers.lowercase_names();
    for (const Header& h : headers) {
      if (is_connection_specific(h.name)) continue;
      nva.push_back(make_nv(h.name, h.value));
    }
  }

  static ssize_t read_body(nghttp2_session* session, int32_t id, uint8_t* buf, size_t length,
                           uint32_t* flags, nghttp2_data_source* source, void*) {
    auto* self = static_cast<Http2Stream*>(source->ptr);
    size_t n = std::min(length, self->out_.size() - self->out_pos_);
    std::copy_n(self->out_.data() + self->out_pos_, n, buf);
    self->out_pos_ += n;
    if (self->out_pos_ == self->out_.size()) {
      self->out_.clear();
      self->out_pos_ = 0;
      if (self->response_ended_) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (self->has_trailers_) {
          *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
          auto& nva = t_nva;
          nva.clear();
          add_fields(self->trailers_out_, nva);
          nghttp2_submit_trailer(session, id, nva.data(), nva.size());
        }
        self->stop_unfinished_request();
      } else if (n == 0) {
        self->deferred_ = true;
        return NGHTTP2_ERR_DEFERRED;
      }
    }
    if (self->above_watermark_ && self->out_.size() - self->out_pos_ < kLowWatermark &&
        self->stream_) {
      self->above_watermark_ = false;
      self->stream_->on_downstream_watermark(false);
    }
    return static_cast<ssize_t>(n);
  }

  // The response is complete but the request is not: tell the client to stop sending
  // (RST_STREAM NO_ERROR, RFC 9113 §8.1), queued after the response's last frame, instead of
  // the stream staying open, holding a concurrency slot, until a stalled client finishes.
  void stop_unfinished_request() {
    if (request_ended_) return;
    request_ended_ = true;
    nghttp2_submit_rst_stream(codec_.session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_NO_ERROR);
  }

  Http2Codec& codec_;
  int32_t id_;
  Clock::time_point begun_ = Clock::now();  // created for the first byte of the head
  Clock::time_point last_read_{};           // the head's end, or the last body piece
  bool timed_out_ = false;
  RequestHead head_;
  std::string host_;
  size_t header_count_ = 0;
  size_t header_bytes_ = 0;
  bool scheme_seen_ = false;
  bool extended_connect_ = false;  // a CONNECT with :protocol, sent upstream as an upgrade
  bool tunnel_ = false;            // ... which the backend accepted: no request timeouts
  std::unique_ptr<Stream> stream_;
  std::string body_;
  HeaderMap trailers_;      // request trailers being received
  HeaderMap trailers_out_;  // response trailers, sent after the body
  bool has_trailers_ = false;
  std::string out_;  // response body not yet taken by nghttp2
  size_t out_pos_ = 0;
  size_t unconsumed_ = 0;
  bool request_ended_ = false;
  bool response_ended_ = false;
  bool deferred_ = false;
  bool paused_ = false;
  bool above_watermark_ = false;
};

struct Http2Callbacks {
  static Http2Codec& codec(void* p) { return *static_cast<Http2Codec*>(p); }
  static Http2Stream* stream(Http2Codec& c, int32_t id) {
    if (id == c.last_stream_id_) return c.last_stream_;
    auto it = c.streams_.find(id);
    if (it == c.streams_.end()) return nullptr;
    c.last_stream_id_ = id;
    c.last_stream_ = it->second.get();
    return c.last_stream_;
  }

  // nghttp2 ignores HEADERS on a client stream id below the highest one it has seen unless it
  // still holds that stream as closed: it cannot tell them from trailers that crossed our
  // RST_STREAM on the wire, which must be ignored (RFC 9113 §5.1). So "stream 5, then 3"
  // went unnoticed, stream 5 was answered and no GOAWAY came (h2spec http2/5.1.1/2). An id the
  // client skipped was never opened, so HEADERS on it are the connection error of §5.1.1 for
  // certain. Checked on the frame header, before nghttp2 processes (and drops) the frame.
  static int on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* p) {
    if (hd->type != NGHTTP2_HEADERS || hd->stream_id % 2 == 0) return 0;  // even: nghttp2's
    // A callback failure ends receive(), which sends GOAWAY(PROTOCOL_ERROR) and closes.
    return codec(p).check_client_stream_id(hd->stream_id) ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
  }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* p) {
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
      return 0;
    }
    Http2Codec& c = codec(p);
    auto [it, added] = c.streams_.emplace(frame->hd.stream_id,
                                          std::make_unique<Http2Stream>(c, frame->hd.stream_id));
    if (added) c.watch_request(it->second->request_deadline(c.env_.listener->config().limits));
    return 0;
  }

  static int on_header(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* p) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    Http2Stream* s = stream(codec(p), frame->hd.stream_id);
    if (!s) return 0;  // a stream already gone
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    bool trailer = frame->headers.cat == NGHTTP2_HCAT_HEADERS;
    if (!(trailer ? s->add_trailer(n, v) : s->add_header(n, v))) {
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                NGHTTP2_REFUSED_STREAM);
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* p) {
    Http2Codec& c = codec(p);
    Http2Stream* s = stream(c, frame->hd.stream_id);
    if (!s) return 0;
    const bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      s->start(end);
    } else if (end && frame->hd.type == NGHTTP2_HEADERS) {
      s->end_request_with_trailers();
    } else if (end && frame->hd.type == NGHTTP2_DATA) {
      s->end_request();
    }
    return 0;
  }

  static int on_data_chunk(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                           void* p) {
    Http2Stream* s = stream(codec(p), id);
    if (!s) return 0;
    s->received(len);
    s->data({reinterpret_cast<const char*>(data), len});
    return 0;
  }

  static int on_stream_close(nghttp2_session*, int32_t id, uint32_t error_code, void* p) {
    Http2Codec& c = codec(p);
    auto it = c.streams_.find(id);
    if (it == c.streams_.end()) return 0;
    it->second->closed(error_code);
    c.closed_.push_back(std::move(it->second));
    c.streams_.erase(it);
    if (id == c.last_stream_id_) {
      c.last_stream_id_ = 0;
      c.last_stream_ = nullptr;
    }
    c.schedule_cleanup();
    return 0;
  }
};

Http2Codec::Http2Codec(Env env, const Http2Settings& settings)
    : env_(std::move(env)),
      settings_(settings),
      request_timer_(
          env_.ctx->executor,
          [](void* self) { static_cast<Http2Codec*>(self)->check_request_deadlines(); }, this) {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, Http2Callbacks::on_begin_frame);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, Http2Callbacks::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, Http2Callbacks::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, Http2Callbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, Http2Callbacks::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, Http2Callbacks::on_stream_close);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // Request body windows open as the router takes the bytes, so a slow upstream bounds what
  // a client can push.
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_send_header_block_length(opt, 64 * 1024);
  nghttp2_session_server_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);

  nghttp2_settings_entry entries[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, settings_.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kInitialWindow},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, settings_.max_header_list_bytes},
      // WebSocket over HTTP/2 (RFC 8441).
      {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, entries, std::size(entries));
}

Http2Codec::~Http2Codec() {
  alive_.reset();
  streams_.clear();
  closed_.clear();
  nghttp2_session_del(session_);
}

bool Http2Codec::receive(std::string_view data) {
  if (failed_) return false;  // the connection is closing; nothing more is read
  ssize_t rc = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(data.data()),
                                        data.size());
  if (rc < 0) {
    // A connection error: nghttp2 has queued GOAWAY where it could.
    if (rc != NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
      nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
    }
    failed_ = true;
    return false;
  }
  return true;
}

void Http2Codec::produce(std::string& out) {
  for (;;) {
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n <= 0) break;
    out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
}

bool Http2Codec::finished() const {
  return nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0;
}

void Http2Codec::shutdown() {
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  env_.want_write();
}

void Http2Codec::reset_all(std::string_view reason) {
  for (auto& [id, s] : streams_) s->closed(NGHTTP2_CANCEL);
  (void)reason;
}

bool Http2Codec::check_client_stream_id(int32_t id) {
  if (id > last_client_stream_) {
    // A new stream (nghttp2 may still refuse it, but the id is used up either way).
    if (id > last_client_stream_ + 2) {
      if (skipped_ids_.size() == kMaxSkippedRanges) skipped_ids_.erase(skipped_ids_.begin());
      skipped_ids_.emplace_back(last_client_stream_ + 2, id - 2);
    }
    last_client_stream_ = id;
    return true;
  }
  return std::none_of(skipped_ids_.begin(), skipped_ids_.end(),
                      [id](const auto& r) { return id >= r.first && id <= r.second; });
}

void Http2Codec::watch_request(LazyTimer::Clock::time_point deadline) {
  if (deadline == LazyTimer::Clock::time_point::max()) return;
  if (request_timer_armed_ && deadline >= request_timer_at_) return;  // it fires first
  request_timer_armed_ = true;
  request_timer_at_ = deadline;
  request_timer_.expire_after(deadline - LazyTimer::Clock::now(), alive_);
}

void Http2Codec::check_request_deadlines() {
  request_timer_armed_ = false;
  if (failed_) return;
  const config::Limits& limits = env_.listener->config().limits;
  const auto now = LazyTimer::Clock::now();
  auto next = LazyTimer::Clock::time_point::max();
  std::vector<Http2Stream*> expired;
  for (auto& [id, s] : streams_) {
    const auto deadline = s->request_deadline(limits);
    if (deadline <= now) {
      expired.push_back(s.get());
    } else {
      next = std::min(next, deadline);
    }
  }
  for (Http2Stream* s : expired) {
    if (!s->expire_request(limits, now)) {
      // Stalled inside a header block: GOAWAY, and the connection closes once it is written.
      nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
      failed_ = true;
      break;
    }
  }
  if (!failed_) watch_request(next);
  env_.want_write();
}

void Http2Codec::schedule_cleanup() {
  if (cleanup_posted_) return;
  cleanup_posted_ = true;
  boost::asio::post(env_.ctx->executor, [this, alive = std::weak_ptr<bool>(alive_)] {
    if (alive.expired()) return;
    cleanup_posted_ = false;
    closed_.clear();
  });
}

}  // namespace sluice
