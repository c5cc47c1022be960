#include "filters/router/router_filter.h"

#include "core/stats.h"
#include "upstream/cluster_manager.h"

namespace sluice::router {

namespace asio = boost::asio;

namespace {
constexpr size_t kPendingBodyLimit = 256 * 1024;
constexpr unsigned kMaxStaleRetries = 2;
constexpr size_t kResendBodyLimit = 64 * 1024;  // larger bodies are not resent

}  // namespace

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
  cluster_ = callbacks().cluster_manager().find(route.cluster);
  if (!cluster_ || cluster_->hosts.empty()) {
    fail(Error{ErrorKind::no_healthy_host, ErrorSource::upstream, false, "no hosts"});
    return FilterStatus::Stop;
  }
  head_request_ = head.method == "HEAD";
  keep_sent_body_ = cluster_->config->protocol == config::Cluster::Protocol::h2;
  request_ended_ = end_stream;
  if (end_stream) {
    framing_ = upstream::BodyFraming::none;
  } else if (head.headers.contains("content-length")) {
    framing_ = upstream::BodyFraming::content_length;
  } else {
    framing_ = upstream::BodyFraming::chunked;
  }
  build_upstream_head(*route_, head);
  arm_timeout();
  connect();
  return FilterStatus::Stop;
}

void RouterFilter::build_upstream_head(const CompiledRoute& route, const RequestHead& head) {
  upstream_head_.method = head.method;
  upstream_head_.target =
      route.route->rewrite_prefix ? RouteTable::rewrite_target(route, head) : head.target;
  upstream_head_.authority = head.authority;
  upstream_head_.headers = head.headers;
  auto& h = upstream_head_.headers;
  // X-Forwarded-For gains this hop's peer (the client, or the trusted proxy that forwarded
  // for it); what came before is kept in front of it.
  const std::string peer = callbacks().info().peer_ip.to_string();
  if (h.count("x-forwarded-for") > 0) {
    std::string joined;
    for (const auto& f : h) {
      if (iequals(f.name, "x-forwarded-for")) {
        if (!joined.empty()) joined += ", ";
        joined += f.value;
      }
    }
    h.set("x-forwarded-for", joined + ", " + peer);
  } else {
    h.add("x-forwarded-for", peer);
  }
  h.set("x-forwarded-proto", head.scheme);
  // TE: trailers comes from HTTP/2 clients (gRPC) and only means something to HTTP/2.
  if (cluster_->config->protocol != config::Cluster::Protocol::h2) h.remove("te");
  if (!head.authority.empty()) h.set("x-forwarded-host", head.authority);
}

void RouterFilter::arm_timeout() {
  if (!timer_) {
    timer_.emplace(
        callbacks().executor(), [](void* self) { static_cast<RouterFilter*>(self)->on_timeout(); },
        this);
  }
  timer_->expire_after(route_->route->timeout, callbacks().cancellation().guard());
}

void RouterFilter::on_timeout() {
  if (done_) return;
  if (cluster_) cluster_->stats->timeouts.add();
  fail(Error{ErrorKind::upstream_timeout, ErrorSource::upstream, false, "upstream timeout"});
}

void RouterFilter::connect() {
  host_ = &cluster_->pick();
  ++connect_attempts_;
  host_->acquire(
      cluster_->config->connect_timeout,
      [this, token = callbacks().cancellation()](upstream::UpstreamRequestPtr conn,
                                                 const Error* err) {
        if (token.cancelled() || done_) {
          if (conn) conn->release_unused();  // the stream went away while connecting
          return;
        }
        if (err) {
          // Nothing was sent: another host may answer.
          if (connect_attempts_ < cluster_->distinct_hosts) {
            connect();
            return;
          }
          fail(*err);
          return;
        }
        on_connected(std::move(conn));
      },
      /*probe_idle=*/!can_resend_on_stale());
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
  response_started_ = true;
  cluster_->stats->requests.add(head.status);
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
  done_ = true;
  if (timer_) timer_->cancel();
  conn_.reset();  // finished: the connection has returned itself to its pool
}

void RouterFilter::on_upstream_error(const Error& error, bool response_started) {
  auto conn = std::move(conn_);
  if (response_started) {
    done_ = true;
    if (timer_) timer_->cancel();
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
    ++stale_retries_;
    connect_attempts_ = 0;
    pending_body_.insert(0, sent_body_);
    sent_body_.clear();
    pending_end_ = request_ended_ && !has_trailers_;
    connect();
    return;
  }
  cluster_->stats->requests.add(status_for(error));
  fail(error);
}

void RouterFilter::fail(const Error& error) {
  if (done_) return;
  done_ = true;
  if (timer_) timer_->cancel();
  release_connection();
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

void RouterFilter::on_destroy() {
  if (timer_) timer_->cancel();
  release_connection();
}

}  // namespace sluice::router
