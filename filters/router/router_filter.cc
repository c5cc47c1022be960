#include "filters/router/router_filter.h"

#include <algorithm>

#include "core/client_ip.h"
#include "core/stats.h"
#include "upstream/cluster_manager.h"

namespace sluice::router {

namespace asio = boost::asio;

namespace {
constexpr size_t kPendingBodyLimit = 256 * 1024;
constexpr unsigned kMaxStaleRetries = 2;
constexpr size_t kResendBodyLimit = 64 * 1024;  // larger bodies are not resent

}  // namespace

// The first protocol the client asks for (in its order) that the route allows; empty if none.
std::string RouterFilter::pick_upgrade(const std::vector<std::string>& allowed,
                                       std::string_view requested) {
  while (!requested.empty()) {
    size_t comma = requested.find(',');
    std::string_view protocol = requested.substr(0, comma);
    requested = comma == std::string_view::npos ? std::string_view() : requested.substr(comma + 1);
    if (std::find(allowed.begin(), allowed.end(), protocol) != allowed.end()) {
      return std::string(protocol);
    }
  }
  return {};
}

FilterPtr RouterFilterFactory::create(WorkerServices&) const {
  return std::make_unique<RouterFilter>();
}

FilterRegistration registration() {
  FilterRegistration r;
  r.schema.name = "router";
  r.schema.parse = [](config::SectionContext&) {
    return std::make_shared<const config::FilterConfig>();
  };
  r.schema.terminal = true;
  r.make_factory = [](const config::FilterConfig&, FactoryContext&, std::string*) {
    return FilterFactoryPtr(std::make_shared<RouterFilterFactory>());
  };
  return r;
}

RouterFilter::~RouterFilter() { on_destroy(); }

FilterStatus RouterFilter::on_request_headers(RequestHead& head, bool end_stream) {
  route_ = callbacks().route();
  if (!route_) {
    callbacks().info().error = "no_route";
    callbacks().send_local_reply(404, "no route matched\n");
    return FilterStatus::Stop;
  }
  const config::Route& route = *route_->route;
  if (route.respond) {
    respond(*route.respond);
    return FilterStatus::Stop;
  }
  if (route.redirect) {
    redirect(*route.redirect, head);
    return FilterStatus::Stop;
  }
  if (head.method == "CONNECT") {
    // A proxy tunnel to :authority (HTTP/2; HTTP/1.1's decoder refuses it already).
    callbacks().info().error = "connect_not_supported";
    callbacks().send_local_reply(501, "CONNECT is not supported\n");
    return FilterStatus::Stop;
  }
  std::string upgrade;
  if (!head.upgrade.empty()) {
    upgrade = pick_upgrade(route.upgrades, head.upgrade);
    if (upgrade.empty()) {
      callbacks().info().error = "upgrade_refused";
      callbacks().send_local_reply(403, "upgrade not allowed on this route\n");
      return FilterStatus::Stop;
    }
  }
  callbacks().info().cluster = route.cluster;
  cluster_ = callbacks().cluster_manager().find(route.cluster);
  if (!upgrade.empty() && cluster_ && cluster_->config->protocol == config::Cluster::Protocol::h2) {
    callbacks().info().error = "upgrade_to_h2_cluster";
    callbacks().send_local_reply(501, "upgrades are not supported to HTTP/2 clusters\n");
    return FilterStatus::Stop;
  }
  if (!cluster_) {
    fail(Error{ErrorKind::no_healthy_host, ErrorSource::upstream, false, "no hosts"});
    return FilterStatus::Stop;
  }
  const config::CircuitBreakers& breakers = cluster_->config->circuit_breakers;
  if (breakers.max_requests && cluster_->shared->active_requests.load(std::memory_order_relaxed) >=
                                   int64_t{*breakers.max_requests}) {
    cluster_->stats->overflow_requests.add();
    fail(Error{ErrorKind::overflow, ErrorSource::upstream, false,
               "circuit breaker: max_requests reached"});
    return FilterStatus::Stop;
  }
  cluster_->shared->active_requests.fetch_add(1, std::memory_order_relaxed);
  counted_request_ = true;
  retry_policy_ = route.retry ? &*route.retry : nullptr;
  hash_ = request_hash(head);
  head_request_ = head.method == "HEAD";
  // Kept for a resend: HTTP/2 upstreams may refuse a stream; a retry policy replays the body.
  keep_sent_body_ =
      cluster_->config->protocol == config::Cluster::Protocol::h2 || retry_policy_ != nullptr;
  request_ended_ = end_stream;
  if (!upgrade.empty()) {
    // The tunnel's bytes are not replayable, and the request only ends when the client
    // closes its side.
    framing_ = upstream::BodyFraming::upgrade;
    keep_sent_body_ = false;
    request_ended_ = false;
  } else if (end_stream) {
    framing_ = upstream::BodyFraming::none;
  } else if (head.headers.contains("content-length")) {
    framing_ = upstream::BodyFraming::content_length;
  } else {
    framing_ = upstream::BodyFraming::chunked;
  }
  build_upstream_head(*route_, head);
  head.upgrade = upgrade;  // the one chosen: the downstream codec answers with it
  upstream_head_.upgrade = std::move(upgrade);
  arm_timeout();
  connect();
  return FilterStatus::Stop;
}

void RouterFilter::build_upstream_head(const CompiledRoute& route, RequestHead& head) {
  upstream_head_.method = head.method;
  upstream_head_.target =
      route.route->rewrite_prefix ? RouteTable::rewrite_target(route, head) : head.target;
  upstream_head_.authority = head.authority;
  auto& h = upstream_head_.headers;
  // The request's fields are moved, not copied: copying and freeing a browser's 15 fields cost
  // more than 2,000 instructions a request. No filter runs after the router; they go back to
  // the stream, as sent upstream, once no try can follow: with the response head passed on,
  // a failure's local reply, or on_destroy().
  h = std::move(head.headers);
  head.headers.clear();
  fields_lent_by_ = &head;
  // Room for the forwarding fields, so adding them does not reallocate (moving every field).
  h.reserve(h.size() + kForwardingFields);
  const StreamInfo& info = callbacks().info();
  set_forwarding_headers(h, info.peer_ip, info.peer_trusted, info.client_ip, head.scheme,
                         head.authority);
  // TE: trailers comes from HTTP/2 clients (gRPC) and only means something to HTTP/2.
  if (cluster_->config->protocol != config::Cluster::Protocol::h2) h.remove("te");
}

void RouterFilter::arm_timeout() {
  if (!timer_) {
    timer_.emplace(
        callbacks().executor(), [](void* self) { static_cast<RouterFilter*>(self)->on_timeout(); },
        this);
  }
  timer_->expire_after(tunnel_ ? route_->route->upgrade_idle_timeout : route_->route->timeout,
                       callbacks().cancellation().guard());
}

void RouterFilter::on_timeout() {
  if (done_) return;
  end_try_span("timeout");
  if (!response_started_) host_done(true);
  if (cluster_) cluster_->stats->timeouts.add();
  fail(Error{ErrorKind::upstream_timeout, ErrorSource::upstream, false, "upstream timeout"});
}

std::optional<uint64_t> RouterFilter::request_hash(const RequestHead& head) {
  if (!cluster_->hashing) return std::nullopt;
  const config::Cluster& c = *cluster_->config;
  const config::HashOn on = c.hash_on.value_or(config::HashOn{});
  switch (on.kind) {
    case config::HashOn::Kind::client_ip:
      return upstream::hash_key(callbacks().info().client_ip.to_string());
    case config::HashOn::Kind::path: {
      return upstream::hash_key(head.path());
    }
    case config::HashOn::Kind::header: {
      std::optional<std::string_view> value = head.headers.get(on.name);
      if (!value) return std::nullopt;  // no key: balanced as random
      return upstream::hash_key(*value);
    }
    case config::HashOn::Kind::cookie:
      for (const auto& f : head.headers) {
        if (!iequals(f.name, "cookie")) continue;
        std::string_view rest = f.value;
        while (!rest.empty()) {
          size_t end = rest.find(';');
          std::string_view pair = rest.substr(0, end);
          rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
          while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
          size_t eq = pair.find('=');
          if (eq != std::string_view::npos && pair.substr(0, eq) == on.name) {
            return upstream::hash_key(pair.substr(eq + 1));
          }
        }
      }
      return std::nullopt;
  }
  return std::nullopt;
}

void RouterFilter::connect() {
  upstream::PickContext ctx;
  ctx.hash = hash_;
  ctx.avoid = last_host_;
  upstream::ClusterState::Pick pick = cluster_->pick(ctx);
  if (!pick.host) {
    // Nothing to try (no host, or none healthy): say so at once instead of waiting.
    cluster_->stats->no_healthy_host.add();
    fail(Error{ErrorKind::no_healthy_host, ErrorSource::upstream, false, "no healthy host"});
    return;
  }
  if (pick.panic) cluster_->stats->panic.add();
  // Counted only under a limit: a shared write per request is not free.
  if (const auto& max_pending = cluster_->config->circuit_breakers.max_pending_requests) {
    if (cluster_->shared->pending_requests.load(std::memory_order_relaxed) >=
        int64_t{*max_pending}) {
      cluster_->stats->overflow_pending.add();
      fail(Error{ErrorKind::overflow, ErrorSource::upstream, false,
                 "circuit breaker: max_pending_requests reached"});
      return;
    }
    cluster_->shared->pending_requests.fetch_add(1, std::memory_order_relaxed);
    counted_pending_ = true;
  }
  host_ = pick.pool;
  host_ref_ = pick.host;
  if (const TraceContext& trace = callbacks().info().trace; trace.sampled) {
    try_span_.begin(trace, upstream_head_.headers, host_->name(), tries_);
  }
  ++tries_;
  host_ref_->request_started();
  last_host_ = host_ref_.get();
  ++connect_attempts_;
  if (retry_policy_ && retry_policy_->per_try_timeout) {
    if (!try_timer_) {
      try_timer_.emplace(
          callbacks().executor(),
          [](void* self) { static_cast<RouterFilter*>(self)->on_try_timeout(); }, this);
    }
    try_timer_->expire_after(*retry_policy_->per_try_timeout, callbacks().cancellation().guard());
  }
  host_->acquire(
      cluster_->config->connect_timeout,
      [this, token = callbacks().cancellation()](upstream::UpstreamRequestPtr conn,
                                                 const Error* err) {
        if (token.cancelled() || done_) {
          if (conn) conn->release_unused();  // the stream went away while connecting
          return;
        }
        stop_pending();
        if (err) {
          end_try_span(to_string(err->kind));
          if (err->kind == ErrorKind::overflow) {
            fail(*err);  // not the host's doing: no outlier count either way
            return;
          }
          host_done(true);
          // Nothing was sent: another host may answer, with or without a retry policy.
          if (connect_attempts_ < cluster_->host_count()) {
            cluster_->stats->retry_connect_failure.add();
            connect();
            return;
          }
          if (retry_allowed(RetryReason::connect_failure)) {
            retry(RetryReason::connect_failure);
            return;
          }
          fail(*err);
          return;
        }
        on_connected(std::move(conn));
      },
      /*probe_idle=*/!can_resend_on_stale());
}

void RouterFilter::record_outcome(bool failed) {
  if (!host_ref_) return;
  if (failed) {
    cluster_->shared->record_failure(host_ref_);
  } else {
    host_ref_->record_success();
  }
}

void RouterFilter::leave_host() {
  if (!host_ref_) return;
  host_ref_->request_finished();
  host_ref_.reset();
}

void RouterFilter::stop_pending() {
  if (!counted_pending_) return;
  counted_pending_ = false;
  cluster_->shared->pending_requests.fetch_sub(1, std::memory_order_relaxed);
}

void RouterFilter::host_done(bool failed) {
  record_outcome(failed);
  leave_host();
}

void RouterFilter::resend() {
  connect_attempts_ = 0;
  pending_body_.insert(0, sent_body_);
  sent_body_.clear();
  pending_end_ = request_ended_ && !has_trailers_;
  connect();
}

bool RouterFilter::retry_allowed(RetryReason reason, unsigned status) {
  if (!retry_policy_ || response_started_ || retries_ >= retry_policy_->attempts) return false;
  const config::RetryPolicy& p = *retry_policy_;
  switch (reason) {
    case RetryReason::connect_failure:
      if (!p.on_connect_failure) return false;
      break;
    case RetryReason::reset:
      if (!p.on_reset) return false;
      break;
    case RetryReason::refused_stream:
      if (!p.on_refused_stream) return false;
      break;
    case RetryReason::per_try_timeout:
      // A try that timed out is treated as the 504 it would have become.
      if (!p.on_per_try_timeout &&
          std::find(p.on_statuses.begin(), p.on_statuses.end(), 504u) == p.on_statuses.end()) {
        return false;
      }
      break;
    case RetryReason::status:
      if (std::find(p.on_statuses.begin(), p.on_statuses.end(), status) == p.on_statuses.end()) {
        return false;
      }
      break;
  }
  const std::string& m = upstream_head_.method;
  const bool idempotent =
      m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "PUT" || m == "DELETE" || m == "TRACE";
  if (!idempotent && !p.retry_non_idempotent) return false;
  // The whole body must be at hand to send again (kept up to kResendBodyLimit).
  if (framing_ != upstream::BodyFraming::none && !keep_sent_body_) return false;
  // The budget: retries in flight stay under budget_percent of the cluster's requests (at
  // least 3), so a sick cluster is not hit twice as hard.
  auto& shared = *cluster_->shared;
  const int64_t active = shared.active_requests.load(std::memory_order_relaxed);
  const int64_t allowed = std::max<int64_t>(3, active * p.budget_percent / 100);
  if (shared.active_retries.load(std::memory_order_relaxed) >= allowed) {
    cluster_->stats->retry_budget_exhausted.add();
    return false;
  }
  return true;
}

void RouterFilter::retry(RetryReason reason) {
  switch (reason) {
    case RetryReason::connect_failure:
      cluster_->stats->retry_connect_failure.add();
      break;
    case RetryReason::reset:
      cluster_->stats->retry_reset.add();
      break;
    case RetryReason::refused_stream:
      cluster_->stats->retry_refused_stream.add();
      break;
    case RetryReason::per_try_timeout:
      cluster_->stats->retry_per_try_timeout.add();
      break;
    case RetryReason::status:
      cluster_->stats->retry_status.add();
      break;
  }
  ++retries_;
  if (counted_retries_ == 0) {
    cluster_->shared->active_retries.fetch_add(1, std::memory_order_relaxed);
    ++counted_retries_;
  }
  release_connection();
  resend();
}

void RouterFilter::on_try_timeout() {
  if (done_ || response_started_) return;
  end_try_span("timeout");
  host_done(true);
  if (retry_allowed(RetryReason::per_try_timeout)) {
    retry(RetryReason::per_try_timeout);
    return;
  }
  cluster_->stats->timeouts.add();
  fail(
      Error{ErrorKind::upstream_timeout, ErrorSource::upstream, false, "upstream per-try timeout"});
}

void RouterFilter::release_counts() {
  if (!cluster_) return;
  auto& shared = *cluster_->shared;
  stop_pending();
  if (counted_request_) {
    counted_request_ = false;
    shared.active_requests.fetch_sub(1, std::memory_order_relaxed);
  }
  if (counted_retries_ > 0) {
    shared.active_retries.fetch_sub(counted_retries_, std::memory_order_relaxed);
    counted_retries_ = 0;
  }
  leave_host();
}

bool RouterFilter::can_resend_on_stale() const {
  // A POST that fails on a reused connection may have reached the application; only an
  // idempotent request without a body is resent without checking the socket first.
  const std::string& m = upstream_head_.method;
  bool idempotent = m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "PUT" || m == "DELETE";
  return idempotent && framing_ == upstream::BodyFraming::none && stale_retries_ < kMaxStaleRetries;
}

void RouterFilter::on_connected(upstream::UpstreamRequestPtr conn) {
  conn_ = std::move(conn);
  body_written_ = false;
  callbacks().info().upstream_host = host_->name();
  conn_->start_request(*this, upstream_head_, framing_, head_request_);
  if (!pending_body_.empty() || pending_end_) {
    std::string body;
    body.swap(pending_body_);
    bool writable = send_body(body, pending_end_);
    if (downstream_paused_ && writable) {
      downstream_paused_ = false;
      callbacks().resume_request_body();
    }
  }
  if (has_trailers_ && conn_) conn_->write_trailers(trailers_);
}

bool RouterFilter::send_body(std::string_view data, bool end_stream) {
  if (!data.empty()) {
    body_written_ = true;
    if (keep_sent_body_) {
      if (sent_body_.size() + data.size() <= kResendBodyLimit) {
        sent_body_.append(data);
      } else {
        keep_sent_body_ = false;
        std::string().swap(sent_body_);
      }
    }
  }
  return conn_->write_body(data, end_stream);
}

FilterStatus RouterFilter::on_request_body(std::string& data, bool end_stream) {
  if (done_) return FilterStatus::Stop;
  if (end_stream) request_ended_ = true;
  if (tunnel_) arm_timeout();  // idle means no byte either way
  if (!conn_) {
    pending_body_.append(data);
    pending_end_ = end_stream;
    if (pending_body_.size() > kPendingBodyLimit && !downstream_paused_) {
      downstream_paused_ = true;
      callbacks().pause_request_body();
    }
    return FilterStatus::Stop;
  }
  if (!send_body(data, end_stream) && !downstream_paused_) {
    downstream_paused_ = true;
    callbacks().pause_request_body();
  }
  return FilterStatus::Stop;
}

FilterStatus RouterFilter::on_request_trailers(HeaderMap& trailers) {
  if (done_) return FilterStatus::Stop;
  request_ended_ = true;
  trailers_ = trailers;
  has_trailers_ = true;
  if (conn_) conn_->write_trailers(trailers_);
  return FilterStatus::Stop;
}

void RouterFilter::on_upstream_writable() {
  if (downstream_paused_) {
    downstream_paused_ = false;
    callbacks().resume_request_body();
  }
}

void RouterFilter::on_downstream_watermark(bool above_high) {
  if (!conn_) return;
  if (above_high) {
    conn_->pause_reading();
  } else {
    conn_->resume_reading();
  }
}

void RouterFilter::on_upstream_1xx(ResponseHead& head) { callbacks().encode_1xx(head); }

void RouterFilter::on_upstream_head(ResponseHead& head, bool end_stream) {
  if (try_timer_) try_timer_->cancel();
  try_span_.set_status(head.status);
  const bool failed = head.status >= 500;
  if (failed && retry_allowed(RetryReason::status, head.status)) {
    end_try_span();
    // This answer is dropped (its connection closes) and the request goes to another host.
    cluster_->stats->requests.add(head.status);
    host_done(true);
    retry(RetryReason::status);
    return;
  }
  // The outcome counts for outlier detection now; the request stays active on the host
  // (least_request) until the response ends.
  // The response passed on (a retried one is dropped above): what the access log reports.
  StreamInfo& info = callbacks().info();
  info.upstream_status = head.status;
  info.upstream_time = std::chrono::steady_clock::now() - info.start;
  record_outcome(failed);
  response_started_ = true;
  cluster_->stats->requests.add(head.status);
  if (head.status == 101 && framing_ == upstream::BodyFraming::upgrade) {
    tunnel_ = true;
    info.upgrade = upstream_head_.upgrade;
    callbacks().stats().route(route_->route->name).upgrades.add();
  }
  return_request_fields();  // no try follows: the response phases may read them
  if (end_stream) {
    response_finished();
  } else {
    arm_timeout();  // now bounds the gap between pieces of the body
  }
  callbacks().encode_headers(head, end_stream);
}

void RouterFilter::on_upstream_data(std::string& data, bool end_stream) {
  if (end_stream) {
    response_finished();
  } else {
    arm_timeout();
  }
  callbacks().encode_data(data, end_stream);
}

void RouterFilter::on_upstream_trailers(HeaderMap& trailers) {
  response_finished();
  callbacks().encode_trailers(trailers);
}

void RouterFilter::response_finished() {
  end_try_span();
  done_ = true;
  if (timer_) timer_->cancel();
  if (try_timer_) try_timer_->cancel();
  release_counts();
  conn_.reset();  // finished: the connection has returned itself to its pool
}

void RouterFilter::on_upstream_error(const Error& error, bool response_started) {
  end_try_span(to_string(error.kind));
  auto conn = std::move(conn_);
  if (response_started) {
    done_ = true;
    if (timer_) timer_->cancel();
    release_counts();
    callbacks().info().error = error.detail;
    callbacks().abort_response(error.detail);
    return;
  }
  // A reused connection that failed before any response byte was most likely closed by the
  // backend while idle: the request never reached the application, so it goes again on a
  // fresh connection, provided no body byte was sent (nothing to replay). A request the
  // upstream said it did not process (HTTP/2 REFUSED_STREAM, GOAWAY) goes again with the
  // body kept for it.
  const bool stale = conn && conn->reused() && !body_written_;
  const bool refused = error.retry_safe && (!body_written_ || keep_sent_body_);
  if ((stale || refused) && stale_retries_ < kMaxStaleRetries) {
    // Not the host's fault: no outlier count, no retry budget.
    leave_host();
    ++stale_retries_;
    last_host_ = nullptr;
    resend();
    return;
  }
  host_done(true);
  const RetryReason reason = error.retry_safe ? RetryReason::refused_stream : RetryReason::reset;
  if (retry_allowed(reason)) {
    retry(reason);
    return;
  }
  cluster_->stats->requests.add(status_for(error));
  fail(error);
}

void RouterFilter::fail(const Error& error) {
  if (done_) return;
  end_try_span(to_string(error.kind));
  done_ = true;
  if (timer_) timer_->cancel();
  if (try_timer_) try_timer_->cancel();
  release_connection();
  release_counts();
  return_request_fields();
  callbacks().info().error =
      error.detail.empty() ? std::string(to_string(error.kind)) : error.detail;
  if (response_started_) {
    callbacks().abort_response(error.detail);
    return;
  }
  unsigned status = status_for(error);
  std::string body(reason_phrase(status));
  body += '\n';
  callbacks().send_local_reply(status, body);
}

void RouterFilter::respond(const config::Respond& respond) {
  done_ = true;
  HeaderMap extra;
  for (const auto& [name, value] : respond.headers) extra.add(name, value);
  callbacks().send_local_reply(respond.status, respond.body, extra);
}

void RouterFilter::redirect(const config::Redirect& redirect, const RequestHead& head) {
  done_ = true;
  HeaderMap extra;
  extra.add("location", RouteTable::redirect_location(redirect, head));
  callbacks().send_local_reply(redirect.status, "", extra);
}

void RouterFilter::release_connection() {
  if (conn_) {
    conn_->detach(*this);
    conn_.reset();
  }
}

void RouterFilter::end_try_span(std::string_view error_type) {
  const TraceContext& trace = callbacks().info().trace;
  if (!trace.sampled) return;
  try_span_.end(trace, upstream_head_, cluster_ && cluster_->config->tls.has_value(), error_type);
}

void RouterFilter::return_request_fields() {
  if (!fields_lent_by_) return;
  fields_lent_by_->headers = std::move(upstream_head_.headers);
  upstream_head_.headers.clear();
  fields_lent_by_ = nullptr;
}

void RouterFilter::on_destroy() {
  end_try_span("cancelled");
  return_request_fields();
  if (timer_) timer_->cancel();
  if (try_timer_) try_timer_->cancel();
  release_connection();
  release_counts();
}

}  // namespace sluice::router
