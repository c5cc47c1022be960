#pragma once
// One request in flight to an upstream host, whatever carries it: an HTTP/1.1 connection
// (one request at a time) or a stream of a multiplexed HTTP/2 connection. The router talks to
// this interface only; HostPool::acquire hands one out.
//
// All methods run on the owning worker's thread. The handler is the router; it is notified
// of response events and may detach at any time (the stream went away).
#include <memory>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/http.h"

namespace sluice::upstream {

class ResponseHandler {
 public:
  virtual ~ResponseHandler() = default;
  virtual void on_upstream_1xx(ResponseHead& head) = 0;
  virtual void on_upstream_head(ResponseHead& head, bool end_stream) = 0;
  virtual void on_upstream_data(std::string& data, bool end_stream) = 0;
  // The response ended with trailers (after its head and any data).
  virtual void on_upstream_trailers(HeaderMap& trailers) = 0;
  // The exchange failed. `response_started` tells whether on_upstream_head was called.
  // `error.retry_safe`: the upstream said it did not process the request (HTTP/2
  // REFUSED_STREAM, or a stream above a GOAWAY's last stream id).
  virtual void on_upstream_error(const Error& error, bool response_started) = 0;
  // The request body buffer drained below the low watermark (after write_body returned false).
  virtual void on_upstream_writable() = 0;
};

// How the request body goes upstream. `upgrade`: the head asks to switch protocols
// (RequestHead::upgrade); after a 101 the body is the tunnel's bytes, sent as they are, and
// the response's body is the upstream's bytes until it closes.
enum class BodyFraming { none, content_length, chunked, upgrade };

class UpstreamRequest {
 public:
  virtual ~UpstreamRequest() = default;
  // Sends the request head. `head` is prepared for the upstream (hop-by-hop headers removed);
  // `framing` says whether a body follows and how HTTP/1.1 frames it.
  virtual void start_request(ResponseHandler& handler, const RequestHead& head, BodyFraming framing,
                             bool expect_no_response_body) = 0;
  // Queues request body bytes. Returns false when the caller should pause its producer until
  // on_upstream_writable().
  virtual bool write_body(std::string_view data, bool end_stream) = 0;
  // Ends the request with trailers (HTTP/1.1: only a chunked body can carry them).
  virtual void write_trailers(const HeaderMap& trailers) = 0;
  virtual void pause_reading() = 0;
  virtual void resume_reading() = 0;
  // `handler` is going away. A finished exchange has already returned its connection to the
  // pool and this does nothing; otherwise the request is abandoned (HTTP/1.1: the connection
  // closes; HTTP/2: the stream is reset).
  virtual void detach(ResponseHandler& handler) = 0;
  // An unused request handed out by acquire() is given back (its stream went away first).
  virtual void release_unused() = 0;
  // True when the connection had served a request before this one: a failure before any
  // response byte may then be the backend having closed an idle connection, safe to retry
  // on a fresh connection.
  virtual bool reused() const = 0;
};

using UpstreamRequestPtr = std::shared_ptr<UpstreamRequest>;

}  // namespace sluice::upstream
