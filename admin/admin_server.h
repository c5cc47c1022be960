#pragma once
// The admin HTTP/1.1 server: / (the dashboard page), /healthz, /ready, /metrics, /config,
// /clusters, /ratelimits, /stats (the dashboard's JSON, with a time series the admin thread
// samples once a second), and the actions (POST /reload, /drain,
// /clusters/{cluster}/hosts/{address}/{disable,enable}), behind a bearer token when the config
// has admin.token_file (all but /healthz, /ready and the page, which holds no data).
// Actions are logged with the client's address and their result. It runs on its own thread with
// its own io_context, so a slow scrape never delays a worker; actions run on a second thread
// of its own, so a slow reload never delays a scrape. Not the hot path: plain Beast
// async_read/async_write, one request at a time per connection.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "config/config.h"

namespace sluice::admin {

class AdminContext;

struct AdminServerOptions {
  // Bounds the wait for a whole request, including the idle gap before it on keep-alive.
  std::chrono::milliseconds read_timeout{std::chrono::seconds(10)};
  // Limit for the request head, and separately for a body (no endpoint takes one).
  size_t max_request_bytes = 8 * 1024;
  // Further clients wait in the listen backlog until a connection closes.
  size_t max_connections = 64;
  // Wrong tokens from one address within a minute before it is refused (429) for the rest of
  // that minute (admin/auth.h).
  size_t max_token_failures = 10;
};

// start(), stop(), port() and the destructor are called by the owner's thread (main); request
// handling runs on the admin thread and actions on the actions thread, both calling into `ctx`.
// `ctx` must outlive the server.
class AdminServer {
 public:
  AdminServer(AdminContext& ctx, config::SocketAddress address, AdminServerOptions options = {});
  ~AdminServer();  // stop()
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds and listens, then starts the admin thread. On failure returns false and sets `*error`
  // (if not null) to a message naming the address and the cause, e.g. "address already in use".
  bool start(std::string* error);
  // Closes the listener and every connection, then joins the thread. Idempotent.
  void stop();
  // The bound port (useful with port 0); 0 before a successful start().
  uint16_t port() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::admin
