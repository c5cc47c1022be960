#include "proxy/stream.h"

#include "core/request_id.h"
#include "core/stats.h"
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
  if (ctx_.access_log) ctx_.access_log->write(request_, info_);
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
  info_.request_id = assign_request_ids(request_.headers, info_.peer_trusted);
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
