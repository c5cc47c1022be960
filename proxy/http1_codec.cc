#include "proxy/http1_codec.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/url/parse.hpp>

#include "core/beast_fields.h"

namespace sluice::http1 {

namespace http = boost::beast::http;
using boost::system::error_code;
using bstring = boost::beast::string_view;

namespace {

// Beast parses a last chunk it has seen before again from its start, asserting that at least
// "0\r\n\r\n" is there; fewer bytes at a chunk boundary are held back until more arrive.
constexpr size_t kMinChunkBoundaryBytes = 5;

std::string_view sv(bstring s) { return {s.data(), s.size()}; }

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return c != '\0' && std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_tchar(c)) return false;
  }
  return true;
}

// Field values and chunk extensions: visible characters, obs-text, SP and HTAB. Beast already
// rejects CR, LF, NUL and most other controls; this is the proxy's own guarantee.
bool no_controls(std::string_view v) {
  for (unsigned char c : v) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

// Host = uri-host [ ":" port ] (RFC 9110 §7.2); empty is allowed when the target has no
// authority (RFC 9112 §3.2), which is the only kind a non-CONNECT origin-form request has.
// Boost.URL's grammar costs about 1,700 instructions for a Host and 850 for a target; nearly
// every request has a plain name and a plain path, which these tables accept without it. Any
// other character (a '%', brackets, userinfo) goes to Boost.URL as before, so what is accepted
// does not change.
constexpr auto kPlainChars = [] {
  std::array<bool, 256> t{};
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  return t;
}();

// reg-name [":" port] made of letters, digits, '-' and '.' only (RFC 3986 §3.2.2-3).
bool plain_host(std::string_view v) {
  const size_t colon = v.find(':');
  std::string_view name = v.substr(0, colon);
  if (name.empty()) return false;
  for (unsigned char c : name) {
    if (!kPlainChars[c] && c != '-' && c != '.') return false;
  }
  if (colon == std::string_view::npos) return true;
  for (unsigned char c : v.substr(colon + 1)) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// origin-form (RFC 9112 §3.2.1) without percent-encoding: '/' then pchar, '/' and '?' only.
bool plain_origin_form(std::string_view target) {
  static constexpr auto kAllowed = [] {
    std::array<bool, 256> t = kPlainChars;
    for (unsigned char c : std::string_view("-._~!$&'()*+,;=:@/?")) t[c] = true;
    return t;
  }();
  if (target.empty() || target.front() != '/') return false;
  for (unsigned char c : target) {
    if (!kAllowed[c]) return false;
  }
  return true;
}

bool valid_host(std::string_view v) {
  if (v.empty() || plain_host(v)) return true;
  auto a = boost::urls::parse_authority(v);
  return a && !a->has_userinfo() && !a->encoded_host().empty();
}

// Names that a Connection header must not strip from the forwarded request: they are
// end-to-end and the upstream request needs them.
bool protected_from_connection(std::string_view name) {
  return iequals(name, "host") || iequals(name, "content-length");
}

struct Rejection {
  ErrorKind kind;
  const char* detail;
};

// Checks the combined Transfer-Encoding list: only exactly one `chunked` is accepted (empty
// list elements aside, RFC 9110 §5.6.1). An unknown coding is 501; everything else that is
// not that is 400 (RFC 9112 §6.1: chunked must be last and applied once).
std::optional<Rejection> check_transfer_codings(std::string_view list) {
  size_t elements = 0;
  size_t chunked = 0;
  bool chunked_last = false;
  bool unknown = false;
  for (;;) {
    size_t comma = list.find(',');
    std::string_view element = trim_ows(list.substr(0, comma));
    if (!element.empty()) {
      ++elements;
      size_t semi = element.find(';');
      std::string_view name = trim_ows(element.substr(0, semi));
      if (!is_token(name)) return Rejection{ErrorKind::bad_request, "invalid Transfer-Encoding"};
      bool is_chunked = iequals(name, "chunked");
      if (is_chunked && semi != std::string_view::npos) {
        return Rejection{ErrorKind::bad_request, "chunked takes no parameters"};
      }
      chunked += is_chunked ? 1 : 0;
      unknown = unknown || !is_chunked;
      chunked_last = is_chunked;
    }
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  if (elements == 0) return Rejection{ErrorKind::bad_request, "empty Transfer-Encoding"};
  if (chunked > 1 || (chunked == 1 && !chunked_last)) {
    return Rejection{ErrorKind::bad_request, "chunked must be the last coding, once"};
  }
  if (unknown) return Rejection{ErrorKind::not_implemented, "unsupported transfer coding"};
  return std::nullopt;
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

  const RequestHead& head() const { return head_; }
  // The buffer handed to put(), so on_field_impl can tell the values Beast unfolded.
  void set_input(std::string_view input) { input_ = input; }
  // Between chunks rather than inside chunk data: Beast needs whole lines here.
  bool at_chunk_boundary() const { return is_header_done() && chunked() && chunk_left_ == 0; }

 private:
  void fail(error_code& ec, ErrorKind kind, std::string detail) {
    decoder_.set_error(kind, std::move(detail));
    ec = http::error::bad_value;  // stops Beast; the decoder's error is what counts
  }

  // Beast accepts obs-fold and joins the lines, into its own buffer or, when the first line
  // is empty, in place. RFC 9112 §5.2 lets a server reject it, and a proxy must, since
  // backends disagree about it. An unfolded value lies in the input right after "name:" OWS.
  bool folded(std::string_view value) const {
    auto p = reinterpret_cast<std::uintptr_t>(value.data());
    auto begin = reinterpret_cast<std::uintptr_t>(input_.data());
    if (p <= begin || p > begin + input_.size()) return true;
    const char* c = value.data();
    while (c > input_.data() && (c[-1] == ' ' || c[-1] == '\t')) --c;
    return c == input_.data() || c[-1] != ':';
  }

  void on_request_impl(http::verb, bstring method_b, bstring target_b, int version,
                       error_code& ec) override {
    std::string_view method = sv(method_b);
    std::string_view target = sv(target_b);
    if (!is_token(method)) return fail(ec, ErrorKind::bad_request, "invalid method");
    if (target.size() > limits_.max_uri_bytes) {
      return fail(ec, ErrorKind::uri_too_long, "request-target too long");
    }
    if (version != 10 && version != 11) {
      return fail(ec, ErrorKind::bad_request, "unsupported HTTP version");
    }
    if (method == "CONNECT") {
      return fail(ec, ErrorKind::not_implemented, "CONNECT is not supported");
    }
    if (target == "*") {
      if (method != "OPTIONS") return fail(ec, ErrorKind::bad_request, "'*' target");
      head_.target = target;
    } else if (target.front() == '/') {
      if (!plain_origin_form(target) && !boost::urls::parse_origin_form(target)) {
        return fail(ec, ErrorKind::bad_request, "invalid request-target");
      }
      head_.target = target;
    } else {
      // absolute-form (RFC 9112 §3.2.2): the host in the URI replaces Host.
      auto uri = boost::urls::parse_absolute_uri(target);
      if (!uri || !uri->has_authority() || uri->encoded_host().empty() || uri->has_userinfo() ||
          (!iequals(uri->scheme(), "http") && !iequals(uri->scheme(), "https"))) {
        return fail(ec, ErrorKind::bad_request, "invalid request-target");
      }
      absolute_authority_ = std::string(uri->encoded_host_and_port());
      std::string origin(uri->encoded_path());
      if (origin.empty()) origin = "/";
      if (uri->has_query()) {
        origin += '?';
        origin += uri->encoded_query();
      }
      head_.target = std::move(origin);
    }
    head_.method = method;
    head_.version = static_cast<unsigned>(version);
  }

  void on_response_impl(int, bstring, int, error_code& ec) override {
    ec = http::error::bad_version;  // unreachable for a request parser
  }

  void on_field_impl(http::field known, bstring name_b, bstring value_b, error_code& ec) override {
    std::string_view name = sv(name_b);
    std::string_view value = sv(value_b);
    const char* what = in_trailers_ ? "trailer" : "header";
    if (++field_count_ > limits_.max_headers) {
      return fail(ec, ErrorKind::header_too_large, std::string("too many ") + what + " fields");
    }
    field_bytes_ += name.size() + value.size() + 4;
    if (field_bytes_ > limits_.max_header_bytes) {
      return fail(ec, ErrorKind::header_too_large, std::string(what) + " section too large");
    }
    // A value that is not folded holds no control character but HTAB: Beast ends a value at the
    // first one, and anything there but CRLF is its bad_value.
    if (folded(value)) return fail(ec, ErrorKind::bad_request, "obsolete line folding");
    // Trailers are checked but never forwarded: the head went upstream long ago, and fields
    // like Host or Content-Length would mean something else there. (Beast itself rejects
    // Content-Length and Transfer-Encoding in trailers.)
    if (in_trailers_) return;

    // Beast has looked the name up already (case-insensitively): `known` is field::unknown for
    // any other name.
    if (known == http::field::host) {
      if (++host_count_ > 1) return fail(ec, ErrorKind::bad_request, "repeated Host");
      if (!valid_host(value)) return fail(ec, ErrorKind::bad_request, "invalid Host");
      head_.authority = value;
    } else if (known == http::field::content_length) {
      // Beast accepts "5, 5" and repeated equal values; a proxy must not (smuggling).
      if (++content_length_count_ > 1) {
        return fail(ec, ErrorKind::bad_request, "repeated Content-Length");
      }
      if (value.empty() || value.find_first_not_of("0123456789") != std::string_view::npos) {
        return fail(ec, ErrorKind::bad_request, "invalid Content-Length");
      }
    } else if (known == http::field::transfer_encoding) {
      // Judged in on_header_impl, once every line and Content-Length are known.
      if (!transfer_encoding_.empty()) transfer_encoding_ += ',';
      transfer_encoding_ += value;
      ++transfer_encoding_count_;
      return;  // hop-by-hop; framing is re-done for the upstream
    } else if (known == http::field::connection) {
      for_each_list_element(value, [&](std::string_view t) { connection_tokens_.emplace_back(t); });
    } else if (known == http::field::upgrade) {
      // Read by requested_upgrade() once the head is complete.
      if (!upgrade_.empty()) upgrade_ += ',';
      upgrade_ += value;
    } else if (known == http::field::expect) {
      if (iequals(trim_ows(value), "100-continue")) {
        decoder_.expect_continue_ = true;
        return;  // answered by the proxy, not forwarded
      }
    }
    if (is_hop_by_hop(known)) return;  // never forwarded
    head_.headers.add(name, value);
  }

  void on_header_impl(error_code& ec) override {
    if (transfer_encoding_count_ > 0) {
      if (content_length_count_ > 0) {
        return fail(ec, ErrorKind::bad_request, "Content-Length with Transfer-Encoding");
      }
      if (head_.version == 10) {
        // RFC 9112 §6.1: the framing of such a message is faulty.
        return fail(ec, ErrorKind::bad_request, "Transfer-Encoding in HTTP/1.0");
      }
      if (auto r = check_transfer_codings(transfer_encoding_)) return fail(ec, r->kind, r->detail);
      // Beast must frame the body exactly as judged above, or the two could disagree.
      if (!chunked()) return fail(ec, ErrorKind::bad_request, "unrecognised Transfer-Encoding");
    }
    if (head_.version == 11 && host_count_ == 0) {
      return fail(ec, ErrorKind::bad_request, "missing Host");
    }
    if (!absolute_authority_.empty()) {
      head_.authority = absolute_authority_;
      head_.headers.set("host", absolute_authority_);
    }
    if (decoder_.expect_continue_ && head_.version == 10) decoder_.expect_continue_ = false;
    bool end_stream = !chunked() && content_length().value_or(0) == 0;
    if (end_stream && head_.version == 11) head_.upgrade = requested_upgrade();
    for (const auto& t : connection_tokens_) {
      if (!iequals(t, "close") && !iequals(t, "keep-alive") && !protected_from_connection(t)) {
        head_.headers.remove(t);
      }
    }
    if (end_stream) decoder_.expect_continue_ = false;
    decoder_.callbacks_.on_request_head(head_, end_stream);
  }

  // The protocols of `Upgrade`, when `Connection` names it (RFC 9110 §7.8), lower case and
  // comma-separated, without h2c: sluice speaks HTTP/2 to clients itself and never forwards
  // that upgrade (curl --http2 asks for it on every cleartext request). A request with a body
  // is never upgraded.
  std::string requested_upgrade() const {
    bool named = false;
    for (const auto& t : connection_tokens_) named = named || iequals(t, "upgrade");
    if (!named) return {};
    std::string protocols;
    for_each_list_element(upgrade_, [&](std::string_view tok) {
      if (iequals(tok, "h2c")) return;
      if (!protocols.empty()) protocols += ',';
      for (char c : tok)
        protocols += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    });
    return protocols;
  }

  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}

  size_t on_body_impl(bstring body, error_code&) override {
    decoder_.callbacks_.on_request_data(sv(body));
    return body.size();  // never less: Beast would loop
  }

  void on_chunk_header_impl(std::uint64_t size, bstring extensions, error_code& ec) override {
    if (!no_controls(sv(extensions))) {
      return fail(ec, ErrorKind::bad_request, "invalid chunk extension");
    }
    chunk_left_ = size;
    if (size == 0) {
      // The trailer section follows, with limits of its own.
      in_trailers_ = true;
      field_count_ = 0;
      field_bytes_ = 0;
    }
  }

  size_t on_chunk_body_impl(std::uint64_t, bstring body, error_code&) override {
    chunk_left_ -= body.size();
    decoder_.callbacks_.on_request_data(sv(body));
    return body.size();
  }

  void on_finish_impl(error_code&) override { decoder_.callbacks_.on_request_complete(); }

  RequestDecoder& decoder_;
  const DecoderLimits& limits_;
  RequestHead head_;
  std::string_view input_;
  unsigned host_count_ = 0;
  unsigned content_length_count_ = 0;
  unsigned transfer_encoding_count_ = 0;
  std::string transfer_encoding_;  // every Transfer-Encoding line, comma-joined
  std::vector<std::string> connection_tokens_;
  std::string upgrade_;  // every Upgrade line, comma-joined
  std::string absolute_authority_;
  uint32_t field_count_ = 0;
  uint64_t field_bytes_ = 0;
  uint64_t chunk_left_ = 0;
  bool in_trailers_ = false;
};

RequestDecoder::RequestDecoder(DecoderCallbacks& callbacks, DecoderLimits limits)
    : callbacks_(callbacks), limits_(limits) {
  reset();
}

const RequestHead* RequestDecoder::request_line() const {
  if (!parser_ || parser_->head().method.empty()) return nullptr;
  return &parser_->head();
}

RequestDecoder::~RequestDecoder() = default;

void RequestDecoder::reset() {
  // The parser (~400 bytes) is made when the next request's first bytes arrive: an idle
  // keep-alive connection holds none.
  parser_.reset();
  error_.reset();
  expect_continue_ = false;
  started_ = false;
  scan_pos_ = 0;
  line_len_ = 0;
  target_len_ = 0;
  part_ = LinePart::method;
  request_line_seen_ = false;
  scan_done_ = false;
  boundary_scanned_ = 0;
}

void RequestDecoder::set_error(ErrorKind kind, std::string detail) {
  if (!error_) error_ = Error{kind, ErrorSource::downstream, false, std::move(detail)};
}

// Beast reports some errors late or never: it waits for CRLFCRLF before looking at a head that
// arrived in pieces (so a bare LF, or an HTTP/0.9 request line, would hang until the header
// timeout), and a request line longer than the header limit is 431 to it. This looks at each
// line of the head as it arrives, before Beast does.
bool RequestDecoder::scan_head(std::string_view data, size_t from) {
  size_t i = std::max(std::min(scan_pos_, data.size()), from);
  for (; i < data.size() && !request_line_seen_; ++i) {
    char c = data[i];
    if (c == '\r') {
      if (i + 1 == data.size()) break;  // decided when the next byte is here
      if (data[i + 1] != '\n') {
        set_error(ErrorKind::bad_request, "bare CR in request head");
        return false;
      }
      ++line_len_;
      continue;
    }
    if (c == '\n') {
      // Consumed bytes end with a whole line, so a LF at the start is bare too.
      if (i == 0 || data[i - 1] != '\r') {
        set_error(ErrorKind::bad_request, "bare LF in request head");
        return false;
      }
      request_line_seen_ = true;
      if (line_len_ > i) {  // the caller did not pass the unconsumed bytes again
        set_error(ErrorKind::internal, "request line consumed before it was scanned");
        return false;
      }
      if (!check_request_line(data.substr(i - line_len_, line_len_ - 1))) return false;
      line_len_ = 0;
      continue;
    }
    ++line_len_;
    if (part_ == LinePart::method) {
      if (c == ' ') part_ = LinePart::target;
    } else if (part_ == LinePart::target) {
      if (c == ' ') {
        part_ = LinePart::version;
      } else if (++target_len_ > limits_.max_uri_bytes) {
        set_error(ErrorKind::uri_too_long, "request-target too long");
        return false;
      }
    }
  }
  if (request_line_seen_ && !scan_done_ && !scan_field_lines(data, i)) return false;
  scan_pos_ = i;
  return true;
}

// The field lines only need their ends checked, so this jumps from LF to LF with memchr instead
// of looking at every byte (a browser's head is most of a kilobyte). A CR anywhere but right
// before a LF is bare.
bool RequestDecoder::scan_field_lines(std::string_view data, size_t& i) {
  const char* d = data.data();
  const size_t n = data.size();
  while (i < n && !scan_done_) {
    const auto* lf = static_cast<const char*>(std::memchr(d + i, '\n', n - i));
    if (!lf) {
      // An unfinished line: a CR before its last byte is followed by something else than LF;
      // one at the very end is decided when the next byte is here.
      const size_t last = n - 1;
      if (std::memchr(d + i, '\r', last - i)) {
        set_error(ErrorKind::bad_request, "bare CR in request head");
        return false;
      }
      const size_t upto = d[last] == '\r' ? last : n;
      line_len_ += upto - i;
      i = upto;
      return true;
    }
    const size_t end = static_cast<size_t>(lf - d);
    // Consumed bytes end with a whole line, so a LF at the start is bare too.
    if (end == 0 || d[end - 1] != '\r') {
      set_error(ErrorKind::bad_request, "bare LF in request head");
      return false;
    }
    if (end - 1 > i && std::memchr(d + i, '\r', end - 1 - i)) {
      set_error(ErrorKind::bad_request, "bare CR in request head");
      return false;
    }
    if (line_len_ + (end - i) == 1) scan_done_ = true;  // the empty line: its CR alone
    line_len_ = 0;
    i = end + 1;
  }
  return true;
}

// request-line = method SP request-target SP HTTP-version (RFC 9112 §3); Beast checks the
// same, but only once the whole head is there when it arrived in pieces.
bool RequestDecoder::check_request_line(std::string_view line) {
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  const char* detail = nullptr;
  if (sp1 == std::string_view::npos || sp1 == 0) {
    detail = "invalid request line";
  } else if (sp2 == std::string_view::npos) {
    detail = "no HTTP version in request line (HTTP/0.9?)";
  } else {
    std::string_view v = line.substr(sp2 + 1);
    if (sp2 == sp1 + 1) {
      detail = "empty request-target";
    } else if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || v[5] < '0' || v[5] > '9' ||
               v[6] != '.' || v[7] < '0' || v[7] > '9') {
      detail = "invalid HTTP version";
    }
  }
  if (detail) {
    set_error(ErrorKind::bad_request, detail);
    return false;
  }
  return true;
}

// At a chunk boundary Beast consumes nothing of a chunk line, or of the last chunk's trailer
// section, until all of it is there, and only a CR ends a line for it: a bare LF would leave it
// waiting for good. Each pending byte of such lines is looked at once (chunk data held back
// with a short line is not); what may pile up is bounded as the header limit bounds the head.
bool RequestDecoder::check_chunk_boundary(std::string_view rest) {
  size_t begin = rest.substr(0, 2) == "\r\n" ? 2 : 0;  // the end of the previous chunk's data
  std::string_view r = rest.substr(begin);
  size_t eol = r.find("\r\n");
  size_t end = rest.size();
  bool last_chunk = false;
  if (eol != std::string_view::npos) {
    std::string_view line = r.substr(0, eol);
    std::string_view size = line.substr(0, line.find_first_not_of("0123456789abcdefABCDEF"));
    last_chunk = !size.empty() && size.find_first_not_of('0') == std::string_view::npos;
    if (!last_chunk) end = begin + eol + 2;  // chunk data follows, held back for now
  }
  for (size_t i = std::max(boundary_scanned_, begin); i < end; ++i) {
    if (rest[i] == '\n' && (i == begin || rest[i - 1] != '\r')) {
      set_error(ErrorKind::bad_request, "bare LF in chunk framing");
      return false;
    }
  }
  boundary_scanned_ = end;
  if (rest.size() <= limits_.max_header_bytes) return true;
  if (eol == std::string_view::npos) {
    set_error(ErrorKind::bad_request, "chunk line too long");
  } else {
    set_error(ErrorKind::header_too_large, "trailer section too large");
  }
  return false;
}

size_t RequestDecoder::feed(std::string_view data) {
  if (!parser_) parser_ = std::make_unique<RequestParser>(*this, limits_);
  if (error_ || parser_->is_done()) return 0;
  size_t total = 0;
  if (!started_) {
    // RFC 9112 §2.2: ignore one empty line before the request-line (old clients send a CRLF
    // after a POST body).
    if (data.empty() || data == "\r") return 0;
    if (data.substr(0, 2) == "\r\n") total = 2;
    started_ = true;
  }
  if (!parser_->is_header_done() && !scan_head(data, total)) return 0;
  while (total < data.size() && !parser_->is_done()) {
    std::string_view rest = data.substr(total);
    if (parser_->at_chunk_boundary() && rest.size() < kMinChunkBoundaryBytes) break;
    parser_->set_input(rest);
    error_code ec;
    size_t n = parser_->put(boost::asio::buffer(rest.data(), rest.size()), ec);
    total += n;
    if (error_) return 0;  // one of our own checks failed
    if (ec == http::error::need_more) break;
    if (ec) {
      if (ec == http::error::header_limit) {
        set_error(ErrorKind::header_too_large, "header section too large");
      } else if (ec == http::error::body_limit) {
        set_error(ErrorKind::body_too_large, "request body too large");
      } else {
        set_error(ErrorKind::bad_request, ec.message());
      }
      return 0;
    }
    if (n == 0) break;
  }
  scan_pos_ -= std::min(scan_pos_, total);
  if (total > 0) boundary_scanned_ = 0;  // a new line starts at a new place
  if (!parser_->is_done() && parser_->at_chunk_boundary() &&
      !check_chunk_boundary(data.substr(total))) {
    return 0;
  }
  return total;
}

bool RequestDecoder::header_done() const { return parser_ && parser_->is_header_done(); }
// Beast may be done when one of our checks failed in on_header_impl.
bool RequestDecoder::message_done() const { return !error_ && parser_ && parser_->is_done(); }
bool RequestDecoder::keep_alive() const { return !parser_ || parser_->keep_alive(); }
bool RequestDecoder::chunked() const { return parser_ && parser_->chunked(); }
std::optional<uint64_t> RequestDecoder::content_length() const {
  if (!parser_) return std::nullopt;
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
  append_fields(head.headers, out);
  out += "\r\n";
}

}  // namespace sluice::http1
