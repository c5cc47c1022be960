#pragma once
// The router: the terminal filter of every chain. Picks the route, then answers locally
// (respond, redirect, 404) or forwards the request to a host of the route's cluster and
// streams the response back. Runs on the stream's worker thread.
#include <memory>
#include <optional>
#include <string>

#include "core/lazy_timer.h"
#include "filters/filter.h"
#include "filters/registry.h"
#include "filters/router/attempt_span.h"
#include "filters/router/route_table.h"
#include "upstream/upstream_request.h"

namespace sluice::upstream {
struct ClusterState;
class Host;
class HostPool;
}  // namespace sluice::upstream

namespace sluice::router {

class RouterFilterFactory : public FilterFactory {
 public:
  FilterPtr create(WorkerServices& services) const override;
};

// The registry entry: the terminal filter, without config keys of its own (routes and
// clusters are the core schema).
FilterRegistration registration();

// Uses the stream's route (callbacks().route()), matched once for every filter.
class RouterFilter : public Filter, public upstream::ResponseHandler {
 public:
  ~RouterFilter() override;

  FilterStatus on_request_headers(RequestHead& head, bool end_stream) override;
  FilterStatus on_request_body(std::string& data, bool end_stream) override;
  FilterStatus on_request_trailers(HeaderMap& trailers) override;
  void on_downstream_watermark(bool above_high) override;
  void on_destroy() override;

  // upstream::ResponseHandler
  void on_upstream_1xx(ResponseHead& head) override;
  void on_upstream_head(ResponseHead& head, bool end_stream) override;
  void on_upstream_data(std::string& data, bool end_stream) override;
  void on_upstream_trailers(HeaderMap& trailers) override;
  void on_upstream_error(const Error& error, bool response_started) override;
  void on_upstream_writable() override;

 private:
  static std::string pick_upgrade(const std::vector<std::string>& allowed,
                                  std::string_view requested);
  void respond(const config::Respond& respond);
  void redirect(const config::Redirect& redirect, const RequestHead& head);
  // Takes the request's fields (see return_request_fields()).
  void build_upstream_head(const CompiledRoute& route, RequestHead& head);
  void return_request_fields();
  void connect();
  // A reused connection that fails before the response can be replaced by a fresh one.
  bool can_resend_on_stale() const;
  void on_connected(upstream::UpstreamRequestPtr conn);
  // Writes body bytes to the upstream, keeping a copy while a resend may still need them.
  bool send_body(std::string_view data, bool end_stream);
  void response_finished();
  void arm_timeout();
  void on_timeout();
  void on_try_timeout();
  // Closes the try's client span (tracing), when one is open.
  void end_try_span(std::string_view error_type = {});
  void fail(const Error& error);
  void release_connection();
  // Retries under the route's policy: why a try failed, and whether another may follow.
  enum class RetryReason { connect_failure, reset, refused_stream, per_try_timeout, status };
  bool retry_allowed(RetryReason reason, unsigned status = 0);
  void retry(RetryReason reason);
  // The request's hash for ring_hash/maglev (from the cluster's hash_on).
  std::optional<uint64_t> request_hash(const RequestHead& head);
  // Outlier detection (record_outcome) and balancer accounting (leave_host: the request no
  // longer counts as active on it) for the host of the current try; host_done does both.
  void record_outcome(bool failed);
  void leave_host();
  void host_done(bool failed);
  // Sends the request again from its first body byte, on a connection picked anew.
  void resend();
  // The request no longer waits for a connection (max_pending_requests' count).
  void stop_pending();
  // Gives back the cluster-wide counts (requests, retries) this request holds; once.
  void release_counts();

  const CompiledRoute* route_ = nullptr;
  std::shared_ptr<upstream::ClusterState> cluster_;  // kept across a reload
  std::shared_ptr<upstream::HostPool> host_;         // the try's pool, alive while the try uses it
  std::shared_ptr<upstream::Host> host_ref_;   // the try's host while it counts as active on it
  const upstream::Host* last_host_ = nullptr;  // the previous try's host: a retry avoids it
  upstream::UpstreamRequestPtr conn_;
  AttemptSpan try_span_;                // the try's client span, on a sampled request
  unsigned tries_ = 0;                  // tries started, for http.request.resend_count
  std::optional<LazyTimer> timer_;      // route timeout, re-armed by each piece of the response
  std::optional<LazyTimer> try_timer_;  // the retry policy's per_try_timeout
  const config::RetryPolicy* retry_policy_ = nullptr;
  std::optional<uint64_t> hash_;
  RequestHead upstream_head_;
  // The stream's request while upstream_head_ holds its fields.
  RequestHead* fields_lent_by_ = nullptr;
  upstream::BodyFraming framing_ = upstream::BodyFraming::none;
  std::string pending_body_;  // body that arrived before the upstream connection
  bool pending_end_ = false;
  HeaderMap trailers_;  // the request's trailers, sent after its body
  bool has_trailers_ = false;
  // HTTP/2 upstreams: the body sent so far, for a resend after REFUSED_STREAM or GOAWAY.
  std::string sent_body_;
  bool keep_sent_body_ = false;
  bool request_ended_ = false;
  bool body_written_ = false;  // some body bytes went to the current connection
  bool response_started_ = false;
  bool done_ = false;
  bool downstream_paused_ = false;
  bool head_request_ = false;
  bool tunnel_ = false;  // the upstream answered 101 to an upgrade: bytes flow both ways
  unsigned connect_attempts_ = 0;
  unsigned stale_retries_ = 0;
  unsigned retries_ = 0;
  bool counted_request_ = false;  // in the cluster's active_requests
  bool counted_pending_ = false;  // in the cluster's pending_requests
  unsigned counted_retries_ = 0;  // in the cluster's active_retries
};

}  // namespace sluice::router
