#pragma once
// A wait for a socket to become readable that costs no syscall, for the waits that come right
// after a drained read: the idle wait of a keep-alive connection for its next request, and of
// a pooled upstream connection for its backend's close.
//
// Asio's own waits each cost one: async_wait re-arms the descriptor with epoll_ctl(MOD), and
// async_read_some first tries a recv that fails with EAGAIN (Asio only trusts a read that
// returned 0 bytes to mean "drained"). Asio registers every socket with epoll edge-triggered
// for input once, so a wait queued on the reactor without either still sees the next arrival,
// as an edge. What makes that correct is the caller's promise, which arm() takes on trust:
//
//   the last recv on the socket failed with EAGAIN, and no epoll_wait ran since, i.e. arm()
//   is called from the handler that made that recv.
//
// An edge between the recv and arm() then is still waiting in epoll, and reaches the wait.
// Without the promise, an arrival in between could be reported to nobody: a wait that never
// ends. Use Asio's async_wait there. A recv that returned less than asked for is almost as
// good, but not quite: a FIN that arrived together with the data raised no edge of its own,
// so the wait does not see it (callers that can live with that say why).
//
// Built on Asio's reactor operations (boost::asio::detail), which Boost keeps stable in
// practice but does not document; the epoll reactor (Linux) is the only one it supports.
// The socket's io_context must be run by one thread (the workers' are).
#include <memory>

#include <boost/asio/detail/reactor_op.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace sluice {

class ReadinessWatch : private boost::asio::detail::reactor_op {
 public:
  enum class Outcome {
    readable,  // input, a FIN or an error is waiting on the socket
    aborted,   // the socket was closed or its waits cancelled
    destroyed  // the io_context is being destroyed with the wait queued: no I/O any more
  };
  using Callback = void (*)(void* target, Outcome outcome);

  ReadinessWatch(Callback callback, void* target);
  ReadinessWatch(const ReadinessWatch&) = delete;
  ReadinessWatch& operator=(const ReadinessWatch&) = delete;

  // Queues the wait (see the promise above). The socket is open and non-blocking, and has
  // had an operation before (Asio registers it with epoll on the first). `owner` (the object
  // holding the watch) is kept alive until the callback has returned, as an Asio handler
  // would keep what it captured. The callback runs once, from the io_context; the watch can
  // be armed again from inside it.
  void arm(boost::asio::ip::tcp::socket& socket, std::shared_ptr<void> owner);
  bool armed() const { return armed_; }

 private:
  static status perform(reactor_op* op);
  static void complete(void* scheduler, boost::asio::detail::operation* op,
                       const boost::system::error_code& ec, std::size_t bytes);

  Callback callback_;
  void* target_;
  std::shared_ptr<void> owner_;  // while armed
  bool armed_ = false;           // queued on the reactor (or its completion posted)
  bool queued_ = false;          // past start_op: a perform() now comes from an epoll event
};

}  // namespace sluice
