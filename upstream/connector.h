#pragma once
// Opens one connection to an upstream host: the TCP connect, then for HTTPS the TLS
// handshake, all within one timeout. The connection types (HTTP/1.1, HTTP/2) take over the
// socket and the TLS session afterwards. Also the pieces the active health checker shares with
// it, so that probes of an HTTPS cluster connect exactly as its requests do: the cluster's
// client context, the names sent and checked for a host, and the handshake itself.
// Runs on the calling thread's io_context (a worker's, or the control thread's for health
// checks); callbacks run later, never inline.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "config/config.h"
#include "core/error.h"
#include "core/tls_session.h"
#include "upstream/host.h"

struct ssl_ctx_st;

namespace sluice::upstream {

struct ConnectOptions {
  ssl_ctx_st* tls_ctx = nullptr;  // null: plaintext
  std::string sni;                // empty: none sent
  std::string verify_name;        // empty: the name is not checked
  bool require_h2 = false;        // TLS: the server must select ALPN "h2"
};

// `err` is null on success; on failure the socket is closed and `tls` is null.
using ConnectDone = std::function<void(boost::asio::ip::tcp::socket socket,
                                       std::unique_ptr<TlsSession> tls, const Error* err)>;

// `name` ("host:port") is used in error details.
void connect_upstream(boost::asio::io_context& ioc, const boost::asio::ip::tcp::endpoint& endpoint,
                      std::chrono::milliseconds timeout, const ConnectOptions& options,
                      const std::string& name, ConnectDone done);

// The client context for a cluster's HTTPS endpoints: TLS 1.2+, ALPN "http/1.1" (or "h2"
// alone when `h2`), and unless `verify: false` the chain checked against ca_file (else the
// system store). Reads the CA file: build it off the hot path. Null if OpenSSL fails.
std::shared_ptr<ssl_ctx_st> make_client_tls_context(const config::ClusterTls& tls, bool h2);

// What `host` of a cluster with `tls` is sent as SNI and checked against: `sni`, else the
// endpoint's host name when it came from one, else (checked only) its IP address. The
// verified name is empty with `verify: false`.
struct TlsNames {
  std::string sni;
  std::string verify_name;
};
TlsNames tls_names(const config::ClusterTls& tls, const Host& host);

// Runs the client side of `tls`'s handshake over the connected `socket`. `done("")` once it
// completed, else `done(reason)`: the TLS failure (TlsSession::error_reason(), such as
// "certificate verify failed (hostname mismatch)"), "connection closed", or the socket error.
// No timeout of its own: closing the socket ends it (with an error). `socket` and `tls` must
// outlive the call of `done` (the caller's handler usually owns them).
using HandshakeDone = std::function<void(const std::string& error)>;
void tls_handshake(boost::asio::ip::tcp::socket& socket, TlsSession& tls, HandshakeDone done);

}  // namespace sluice::upstream
