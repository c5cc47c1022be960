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
  uint64_t max_header_bytes = 64 * 1024;
  uint32_t max_headers = 100;
  uint64_t max_body_bytes = 10 * 1024 * 1024;  // 0 = unlimited
  uint64_t max_uri_bytes = 8 * 1024;
};

class DecoderCallbacks {
 public:
  virtual ~DecoderCallbacks() = default;
  // The head is complete and valid. `end_stream` when there is no body.
  virtual void on_request_head(RequestHead& head, bool end_stream) = 0;
  virtual void on_request_data(std::string_view data) = 0;
  virtual void on_request_complete() = 0;
};

class RequestParser;

class RequestDecoder {
 public:
  RequestDecoder(DecoderCallbacks& callbacks, DecoderLimits limits);
  ~RequestDecoder();

  // Parses as much of `data` as possible, stopping after one complete request so pipelined
  // requests stay in the caller's buffer. Returns bytes consumed; on a malformed request
  // sets error() and returns 0. Call again with more bytes when it consumed nothing.
  size_t feed(std::string_view data);
  // The client closed its side; completes a request whose body ran to the close (never for
  // requests, which always have explicit framing) or reports truncation.
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

 private:
  friend class RequestParser;
  void set_error(ErrorKind kind, std::string detail);

  DecoderCallbacks& callbacks_;
  DecoderLimits limits_;
  std::unique_ptr<RequestParser> parser_;
  std::optional<Error> error_;
  bool expect_continue_ = false;
};

// "HTTP/1.1 200 OK\r\n...\r\n" for `head`, with the framing headers the connection chose.
void encode_response_head(const ResponseHead& head, unsigned version, std::string& out);

}  // namespace sluice::http1
