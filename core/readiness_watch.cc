#include "core/readiness_watch.h"

#include <type_traits>

#include <boost/asio/detail/reactor.hpp>

namespace sluice {
namespace asio = boost::asio;

// The trick below is the epoll reactor's: its start_op queues a read that declines speculation
// without touching epoll. Another reactor (io_uring, kqueue) would need its own look.
static_assert(std::is_same_v<asio::detail::reactor, asio::detail::epoll_reactor>);

namespace {

// basic_socket keeps its implementation (the descriptor's reactor data) protected.
struct SocketInternals : asio::ip::tcp::socket {
  using asio::ip::tcp::socket::impl_;
};

}  // namespace

ReadinessWatch::ReadinessWatch(Callback callback, void* target)
    : reactor_op(boost::system::error_code(), &ReadinessWatch::perform, &ReadinessWatch::complete),
      callback_(callback),
      target_(target) {}

void ReadinessWatch::arm(asio::ip::tcp::socket& socket, std::shared_ptr<void> owner) {
  auto& io = socket.*(&SocketInternals::impl_);
  auto& impl = io.get_implementation();
  auto& reactor = asio::use_service<asio::detail::reactor>(static_cast<asio::execution_context&>(
      asio::query(socket.get_executor(), asio::execution::context)));
  owner_ = std::move(owner);
  ec_ = boost::system::error_code();
  bytes_transferred_ = 0;
  armed_ = true;
  queued_ = false;
  // With speculation allowed and perform() declining it, start_op neither reads nor calls
  // epoll_ctl for a read operation: it queues it.
  reactor.start_op(asio::detail::reactor::read_op, impl.socket_, impl.reactor_data_, this,
                   /*is_continuation=*/false, /*allow_speculative=*/true);
  queued_ = true;
}

ReadinessWatch::status ReadinessWatch::perform(reactor_op* op) {
  // Called inside start_op (speculation: not ready, as promised) or for an epoll event.
  return static_cast<ReadinessWatch*>(op)->queued_ ? done : not_done;
}

void ReadinessWatch::complete(void* scheduler, asio::detail::operation* op,
                              const boost::system::error_code&, std::size_t) {
  auto* self = static_cast<ReadinessWatch*>(op);
  // Released after the callback, which may arm again (a new owner) or drop the last other
  // reference to the object holding this watch.
  std::shared_ptr<void> keep_alive = std::move(self->owner_);
  self->armed_ = false;
  self->queued_ = false;
  // No scheduler: the io_context is destroying the operation instead of running it.
  Outcome outcome = !scheduler  ? Outcome::destroyed
                    : self->ec_ ? Outcome::aborted
                                : Outcome::readable;
  self->callback_(self->target_, outcome);
}

}  // namespace sluice
