#include "upstream/connector.h"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/http.h"

namespace sluice::upstream {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// One handshake in progress: rounds of feeding what arrived, sending what OpenSSL produced and
// reading more. Shared by its handlers.
struct Handshake : std::enable_shared_from_this<Handshake> {
  Handshake(asio::ip::tcp::socket& socket, TlsSession& tls, HandshakeDone done)
      : socket(socket), tls(tls), done(std::move(done)), buffer(16 * 1024, '\0') {}

  void step() {
    size_t produced = 0;
    if (tls.read(buffer.data(), buffer.size(), &produced) == TlsSession::Result::error) {
      done(tls.error_reason().empty() ? tls.error() : tls.error_reason());
      return;
    }
    auto out = std::make_shared<std::string>();
    tls.take_output(*out);
    auto self = shared_from_this();
    auto next = [self](const error_code& ec) {
      if (ec) {
        self->done(ec.message());
        return;
      }
      if (self->tls.handshake_done()) {
        self->done("");
        return;
      }
      self->socket.async_read_some(
          asio::buffer(self->buffer), [self](const error_code& ec, size_t n) {
            if (ec) {
              self->done(ec == asio::error::eof ? "connection closed" : ec.message());
              return;
            }
            self->tls.put_input({self->buffer.data(), n});
            self->step();
          });
    };
    if (out->empty()) {
      next({});
      return;
    }
    asio::async_write(socket, asio::buffer(*out),
                      [out, next](const error_code& ec, size_t) { next(ec); });
  }

  asio::ip::tcp::socket& socket;
  TlsSession& tls;
  HandshakeDone done;
  std::string buffer;
};

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
  bool require_h2 = false;
  bool connected = false;  // TCP is up (the handshake may be running)
  bool finished = false;
};

}  // namespace

void tls_handshake(asio::ip::tcp::socket& socket, TlsSession& tls, HandshakeDone done) {
  std::make_shared<Handshake>(socket, tls, std::move(done))->step();
}

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
    // The attempt owns the socket and the session the handshake works on.
    tls_handshake(attempt->socket, *attempt->tls, [attempt](const std::string& error) {
      if (attempt->finished) return;
      if (!error.empty()) {
        attempt->fail("TLS handshake with " + attempt->name + " failed: " + error);
        return;
      }
      attempt->handshake_done();
    });
  });
}

std::shared_ptr<ssl_ctx_st> make_client_tls_context(const config::ClusterTls& tls, bool h2) {
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (!ctx) return nullptr;
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  static const unsigned char kHttp1[] = "\x08http/1.1";
  static const unsigned char kH2[] = "\x02h2";
  if (h2) {
    SSL_CTX_set_alpn_protos(ctx.get(), kH2, sizeof(kH2) - 1);
  } else {
    SSL_CTX_set_alpn_protos(ctx.get(), kHttp1, sizeof(kHttp1) - 1);
  }
  if (tls.verify) {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    if (tls.ca_file.empty()) {
      SSL_CTX_set_default_verify_paths(ctx.get());
    } else {
      SSL_CTX_load_verify_locations(ctx.get(), tls.ca_file.c_str(), nullptr);
    }
  }
  ERR_clear_error();
  return ctx;
}

TlsNames tls_names(const config::ClusterTls& tls, const Host& host) {
  TlsNames out;
  out.sni = !tls.sni.empty() ? tls.sni : host.hostname();
  if (tls.verify) {
    // An IPv6 address is checked without its brackets ("[::1]:443" is ::1).
    out.verify_name = out.sni.empty() ? std::string(split_authority(host.name()).host) : out.sni;
  }
  return out;
}

}  // namespace sluice::upstream
