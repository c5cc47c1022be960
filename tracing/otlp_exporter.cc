#include "tracing/otlp_exporter.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <zlib.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <optional>
#include <string>

#include "core/log_writer.h"
#include "core/request_id.h"
#include "core/tls_session.h"
#include "core/version.h"
#include "tracing/otlp_json.h"

namespace sluice::tracing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// `in` as one gzip member (RFC 1952), at zlib's default level; nothing if zlib fails (out of
// memory), and the body then goes uncompressed.
std::optional<std::string> gzip(const std::string& in) {
  z_stream z{};
  // 15 + 16: the largest window, with a gzip header and trailer instead of zlib's.
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return std::nullopt;
  }
  std::string out(deflateBound(&z, in.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);  // the bound guarantees room for all of it
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) return std::nullopt;
  return out;
}

}  // namespace

// One keep-alive HTTP/1.1 connection to the collector (over TLS for an https endpoint), used
// by the export thread alone. Each call runs the thread's own io_context until its operation
// has finished or timed out.
class OtlpExporter::Client {
 public:
  struct Result {
    unsigned status = 0;  // 0: no response (the error says why)
    std::string error;
    std::optional<std::chrono::seconds> retry_after;
  };

  Result post(const config::Tracing& s, const std::string& body, bool gzipped,
              Clock::time_point deadline) {
    if (open() && (host_ != s.endpoint_host || port_ != s.endpoint_port ||
                   tls_.has_value() != s.endpoint_tls || ca_file_ != s.ca_file)) {
      close();
    }
    if (!open()) {
      if (std::string error = connect(s, deadline); !error.empty()) return {0, error, {}};
    }
    http::request<http::string_body> req{http::verb::post, s.endpoint_target, 11};
    req.set(http::field::host, host_header(s));
    req.set(http::field::user_agent, std::string("sluice/") + kVersion);
    req.set(http::field::content_type, "application/json");
    if (gzipped) req.set(http::field::content_encoding, "gzip");
    for (const auto& [name, value] : s.headers) req.set(name, value);
    req.body() = body;
    req.prepare_payload();
    tcp_stream().expires_at(deadline);
    boost::system::error_code ec = with_stream([&](auto& stream) {
      return run([&](auto done) { http::async_write(stream, req, done); });
    });
    if (ec) return fail("sending: " + ec.message());
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024);
    ec = with_stream([&](auto& stream) {
      return run([&](auto done) { http::async_read(stream, buffer, parser, done); });
    });
    if (ec) return fail(ec == beast::error::timeout ? "timed out" : "reading: " + ec.message());
    const auto& res = parser.get();
    Result r;
    r.status = res.result_int();
    if (auto it = res.find(http::field::retry_after); it != res.end()) {
      unsigned seconds = 0;
      std::string_view v = it->value();
      if (auto [end, err] = std::from_chars(v.data(), v.data() + v.size(), seconds);
          err == std::errc() && end == v.data() + v.size()) {
        r.retry_after = std::chrono::seconds(seconds);
      }
    }
    if (r.status < 200 || r.status > 299) {
      std::string detail = res.body().substr(0, 200);
      r.error = "HTTP " + std::to_string(r.status) + (detail.empty() ? "" : ": " + detail);
    }
    if (!res.keep_alive()) close();
    return r;
  }

  void close() {
    if (open()) {
      boost::system::error_code ignored;
      tcp_stream().socket().shutdown(tcp::socket::shutdown_both, ignored);
      tcp_stream().close();
    }
    tls_.reset();
    plain_.reset();
  }

 private:
  using TlsStream = beast::ssl_stream<beast::tcp_stream>;

  bool open() const { return plain_.has_value() || tls_.has_value(); }
  beast::tcp_stream& tcp_stream() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }
  template <typename Fn>
  boost::system::error_code with_stream(Fn fn) {
    return tls_ ? fn(*tls_) : fn(*plain_);
  }

  static std::string host_header(const config::Tracing& s) {
    const bool v6 = s.endpoint_host.find(':') != std::string::npos;
    std::string host = v6 ? "[" + s.endpoint_host + "]" : s.endpoint_host;
    return host + ":" + std::to_string(s.endpoint_port);
  }

  // Runs one asynchronous operation to completion on this thread.
  template <typename Start>
  boost::system::error_code run(Start start) {
    boost::system::error_code result = asio::error::would_block;
    start([&result](boost::system::error_code ec, auto&&...) { result = ec; });
    ioc_.restart();
    ioc_.run();
    return result;
  }

  std::string connect(const config::Tracing& s, Clock::time_point deadline) {
    tcp::resolver resolver(ioc_);
    asio::steady_timer timer(ioc_);
    timer.expires_at(deadline);
    tcp::resolver::results_type endpoints;
    boost::system::error_code resolve_ec = asio::error::would_block;
    timer.async_wait([&](boost::system::error_code ec) {
      if (!ec) resolver.cancel();
    });
    resolver.async_resolve(s.endpoint_host, std::to_string(s.endpoint_port),
                           [&](boost::system::error_code ec, tcp::resolver::results_type r) {
                             resolve_ec = ec;
                             endpoints = std::move(r);
                             timer.cancel();
                           });
    ioc_.restart();
    ioc_.run();
    if (resolve_ec) return "resolving " + s.endpoint_host + ": " + resolve_ec.message();
    beast::tcp_stream stream(ioc_);
    stream.expires_at(deadline);
    boost::system::error_code ec = run([&](auto done) { stream.async_connect(endpoints, done); });
    if (ec) return "connecting: " + (ec == beast::error::timeout ? "timed out" : ec.message());
    stream.socket().set_option(tcp::no_delay(true));
    if (s.endpoint_tls) {
      if (std::string error = start_tls(s, std::move(stream)); !error.empty()) {
        close();
        return error;
      }
    } else {
      plain_.emplace(std::move(stream));
    }
    host_ = s.endpoint_host;
    port_ = s.endpoint_port;
    ca_file_ = s.ca_file;
    return "";
  }

  // The handshake, checking the collector's certificate against `ca_file` (else the system's
  // CA store) and the endpoint's host, as any HTTPS client does.
  std::string start_tls(const config::Tracing& s, beast::tcp_stream&& stream) {
    // Built for each connection (they are long-lived), so a CA file replaced on disk counts
    // from the next one.
    tls_context_.emplace(asio::ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(tls_context_->native_handle(), TLS1_2_VERSION);
    tls_context_->set_verify_mode(asio::ssl::verify_peer);
    boost::system::error_code load_ec;
    if (s.ca_file.empty()) {
      tls_context_->set_default_verify_paths(load_ec);
    } else {
      tls_context_->load_verify_file(s.ca_file, load_ec);
    }
    if (load_ec) return "loading CA certificates: " + load_ec.message();
    tls_.emplace(std::move(stream), *tls_context_);
    SSL* ssl = tls_->native_handle();
    // SNI carries names only (RFC 6066); the check takes a name or an address.
    boost::system::error_code not_an_address;
    asio::ip::make_address(s.endpoint_host, not_an_address);
    set_client_names(ssl, not_an_address ? s.endpoint_host : std::string(), s.endpoint_host);
    boost::system::error_code ec =
        run([&](auto done) { tls_->async_handshake(asio::ssl::stream_base::client, done); });
    if (!ec) return "";
    if (ec == beast::error::timeout) return "TLS handshake: timed out";
    // As the upstream connector words it: "certificate verify failed (hostname mismatch)".
    if (long verify = SSL_get_verify_result(ssl); verify != X509_V_OK) {
      return std::string("TLS handshake: certificate verify failed (") +
             X509_verify_cert_error_string(verify) + ")";
    }
    return "TLS handshake: " + ec.message();
  }

  Result fail(std::string error) {
    close();
    return {0, std::move(error), {}};
  }

  asio::io_context ioc_{1};
  std::optional<asio::ssl::context> tls_context_;  // outlives tls_, declared before it
  std::optional<beast::tcp_stream> plain_;
  std::optional<TlsStream> tls_;
  std::string host_;
  uint16_t port_ = 0;
  std::string ca_file_;
};

OtlpExporter::OtlpExporter() : client_(std::make_unique<Client>()) {}

OtlpExporter::~OtlpExporter() { shutdown(std::chrono::milliseconds(0)); }

void OtlpExporter::configure(const config::Tracing& settings) {
  std::lock_guard lock(mutex_);
  // A config without tracing records no more spans; those already queued still go where the
  // last config said.
  if (stopping_ || !settings.enabled()) return;
  settings_ = settings;
  if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  wake_.notify_one();
}

void OtlpExporter::submit(SpanRecord&& span) {
  std::unique_lock lock(mutex_);
  if (stopping_ || queue_.size() >= settings_.max_queue_spans) {
    lock.unlock();
    dropped_queue_full_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  queue_.push_back(std::move(span));
  // The thread wakes by itself after batch_delay; a full batch should not wait for that.
  const bool full_batch = queue_.size() == settings_.max_batch_spans;
  lock.unlock();
  if (full_batch) wake_.notify_one();
}

void OtlpExporter::shutdown(std::chrono::milliseconds flush_for) {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
    stopping_ = true;
    flush_deadline_ = Clock::now() + flush_for;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mutex_);
  dropped_export_failed_.fetch_add(queue_.size(), std::memory_order_relaxed);
  queue_.clear();
}

ExporterCounters OtlpExporter::counters() const {
  return {exported_.load(std::memory_order_relaxed),
          dropped_queue_full_.load(std::memory_order_relaxed),
          dropped_export_failed_.load(std::memory_order_relaxed),
          failed_requests_.load(std::memory_order_relaxed)};
}

void OtlpExporter::run() {
  pthread_setname_np(pthread_self(), "sluice-otlp");
  std::vector<SpanRecord> batch;
  for (;;) {
    config::Tracing settings;
    bool final = false;
    {
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, settings_.batch_delay,
                     [&] { return stopping_ || queue_.size() >= settings_.max_batch_spans; });
      if (stopping_ && (queue_.empty() || Clock::now() >= flush_deadline_)) break;
      if (queue_.empty()) continue;
      // Under the lock that submit() takes: the whole queue is a swap, the usual case.
      if (queue_.size() <= settings_.max_batch_spans) {
        batch.swap(queue_);
      } else {
        const auto split = queue_.begin() + static_cast<ptrdiff_t>(settings_.max_batch_spans);
        batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(split));
        queue_.erase(queue_.begin(), split);
      }
      settings = settings_;
      final = stopping_;
    }
    if (!send(batch, settings, final)) {
      dropped_export_failed_.fetch_add(batch.size(), std::memory_order_relaxed);
    }
    batch.clear();
  }
  client_->close();
}

bool OtlpExporter::sleep_for(Clock::duration d) {
  std::unique_lock lock(mutex_);
  return !wake_.wait_for(lock, d, [&] { return stopping_; });
}

bool OtlpExporter::send(const std::vector<SpanRecord>& batch, const config::Tracing& s,
                        bool final) {
  std::string body = encode_export_request(batch, s.service_name);
  bool gzipped = false;
  if (s.gzip) {
    if (std::optional<std::string> compressed = gzip(body)) {
      body = std::move(*compressed);
      gzipped = true;
    }
  }
  const Clock::time_point start = Clock::now();
  Clock::time_point deadline = start + s.export_timeout;
  if (final) deadline = std::min(deadline, flush_deadline_);
  Clock::duration backoff = std::chrono::milliseconds(500);
  for (;;) {
    Client::Result r = client_->post(s, body, gzipped, deadline);
    if (r.status >= 200 && r.status <= 299) {
      exported_.fetch_add(batch.size(), std::memory_order_relaxed);
      return true;
    }
    failed_requests_.fetch_add(1, std::memory_order_relaxed);
    // The codes OTLP/HTTP calls retryable, and no answer at all.
    const bool retryable =
        r.status == 0 || r.status == 429 || r.status == 502 || r.status == 503 || r.status == 504;
    // Jittered (75% to 125%) so that many proxies do not retry in step.
    Clock::duration wait = r.retry_after
                               ? Clock::duration(*r.retry_after)
                               : backoff * (75 + static_cast<int>(random_u64() % 51)) / 100;
    backoff *= 2;
    if (!retryable || final || Clock::now() + wait >= deadline || !sleep_for(wait)) {
      const Clock::time_point now = Clock::now();
      if (now - last_failure_log_ >= std::chrono::seconds(60)) {
        last_failure_log_ = now;
        log_line("tracing: export of " + std::to_string(batch.size()) + " span(s) to " +
                 s.otlp_endpoint + " failed: " + r.error + " (spans dropped; next such " +
                 "message in 60s at the earliest)");
      }
      return false;
    }
  }
}

}  // namespace sluice::tracing
