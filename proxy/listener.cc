#include "proxy/listener.h"

#include <sys/socket.h>

#include "core/stats.h"
#include "proxy/http1_connection.h"

namespace sluice {

namespace asio = boost::asio;
using boost::system::error_code;

ListenerRuntime::ListenerRuntime(asio::ip::tcp::acceptor acceptor, config::Listener config,
                                 StreamContext& ctx, ListenerStats& stats)
    : acceptor_(std::move(acceptor)), config_(std::move(config)), ctx_(ctx), stats_(stats) {}

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
          // EMFILE and friends: back off briefly instead of spinning.
          auto timer = std::make_shared<asio::steady_timer>(self->acceptor_.get_executor());
          timer->expires_after(std::chrono::milliseconds(50));
          timer->async_wait([self, timer](const error_code&) { self->accept(); });
          return;
        }
        if (self->active_ >= self->config_.limits.max_connections) {
          error_code ignored;
          socket.close(ignored);
        } else {
          auto conn = std::make_shared<Http1Connection>(std::move(socket), self, self->ctx_);
          conn->start();
        }
        self->accept();
      });
}

void ListenerRuntime::stop_accepting() {
  accepting_ = false;
  error_code ignored;
  acceptor_.close(ignored);
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
