#include "upstream/dns/resolver.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <utility>

#include <ares.h>
#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/ip/address_v6.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>

namespace sluice::upstream::dns {

namespace asio = boost::asio;

// One socket c-ares opened, watched (not owned: c-ares closes it) by a descriptor.
struct Resolver::Socket {
  explicit Socket(asio::io_context& ioc) : descriptor(ioc) {}
  asio::posix::stream_descriptor descriptor;
  uint64_t generation = 0;
  bool assigned = false;
  bool want[2] = {false, false};     // [0] readable, [1] writable: what c-ares waits for
  bool pending[2] = {false, false};  // an async_wait of that kind is outstanding
};

// One resolve() call, owned by c-ares from ares_getaddrinfo until its callback.
struct Resolver::Query {
  Resolver* self;
  std::string host;
  Callback cb;
};

namespace {

bool library_initialized() {
  // Process-wide and never undone: ares_library_cleanup would break other channels.
  static const int status = ares_library_init(ARES_LIB_INIT_ALL);
  return status == ARES_SUCCESS;
}

// "1.2.3.4:53", "[::1]:5353", "1.2.3.4", "::1" (port 53).
bool parse_server(const std::string& text, ares_addr_port_node* node) {
  std::string host = text;
  unsigned port = 53;
  auto parse_port = [&](std::string_view digits) {
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    return ec == std::errc() && end == digits.data() + digits.size() && port > 0 &&
           port <= std::numeric_limits<uint16_t>::max();
  };
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos) return false;
    host = text.substr(1, close - 1);
    if (close + 1 != text.size()) {
      if (text[close + 1] != ':' || !parse_port(std::string_view(text).substr(close + 2))) {
        return false;
      }
    }
  } else if (auto colon = text.find(':');
             colon != std::string::npos && text.find(':', colon + 1) == std::string::npos) {
    host = text.substr(0, colon);
    if (!parse_port(std::string_view(text).substr(colon + 1))) return false;
  }
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) return false;
  std::memset(node, 0, sizeof(*node));
  if (address.is_v4()) {
    node->family = AF_INET;
    auto bytes = address.to_v4().to_bytes();
    std::memcpy(&node->addr.addr4, bytes.data(), bytes.size());
  } else {
    if (address.to_v6().scope_id() != 0) return false;  // c-ares has no field for it
    node->family = AF_INET6;
    auto bytes = address.to_v6().to_bytes();
    std::memcpy(&node->addr.addr6, bytes.data(), bytes.size());
  }
  node->udp_port = node->tcp_port = static_cast<int>(port);
  return true;
}

int count_servers(ares_channel channel) {
  ares_addr_port_node* servers = nullptr;
  if (ares_get_servers_ports(channel, &servers) != ARES_SUCCESS) return 1;
  int n = 0;
  for (auto* s = servers; s != nullptr; s = s->next) ++n;
  ares_free_data(servers);
  return std::max(n, 1);
}

// Each server is tried twice, the second try waiting twice as long (c-ares doubles the timeout
// each round): timeout / (3 × servers) per first try keeps the whole query within `timeout`.
constexpr int kTries = 2;
int per_try_ms(std::chrono::milliseconds timeout, int servers) {
  auto ms = timeout.count() / ((1 + 2) * servers);
  return static_cast<int>(std::clamp<int64_t>(ms, 1, std::numeric_limits<int>::max() / 4));
}

}  // namespace

Resolver::Resolver(asio::io_context& ioc, std::vector<std::string> servers,
                   std::chrono::milliseconds timeout, std::string* error)
    : ioc_(ioc), timer_(ioc) {
  std::string failure;
  if (timeout.count() <= 0) {
    failure = "DNS timeout must be positive";
  } else if (!library_initialized()) {
    failure = "cannot initialise c-ares";
  } else {
    // The number of servers fixes the per-try timeout; with resolv.conf's we learn it only from
    // a channel, so build one, count, and build again if the guess was wrong (no socket is
    // opened before the first query).
    int n = servers.empty() ? 1 : static_cast<int>(servers.size());
    if (init(per_try_ms(timeout, n), servers, &failure) && count_servers(channel_) != n) {
      n = count_servers(channel_);
      ares_destroy(channel_);
      channel_ = nullptr;
      init(per_try_ms(timeout, n), servers, &failure);
    }
  }
  if (!channel_) init_error_ = failure.empty() ? "DNS resolver unavailable" : failure;
  if (error != nullptr) *error = init_error_;
}

bool Resolver::init(int per_try, const std::vector<std::string>& servers, std::string* error) {
  ares_options options{};
  options.timeout = per_try;
  options.tries = kTries;
  options.sock_state_cb = &Resolver::on_socket_state_cb;
  options.sock_state_cb_data = this;
  int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB;
  ares_channel channel = nullptr;
  if (int status = ares_init_options(&channel, &options, mask); status != ARES_SUCCESS) {
    *error = std::string("cannot initialise the DNS resolver: ") + ares_strerror(status);
    return false;
  }
  if (!servers.empty()) {
    std::vector<ares_addr_port_node> nodes(servers.size());
    for (size_t i = 0; i < servers.size(); ++i) {
      if (!parse_server(servers[i], &nodes[i])) {
        *error = "bad DNS server \"" + servers[i] + "\": expected ip:port";
        ares_destroy(channel);
        return false;
      }
      nodes[i].next = i + 1 < nodes.size() ? &nodes[i + 1] : nullptr;
    }
    if (int status = ares_set_servers_ports(channel, nodes.data()); status != ARES_SUCCESS) {
      *error = std::string("cannot set the DNS servers: ") + ares_strerror(status);
      ares_destroy(channel);
      return false;
    }
  }
  channel_ = channel;
  return true;
}

Resolver::~Resolver() {
  // First, so that nothing queued on the io_context touches this object or runs a callback.
  alive_.reset();
  timer_.cancel();
  if (channel_) {
    // Ends every query with ARES_EDESTRUCTION (on_addrinfo drops it) and reports each socket
    // closed through on_socket_state, which releases its descriptor before c-ares closes it.
    ares_destroy(channel_);
    channel_ = nullptr;
  }
  for (auto& [fd, socket] : sockets_) socket->descriptor.release();
}

void Resolver::resolve(const std::string& host, Callback cb) {
  boost::system::error_code ec;
  auto literal = asio::ip::make_address(host, ec);
  if (!ec) {
    deliver(std::move(cb), Resolution{{literal}, std::chrono::seconds(0)}, {});
    return;
  }
  if (!channel_) {
    deliver(std::move(cb), {}, "cannot resolve " + host + ": " + init_error_);
    return;
  }
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;  // A and AAAA, in parallel
  auto* query = new Query{this, host, std::move(cb)};
  // c-ares may call on_addrinfo before returning (/etc/hosts); it posts, so that is fine.
  ares_getaddrinfo(channel_, host.c_str(), nullptr, &hints, &Resolver::on_addrinfo, query);
  schedule_timer();
}

void Resolver::deliver(Callback cb, Resolution resolution, std::string error) {
  asio::post(ioc_, [alive = std::weak_ptr<char>(alive_), cb = std::move(cb),
                    resolution = std::move(resolution), error = std::move(error)] {
    if (alive.expired() || !cb) return;
    cb(resolution, error);
  });
}

void Resolver::on_addrinfo(void* arg, int status, int /*timeouts*/, ares_addrinfo* result) {
  std::unique_ptr<Query> query(static_cast<Query*>(arg));
  std::unique_ptr<ares_addrinfo, decltype(&ares_freeaddrinfo)> owned(result, &ares_freeaddrinfo);
  if (status == ARES_EDESTRUCTION) return;  // ~Resolver: callbacks are dropped, not run
  Resolution resolution;
  std::string error;
  if (status != ARES_SUCCESS || result == nullptr) {
    error = "cannot resolve " + query->host + ": " + ares_strerror(status);
  } else {
    int ttl = std::numeric_limits<int>::max();
    for (auto* node = result->nodes; node != nullptr; node = node->ai_next) {
      asio::ip::address address;
      if (node->ai_family == AF_INET && node->ai_addr != nullptr) {
        sockaddr_in sa;
        std::memcpy(&sa, node->ai_addr, sizeof(sa));
        address = asio::ip::address_v4(ntohl(sa.sin_addr.s_addr));
      } else if (node->ai_family == AF_INET6 && node->ai_addr != nullptr) {
        sockaddr_in6 sa;
        std::memcpy(&sa, node->ai_addr, sizeof(sa));
        asio::ip::address_v6::bytes_type bytes;
        std::memcpy(bytes.data(), &sa.sin6_addr, bytes.size());
        address = asio::ip::address_v6(bytes, sa.sin6_scope_id);
      } else {
        continue;
      }
      ttl = std::min(ttl, node->ai_ttl);
      auto& list = resolution.addresses;
      if (std::find(list.begin(), list.end(), address) == list.end()) list.push_back(address);
    }
    for (auto* cname = result->cnames; cname != nullptr; cname = cname->next) {
      ttl = std::min(ttl, cname->ttl);
    }
    if (resolution.addresses.empty()) {
      error = "cannot resolve " + query->host + ": no IPv4 or IPv6 address";
    } else {
      resolution.ttl = std::chrono::seconds(std::max(ttl, 0));
    }
  }
  query->self->deliver(std::move(query->cb), std::move(resolution), std::move(error));
}

void Resolver::schedule_timer() {
  if (!channel_) return;
  timeval tv{};
  if (ares_timeout(channel_, nullptr, &tv) == nullptr) {
    timer_.cancel();  // no query pending
    return;
  }
  // c-ares rounds down to the millisecond: wait 1ms more rather than wake up early, find
  // nothing due and spin until it is.
  timer_.expires_after(std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec) +
                       std::chrono::milliseconds(1));
  timer_.async_wait([this, alive = std::weak_ptr<char>(alive_)](boost::system::error_code ec) {
    if (ec || alive.expired()) return;
    ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // retransmits, timeouts
    schedule_timer();
  });
}

void Resolver::on_socket_state_cb(void* self, int fd, int readable, int writable) {
  static_cast<Resolver*>(self)->on_socket_state(fd, readable != 0, writable != 0);
}

// Called by c-ares (inside its own calls) when it opens a socket, changes what it waits for, or
// is about to close it.
void Resolver::on_socket_state(int fd, bool readable, bool writable) {
  auto it = sockets_.find(fd);
  if (!readable && !writable) {
    if (it != sockets_.end()) {
      // Cancels the waits (their handlers find no socket of their generation) and leaves the
      // fd to c-ares, which closes it right after this returns.
      it->second->descriptor.release();
      sockets_.erase(it);
    }
    return;
  }
  if (it == sockets_.end()) {
    auto socket = std::make_unique<Socket>(ioc_);
    socket->generation = ++next_generation_;
    boost::system::error_code ec;
    socket->descriptor.assign(fd, ec);
    // Unwatchable (epoll refused it): the query then times out through the timer.
    socket->assigned = !ec;
    it = sockets_.emplace(fd, std::move(socket)).first;
  }
  Socket& socket = *it->second;
  socket.want[0] = readable;
  socket.want[1] = writable;
  if (readable) arm(fd, false);
  if (writable) arm(fd, true);
}

void Resolver::arm(int fd, bool write) {
  Socket& socket = *sockets_.at(fd);
  if (!socket.assigned || socket.pending[write] || !socket.want[write]) return;
  socket.pending[write] = true;
  auto wait =
      write ? asio::posix::descriptor_base::wait_write : asio::posix::descriptor_base::wait_read;
  socket.descriptor.async_wait(
      wait, [this, alive = std::weak_ptr<char>(alive_), fd, write,
             generation = socket.generation](boost::system::error_code ec) {
        if (alive.expired()) return;
        auto it = sockets_.find(fd);
        if (it == sockets_.end() || it->second->generation != generation) return;  // closed
        it->second->pending[write] = false;
        // Another error would repeat at once: leave the socket to c-ares's timeouts.
        if (ec || !it->second->want[write]) return;
        ares_process_fd(channel_, write ? ARES_SOCKET_BAD : fd, write ? fd : ARES_SOCKET_BAD);
        // c-ares may have closed the socket (and opened another on the same fd) meanwhile.
        it = sockets_.find(fd);
        if (it != sockets_.end() && it->second->generation == generation) arm(fd, write);
        schedule_timer();
      });
}

}  // namespace sluice::upstream::dns
