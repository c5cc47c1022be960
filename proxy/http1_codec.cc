#include "proxy/http1_codec.h"

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/url/parse.hpp>

namespace sluice::http1 {

namespace http = boost::beast::http;
using boost::system::error_code;
using bstring = boost::beast::string_view;

namespace {

std::string_view sv(bstring s) { return {s.data(), s.size()}; }

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_tchar(c)) return false;
  }
  return true;
}

// Field values: visible characters, obs-text, SP and HTAB inside. Beast already rejects
// CR, LF and NUL; this also rejects the other controls it lets through.
bool is_valid_value(std::string_view v) {
  for (unsigned char c : v) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Chunk extensions: Beast checks their grammar; reject any control character outright so
// nothing odd reaches a backend's parser.
bool valid_extensions(std::string_view ext) {
  for (unsigned char c : ext) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

}  // namespace

class RequestParser : public http::basic_parser<true> {
 public:
  RequestParser(RequestDecoder& decoder, const DecoderLimits& limits)
      : decoder_(decoder), limits_(limits) {
    // Beast counts the request line too; the URI has its own limit checked below.
    uint64_t header_limit = limits.max_header_bytes + limits.max_uri_bytes + 64;
    this->header_limit(static_cast<std::uint32_t>(std::min<uint64_t>(header_limit, UINT32_MAX)));
    if (limits.max_body_bytes == 0) {
      body_limit(boost::none);
    } else {
      body_limit(limits.max_body_bytes);
    }
    eager(true);
  }

  RequestHead head;
  unsigned host_count = 0;
  unsigned content_length_count = 0;
  uint64_t header_bytes = 0;
  std::vector<std::string> connection_tokens;

 private:
  void fail(error_code& ec, ErrorKind kind, std::string detail) {
    decoder_.set_error(kind, std::move(detail));
    ec = http::error::bad_value;  // stops Beast; the decoder's error is what counts
  }

  void on_request_impl(http::verb, bstring method, bstring target, int version,
                       error_code& ec) override {
    if (!is_token(sv(method))) return fail(ec, ErrorKind::bad_request, "invalid method");
    if (target.size() > limits_.max_uri_bytes) {
      return fail(ec, ErrorKind::uri_too_long, "request-target too long");
    }
    if (version != 10 && version != 11) {
      return fail(ec, ErrorKind::bad_request, "unsupported HTTP version");
    }
    std::string_view t = sv(target);
    if (sv(method) == "CONNECT") {
      return fail(ec, ErrorKind::not_implemented, "CONNECT is not supported");
    }
    if (t == "*") {
      if (sv(method) != "OPTIONS") return fail(ec, ErrorKind::bad_request, "'*' target");
    } else if (!t.empty() && t.front() == '/') {
      if (!boost::urls::parse_origin_form(t)) {
        return fail(ec, ErrorKind::bad_request, "invalid request-target");
      }
    } else {
      // absolute-form (RFC 9112 §3.2.2): the host in the URI replaces Host.
      auto uri = boost::urls::parse_absolute_uri(t);
      if (!uri || !uri->has_authority() || uri->host().empty() ||
          (uri->scheme() != "http" && uri->scheme() != "https")) {
        return fail(ec, ErrorKind::bad_request, "invalid request-target");
      }
      absolute_authority_ = std::string(uri->encoded_host_and_port());
      std::string origin(uri->encoded_path());
      if (origin.empty()) origin = "/";
      if (uri->has_query()) {
        origin += '?';
        origin += uri->encoded_query();
      }
      head.target = std::move(origin);
    }
    head.method.assign(method.data(), method.size());
    if (head.target.empty()) head.target.assign(target.data(), target.size());
    head.version = static_cast<unsigned>(version);
  }

  void on_response_impl(int, bstring, int, error_code&) override {}

  void on_field_impl(http::field, bstring name_b, bstring value_b, error_code& ec) override {
    std::string_view name = sv(name_b);
    std::string_view value = sv(value_b);
    if (++field_count_ > limits_.max_headers) {
      return fail(ec, ErrorKind::header_too_large, "too many header fields");
    }
    header_bytes += name.size() + value.size() + 4;
    if (header_bytes > limits_.max_header_bytes) {
      return fail(ec, ErrorKind::header_too_large, "header section too large");
    }
    if (!is_valid_value(value)) {
      return fail(ec, ErrorKind::bad_request, "control character in header value");
    }
    if (iequals(name, "host")) {
      if (++host_count > 1) return fail(ec, ErrorKind::bad_request, "repeated Host");
      head.authority.assign(value);
    } else if (iequals(name, "content-length")) {
      // Beast accepts "5, 5" and repeated equal values; a proxy must not (smuggling).
      if (++content_length_count > 1) {
        return fail(ec, ErrorKind::bad_request, "repeated Content-Length");
      }
      if (value.empty() || value.find_first_not_of("0123456789") != std::string_view::npos) {
        return fail(ec, ErrorKind::bad_request, "invalid Content-Length");
      }
    } else if (iequals(name, "transfer-encoding")) {
      if (!iequals(trim(value), "chunked")) {
        return fail(ec, ErrorKind::not_implemented, "unsupported Transfer-Encoding");
      }
      return;  // hop-by-hop; framing is re-done for the upstream
    } else if (iequals(name, "connection")) {
      size_t pos = 0;
      while (pos <= value.size()) {
        size_t comma = value.find(',', pos);
        if (comma == std::string_view::npos) comma = value.size();
        auto tok = trim(value.substr(pos, comma - pos));
        if (!tok.empty()) connection_tokens.emplace_back(tok);
        pos = comma + 1;
      }
    } else if (iequals(name, "expect")) {
      if (iequals(trim(value), "100-continue")) {
        decoder_.expect_continue_ = true;
        return;  // answered by the proxy, not forwarded
      }
    }
    head.headers.add(name, value);
  }

  void on_header_impl(error_code& ec) override {
    if (!absolute_authority_.empty()) {
      head.authority = absolute_authority_;
      head.headers.set("host", absolute_authority_);
    } else if (head.version == 11 && host_count == 0) {
      return fail(ec, ErrorKind::bad_request, "missing Host");
    }
    if (decoder_.expect_continue_ && head.version == 10) decoder_.expect_continue_ = false;
    for (const auto& t : connection_tokens) {
      if (!iequals(t, "close") && !iequals(t, "keep-alive")) head.headers.remove(t);
    }
    remove_hop_by_hop(head.headers);
    bool end_stream = !chunked() && content_length().value_or(0) == 0;
    if (end_stream) decoder_.expect_continue_ = false;
    decoder_.callbacks_.on_request_head(head, end_stream);
  }

  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}

  size_t on_body_impl(bstring body, error_code&) override {
    decoder_.callbacks_.on_request_data(sv(body));
    return body.size();
  }

  void on_chunk_header_impl(std::uint64_t, bstring extensions, error_code& ec) override {
    if (!valid_extensions(sv(extensions))) {
      fail(ec, ErrorKind::bad_request, "invalid chunk extension");
    }
  }

  size_t on_chunk_body_impl(std::uint64_t, bstring body, error_code&) override {
    decoder_.callbacks_.on_request_data(sv(body));
    return body.size();
  }

  void on_finish_impl(error_code&) override { decoder_.callbacks_.on_request_complete(); }

  RequestDecoder& decoder_;
  const DecoderLimits& limits_;
  uint32_t field_count_ = 0;
  std::string absolute_authority_;
};

RequestDecoder::RequestDecoder(DecoderCallbacks& callbacks, DecoderLimits limits)
    : callbacks_(callbacks), limits_(limits) {
  reset();
}

RequestDecoder::~RequestDecoder() = default;

void RequestDecoder::reset() {
  parser_ = std::make_unique<RequestParser>(*this, limits_);
  error_.reset();
  expect_continue_ = false;
}

void RequestDecoder::set_error(ErrorKind kind, std::string detail) {
  if (!error_) error_ = Error{kind, ErrorSource::downstream, false, std::move(detail)};
}

size_t RequestDecoder::feed(std::string_view data) {
  if (error_ || parser_->is_done()) return 0;
  if (!parser_->is_header_done()) {
    // Beast unfolds obs-fold silently; RFC 9112 §5.2 lets a server reject it, and a proxy
    // must, since backends disagree about it. Look only at the header section.
    size_t end = data.find("\r\n\r\n");
    std::string_view section = data.substr(0, end == std::string_view::npos ? data.size() : end);
    for (size_t i = section.find('\n'); i != std::string_view::npos && i + 1 < section.size();
         i = section.find('\n', i + 1)) {
      if (section[i + 1] == ' ' || section[i + 1] == '\t') {
        set_error(ErrorKind::bad_request, "obsolete line folding");
        return 0;
      }
    }
  }
  size_t total = 0;
  while (total < data.size() && !parser_->is_done()) {
    error_code ec;
    size_t n = parser_->put(boost::asio::buffer(data.data() + total, data.size() - total), ec);
    total += n;
    if (ec == http::error::need_more) break;
    if (ec) {
      if (!error_) {
        if (ec == http::error::header_limit) {
          set_error(ErrorKind::header_too_large, "header section too large");
        } else if (ec == http::error::body_limit) {
          set_error(ErrorKind::body_too_large, "request body too large");
        } else if (ec == http::error::bad_transfer_encoding) {
          set_error(ErrorKind::bad_request, "conflicting Transfer-Encoding");
        } else {
          set_error(ErrorKind::bad_request, ec.message());
        }
      }
      return 0;
    }
    if (n == 0) break;
  }
  if (error_) return 0;
  return total;
}

bool RequestDecoder::header_done() const { return parser_->is_header_done(); }
bool RequestDecoder::message_done() const { return parser_->is_done(); }
bool RequestDecoder::keep_alive() const { return parser_->keep_alive(); }
bool RequestDecoder::chunked() const { return parser_->chunked(); }
std::optional<uint64_t> RequestDecoder::content_length() const {
  auto v = parser_->content_length();
  if (!v) return std::nullopt;
  return *v;
}

void encode_response_head(const ResponseHead& head, unsigned version, std::string& out) {
  out += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  char code[4] = {static_cast<char>('0' + head.status / 100 % 10),
                  static_cast<char>('0' + head.status / 10 % 10),
                  static_cast<char>('0' + head.status % 10), ' '};
  out.append(code, 4);
  out += head.reason.empty() ? reason_phrase(head.status) : std::string_view(head.reason);
  out += "\r\n";
  for (const auto& h : head.headers) {
    out += h.name;
    out += ": ";
    out += h.value;
    out += "\r\n";
  }
  out += "\r\n";
}

}  // namespace sluice::http1
