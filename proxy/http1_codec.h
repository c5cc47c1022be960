#pragma once
// HTTP/1.1 request decoding on Beast's basic_parser, with the stricter checks a proxy needs
// (request smuggling and header-injection defences), and response head encoding.
// No I/O: the connection feeds bytes in; the fuzz target and unit tests do the same.
// Used on one worker thread; one decoder per connection, reset between requests.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/http.h"

namespace sluice::http1 {

struct DecoderLimits {
  uint64_t max_header_bytes = 64 * 1024;       // header section; also bounds trailers
  uint32_t max_headers = 100;                  // header fields; trailers are counted on their own
  uint64_t max_body_bytes = 10 * 1024 * 1024;  // 0 = unlimited
  uint64_t max_uri_bytes = 8 * 1024;
};

// Receives the decoded request. Called synchronously from inside RequestDecoder::feed(), on
// the decoder's thread; the views are valid only during the call.
class DecoderCallbacks {
 public:
  virtual ~DecoderCallbacks() = default;
  // The head is complete and valid. `end_stream` when there is no body. The callee may move
  // from `head`.
  virtual void on_request_head(RequestHead& head, bool end_stream) = 0;
  virtual void on_request_data(std::string_view data) = 0;
  // The body ended with valid framing (never called for a request that fails).
  virtual void on_request_complete() = 0;
};

class RequestParser;

// Rejects, rather than repairs, anything two HTTP implementations could read differently:
// Content-Length with Transfer-Encoding, repeated or odd Content-Length, any transfer coding
// but a single `chunked`, obs-fold, control characters, bare CR/LF, a missing or repeated
// Host, invalid request-targets. Errors: bad_request (400), not_implemented (501, unknown
// transfer coding or CONNECT), header_too_large (431), uri_too_long (414), body_too_large
// (413). After an error nothing more is decoded until reset(); the connection must close.
class RequestDecoder {
 public:
  RequestDecoder(DecoderCallbacks& callbacks, DecoderLimits limits);
  ~RequestDecoder();

  // Parses as much of `data` as possible, stopping after one complete request so pipelined
  // requests stay in the caller's buffer. Returns the bytes consumed; the caller passes the
  // unconsumed rest again, followed by new bytes, on the next call. Returns 0 and sets
  // error() on a malformed request. Consuming nothing without an error means "need more".
  size_t feed(std::string_view data);
  bool header_done() const;
  bool message_done() const;
  const std::optional<Error>& error() const { return error_; }
  // Starts over for the next request on the connection.
  void reset();

  // Properties of the current request, valid once the head is done.
  bool keep_alive() const;
  bool chunked() const;
  bool expect_continue() const { return expect_continue_; }
  std::optional<uint64_t> content_length() const;
  // The request line of the request in progress, once it was read (method and target of a
  // request refused later, for the access log); null before.
  const RequestHead* request_line() const;

 private:
  friend class RequestParser;
  void set_error(ErrorKind kind, std::string detail);
  bool scan_head(std::string_view data, size_t from);
  bool scan_field_lines(std::string_view data, size_t& i);
  bool check_request_line(std::string_view line);
  bool check_chunk_boundary(std::string_view rest);

  DecoderCallbacks& callbacks_;
  DecoderLimits limits_;
  std::unique_ptr<RequestParser> parser_;
  std::optional<Error> error_;
  bool expect_continue_ = false;
  bool started_ = false;  // some byte of this request was looked at

  // scan_head() state: it checks the head as it arrives, ahead of Beast.
  enum class LinePart { method, target, version };
  size_t scan_pos_ = 0;  // bytes at the start of the unconsumed data already scanned
  size_t line_len_ = 0;  // bytes of the current head line seen so far
  size_t target_len_ = 0;
  LinePart part_ = LinePart::method;
  bool request_line_seen_ = false;
  bool scan_done_ = false;       // the empty line that ends the head was seen
  size_t boundary_scanned_ = 0;  // check_chunk_boundary(): pending bytes already looked at
};

// "HTTP/1.1 200 OK\r\n...\r\n" for `head`, with the framing headers the connection chose.
void encode_response_head(const ResponseHead& head, unsigned version, std::string& out);

}  // namespace sluice::http1
