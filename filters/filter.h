#pragma once
// The filter interface. Every phase runs on the worker thread that owns the stream; a filter
// instance belongs to exactly one stream and is destroyed with it.
//
// Request phases run in chain order, response phases in reverse. A phase returns Continue to
// pass the message on, or Stop to hold it: a filter that must wait (a Redis call, say) returns
// Stop, does its work on callbacks().executor(), and then calls continue_request() (or
// send_local_reply()). on_destroy() runs before destruction so pending work can be cancelled;
// on_log() runs exactly once when the exchange is over, whatever its outcome.
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>

#include "core/cancellation.h"
#include "core/client_ip.h"
#include "core/http.h"
#include "core/trace.h"

namespace sluice {
class WorkerStats;
class WorkerServices;
namespace config {
struct Config;
}
namespace upstream {
class ClusterManager;
}
namespace router {
struct CompiledRoute;
}

// What is known about an exchange, filled in as it progresses; read by on_log() and the
// access log.
struct StreamInfo {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::chrono::system_clock::time_point start_wall = std::chrono::system_clock::now();
  std::string listener;
  IpAddress peer_ip;  // the other end of the connection
  uint16_t peer_port = 0;
  IpAddress client_ip;           // the peer, or who it forwards for (core/client_ip.h)
  bool peer_trusted = false;     // the peer is one of the listener's trusted_proxies
  std::string request_id;        // x-request-id as forwarded upstream (core/request_id.h)
  TraceContext trace;            // from traceparent; `sampled` when spans are recorded
  std::string route;             // name of the matched route, empty if none
  std::string upstream_host;     // "ip:port" of the host that answered, empty if none
  std::string cluster;           // the cluster the router sent the request to, if any
  unsigned upstream_status = 0;  // status of the upstream response passed on; 0 when none
  // From the start of the exchange to the upstream response head (time to first byte); -1:
  // no upstream response.
  std::chrono::steady_clock::duration upstream_time{-1};
  const char* tls_version = nullptr;  // "TLSv1.3" and the like on a TLS connection (static)
  std::string upgrade;                // the protocol switched to on a 101 ("websocket")
  unsigned status = 0;                // status sent downstream; 0 when none was sent
  uint64_t bytes_received = 0;        // request body bytes from the client
  uint64_t bytes_sent = 0;            // response body bytes to the client
  bool response_aborted = false;      // the response started but could not be completed
  std::string error;                  // short reason when the exchange failed
};

enum class FilterStatus { Continue, Stop };

// Provided by the Stream to each of its filters.
class FilterCallbacks {
 public:
  virtual ~FilterCallbacks() = default;
  virtual boost::asio::any_io_executor executor() = 0;
  // The request as received and changed by the filters so far. While the router is trying
  // backends, the upstream request holds its fields (`headers` is empty); it gives them back,
  // as sent upstream (with the forwarding fields), before any response phase runs.
  virtual RequestHead& request() = 0;
  virtual StreamInfo& info() = 0;
  virtual const config::Config& config() = 0;  // the snapshot this stream started with
  virtual upstream::ClusterManager& cluster_manager() = 0;
  virtual WorkerStats& stats() = 0;
  virtual WorkerServices& services() = 0;
  // Cancelled when the stream's filters are destroyed: async work a filter starts checks it
  // before calling back into the filter or the stream.
  virtual CancellationToken cancellation() = 0;

  // The route for the request as it is now: matched on first use, then cached for the rest of
  // the stream. Null when no route matches. A filter that changes the path, host or anything
  // else routes match on calls clear_route_cache() so the next route() matches again.
  virtual const router::CompiledRoute* route() = 0;
  virtual void clear_route_cache() = 0;

  // Resumes the request phases after the calling filter returned Stop.
  virtual void continue_request() = 0;
  // Answers the request locally with a short text/plain body; the rest of the chain and any
  // upstream request are skipped. If the response has already started, the downstream is
  // aborted instead.
  virtual void send_local_reply(unsigned status, std::string_view body,
                                const HeaderMap& extra_headers = {}) = 0;

  // Used by the terminal filter (the router) to send the response back through the response
  // phases of the chain.
  virtual void encode_headers(ResponseHead& head, bool end_stream) = 0;
  virtual void encode_1xx(ResponseHead& head) = 0;  // interim response (100 Continue, 103 …)
  virtual void encode_data(std::string& data, bool end_stream) = 0;
  // Ends the response with trailers (gRPC's grpc-status, say).
  virtual void encode_trailers(HeaderMap& trailers) = 0;
  // The response can not be completed (upstream reset mid-body): abort the downstream.
  virtual void abort_response(std::string_view reason) = 0;

  // Flow control between the two sides. The router pauses the downstream request body when
  // the upstream cannot take more, and the stream tells the router to stop reading the
  // upstream when the downstream cannot take more.
  virtual void pause_request_body() = 0;
  virtual void resume_request_body() = 0;
};

class Filter {
 public:
  virtual ~Filter() = default;
  void set_callbacks(FilterCallbacks& cb) { callbacks_ = &cb; }

  virtual FilterStatus on_request_headers(RequestHead&, bool /*end_stream*/) {
    return FilterStatus::Continue;
  }
  virtual FilterStatus on_request_body(std::string& /*data*/, bool /*end_stream*/) {
    return FilterStatus::Continue;
  }
  // Trailers end the request (or response) body; they follow any body data.
  virtual FilterStatus on_request_trailers(HeaderMap&) { return FilterStatus::Continue; }
  virtual FilterStatus on_response_headers(ResponseHead&, bool /*end_stream*/) {
    return FilterStatus::Continue;
  }
  virtual FilterStatus on_response_body(std::string& /*data*/, bool /*end_stream*/) {
    return FilterStatus::Continue;
  }
  virtual FilterStatus on_response_trailers(HeaderMap&) { return FilterStatus::Continue; }
  // The downstream can take more response data (after the stream asked the terminal filter
  // to pause reading); only meaningful for the terminal filter.
  virtual void on_downstream_watermark(bool /*above_high*/) {}
  virtual void on_log(const StreamInfo&) {}
  virtual void on_destroy() {}

 protected:
  FilterCallbacks& callbacks() { return *callbacks_; }

 private:
  FilterCallbacks* callbacks_ = nullptr;
};

using FilterPtr = std::unique_ptr<Filter>;

// Built once per config snapshot; creates a per-stream instance. Shared by all workers, so
// create() must be thread-safe (it is const and the factory is immutable).
class FilterFactory {
 public:
  virtual ~FilterFactory() = default;
  // On the stream's worker thread; `services` are that worker's.
  virtual FilterPtr create(WorkerServices& services) const = 0;
};

using FilterFactoryPtr = std::shared_ptr<const FilterFactory>;

}  // namespace sluice
