// libFuzzer target: bytes from an HTTP/2 backend -> Http2ClientConnection, the client side of
// cluster `protocol: h2`. The harness plays the backend over a socketpair: it sends an empty
// SETTINGS frame, waits until the two requests have gone out (stream 1, a GET; stream 3, a
// POST whose body ends with trailers), then sends the input and closes. The connection must report
// every request as finished (a response end, or an error) once the backend has closed, never hang
// or crash; the sanitizers check the rest.
// Built without libFuzzer, replay_main.cc runs the committed corpus through it as a test.
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include "upstream/http2_client.h"

namespace {

namespace asio = boost::asio;
using namespace sluice;
using namespace sluice::upstream;

struct Handler : ResponseHandler {
  bool finished = false;
  void on_upstream_1xx(ResponseHead&) override {}
  void on_upstream_head(ResponseHead&, bool end_stream) override { finished |= end_stream; }
  void on_upstream_data(std::string&, bool end_stream) override { finished |= end_stream; }
  void on_upstream_trailers(HeaderMap&) override { finished = true; }
  void on_upstream_error(const Error&, bool) override { finished = true; }
  void on_upstream_writable() override {}
};

RequestHead request(const char* method, const char* path) {
  RequestHead h;
  h.method = method;
  h.target = path;
  h.authority = "fuzz";
  h.headers.add("x-fuzz", "1");
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  asio::io_context ioc;
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
  // The connection takes a TCP socket; its reads and writes work on any stream socket.
  asio::ip::tcp::socket client(ioc);
  asio::ip::tcp::socket backend(ioc);
  client.assign(asio::ip::tcp::v4(), fds[0]);
  backend.assign(asio::ip::tcp::v4(), fds[1]);

  auto conn = std::make_shared<Http2ClientConnection>(
      std::move(client), nullptr, std::weak_ptr<HostPool>(), 100, std::chrono::milliseconds(1000));
  Handler get, post;
  std::vector<UpstreamRequestPtr> requests;
  bool ready = false;
  size_t received = 0;  // bytes the backend has read from the client
  size_t received_at_ready = 0;
  conn->start(
      [&](bool ok) {
        ready = true;
        received_at_ready = received;
        if (!ok) {
          get.finished = post.finished = true;
          return;
        }
        auto a = conn->new_stream();
        a->start_request(get, request("GET", "/a"), BodyFraming::none, false);
        auto b = conn->new_stream();
        b->start_request(post, request("POST", "/b"), BodyFraming::chunked, false);
        b->write_body("xyz", false);
        HeaderMap trailers;
        trailers.add("x-sum", "42");
        b->write_trailers(trailers);
        requests = {a, b};
      },
      std::chrono::milliseconds(1000));

  // The backend: SETTINGS, then (once the requests are out) the input, then EOF. Its reads
  // drain what the client sends.
  static const std::string kSettings("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9);
  asio::async_write(backend, asio::buffer(kSettings),
                    [](const boost::system::error_code&, size_t) {});
  std::string sink(16 * 1024, '\0');
  std::function<void()> drain = [&] {
    backend.async_read_some(asio::buffer(sink), [&](const boost::system::error_code& ec, size_t n) {
      received += n;
      if (!ec) drain();
    });
  };
  drain();
  // run_one_for returns as soon as a handler ran: the loops end as soon as their condition
  // holds, and bound the wait when it never does.
  auto run_until = [&](auto done) {
    const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!done() && std::chrono::steady_clock::now() < limit) {
      ioc.run_one_for(std::chrono::milliseconds(10));
    }
  };
  run_until([&] { return ready; });
  run_until([&] { return received > received_at_ready; });  // the requests went out
  ioc.poll();  // and whatever else was queued (the POST's body and trailers)
  std::string input(reinterpret_cast<const char*>(data), size);
  asio::async_write(backend, asio::buffer(input), [&](const boost::system::error_code&, size_t) {
    boost::system::error_code ignored;
    backend.shutdown(asio::socket_base::shutdown_send, ignored);
  });

  run_until([&] { return ready && get.finished && post.finished; });
  if (!(ready && get.finished && post.finished)) {
    std::fprintf(stderr, "http2_client_fuzz: a request never finished after the backend closed\n");
    std::abort();
  }
  for (auto& r : requests) r.reset();
  conn->close();
  boost::system::error_code ignored;
  backend.close(ignored);
  ioc.poll();
  return 0;
}
