// sluice_test_backend: a small, fast HTTP/1.1 origin for integration tests and benchmarks.
//
// One thread, one io_context, one coroutine per connection. Request bodies are consumed as they
// arrive and only counted (plus a 64-byte prefix), so multi-GiB uploads use constant memory.
// Response bodies are streamed from one static buffer. No per-request logging: wrk must be able
// to push tens of thousands of requests per second through it.
//
// Modes are chosen by path; see usage() below for the full list.
#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

// Completion token that reports errors as values instead of throwing.
constexpr auto kTok = asio::as_tuple(asio::use_awaitable);

constexpr std::size_t kChunk = 16 * 1024;  // default chunk size of /chunked responses
constexpr std::size_t kWriteMax = 64 * 1024;
constexpr std::size_t kPrefixBytes = 64;

const char* filler() {
  static const std::array<char, kWriteMax> buf = [] {
    std::array<char, kWriteMax> b{};
    b.fill('x');
    return b;
  }();
  return buf.data();
}

struct Server {
  std::string name;
  std::string hello;  // "hello from NAME\n"
  uint64_t connections_accepted = 0;
  uint64_t connections_active = 0;
  uint64_t requests = 0;           // request heads read
  uint64_t requests_complete = 0;  // requests whose body was read to its end
  uint64_t health_requests = 0;    // GET /health (the proxy's health probes)
  unsigned health_status = 200;    // what /health answers; set by /health/set/N
};

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// Parses one request. The body is counted, never stored (only its first kPrefixBytes are kept),
// and the header fields are recorded in arrival order only for /echo, which reports them;
// Beast's own fields container would regroup duplicate names.
class RequestParser : public http::basic_parser<true> {
 public:
  std::string method;
  std::string target;
  int version = 11;
  bool expect_continue = false;
  std::vector<std::pair<std::string, std::string>> fields;  // only for /echo
  uint64_t body_bytes = 0;
  std::string body_prefix;

 private:
  void on_request_impl(http::verb, beast::string_view method, beast::string_view target,
                       int version, error_code& ec) override {
    ec = {};
    this->method.assign(method.data(), method.size());
    this->target.assign(target.data(), target.size());
    this->version = version;
    record_ = this->target == "/echo" || starts_with(this->target, "/echo?");
  }
  void on_response_impl(int, beast::string_view, int, error_code& ec) override {
    ec = http::error::bad_version;  // unreachable for a request parser
  }
  void on_field_impl(http::field name, beast::string_view name_string, beast::string_view value,
                     error_code& ec) override {
    ec = {};
    if (name == http::field::expect && beast::iequals(value, "100-continue")) {
      expect_continue = true;
    }
    if (record_) fields.emplace_back(name_string, value);
  }
  void on_header_impl(error_code& ec) override { ec = {}; }
  void on_body_init_impl(const boost::optional<uint64_t>&, error_code& ec) override { ec = {}; }
  std::size_t on_body_impl(beast::string_view body, error_code& ec) override {
    ec = {};
    if (body_prefix.size() < kPrefixBytes) {
      body_prefix.append(body.data(), std::min(body.size(), kPrefixBytes - body_prefix.size()));
    }
    body_bytes += body.size();
    return body.size();
  }
  void on_chunk_header_impl(uint64_t, beast::string_view, error_code& ec) override { ec = {}; }
  std::size_t on_chunk_body_impl(uint64_t, beast::string_view body, error_code& ec) override {
    return on_body_impl(body, ec);
  }
  void on_finish_impl(error_code& ec) override { ec = {}; }

  bool record_ = false;
};

bool parse_u64(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Returns the value of query parameter `key`, or empty.
std::string_view query_param(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) == key) return eq == std::string_view::npos ? "" : pair.substr(eq + 1);
  }
  return {};
}

void json_escape(std::string& out, std::string_view s) {
  out.push_back('"');
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c >= 0x7f) {
      // Bytes >= 0x7f are emitted as \u00XX so the JSON stays valid whatever the body holds.
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
}

// Builds a response head. Always HTTP/1.1; x-backend is added first.
class Head {
 public:
  Head(unsigned status, const Server& srv) {
    s_.reserve(256);
    s_ += "HTTP/1.1 ";
    s_ += std::to_string(status);
    s_ += ' ';
    std::string_view reason = http::obsolete_reason(static_cast<http::status>(status));
    if (status == 103) reason = "Early Hints";  // newer than Beast's table
    s_ += reason == "<unknown-status>" ? std::string_view("Status") : reason;
    s_ += "\r\n";
    add("x-backend", srv.name);
  }
  Head& add(std::string_view name, std::string_view value) {
    s_ += name;
    s_ += ": ";
    s_ += value;
    s_ += "\r\n";
    return *this;
  }
  Head& add(std::string_view name, uint64_t value) { return add(name, std::to_string(value)); }
  std::string& finish() {
    s_ += "\r\n";
    return s_;
  }

 private:
  std::string s_;
};

enum class End { keep_alive, close, reset };

class Session {
 public:
  Session(tcp::socket sock, Server& srv)
      : sock_(std::move(sock)), srv_(srv), timer_(sock_.get_executor()) {}

  asio::awaitable<void> run() {
    ++srv_.connections_accepted;
    ++srv_.connections_active;
    beast::flat_buffer buf;
    End end = End::close;
    for (;;) {
      RequestParser parser;
      parser.header_limit(1024 * 1024);
      parser.body_limit(boost::none);
      head_ = false;
      auto [ec, n] = co_await http::async_read_header(sock_, buf, parser, kTok);
      if (ec) {
        // A peer that left (cleanly or mid-head) gets nothing; bad syntax gets a 400.
        if (ec != http::error::end_of_stream && ec != http::error::partial_message &&
            ec.category() != asio::error::get_system_category() &&
            ec.category() != asio::error::get_misc_category()) {
          co_await write_simple(400, "bad request\n", false);
        }
        break;
      }
      ++srv_.requests;
      head_ = parser.method == "HEAD";
      std::string_view target = parser.target;
      auto qpos = target.find('?');
      path_ = target.substr(0, qpos);
      query_ = qpos == std::string_view::npos ? std::string_view() : target.substr(qpos + 1);

      if (path_ == "/continue" && parser.expect_continue) {
        Head interim(100, srv_);
        std::string& h = interim.finish();
        auto [wec, wn] = co_await asio::async_write(sock_, asio::buffer(h), kTok);
        if (wec) break;
      }
      if (!parser.is_done()) {
        auto [rec, rn] = co_await http::async_read(sock_, buf, parser, kTok);
        if (rec) break;
      }
      ++srv_.requests_complete;
      keep_alive_ = parser.keep_alive();
      http10_ = parser.version == 10;
      end = co_await handle(parser);
      if (end != End::keep_alive) break;
    }
    finish(end);
    --srv_.connections_active;
  }

 private:
  asio::awaitable<End> handle(const RequestParser& req) {
    uint64_t n = 0;
    if (path_ == "/echo") co_return co_await echo(req);
    if (path_ == "/upload" || path_ == "/continue") {
      co_return co_await write_simple(200, std::to_string(req.body_bytes) + "\n");
    }
    if (path_ == "/stats") {
      std::string body = "{\"connections_accepted\":" + std::to_string(srv_.connections_accepted) +
                         ",\"connections_active\":" + std::to_string(srv_.connections_active) +
                         ",\"requests\":" + std::to_string(srv_.requests) +
                         ",\"requests_complete\":" + std::to_string(srv_.requests_complete) +
                         ",\"health_requests\":" + std::to_string(srv_.health_requests) + "}\n";
      co_return co_await write_simple(200, body, true, true, "application/json");
    }
    if (path_ == "/health") {
      ++srv_.health_requests;
      unsigned code = srv_.health_status;
      if (code == 204 || code == 304) co_return co_await write_simple(code, {}, true, false);
      co_return co_await write_simple(code, code < 300 ? "ok\n" : "unhealthy\n");
    }
    if (starts_with(path_, "/health/set/")) {
      // Final statuses only: an interim one would not end the probe's response.
      if (!parse_u64(path_.substr(12), n) || n < 200 || n > 599) co_return co_await bad_number();
      srv_.health_status = static_cast<unsigned>(n);
      // The probes answered so far all had the old status: a test can tell which saw which.
      std::vector<std::pair<std::string, std::string>> extra{
          {"x-health-requests", std::to_string(srv_.health_requests)}};
      co_return co_await write_simple(200, "health " + std::to_string(n) + "\n", true, true,
                                      "text/plain", &extra);
    }
    if (path_ == "/close") co_return co_await write_simple(200, srv_.hello, false);
    if (path_ == "/headers") co_return co_await headers();
    if (path_ == "/garbage") co_return co_await raw("this is not http\r\n\r\n");
    if (path_ == "/truncated-head") co_return co_await raw("HTTP/1.1 200 OK\r\nContent-Le");
    if (starts_with(path_, "/status/")) {
      if (!parse_u64(path_.substr(8), n) || n < 100 || n > 999) co_return co_await bad_number();
      co_return co_await status(static_cast<unsigned>(n));
    }
    if (starts_with(path_, "/delay/")) {
      if (!parse_u64(path_.substr(7), n)) co_return co_await bad_number();
      timer_.expires_after(std::chrono::milliseconds(n));
      co_await timer_.async_wait(kTok);
      co_return co_await write_simple(200, srv_.hello);
    }
    struct Stream {
      std::string_view prefix;
      bool chunked;
      End end;
    };
    static constexpr std::array<Stream, 5> kStreams{{
        {"/bytes/", false, End::keep_alive},
        {"/chunked/", true, End::keep_alive},
        {"/close-mid/", false, End::close},
        {"/reset-mid/", false, End::reset},
        {"/chunked-reset/", true, End::reset},
    }};
    for (const Stream& s : kStreams) {
      if (!starts_with(path_, s.prefix)) continue;
      if (!parse_u64(path_.substr(s.prefix.size()), n)) co_return co_await bad_number();
      co_return co_await stream(n, s.chunked, s.end);
    }
    co_return co_await write_simple(200, srv_.hello);
  }

  asio::awaitable<End> bad_number() { return write_simple(400, "bad number in path\n"); }

  // Writes a complete response with a Content-Length body (omitted for HEAD).
  asio::awaitable<End> write_simple(
      unsigned status, std::string_view body, bool keep = true, bool with_body = true,
      std::string_view content_type = "text/plain",
      const std::vector<std::pair<std::string, std::string>>* extra = nullptr) {
    keep = keep && keep_alive_;
    Head head(status, srv_);
    if (with_body) {
      head.add("Content-Type", content_type);
      head.add("Content-Length", body.size());
    }
    if (extra) {
      for (const auto& [k, v] : *extra) head.add(k, v);
    }
    add_connection(head, keep);
    std::string& h = head.finish();
    std::array<asio::const_buffer, 2> bufs{asio::buffer(h), asio::buffer(body)};
    if (!with_body || head_) bufs[1] = asio::const_buffer();
    auto [ec, n] = co_await asio::async_write(sock_, bufs, kTok);
    co_return ec || !keep ? End::close : End::keep_alive;
  }

  void add_connection(Head& head, bool keep) {
    if (!keep) {
      head.add("Connection", "close");
    } else if (http10_) {
      head.add("Connection", "keep-alive");
    }
  }

  asio::awaitable<End> status(unsigned code) {
    if (code == 101) {
      Head upgrade(101, srv_);
      std::string& h = upgrade.finish();
      co_await asio::async_write(sock_, asio::buffer(h), kTok);
      co_return End::close;
    }
    if (code < 200) {
      // An interim response followed by the final one, as a real origin would send it.
      Head interim(code, srv_);
      std::string& h = interim.finish();
      auto [ec, n] = co_await asio::async_write(sock_, asio::buffer(h), kTok);
      if (ec) co_return End::close;
      co_return co_await write_simple(200, srv_.hello);
    }
    if (code == 204 || code == 304) co_return co_await write_simple(code, {}, true, false);
    co_return co_await write_simple(code, "status " + std::to_string(code) + "\n");
  }

  asio::awaitable<End> echo(const RequestParser& req) {
    std::string b;
    b.reserve(512);
    b += "{\"method\":";
    json_escape(b, req.method);
    b += ",\"target\":";
    json_escape(b, req.target);
    b += req.version == 10 ? ",\"version\":\"HTTP/1.0\"" : ",\"version\":\"HTTP/1.1\"";
    b += ",\"headers\":[";
    bool first = true;
    for (const auto& [name, value] : req.fields) {
      if (!first) b += ',';
      first = false;
      b += '[';
      json_escape(b, name);
      b += ',';
      json_escape(b, value);
      b += ']';
    }
    b += "],\"body_bytes\":" + std::to_string(req.body_bytes) + ",\"body_prefix\":";
    json_escape(b, req.body_prefix);
    b += "}\n";
    co_return co_await write_simple(200, b, true, true, "application/json");
  }

  // Each query pair becomes a response header; "Connection: close" among them is honoured.
  asio::awaitable<End> headers() {
    std::vector<std::pair<std::string, std::string>> extra;
    bool keep = true;
    std::string_view q = query_;
    while (!q.empty()) {
      auto amp = q.find('&');
      auto pair = q.substr(0, amp);
      q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
      auto eq = pair.find('=');
      std::string name = percent_decode(pair.substr(0, eq));
      std::string value =
          eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1));
      if (name.empty()) continue;
      if (beast::iequals(name, "connection") && value.find("close") != std::string::npos) {
        keep = false;
        continue;  // added by add_connection
      }
      extra.emplace_back(std::move(name), std::move(value));
    }
    co_return co_await write_simple(200, srv_.hello, keep, true, "text/plain", &extra);
  }

  asio::awaitable<End> raw(std::string_view bytes) {
    co_await asio::async_write(sock_, asio::buffer(bytes), kTok);
    co_return End::close;
  }

  // Streams n filler bytes. For End::close/reset only about n/2 are sent before the socket is
  // closed (FIN) or aborted (RST), and chunked responses then lack their terminating chunk.
  // Query: chunk=BYTES (piece size, default 16 KiB, max 64 KiB; for /chunked also the chunk size),
  // delay=MS (pause after each piece), trailer=1 (/chunked: the last chunk carries
  // "X-Checksum: N" and "X-Served-By: sluice_test_backend").
  asio::awaitable<End> stream(uint64_t n, bool chunked, End end) {
    uint64_t chunk = kChunk;
    uint64_t delay_ms = 0;
    uint64_t trailer = 0;
    parse_u64(query_param(query_, "trailer"), trailer);
    const std::string last_chunk = trailer ? "0\r\nX-Checksum: " + std::to_string(n) +
                                                 "\r\nX-Served-By: sluice_test_backend\r\n\r\n"
                                           : std::string("0\r\n\r\n");
    parse_u64(query_param(query_, "chunk"), chunk);
    parse_u64(query_param(query_, "delay"), delay_ms);
    chunk = std::clamp<uint64_t>(chunk, 1, kWriteMax);
    bool close_delimited = false;
    if (chunked && http10_) {
      // HTTP/1.0 has no chunked coding: the body is delimited by the close instead.
      chunked = false;
      close_delimited = true;
    }
    bool keep = end == End::keep_alive && keep_alive_ && !close_delimited;
    Head head(200, srv_);
    head.add("Content-Type", "application/octet-stream");
    if (chunked) {
      head.add("Transfer-Encoding", "chunked");
    } else if (!close_delimited) {
      head.add("Content-Length", n);
    }
    add_connection(head, keep);
    std::string& h = head.finish();
    uint64_t remaining = end == End::keep_alive ? n : n / 2;
    if (head_) remaining = 0;

    // Every full-size chunk shares one size line; at most one shorter chunk ends each write.
    std::array<char, 24> full_line{};
    std::array<char, 24> short_line{};
    auto full_len = static_cast<std::size_t>(std::snprintf(
        full_line.data(), full_line.size(), "%zx\r\n", static_cast<std::size_t>(chunk)));
    std::vector<asio::const_buffer> bufs;
    bufs.reserve(64);
    bool first = true;
    do {
      bufs.clear();
      if (first) bufs.push_back(asio::buffer(h));
      first = false;
      // With a delay every piece gets its own write, so the pauses are visible on the wire.
      std::size_t budget = delay_ms > 0 ? static_cast<std::size_t>(chunk) : kWriteMax;
      while (remaining > 0 && budget > 0 && bufs.size() < 60) {
        auto len = static_cast<std::size_t>(std::min<uint64_t>({remaining, chunk, budget}));
        remaining -= len;
        budget -= len;
        if (!chunked) {
          bufs.push_back(asio::buffer(filler(), len));
          continue;
        }
        if (len == chunk) {
          bufs.push_back(asio::buffer(full_line.data(), full_len));
        } else {
          int sl = std::snprintf(short_line.data(), short_line.size(), "%zx\r\n", len);
          bufs.push_back(asio::buffer(short_line.data(), static_cast<std::size_t>(sl)));
          budget = 0;
        }
        bufs.push_back(asio::buffer(filler(), len));
        bufs.push_back(asio::buffer("\r\n", 2));
      }
      if (remaining == 0 && chunked && end == End::keep_alive && !head_) {
        bufs.push_back(asio::buffer(last_chunk));
      }
      auto [ec, wn] = co_await asio::async_write(sock_, bufs, kTok);
      if (ec) co_return End::close;
      if (remaining > 0 && delay_ms > 0) {
        timer_.expires_after(std::chrono::milliseconds(delay_ms));
        co_await timer_.async_wait(kTok);
      }
    } while (remaining > 0);
    if (end != End::keep_alive) co_return end;
    co_return keep ? End::keep_alive : End::close;
  }

  void finish(End end) {
    error_code ec;
    if (end == End::reset) {
      // SO_LINGER with a zero timeout turns close() into an abortive close: the peer sees RST.
      sock_.set_option(asio::socket_base::linger(true, 0), ec);
    } else {
      sock_.shutdown(tcp::socket::shutdown_send, ec);
    }
    sock_.close(ec);
  }

  tcp::socket sock_;
  Server& srv_;
  asio::steady_timer timer_;
  std::string_view path_;
  std::string_view query_;
  bool head_ = false;
  bool keep_alive_ = true;
  bool http10_ = false;
};

asio::awaitable<void> serve(tcp::socket sock, Server& srv) {
  Session session(std::move(sock), srv);
  co_await session.run();
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, Server& srv) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer backoff(ex);
  for (;;) {
    auto [ec, sock] = co_await acceptor.async_accept(kTok);
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // Out of descriptors and the like: wait rather than spin.
      backoff.expires_after(std::chrono::milliseconds(50));
      co_await backoff.async_wait(kTok);
      continue;
    }
    error_code opt_ec;
    sock.set_option(tcp::no_delay(true), opt_ec);
    asio::co_spawn(ex, serve(std::move(sock), srv), asio::detached);
  }
}

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s --port N [--host 127.0.0.1] [--name NAME]\n"
               "paths: / (hello)  /status/N  /delay/MS  /bytes/N  /chunked/N  /echo  /upload\n"
               "       /close-mid/N  /reset-mid/N  /chunked-reset/N  /garbage  /truncated-head\n"
               "       /close  /headers?name=value&...  /continue  /stats\n"
               "       /health (answers the health status, 200 at first)\n"
               "       /health/set/N (N: 200-599; x-health-requests: the /health requests so far)\n"
               "       /bytes and /chunked take ?chunk=BYTES&delay=MS\n",
               argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  std::string name = "backend";
  long port = -1;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (i + 1 >= argc) return usage(argv[0]);
    if (arg == "--port") {
      char* end = nullptr;
      port = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || port < 0 || port > 65535) return usage(argv[0]);
    } else if (arg == "--host") {
      host = argv[++i];
    } else if (arg == "--name") {
      name = argv[++i];
    } else {
      return usage(argv[0]);
    }
  }
  if (port < 0) return usage(argv[0]);

  Server srv;
  srv.name = name;
  srv.hello = "hello from " + name + "\n";

  asio::io_context io(1);
  error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) {
    std::fprintf(stderr, "bad --host %s: %s\n", host.c_str(), ec.message().c_str());
    return 2;
  }
  tcp::acceptor acceptor(io);
  tcp::endpoint ep(addr, static_cast<uint16_t>(port));
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::fprintf(stderr, "cannot listen on %s:%ld: %s\n", host.c_str(), port, ec.message().c_str());
    return 1;
  }
  std::printf("listening on %u\n", static_cast<unsigned>(acceptor.local_endpoint().port()));
  std::fflush(stdout);

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const error_code&, int) { io.stop(); });
  asio::co_spawn(io, accept_loop(acceptor, srv), asio::detached);
  io.run();
  return 0;
}
