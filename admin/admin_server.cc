#include "admin/admin_server.h"

#include <pthread.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <exception>
#include <optional>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "admin/admin_context.h"
#include "admin/auth.h"
#include "admin/clusters_json.h"
#include "admin/dashboard.h"
#include "admin/metrics.h"
#include "admin/stats.h"
#include "admin/totals.h"
#include "core/log_writer.h"
#include "filters/rate_limit/rate_limit_filter.h"

namespace sluice::admin {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

constexpr std::string_view kAllowRead = "GET, HEAD";
constexpr std::string_view kAllowAction = "POST";
constexpr std::chrono::milliseconds kLingerTime{2000};
constexpr size_t kLingerBytes = 1024 * 1024;

std::string address_str(const config::SocketAddress& a) {
  bool v6 = a.host.find(':') != std::string::npos;
  return (v6 ? "[" + a.host + "]" : a.host) + ":" + std::to_string(a.port);
}

struct Reply {
  http::status status;
  std::string content_type;
  std::string body;
  std::string_view allow = kAllowRead;  // the Allow header of a 405
  bool page = false;                    // the dashboard: gets its Content-Security-Policy
  std::chrono::seconds retry_after{0};  // a 429's Retry-After
};

Reply text(http::status status, std::string body) {
  return {status, "text/plain; charset=utf-8", std::move(body)};
}

// What an admin request is, as handle() needs it.
struct RequestInfo {
  http::verb method;
  std::string_view target;
  std::string_view authorization;  // the Authorization header, if any
  const std::string& peer;         // "ip:port" of the client, for the log
  const std::string& peer_ip;      // the client's address alone, for the guessing brake
};

int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The value of `name` in a query string ("since=123&x"), if it is a whole integer.
std::optional<int64_t> query_int(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    const size_t eq = param.find('=');
    if (eq != std::string_view::npos && param.substr(0, eq) == name) {
      std::string_view value = param.substr(eq + 1);
      int64_t n = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec == std::errc() && end == value.data() + value.size()) return n;
      return std::nullopt;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

// Called on the admin thread: the read endpoints. handle() and run_action() are the only other
// places that call into the AdminContext.
Reply dispatch(const AdminContext& ctx, const StatsSeries& series, std::string_view path,
               std::string_view query) {
  if (path == "/healthz") return text(http::status::ok, "ok\n");
  if (path == "/") {
    Reply reply{http::status::ok, "text/html; charset=utf-8", std::string(dashboard_html())};
    reply.page = true;
    return reply;
  }
  if (path == "/ready") {
    return ctx.ready() ? text(http::status::ok, "ready\n")
                       : text(http::status::service_unavailable, "not ready\n");
  }
  if (path == "/metrics") return {http::status::ok, kMetricsContentType, render_metrics(ctx)};
  if (path == "/config") {
    config::ConfigPtr cfg = ctx.config();
    if (!cfg) return text(http::status::service_unavailable, "no active config\n");
    std::string json = cfg->to_json();
    if (json.empty() || json.back() != '\n') json += '\n';
    return {http::status::ok, "application/json", std::move(json)};
  }
  if (path == "/ratelimits") {
    config::ConfigPtr cfg = ctx.config();
    if (!cfg) return text(http::status::service_unavailable, "no active config\n");
    return {http::status::ok, "application/json", rate_limit::status_json(*cfg, ctx.runtime())};
  }
  if (path == "/clusters") return {http::status::ok, "application/json", clusters_json(ctx)};
  if (path == "/stats") {
    StatsOptions options;
    if (std::optional<int64_t> since = query_int(query, "since")) options.since_ms = *since;
    return {http::status::ok, "application/json",
            stats_json(ctx, sum_stats(ctx, ctx.worker_stats()), series, unix_now_ms(), options)};
  }
  return text(http::status::not_found, "not found\n");
}

bool known_path(std::string_view path) {
  return path == "/" || path == "/healthz" || path == "/ready" || path == "/metrics" ||
         path == "/config" || path == "/ratelimits" || path == "/clusters" || path == "/stats";
}

// Probes must work without credentials (kubelet, load balancers); everything else may not, but
// for the dashboard page: a browser cannot send a bearer token when it opens a URL, and the page
// is the same static file for everyone (it holds no data; the /stats it polls needs the token).
bool open_path(std::string_view path) {
  return path == "/healthz" || path == "/ready" || path == "/";
}

// %XX-decodes one path segment; nullopt when malformed or when it would hold a '/' or NUL.
std::optional<std::string> decode_segment(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
      return -1;
    };
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = hex(s[i + 1]);
    int lo = hex(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    char c = static_cast<char>(hi * 16 + lo);
    if (c == '/' || c == '\0') return std::nullopt;
    out += c;
    i += 2;
  }
  return out;
}

// The POST endpoints.
struct Action {
  enum class Kind { reload, drain, disable_host, enable_host };
  Kind kind;
  std::string cluster;  // *_host
  std::string host;
};

std::optional<Action> parse_action(std::string_view path) {
  if (path == "/reload") return Action{Action::Kind::reload, {}, {}};
  if (path == "/drain") return Action{Action::Kind::drain, {}, {}};
  // /clusters/{cluster}/hosts/{address}/{disable|enable}
  std::vector<std::string_view> parts;
  for (size_t at = 1; at <= path.size();) {
    size_t slash = path.find('/', at);
    if (slash == std::string_view::npos) slash = path.size();
    parts.push_back(path.substr(at, slash - at));
    at = slash + 1;
  }
  if (parts.size() != 5 || parts[0] != "clusters" || parts[2] != "hosts" || parts[1].empty() ||
      parts[3].empty() || (parts[4] != "disable" && parts[4] != "enable")) {
    return std::nullopt;
  }
  auto cluster = decode_segment(parts[1]);
  auto host = decode_segment(parts[3]);
  if (!cluster || !host) return std::nullopt;
  return Action{parts[4] == "disable" ? Action::Kind::disable_host : Action::Kind::enable_host,
                std::move(*cluster), std::move(*host)};
}

// "cancel" in a query string ("cancel", "cancel=1", "a=b&cancel").
bool has_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    if (param.substr(0, param.find('=')) == name) return true;
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

Reply run_action(AdminContext& ctx, const Action& action, std::string_view query,
                 std::string* summary) {
  AdminContext::ActionResult r;
  switch (action.kind) {
    case Action::Kind::reload:
      r = ctx.reload_config();
      break;
    case Action::Kind::drain:
      r = ctx.set_draining(!has_param(query, "cancel"));
      break;
    case Action::Kind::disable_host:
    case Action::Kind::enable_host:
      r = ctx.set_host_disabled(action.cluster, action.host,
                                action.kind == Action::Kind::disable_host);
      break;
  }
  *summary = r.summary;
  return {static_cast<http::status>(r.status), "application/json", std::move(r.json)};
}

Reply handle(AdminContext& ctx, const StatsSeries& series, AuthThrottle& throttle,
             const RequestInfo& req) {
  const size_t question = req.target.find('?');
  std::string_view path = req.target.substr(0, question);
  std::string_view query =
      question == std::string_view::npos ? std::string_view() : req.target.substr(question + 1);
  const std::optional<Action> action = parse_action(path);
  // Every call that could change something is logged, whether or not it was allowed.
  const bool mutating = action.has_value() && req.method == http::verb::post;
  auto log = [&](const Reply& reply, std::string_view result) {
    if (!mutating) return;
    log_line("admin: " + std::string(http::to_string(req.method)) + " " + std::string(req.target) +
             " from " + req.peer + ": " + std::to_string(static_cast<unsigned>(reply.status)) +
             " " + std::string(result));
  };
  // The admin API is not the data plane: a throwing config or stats accessor becomes a 500
  // instead of taking down the admin thread.
  try {
    if (!open_path(path)) {
      config::ConfigPtr cfg = ctx.config();
      if (cfg && !cfg->admin.token.empty()) {
        const auto now = AuthThrottle::Clock::now();
        if (auto wait = throttle.wait_for(req.peer_ip, now); wait.count() > 0) {
          Reply reply = text(http::status::too_many_requests,
                             "too many wrong tokens from this address: try again later\n");
          reply.retry_after = std::chrono::ceil<std::chrono::seconds>(wait);
          log(reply, "refused: too many wrong tokens");
          return reply;
        }
        if (!bearer_token_matches(req.authorization, cfg->admin.token)) {
          // A missing token is a client without one (a scrape left unconfigured), not a guess.
          if (!req.authorization.empty()) throttle.failed(req.peer_ip, now);
          Reply reply = text(http::status::unauthorized, "unauthorized\n");
          log(reply, req.authorization.empty() ? "no token" : "wrong token");
          return reply;
        }
        throttle.succeeded(req.peer_ip);
      }
    }
    if (action) {
      if (req.method != http::verb::post) {
        Reply reply = text(http::status::method_not_allowed, "method not allowed\n");
        reply.allow = kAllowAction;
        return reply;
      }
      std::string summary;
      Reply reply = run_action(ctx, *action, query, &summary);
      log(reply, summary);
      return reply;
    }
    if (!known_path(path)) return text(http::status::not_found, "not found\n");
    if (req.method != http::verb::get && req.method != http::verb::head) {
      return text(http::status::method_not_allowed, "method not allowed\n");
    }
    return dispatch(ctx, series, path, query);
  } catch (const std::exception& e) {
    Reply reply = text(http::status::internal_server_error,
                       std::string("internal error: ") + e.what() + "\n");
    log(reply, "internal error");
    return reply;
  }
}

Response make_response(Reply reply, unsigned version, bool head, bool keep_alive) {
  Response res{reply.status, version};
  res.set(http::field::server, "sluice-admin");
  res.set(http::field::content_type, reply.content_type);
  res.set(http::field::cache_control, "no-store");
  res.set("X-Content-Type-Options", "nosniff");
  if (reply.page) {
    res.set("Content-Security-Policy", dashboard_csp());
    res.set("Referrer-Policy", "no-referrer");
    res.set("X-Frame-Options", "DENY");
  }
  if (reply.status == http::status::method_not_allowed) res.set(http::field::allow, reply.allow);
  if (reply.status == http::status::too_many_requests) {
    res.set(http::field::retry_after, std::to_string(reply.retry_after.count()));
  }
  if (reply.status == http::status::unauthorized) {
    res.set(http::field::www_authenticate, "Bearer realm=\"sluice-admin\"");
  }
  res.keep_alive(keep_alive);
  // HEAD: the same Content-Length as GET, no body.
  res.content_length(reply.body.size());
  if (!head) res.body() = std::move(reply.body);
  return res;
}

bool is_parse_error(const error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_target).category();
}

}  // namespace

class AdminServer::Impl {
 public:
  Impl(AdminContext& ctx, config::SocketAddress address, AdminServerOptions options)
      : ctx_(ctx),
        address_(std::move(address)),
        options_(options),
        auth_throttle_(options.max_token_failures) {}

  // Owner thread.
  bool start(std::string* error);
  void stop();
  uint16_t port() const { return port_; }

 private:
  class Session;

  // Admin thread from here on.
  void do_accept();
  void close_all();
  // Adds a point to series_ and sets the timer for the next one, a kInterval later.
  void take_sample();

  AdminContext& ctx_;
  const config::SocketAddress address_;
  const AdminServerOptions options_;
  uint16_t port_ = 0;

  // Admin-thread state. Declared before io_ so that sessions destroyed with io_'s pending
  // handlers can still unregister themselves.
  std::unordered_set<Session*> sessions_;
  bool accepting_ = false;
  bool stopping_ = false;
  StatsSeries series_;
  AuthThrottle auth_throttle_;  // both threads
  std::chrono::steady_clock::time_point next_sample_;

  asio::io_context io_{1};
  tcp::acceptor acceptor_{io_};
  asio::steady_timer accept_retry_{io_};
  asio::steady_timer sample_timer_{io_};
  std::thread thread_;
  // Actions (POST) wait for the control thread, a reload for as long as it takes to build the
  // new snapshot: they run here, one at a time and in order, so that the admin thread goes on
  // answering scrapes, probes and the dashboard meanwhile. Declared after io_ so that its
  // pending handlers (which hold sessions, whose sockets belong to io_) go first.
  asio::io_context actions_io_{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> actions_work_;
  std::thread actions_thread_;
};

// One admin connection. Owned by its pending operation's handler; registered in sessions_ so
// stop() can close it.
class AdminServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Impl& server, tcp::socket socket)
      : server_(server), stream_(std::move(socket)), buffer_(server.options_.max_request_bytes) {
    server_.sessions_.insert(this);
    error_code ec;
    tcp::endpoint remote = stream_.socket().remote_endpoint(ec);
    if (!ec) {
      peer_ip_ = remote.address().to_string();
      peer_ = address_str({peer_ip_, remote.port()});
    }
  }

  ~Session() {
    server_.sessions_.erase(this);
    // A slot is free again; resume accepting if the limit had paused it.
    if (!server_.stopping_) server_.do_accept();
  }

  void start() { read_request(); }
  void close() { stream_.close(); }

 private:
  void read_request() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(server_.options_.max_request_bytes));
    parser_->body_limit(server_.options_.max_request_bytes);
    stream_.expires_after(server_.options_.read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](error_code ec, size_t) { self->on_read(ec); });
  }

  void on_read(error_code ec) {
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      return send_error(http::status::request_header_fields_too_large,
                        "request header too large\n");
    }
    if (ec == http::error::body_limit) {
      return send_error(http::status::payload_too_large, "request body too large\n");
    }
    if (ec && is_parse_error(ec) && ec != http::error::end_of_stream &&
        ec != http::error::partial_message) {
      return send_error(http::status::bad_request, "bad request\n");
    }
    // Timeout, reset, clean close between requests, or stop(): nothing to answer.
    if (ec) return close();

    const Request& req = parser_->get();
    bool head = req.method() == http::verb::head;
    auto auth = req.find(http::field::authorization);
    RequestInfo info{req.method(), req.target(),
                     auth == req.end() ? std::string_view() : std::string_view(auth->value()),
                     peer_, peer_ip_};
    const unsigned version = req.version();
    const bool keep_alive = req.keep_alive();
    if (info.method == http::verb::post &&
        parse_action(info.target.substr(0, info.target.find('?')))) {
      // On the actions thread; the reply comes back here. `info` points into parser_, which
      // stays as it is until the reply has been sent.
      asio::post(server_.actions_io_, [self = shared_from_this(), info, version, keep_alive] {
        Reply reply =
            handle(self->server_.ctx_, self->server_.series_, self->server_.auth_throttle_, info);
        asio::post(
            self->server_.io_, [self, reply = std::move(reply), version, keep_alive]() mutable {
              if (self->server_.stopping_) return self->close();
              self->send(make_response(std::move(reply), version, /*head=*/false, keep_alive));
            });
      });
      return;
    }
    send(make_response(handle(server_.ctx_, server_.series_, server_.auth_throttle_, info), version,
                       head, keep_alive));
  }

  // The parser state is unknown after an error, so the connection ends after the reply.
  void send_error(http::status status, std::string body) {
    send(make_response(text(status, std::move(body)), 11, /*head=*/false, /*keep_alive=*/false));
  }

  void send(Response res) {
    response_ = std::move(res);
    stream_.expires_after(server_.options_.read_timeout);
    http::async_write(stream_, response_,
                      [self = shared_from_this()](error_code ec, size_t) { self->on_write(ec); });
  }

  void on_write(error_code ec) {
    if (ec || server_.stopping_) return close();
    if (!response_.keep_alive()) return linger();
    read_request();
  }

  // Closing with unread request bytes makes the kernel send RST, which can destroy the response
  // (e.g. a 413 sent before the body arrived) before the client reads it. So: half-close, then
  // discard input until the client closes, a byte budget is spent, or a short timer fires.
  void linger() {
    error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(
        std::min<std::chrono::milliseconds>(server_.options_.read_timeout, kLingerTime));
    linger_read();
  }

  void linger_read() {
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(std::min<size_t>(buffer_.max_size(), 4096)),
                            [self = shared_from_this()](error_code ec, size_t n) {
                              self->lingered_ += n;
                              if (ec || self->lingered_ > kLingerBytes) return self->close();
                              self->linger_read();
                            });
  }

  Impl& server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Response response_;
  size_t lingered_ = 0;
  std::string peer_ = "unknown";
  std::string peer_ip_ = "unknown";
};

bool AdminServer::Impl::start(std::string* error) {
  auto fail = [&](std::string message) {
    if (error) *error = "admin: " + std::move(message);
    error_code ignored;
    acceptor_.close(ignored);
    return false;
  };
  if (thread_.joinable()) return fail("server already started");

  const std::string where = address_str(address_);
  error_code ec;
  tcp::endpoint endpoint;
  asio::ip::address ip = asio::ip::make_address(address_.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(ip, address_.port);
  } else {
    tcp::resolver resolver(io_);
    auto results = resolver.resolve(address_.host, std::to_string(address_.port),
                                    tcp::resolver::numeric_service, ec);
    if (ec || results.empty()) {
      return fail("cannot resolve " + where + ": " + (ec ? ec.message() : "no addresses"));
    }
    endpoint = results.begin()->endpoint();
  }

  acceptor_.open(endpoint.protocol(), ec);
  if (ec) return fail("cannot open socket for " + where + ": " + ec.message());
  // SO_REUSEADDR lets a restart bind over TIME_WAIT; it still fails if someone is listening.
  acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  acceptor_.bind(endpoint, ec);
  if (ec) return fail("cannot bind " + where + ": " + ec.message());
  acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("cannot listen on " + where + ": " + ec.message());
  port_ = acceptor_.local_endpoint(ec).port();
  if (ec) return fail("cannot read bound address: " + ec.message());

  io_.restart();
  stopping_ = false;
  do_accept();
  asio::post(io_, [this] {
    next_sample_ = std::chrono::steady_clock::now();
    take_sample();
  });
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "sluice-admin");
    io_.run();
  });
  actions_io_.restart();
  actions_work_.emplace(asio::make_work_guard(actions_io_));
  actions_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "sluice-admin-act");
    actions_io_.run();
  });
  return true;
}

void AdminServer::Impl::stop() {
  if (!thread_.joinable()) return;
  // Closing everything leaves io_ without work, so run() returns once the aborted handlers ran.
  asio::post(io_, [this] { close_all(); });
  thread_.join();
  // An action under way returns soon: the owner stops its control loop before this, and the
  // wait for it gives up then. Actions still queued are dropped with their connections.
  actions_work_.reset();
  actions_io_.stop();
  actions_thread_.join();
  port_ = 0;
}

void AdminServer::Impl::close_all() {
  stopping_ = true;
  error_code ignored;
  acceptor_.close(ignored);
  accept_retry_.cancel();
  sample_timer_.cancel();
  // close() does not destroy a session (its handler still holds it), so iterating is safe; copy
  // anyway so the loop does not depend on that.
  for (Session* s : std::vector<Session*>(sessions_.begin(), sessions_.end())) s->close();
}

void AdminServer::Impl::take_sample() {
  if (stopping_) return;
  const auto now = std::chrono::steady_clock::now();
  // Like a request, a throwing accessor costs this sample, not the admin thread.
  try {
    series_.add(now, unix_now_ms(), sample_counts(sum_stats(ctx_, ctx_.worker_stats())));
  } catch (const std::exception&) {
  }
  // On a fixed beat; after a stall, from now rather than a burst of catch-up samples.
  next_sample_ += StatsSeries::kInterval;
  if (next_sample_ <= now) next_sample_ = now + StatsSeries::kInterval;
  sample_timer_.expires_at(next_sample_);
  sample_timer_.async_wait([this](error_code ec) {
    if (!ec) take_sample();
  });
}

void AdminServer::Impl::do_accept() {
  if (stopping_ || accepting_ || sessions_.size() >= options_.max_connections) return;
  accepting_ = true;
  acceptor_.async_accept([this](error_code ec, tcp::socket socket) {
    accepting_ = false;
    if (stopping_ || ec == asio::error::operation_aborted) return;
    if (ec) {
      // E.g. EMFILE: back off briefly instead of spinning on a failing accept.
      accept_retry_.expires_after(std::chrono::milliseconds(100));
      accept_retry_.async_wait([this](error_code wait_ec) {
        if (!wait_ec) do_accept();
      });
      return;
    }
    std::make_shared<Session>(*this, std::move(socket))->start();
    do_accept();
  });
}

AdminServer::AdminServer(AdminContext& ctx, config::SocketAddress address,
                         AdminServerOptions options)
    : impl_(std::make_unique<Impl>(ctx, std::move(address), options)) {}

AdminServer::~AdminServer() { stop(); }

bool AdminServer::start(std::string* error) { return impl_->start(error); }

void AdminServer::stop() { impl_->stop(); }

uint16_t AdminServer::port() const { return impl_->port(); }

}  // namespace sluice::admin
