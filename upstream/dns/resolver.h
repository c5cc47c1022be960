#pragma once
// Asynchronous DNS resolution of hostname endpoints ("api.internal:8080") on c-ares, driven by
// the control thread's io_context: c-ares's sockets are watched with async_wait and its
// retransmits with a steady_timer, so nothing here blocks (the one exception is c-ares reading
// /etc/hosts and, at construction, /etc/resolv.conf: small local files, control thread only).
//
// Threading and ownership: a Resolver is created, used and destroyed on the thread that runs
// `ioc`; every callback runs on that thread. The resolver owns each callback until it has run it
// (or dropped it, see ~Resolver). Not copyable or movable: c-ares holds a pointer to it.
//
// Callbacks: a resolve() callback runs at most once, always later from the io_context (posted,
// never inside resolve()), and never once the destructor has started: ~Resolver drops pending
// callbacks without running them. A resolver that lives on runs every callback exactly once.
//
// Time bound: a query whose servers never answer fails with "Timeout while contacting DNS
// servers" after at most `timeout` (plus scheduling delay). c-ares tries each of the N servers
// twice, the second round waiting twice as long, so each try waits timeout / (3 N) and then
// 2 timeout / (3 N) (at least 1ms each). A and AAAA are asked in parallel. A name that the
// resolv.conf search list expands (fewer dots than `ndots`) is tried once per search domain while
// servers answer "no such name"; each expansion gets its own bound, and a timeout ends the search.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/steady_timer.hpp>

struct ares_channeldata;  // c-ares's channel (ares_channel is a pointer to it)
struct ares_addrinfo;     // c-ares's result list

namespace sluice::upstream::dns {

struct Resolution {
  // IPv4 and IPv6 (A and AAAA), in the order c-ares returns them: the RFC 6724 destination order
  // getaddrinfo(3) uses (unreachable families last), without duplicates.
  std::vector<boost::asio::ip::address> addresses;
  // The smallest TTL of the records used, CNAMEs included; 0 when unknown (an IP literal, a name
  // from /etc/hosts).
  std::chrono::seconds ttl{0};
};

class Resolver {
 public:
  // servers: "ip:port", "[ipv6]:port" or a bare IP (port 53), tried in order; empty: the
  // servers, search list and ndots of /etc/resolv.conf. timeout: the bound above, > 0.
  // On failure (a malformed server, c-ares init) *error is set and every resolve() fails with
  // it; otherwise *error is cleared.
  Resolver(boost::asio::io_context& ioc, std::vector<std::string> servers,
           std::chrono::milliseconds timeout, std::string* error);
  // Cancels pending queries; their callbacks are not called (now or later).
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // error: empty on success (then at least one address), else "cannot resolve HOST: reason".
  using Callback = std::function<void(const Resolution&, const std::string& error)>;

  // A and AAAA records of `host` (the search list and /etc/hosts apply as for getaddrinfo). An
  // IP literal ("10.0.0.1", "::1") resolves to itself without a query.
  void resolve(const std::string& host, Callback cb);

 private:
  struct Socket;
  struct Query;

  bool init(int per_try_ms, const std::vector<std::string>& servers, std::string* error);
  void deliver(Callback cb, Resolution resolution, std::string error);
  void schedule_timer();
  void on_socket_state(int fd, bool readable, bool writable);
  void arm(int fd, bool write);
  static void on_socket_state_cb(void* self, int fd, int readable, int writable);
  static void on_addrinfo(void* arg, int status, int timeouts, ares_addrinfo* result);

  boost::asio::io_context& ioc_;
  ares_channeldata* channel_ = nullptr;  // null when construction failed
  std::string init_error_;
  boost::asio::steady_timer timer_;                           // c-ares's next retransmit or timeout
  std::unordered_map<int, std::unique_ptr<Socket>> sockets_;  // c-ares's open sockets, by fd
  uint64_t next_generation_ = 0;  // tells a socket from an earlier one with the same fd
  // Handlers hold it weakly: once the destructor has reset it they do nothing.
  std::shared_ptr<char> alive_ = std::make_shared<char>();
};

}  // namespace sluice::upstream::dns
