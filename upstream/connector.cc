#include "upstream/connector.h"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

namespace sluice::upstream {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

struct Attempt : std::enable_shared_from_this<Attempt> {
  Attempt(asio::io_context& ioc, std::string name, ConnectDone done)
      : socket(ioc), timer(ioc), name(std::move(name)), done(std::move(done)) {}

  void fail(const std::string& detail) {
    if (finished) return;
    finished = true;
    timer.cancel();
    error_code ignored;
    socket.close(ignored);
    Error err{ErrorKind::connect_failed, ErrorSource::upstream, true, detail};
    done(std::move(socket), nullptr, &err);
  }
  void succeed() {
    if (finished) return;
    finished = true;
    timer.cancel();
    done(std::move(socket), std::move(tls), nullptr);
  }

  // One round of the TLS handshake: feed what arrived, send what OpenSSL produced, read more.
  void handshake_step() {
    size_t produced = 0;
    if (tls->read(buffer.data(), buffer.size(), &produced) == TlsSession::Result::error) {
      fail("TLS handshake with " + name + " failed: " + tls->error());
      return;
    }
    auto out = std::make_shared<std::string>();
    tls->take_output(*out);
    auto self = shared_from_this();
    auto next = [self](const error_code& ec) {
      if (self->finished) return;
      if (ec) {
        self->fail("TLS handshake with " + self->name + " failed: " + ec.message());
        return;
      }
      if (self->tls->handshake_done()) {
        self->handshake_done();
        return;
      }
      self->socket.async_read_some(asio::buffer(self->buffer), [self](const error_code& ec,
                                                                      size_t n) {
        if (self->finished) return;
        if (ec) {
          self->fail("TLS handshake with " + self->name +
                     " failed: " + (ec == asio::error::eof ? "connection closed" : ec.message()));
          return;
        }
        self->tls->put_input({self->buffer.data(), n});
        self->handshake_step();
      });
    };
    if (out->empty()) {
      next({});
      return;
    }
    asio::async_write(socket, asio::buffer(*out),
                      [out, next](const error_code& ec, size_t) { next(ec); });
  }

  void handshake_done() {
    if (require_h2 && tls->alpn() != "h2") {
      fail("TLS handshake with " + name + ": the server did not select ALPN h2");
      return;
    }
    succeed();
  }

  asio::ip::tcp::socket socket;
  asio::steady_timer timer;
  std::string name;
  ConnectDone done;
  std::unique_ptr<TlsSession> tls;
  std::string buffer;
  bool require_h2 = false;
  bool connected = false;  // TCP is up (the handshake may be running)
  bool finished = false;
};

}  // namespace

void connect_upstream(asio::io_context& ioc, const asio::ip::tcp::endpoint& endpoint,
                      std::chrono::milliseconds timeout, const ConnectOptions& options,
                      const std::string& name, ConnectDone done) {
  auto attempt = std::make_shared<Attempt>(ioc, name, std::move(done));
  attempt->require_h2 = options.require_h2;
  if (options.tls_ctx) {
    attempt->tls = std::make_unique<TlsSession>(options.tls_ctx, options.sni, options.verify_name);
  }
  attempt->timer.expires_after(timeout);
  attempt->timer.async_wait([attempt](const error_code& ec) {
    if (ec) return;
    attempt->fail(std::string(attempt->connected ? "TLS handshake with " : "connect to ") +
                  attempt->name + " timed out");
  });
  attempt->socket.async_connect(endpoint, [attempt](const error_code& ec) {
    if (attempt->finished) return;
    if (ec) {
      attempt->fail("connect to " + attempt->name + " failed: " + ec.message());
      return;
    }
    attempt->connected = true;
    error_code ignored;
    attempt->socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    if (!attempt->tls) {
      attempt->succeed();
      return;
    }
    attempt->buffer.resize(16 * 1024);
    attempt->handshake_step();
  });
}

}  // namespace sluice::upstream
