#include "upstream/http1_client.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <boost/asio/write.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

#include "core/beast_fields.h"
#include "upstream/pool/host_pool.h"

namespace sluice::upstream {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;

namespace {
constexpr size_t kReadSize = 64 * 1024;
constexpr size_t kHighWatermark = 256 * 1024;
constexpr size_t kLowWatermark = 64 * 1024;
constexpr uint32_t kMaxResponseHeaderBytes = 64 * 1024;

}  // namespace

// Beast's response parser, turning bytes into head/body/done calls on the connection.
class ResponseParser : public http::basic_parser<false> {
 public:
  explicit ResponseParser(Http1ClientConnection& conn) : conn_(conn) {
    header_limit(kMaxResponseHeaderBytes);
    body_limit(boost::none);
    eager(true);
  }
  ResponseHead head;
  HeaderMap trailers;  // from a chunked body's last chunk
  std::vector<std::string> connection_tokens;

 private:
  void on_request_impl(http::verb, boost::beast::string_view, boost::beast::string_view, int,
                       error_code&) override {}
  void on_response_impl(int code, boost::beast::string_view reason, int version,
                        error_code& ec) override {
    if (version != 10 && version != 11) {
      ec = http::error::bad_version;
      return;
    }
    head.status = static_cast<unsigned>(code);
    head.reason.assign(reason.data(), reason.size());
    head.version = static_cast<unsigned>(version);
  }
  void on_field_impl(http::field known, boost::beast::string_view name,
                     boost::beast::string_view value, error_code&) override {
    std::string_view n(name.data(), name.size());
    std::string_view v(value.data(), value.size());
    if (is_header_done()) {
      if (!is_hop_by_hop(known) && known != http::field::content_length) trailers.add(n, v);
      return;
    }
    if (known == http::field::connection) {
      // Fields named in Connection are hop-by-hop too.
      for_each_list_element(v, [&](std::string_view t) { connection_tokens.emplace_back(t); });
    }
    if (is_hop_by_hop(known)) return;
    head.headers.add(n, v);
  }
  void on_header_impl(error_code&) override {
    if (head.status == 101 && conn_.upgrade_) {
      // The backend switched protocols: its bytes from here on are the tunnel's.
      conn_.tunnel_ = true;
      conn_.parsed_head(std::move(head), false);
      return;
    }
    if (head.status < 200) return;  // interim: handled when its message completes
    for (const auto& t : connection_tokens) head.headers.remove(t);
    auto length = content_length();
    bool no_body =
        conn_.expect_no_body_ || status_has_no_body(head.status) || (length && *length == 0);
    conn_.parsed_head(std::move(head), no_body);
  }
  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
  size_t on_body_impl(boost::beast::string_view body, error_code&) override {
    conn_.parsed_body({body.data(), body.size()});
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, boost::beast::string_view, error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, boost::beast::string_view body, error_code&) override {
    conn_.parsed_body({body.data(), body.size()});
    return body.size();
  }
  void on_finish_impl(error_code&) override {}

  Http1ClientConnection& conn_;
};

Http1ClientConnection::Http1ClientConnection(asio::ip::tcp::socket socket,
                                             std::weak_ptr<HostPool> pool, bool reused_before,
                                             std::unique_ptr<TlsSession> tls)
    : socket_(std::move(socket)),
      pool_(std::move(pool)),
      reused_(reused_before),
      tls_(std::move(tls)) {
  read_buf_.resize(kReadSize);
  // Reads are made here, not by Asio (wait_for_input): they must fail with EAGAIN, where
  // Asio's synchronous read_some would block in poll().
  error_code ignored;
  socket_.non_blocking(true, ignored);
}

Http1ClientConnection::~Http1ClientConnection() = default;

TlsSession::Result Http1ClientConnection::tls_receive(size_t& n) {
  return tls_->decrypt_in_place(read_buf_.data() + read_len_, &n, read_buf_.size() - read_len_);
}

void Http1ClientConnection::start_request(ResponseHandler& handler, const RequestHead& head,
                                          BodyFraming framing, bool expect_no_response_body) {
  handler_ = &handler;
  parser_ = std::make_unique<ResponseParser>(*this);
  expect_no_body_ = expect_no_response_body;
  parser_->skip(expect_no_body_);
  request_chunked_ = framing == BodyFraming::chunked;
  request_ended_ = framing == BodyFraming::none;
  upgrade_ = framing == BodyFraming::upgrade;
  tunnel_ = false;
  request_done_ = false;
  head_received_ = response_done_ = end_delivered_ = false;
  keep_alive_ = true;
  paused_ = false;
  body_bytes_written_ = 0;
  if (idle_watch_) {
    // The idle watch's read stays pending and now reads the response.
    idle_watch_ = false;
    reading_ = true;
  }
  if (!socket_.is_open()) {
    // The idle watch saw the backend close it after the pool handed it out: nothing will be
    // read or written, so say so (later, never from inside this call).
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      self->fail(ErrorKind::upstream_reset, "upstream closed the idle connection");
    });
    return;
  }

  out_.clear();
  out_.reserve(512);
  out_ += head.method;
  out_ += ' ';
  out_ += head.target;
  out_ += " HTTP/1.1\r\n";
  append_fields(head.headers, out_);
  if (request_chunked_) out_ += "Transfer-Encoding: chunked\r\n";
  if (upgrade_) {
    out_ += "Connection: upgrade\r\nUpgrade: ";
    out_ += head.upgrade;
    out_ += "\r\n";
  }
  out_ += "\r\n";
  flush();
  read_more();
}

bool Http1ClientConnection::write_body(std::string_view data, bool end_stream) {
  if (!socket_.is_open()) return true;
  if (!data.empty()) {
    if (request_chunked_) {
      char size_line[24];
      int n = std::snprintf(size_line, sizeof(size_line), "%zx\r\n", data.size());
      out_.append(size_line, static_cast<size_t>(n));
      out_.append(data);
      out_ += "\r\n";
    } else {
      out_.append(data);
    }
    body_bytes_written_ += data.size();
  }
  if (end_stream) {
    request_ended_ = true;
    if (request_chunked_) out_ += "0\r\n\r\n";
  }
  flush();
  if (out_.size() + in_flight_.size() > kHighWatermark) {
    want_writable_ = true;
    return false;
  }
  return true;
}

void Http1ClientConnection::write_trailers(const HeaderMap& trailers) {
  if (!request_chunked_ || !socket_.is_open()) {
    write_body({}, true);  // only a chunked body has room for them
    return;
  }
  request_ended_ = true;
  append_last_chunk(trailers, out_);
  flush();
}

void Http1ClientConnection::flush() {
  if (writing_ || out_.empty() || !socket_.is_open()) {
    if (!writing_ && out_.empty() && request_ended_) {
      request_done_ = true;
      if (tunnel_) half_close();
    }
    return;
  }
  if (tls_) {
    if (tls_->write(out_) != TlsSession::Result::ok) {
      fail(ErrorKind::upstream_reset, tls_->error());
      return;
    }
    out_.clear();
    tls_->take_output(in_flight_);
  } else {
    in_flight_.swap(out_);
    out_.clear();
  }
  writing_ = true;
  asio::async_write(
      socket_, asio::buffer(in_flight_),
      [self = shared_from_this()](const error_code& ec, size_t n) { self->on_write(ec, n); });
}

void Http1ClientConnection::on_write(const error_code& ec, size_t) {
  writing_ = false;
  in_flight_.clear();
  if (ec) {
    // A write error usually means the peer closed; the read side reports the error with
    // better context (a response may even have arrived). Make sure a read is pending.
    keep_alive_ = false;
    if (!reading_ && handler_ && !response_done_) fail(ErrorKind::upstream_reset, ec.message());
    return;
  }
  if (!out_.empty()) {
    flush();
  } else if (request_ended_) {
    request_done_ = true;
    if (tunnel_) half_close();
    if (response_done_) finish_exchange();
  }
  if (want_writable_ && out_.size() + in_flight_.size() < kLowWatermark) {
    want_writable_ = false;
    if (handler_) handler_->on_upstream_writable();
  }
}

void Http1ClientConnection::read_more() {
  if (reading_ || paused_ || !socket_.is_open() || response_done_) return;
  if (read_len_ == read_buf_.size()) {
    // The parser needs a contiguous head; grow up to the header limit.
    if (read_buf_.size() >= kMaxResponseHeaderBytes + kReadSize) {
      fail(ErrorKind::bad_response, "response head too large");
      return;
    }
    read_buf_.resize(read_buf_.size() * 2);
  }
  reading_ = true;
  if (tls_ && tls_->more()) {
    // Decrypted bytes wait inside OpenSSL, not on the socket.
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->on_read({}, 0); });
    return;
  }
  wait_for_input(/*idle=*/false);
}

void Http1ClientConnection::wait_for_input(bool idle) {
  if (!(idle && short_read_)) {
    // Asio's async read would try this same recv first. EAGAIN means drained, FIN included,
    // so the watch sees whatever comes next.
    error_code ec;
    size_t n = socket_.read_some(
        asio::buffer(read_buf_.data() + read_len_, read_buf_.size() - read_len_), ec);
    if (ec != asio::error::would_block && ec != asio::error::try_again) {
      asio::post(socket_.get_executor(),
                 [self = shared_from_this(), ec, n] { self->on_read(ec, n); });
      return;
    }
  }
  input_watch_.arm(socket_, shared_from_this());
}

void Http1ClientConnection::on_input_watch(void* target, ReadinessWatch::Outcome outcome) {
  auto* self = static_cast<Http1ClientConnection*>(target);
  switch (outcome) {
    case ReadinessWatch::Outcome::destroyed:
      return;
    case ReadinessWatch::Outcome::aborted:
      self->on_read(asio::error::operation_aborted, 0);
      return;
    case ReadinessWatch::Outcome::readable:
      break;
  }
  error_code ec;
  const size_t space = self->read_buf_.size() - self->read_len_;
  size_t n = self->socket_.read_some(asio::buffer(self->read_buf_.data() + self->read_len_, space),
                                     ec);  // non-blocking socket
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    // A stale edge: still drained, wait again.
    self->input_watch_.arm(self->socket_, self->shared_from_this());
    return;
  }
  self->short_read_ = !ec && n < space;
  self->on_read(ec, n);
  self->short_read_ = false;
}

void Http1ClientConnection::on_read(const error_code& ec, size_t n) {
  reading_ = false;
  if (!handler_) {
    if (idle_watch_) on_idle_read(ec, n);
    return;  // else detached while the read was pending
  }
  if (ec) {
    if (ec == asio::error::eof && tunnel_ && !response_done_) {
      // The backend closed its side of the tunnel: so ends the response.
      keep_alive_ = false;
      response_done_ = true;
      body_chunk_.clear();
      handler_->on_upstream_data(body_chunk_, true);
      finish_exchange();
      return;
    }
    if (ec == asio::error::eof && head_received_ && !response_done_) {
      error_code pec;
      parser_->put_eof(pec);
      keep_alive_ = false;
      if (!pec && parser_->is_done()) {
        // A body delimited by the close: the handler still needs its end_stream.
        if (!end_delivered_) {
          end_delivered_ = true;
          handler_->on_upstream_data(body_chunk_, true);
          body_chunk_.clear();
          if (!handler_) return;
        }
        parsed_done();
        return;
      }
    }
    if (ec == asio::error::operation_aborted && !socket_.is_open()) return;
    fail(ErrorKind::upstream_reset,
         head_received_ ? "upstream closed mid-response: " + ec.message()
                        : "upstream closed before the response head: " + ec.message());
    return;
  }
  if (tls_) {
    switch (tls_receive(n)) {
      case TlsSession::Result::ok:
        break;
      case TlsSession::Result::closed:  // close_notify, as a TCP close would be
        if (head_received_ && !response_done_) {
          on_read(asio::error::eof, 0);  // may end a close-delimited body
        } else {
          fail(ErrorKind::upstream_reset, "TLS: close_notify");
        }
        return;
      case TlsSession::Result::error:
        fail(ErrorKind::upstream_reset, "TLS: " + tls_->error());
        return;
    }
    if (n == 0) {  // a record not yet complete, or only TLS messages
      read_more();
      return;
    }
  }
  read_len_ += n;
  parse_buffered();
}

void Http1ClientConnection::pass_tunnel_bytes() {
  if (!paused_) {
    body_chunk_.append(read_buf_.data(), read_len_);
    read_len_ = 0;
    if (!body_chunk_.empty()) {
      handler_->on_upstream_data(body_chunk_, false);
      body_chunk_.clear();
      if (!handler_) return;
    }
  }
  read_more();
}

void Http1ClientConnection::half_close() {
  if (half_closed_ || !socket_.is_open()) return;
  half_closed_ = true;
  error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
}

void Http1ClientConnection::parse_buffered() {
  if (tunnel_) {
    pass_tunnel_bytes();
    return;
  }
  size_t offset = 0;
  while (handler_ && !response_done_ && !paused_ && !tunnel_ && offset < read_len_) {
    error_code ec;
    size_t used = parser_->put(asio::buffer(read_buf_.data() + offset, read_len_ - offset), ec);
    offset += used;
    if (ec == http::error::need_more) break;
    if (ec) {
      fail(ErrorKind::bad_response, "invalid response from upstream: " + ec.message());
      return;
    }
    if (!handler_) return;
    if (parser_->is_done()) {
      if (!head_received_) {
        // An interim (1xx) response: pass it on and parse the final one.
        if (parser_->head.status == 100) {
          // The proxy answers Expect itself; the upstream's 100 is not forwarded.
        } else {
          handler_->on_upstream_1xx(parser_->head);
        }
        parser_ = std::make_unique<ResponseParser>(*this);
        parser_->skip(expect_no_body_);
        continue;
      }
      break;
    }
    if (used == 0) break;
  }
  // Keep the unparsed tail at the front of the buffer.
  if (offset > 0) {
    std::memmove(read_buf_.data(), read_buf_.data() + offset, read_len_ - offset);
    read_len_ -= offset;
  }
  if (!handler_) return;
  if (tunnel_) {
    pass_tunnel_bytes();  // what followed the 101 in the same read
    return;
  }
  bool done = head_received_ && parser_->is_done();
  if (done) {
    if (read_len_ > 0) keep_alive_ = false;  // bytes after the response: out of sync
    if (!parser_->keep_alive()) keep_alive_ = false;
  }
  if (head_received_ && !end_delivered_ && (!body_chunk_.empty() || done)) {
    const bool trailers = done && !parser_->trailers.empty();
    end_delivered_ = done;
    if (!body_chunk_.empty() || !trailers)
      handler_->on_upstream_data(body_chunk_, done && !trailers);
    body_chunk_.clear();
    if (!handler_) return;  // the handler detached from inside the callback
    if (trailers) {
      handler_->on_upstream_trailers(parser_->trailers);
      if (!handler_) return;
    }
  }
  if (done) {
    parsed_done();
    return;
  }
  read_more();
}

void Http1ClientConnection::parsed_head(ResponseHead&& head, bool end_stream) {
  head_received_ = true;
  end_delivered_ = end_stream;
  if (handler_) handler_->on_upstream_head(head, end_stream);
}

void Http1ClientConnection::parsed_body(std::string_view data) { body_chunk_.append(data); }

void Http1ClientConnection::parsed_done() {
  response_done_ = true;
  if (request_done_ || (request_ended_ && !writing_ && out_.empty())) {
    request_done_ = true;
    finish_exchange();
  } else {
    // The response completed before the request body was sent: the connection cannot be
    // reused, since the upstream would read the rest of the body as a new request.
    keep_alive_ = false;
    finish_exchange();
  }
}

void Http1ClientConnection::finish_exchange() {
  ResponseHandler* h = handler_;
  handler_ = nullptr;
  (void)h;
  auto pool = pool_.lock();
  if (keep_alive_ && request_done_ && read_len_ == 0 && pool && socket_.is_open()) {
    reused_ = true;
    parser_.reset();
    pool->release(shared_from_this());
  } else {
    close();
  }
}

void Http1ClientConnection::fail(ErrorKind kind, std::string detail) {
  ResponseHandler* h = handler_;
  bool started = head_received_;
  handler_ = nullptr;
  close();
  if (h) {
    Error err{kind, ErrorSource::upstream, false, std::move(detail)};
    h->on_upstream_error(err, started);
  }
}

void Http1ClientConnection::pause_reading() { paused_ = true; }

void Http1ClientConnection::resume_reading() {
  if (!paused_) return;
  paused_ = false;
  if (read_len_ > 0 && !reading_) {
    parse_buffered();
  } else {
    read_more();
  }
}

void Http1ClientConnection::detach(ResponseHandler& handler) {
  if (handler_ != &handler) return;  // already finished and pooled, or closed
  handler_ = nullptr;
  close();
}

void Http1ClientConnection::watch_idle() {
  // Right after the response's last read (the usual case) the input watch waits without a
  // syscall; otherwise a recv comes first. The watch's wait stays pending and reads the next
  // response too. Asio's async_wait would cost an epoll_ctl each time.
  idle_watch_ = true;
  reading_ = true;
  wait_for_input(/*idle=*/true);
}

void Http1ClientConnection::on_idle_read(const error_code& ec, size_t n) {
  if (ec == asio::error::operation_aborted) return;  // closed
  // TLS 1.3 servers send session tickets after the handshake: not a reason to drop it.
  if (!ec && tls_ && tls_receive(n) == TlsSession::Result::ok && n == 0) {
    watch_idle();
    return;
  }
  // Readable while idle: the backend closed it (or sent junk).
  idle_watch_ = false;
  if (auto pool = pool_.lock()) pool->remove_idle(this);
  close();
}

bool Http1ClientConnection::idle_socket_usable() {
  if (!socket_.is_open()) return false;
  char c;
  ssize_t n = ::recv(socket_.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return false;  // orderly close by the peer
  if (n > 0) return false;   // unsolicited bytes: the connection is out of sync
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

void Http1ClientConnection::close() {
  error_code ignored;
  if (socket_.is_open()) {
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }
}

}  // namespace sluice::upstream
