#include "proxy/listener.h"

#include <sys/socket.h>

#include "core/stats.h"
#include "proxy/http1_connection.h"

namespace sluice {

namespace asio = boost::asio;
using boost::system::error_code;

ListenerRuntime::ListenerRuntime(asio::ip::tcp::acceptor acceptor, config::Listener config,
                                 StreamContext& ctx, ListenerStats& stats,
                                 std::shared_ptr<ConnectionLimiter> limiter)
    : acceptor_(std::move(acceptor)),
      backoff_(acceptor_.get_executor()),
      config_(std::move(config)),
      ctx_(ctx),
      stats_(stats),
      limiter_(limiter ? std::move(limiter) : std::make_shared<ConnectionLimiter>()) {}

ListenerRuntime::~ListenerRuntime() = default;

std::string ListenerRuntime::bind(asio::io_context& ioc, const config::SocketAddress& address,
                                  asio::ip::tcp::acceptor& out) {
  error_code ec;
  auto addr = asio::ip::make_address(address.host == "localhost" ? "127.0.0.1" : address.host, ec);
  if (ec) return "invalid listen address " + address.str();
  asio::ip::tcp::endpoint endpoint(addr, address.port);
  asio::ip::tcp::acceptor acceptor(ioc);
  acceptor.open(endpoint.protocol(), ec);
  if (ec) return "socket: " + ec.message();
  acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  // Every worker binds its own socket to the address; the kernel spreads connections.
  using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
  acceptor.set_option(reuse_port(true), ec);
  if (ec) return "SO_REUSEPORT: " + ec.message();
  acceptor.bind(endpoint, ec);
  if (ec) return "cannot bind " + address.str() + ": " + ec.message();
  acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return "cannot listen on " + address.str() + ": " + ec.message();
  out = std::move(acceptor);
  return "";
}

void ListenerRuntime::update(const config::Listener& config, SnapshotPtr snapshot) {
  config_ = config;
  snapshot_ = std::move(snapshot);
}

void ListenerRuntime::start() {
  accepting_ = true;
  accept();
}

void ListenerRuntime::accept() {
  if (!accepting_) return;
  acceptor_.async_accept(
      [self = shared_from_this()](const error_code& ec, asio::ip::tcp::socket socket) {
        if (!self->accepting_) return;
        if (ec) {
          if (ec == asio::error::operation_aborted) return;
          // EMFILE and friends: back off briefly instead of spinning. (The server raises the
          // open-file limit at start so that max_connections, not this, is what refuses.)
          self->backoff_.expires_after(std::chrono::milliseconds(50));
          self->backoff_.async_wait([self](const error_code& ec) {
            if (!ec) self->accept();
          });
          return;
        }
        self->on_accept(std::move(socket));
        self->accept();
      });
}

void ListenerRuntime::on_accept(asio::ip::tcp::socket socket) {
  error_code ec;
  const asio::ip::tcp::endpoint peer = socket.remote_endpoint(ec);
  if (ec) return;  // gone already (reset while in the backlog); the socket closes here
  const config::Limits& limits = config_.limits;
  ConnectionLimiter::Slot slot;
  switch (limiter_->try_acquire(peer.address(), limits.max_connections,
                                limits.max_connections_per_ip, slot)) {
    case ConnectionLimiter::Refusal::none:
      std::make_shared<Http1Connection>(std::move(socket), peer, shared_from_this(), ctx_,
                                        std::move(slot))
          ->start();
      return;
    case ConnectionLimiter::Refusal::max_connections:
      stats_.connections_rejected_max_connections.add();
      break;
    case ConnectionLimiter::Refusal::max_connections_per_ip:
      stats_.connections_rejected_max_connections_per_ip.add();
      break;
  }
  // Refused: closed at once with a reset, so it costs neither a response nor a TIME_WAIT
  // entry here, and the accept loop goes straight on to the next connection.
  socket.set_option(asio::socket_base::linger(true, 0), ec);
  socket.close(ec);
}

void ListenerRuntime::stop_accepting() {
  accepting_ = false;
  error_code ignored;
  acceptor_.close(ignored);
  backoff_.cancel();
}

std::list<std::shared_ptr<Http1Connection>>::iterator ListenerRuntime::add(
    std::shared_ptr<Http1Connection> c) {
  ++active_;
  return connections_.insert(connections_.end(), std::move(c));
}

void ListenerRuntime::remove(std::list<std::shared_ptr<Http1Connection>>::iterator it) {
  --active_;
  connections_.erase(it);
}

void ListenerRuntime::drain_connections() {
  // Copy first: draining may close and unregister connections.
  std::vector<std::shared_ptr<Http1Connection>> live(connections_.begin(), connections_.end());
  for (auto& c : live) c->drain();
}

void ListenerRuntime::close_connections() {
  std::vector<std::shared_ptr<Http1Connection>> live(connections_.begin(), connections_.end());
  for (auto& c : live) c->close();
}

}  // namespace sluice
