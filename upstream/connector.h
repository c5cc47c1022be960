#pragma once
// Opens one connection to an upstream host: the TCP connect, then for HTTPS the TLS
// handshake, all within one timeout. The connection types (HTTP/1.1, HTTP/2) take over the
// socket and the TLS session afterwards. Runs on the calling worker's thread; `done` runs
// later, never inline.
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "core/error.h"
#include "core/tls_session.h"

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

}  // namespace sluice::upstream
