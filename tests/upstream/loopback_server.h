#pragma once
// Test support for upstream tests: a scripted TCP server on 127.0.0.1 that runs on the test's
// io_context (single thread, like a worker), and a bounded "run the loop until" helper.
#include <sys/socket.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include "config/config.h"

namespace sluice::test {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// Runs `ioc` until `pred` holds; false when `limit` passed first. Every wait in a test is
// bounded by this.
inline bool run_until(asio::io_context& ioc, const std::function<bool()>& pred,
                      std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    ioc.restart();
    ioc.run_for(std::chrono::milliseconds(2));
  }
  return true;
}

// Runs `ioc` for `d` (to let events that should not happen have their chance).
inline void run_for(asio::io_context& ioc, std::chrono::milliseconds d) {
  const auto deadline = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < deadline) {
    ioc.restart();
    ioc.run_for(std::chrono::milliseconds(2));
  }
}

inline size_t count_of(std::string_view haystack, std::string_view needle) {
  size_t n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string_view::npos;
       pos = haystack.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

// The server side of one accepted connection.
class Peer : public std::enable_shared_from_this<Peer> {
 public:
  explicit Peer(tcp::socket socket) : socket_(std::move(socket)) {}

  // Reads until EOF or error, appending to `received`.
  void start_reading() {
    if (reading_) return;
    reading_ = true;
    read();
  }
  void send(std::string_view data) {
    out_.append(data);
    flush();
  }
  // Orderly close (FIN).
  void close() {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }
  // Abortive close (RST).
  void reset() {
    boost::system::error_code ignored;
    socket_.set_option(asio::socket_base::linger(true, 0), ignored);
    socket_.close(ignored);
  }
  // Complete request heads received so far.
  size_t heads() const { return count_of(received, "\r\n\r\n"); }
  tcp::socket& socket() { return socket_; }

  std::string received;
  bool eof = false;  // the client closed (or the read failed)

 private:
  void read() {
    socket_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](
                                                    const boost::system::error_code& ec, size_t n) {
      if (ec) {
        self->eof = true;
        return;
      }
      self->received.append(self->buf_, n);
      self->read();
    });
  }
  void flush() {
    if (writing_ || out_.empty() || !socket_.is_open()) return;
    writing_ = true;
    in_flight_.swap(out_);
    out_.clear();
    asio::async_write(socket_, asio::buffer(in_flight_),
                      [self = shared_from_this()](const boost::system::error_code&, size_t) {
                        self->writing_ = false;
                        self->in_flight_.clear();
                        self->flush();
                      });
  }

  tcp::socket socket_;
  char buf_[16384];
  bool reading_ = false;
  bool writing_ = false;
  std::string out_;
  std::string in_flight_;
};

using PeerPtr = std::shared_ptr<Peer>;

// Accepts on 127.0.0.1:<ephemeral>; each accepted connection becomes a Peer that starts
// reading unless `auto_read` is false.
class LoopbackServer {
 public:
  explicit LoopbackServer(asio::io_context& ioc, bool auto_read = true)
      : acceptor_(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        auto_read_(auto_read) {
    accept();
  }
  ~LoopbackServer() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (auto& p : peers) p->close();
  }

  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  config::SocketAddress address() const { return {"127.0.0.1", port()}; }
  size_t accepted() const { return peers.size(); }

  std::vector<PeerPtr> peers;

 private:
  void accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket s) {
      if (ec) return;
      auto p = std::make_shared<Peer>(std::move(s));
      peers.push_back(p);
      if (auto_read_) p->start_reading();
      accept();
    });
  }

  tcp::acceptor acceptor_;
  bool auto_read_;
};

}  // namespace sluice::test
