#include "proxy/stream.h"

#include "core/request_id.h"
#include "core/stats.h"
#include "core/trace.h"
#include "proxy/access_log.h"

namespace sluice {

Stream::Stream(StreamContext& ctx, StreamEncoder& encoder, SnapshotPtr snapshot,
               const FilterChainFactory& chain, StreamInfo info)
    : ctx_(ctx),
      encoder_(encoder),
      snapshot_(std::move(snapshot)),
      chain_(chain),
      info_(std::move(info)) {
  filters_ = chain.create(*ctx_.services);
  for (auto& f : filters_) f->set_callbacks(*this);
}

Stream::~Stream() {
  destroy_filters();
  if (!response_complete_ && info_.status != 0) info_.response_aborted = true;
  for (auto& f : filters_) f->on_log(info_);
  auto& stats = *ctx_.stats;
  if (info_.status != 0) stats.listener(info_.listener).requests.add(info_.status);
  // Observed by the class of the status sent; an exchange that sent none (the client left
  // first) is in no class, as it is not in the listener's request counts either.
  if (!info_.route.empty() && info_.status != 0) {
    auto elapsed = std::chrono::steady_clock::now() - info_.start;
    stats.route(info_.route).observe(info_.status, std::chrono::duration<double>(elapsed).count());
  }
  if (info_.trace.sampled) record_server_span();
  if (ctx_.access_log) ctx_.access_log->write(request_, info_);
}

void Stream::sample_trace(const config::Tracing& tracing) {
  TraceContext& trace = info_.trace;
  if (!ctx_.spans) return;
  if (trace.has_parent) {
    trace.sampled = trace.parent_sampled;  // the caller decided
  } else {
    // random_u64() / 2^64 < sample_rate
    trace.sampled = tracing.sample_rate >= 1.0 ||
                    static_cast<double>(random_u64()) < tracing.sample_rate * 0x1p64;
  }
  if (!trace.sampled) return;
  trace.span_id = new_span_id();
  trace.sink = ctx_.spans;
  // The next hop's parent is this span (the router puts each try's own span there instead).
  request_.headers.set("traceparent", format_traceparent(trace.trace_id, trace.span_id, true));
}

void Stream::record_server_span() {
  const TraceContext& trace = info_.trace;
  SpanRecord span;
  span.trace_id = trace.trace_id;
  span.span_id = trace.span_id;
  span.parent_id = trace.parent_id;
  span.has_parent = trace.has_parent;
  span.kind = SpanKind::server;
  const std::string_view method = known_http_method(request_.method);
  span.name = method;
  if (!info_.route.empty()) {
    span.name += ' ';
    span.name += info_.route;
  }
  span.start_unix_ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(info_.start_wall.time_since_epoch())
          .count());
  span.end_unix_ns = span.start_unix_ns +
                     static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                               std::chrono::steady_clock::now() - info_.start)
                                               .count());
  span.attributes.reserve(14);
  span.add("http.request.method", std::string(method));
  if (method == "_OTHER") span.add("http.request.method_original", request_.method);
  span.add("url.scheme", request_.scheme);
  span.add("url.path", std::string(request_.path()));
  if (std::string_view query = request_.query(); !query.empty()) {
    span.add("url.query", std::string(query));
  }
  if (!info_.route.empty()) span.add("http.route", info_.route);
  if (!request_.authority.empty()) {
    auto [host, port] = split_authority(request_.authority);
    span.add("server.address", std::string(host));
    if (port) span.add("server.port", int64_t{*port});
  }
  span.add("client.address", info_.client_ip.to_string());
  span.add("network.peer.address", info_.peer_ip.to_string());
  span.add("network.peer.port", int64_t{info_.peer_port});
  span.add("network.protocol.version", request_.version == 20   ? std::string("2")
                                       : request_.version == 10 ? std::string("1.0")
                                                                : std::string("1.1"));
  if (auto ua = request_.headers.get("user-agent"))
    span.add("user_agent.original", std::string(*ua));
  if (info_.status != 0) span.add("http.response.status_code", int64_t{info_.status});
  // A server span fails on a 5xx or a response that could not be completed; 4xx are the
  // client's errors, not the server's (OpenTelemetry's HTTP conventions).
  if (info_.status >= 500) {
    span.error = true;
    span.add("error.type", std::to_string(info_.status));
  } else if (info_.status == 0 || info_.response_aborted) {
    span.error = true;
    span.add("error.type", info_.error.empty() ? std::string("aborted") : info_.error);
  }
  trace.sink->submit(std::move(span));
}

void Stream::destroy_filters() {
  if (filters_destroyed_) return;
  filters_destroyed_ = true;
  cancellation_.cancel();
  for (auto& f : filters_) f->on_destroy();
}

void Stream::decode_headers(RequestHead&& head, bool end_stream) {
  request_ = std::move(head);
  info_.peer_trusted = chain_.trusted_proxies().contains(info_.peer_ip);
  info_.client_ip = resolve_client_ip(info_.peer_ip, request_.headers, chain_.trusted_proxies());
  info_.request_id = assign_request_ids(request_.headers, info_.peer_trusted, info_.trace);
  if (const config::Tracing& tracing = snapshot_->config->tracing; tracing.enabled()) {
    sample_trace(tracing);
  }
  request_ended_ = end_stream;
  headers_end_stream_ = end_stream;
  run_request_headers(0);
}

void Stream::run_request_headers(size_t from) {
  const size_t last = filters_.size() - 1;
  for (size_t i = from; i < filters_.size(); ++i) {
    // Not request_ended_: a body that arrived while a filter held the headers still follows.
    FilterStatus status = filters_[i]->on_request_headers(request_, headers_end_stream_);
    if (local_reply_ || filters_destroyed_) return;
    if (status == FilterStatus::Stop && i < last) {
      // Hold the body until the filter calls continue_request().
      headers_stopped_ = true;
      stopped_at_ = i;
      encoder_.pause_request_body();
      return;
    }
  }
  if (!request_ended_ && !response_started_) encoder_.encode_100_continue();
  if (!held_body_.empty() || held_end_) {
    std::string body;
    body.swap(held_body_);
    run_request_body(body, held_end_, 0);
  }
  if (trailers_held_ && !local_reply_ && !filters_destroyed_) {
    trailers_held_ = false;
    run_request_trailers();
  }
}

const router::CompiledRoute* Stream::route() {
  if (!route_cached_) {
    route_ = chain_.routes() ? chain_.routes()->match(request_) : nullptr;
    route_cached_ = true;
    // Logged and measured under this route even when a filter answers before the router.
    if (route_) {
      info_.route = route_->route->name;
    } else {
      info_.route.clear();
    }
  }
  return route_;
}

void Stream::continue_request() {
  if (!headers_stopped_ || local_reply_ || filters_destroyed_) return;
  headers_stopped_ = false;
  encoder_.resume_request_body();
  run_request_headers(stopped_at_ + 1);
}

void Stream::decode_data(std::string& data, bool end_stream) {
  info_.bytes_received += data.size();
  if (end_stream) request_ended_ = true;
  if (local_reply_ || filters_destroyed_) return;  // the answer is already decided
  if (headers_stopped_) {
    held_body_.append(data);
    held_end_ = held_end_ || end_stream;
    return;
  }
  run_request_body(data, end_stream, 0);
}

void Stream::run_request_body(std::string& data, bool end_stream, size_t from) {
  // A non-terminal filter returning Stop here has taken the data; the rest of the chain
  // does not see it.
  for (size_t i = from; i < filters_.size(); ++i) {
    FilterStatus status = filters_[i]->on_request_body(data, end_stream);
    if (local_reply_ || filters_destroyed_ || status == FilterStatus::Stop) return;
  }
}

void Stream::decode_trailers(HeaderMap&& trailers) {
  request_ended_ = true;
  if (local_reply_ || filters_destroyed_) return;
  request_trailers_ = std::move(trailers);
  if (headers_stopped_) {
    trailers_held_ = true;
    return;
  }
  run_request_trailers();
}

void Stream::run_request_trailers() {
  for (auto& f : filters_) {
    FilterStatus status = f->on_request_trailers(request_trailers_);
    if (local_reply_ || filters_destroyed_ || status == FilterStatus::Stop) return;
  }
}

void Stream::on_downstream_watermark(bool above_high) {
  if (!filters_destroyed_) filters_.back()->on_downstream_watermark(above_high);
}

void Stream::reset(std::string_view reason) {
  if (info_.error.empty()) info_.error = reason;
  destroy_filters();
}

void Stream::send_local_reply(unsigned status, std::string_view body,
                              const HeaderMap& extra_headers) {
  if (response_started_) {
    abort_response("local reply after the response started");
    return;
  }
  local_reply_ = true;
  if (headers_stopped_) {
    // The filter that held the headers answered instead of continuing: the body it paused is
    // no longer wanted, but the connection must read past it (or finish) to go on.
    headers_stopped_ = false;
    encoder_.resume_request_body();
  }
  ResponseHead head;
  head.status = status;
  head.version = request_.version;
  bool has_type = false;
  for (const auto& h : extra_headers) {
    if (iequals(h.name, "content-type")) has_type = true;
    head.headers.add(h.name, h.value);
  }
  const bool no_body = status_has_no_body(status);
  // RFC 9110 §8.6: no Content-Length on 1xx/204 (304 keeps it absent too: no representation).
  if (!no_body) {
    if (!has_type && !body.empty()) {
      head.headers.add("content-type", "text/plain; charset=utf-8");
    }
    head.headers.set("content-length", std::to_string(body.size()));
  }
  bool end = body.empty() || no_body;
  encode_headers(head, end);
  if (!end) {
    std::string data(body);
    encode_data(data, true);
  }
}

void Stream::encode_1xx(ResponseHead& head) {
  if (!response_started_) encoder_.encode_1xx(head);
}

void Stream::encode_headers(ResponseHead& head, bool end_stream) {
  response_started_ = true;
  info_.status = head.status;
  // Response phases run in reverse; the terminal filter produced the response.
  for (size_t i = filters_.size() - 1; i-- > 0;) {
    filters_[i]->on_response_headers(head, end_stream);
  }
  if (chain_.echo_request_id() && !info_.request_id.empty()) {
    head.headers.set("x-request-id", info_.request_id);
  }
  if (end_stream) response_complete_ = true;
  encoder_.encode_headers(head, end_stream);
}

void Stream::encode_data(std::string& data, bool end_stream) {
  for (size_t i = filters_.size() - 1; i-- > 0;) {
    filters_[i]->on_response_body(data, end_stream);
  }
  info_.bytes_sent += data.size();
  if (end_stream) response_complete_ = true;
  encoder_.encode_data(data, end_stream);
}

void Stream::encode_trailers(HeaderMap& trailers) {
  for (size_t i = filters_.size() - 1; i-- > 0;) {
    filters_[i]->on_response_trailers(trailers);
  }
  response_complete_ = true;
  encoder_.encode_trailers(trailers);
}

void Stream::abort_response(std::string_view reason) {
  if (info_.error.empty()) info_.error = reason;
  info_.response_aborted = true;
  destroy_filters();
  encoder_.abort_response();
}

}  // namespace sluice
