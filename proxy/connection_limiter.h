#pragma once
// The open connections of one listener, counted over all workers: in total and per client
// address, so that limits.max_connections and max_connections_per_ip hold exactly however the
// kernel spreads connections over the workers' SO_REUSEPORT sockets. Used only when a
// connection is accepted and when it closes, never per request.
//
// One per listener name, shared by that listener's ListenerRuntime on every worker and kept
// across reloads through RuntimeState, so connections accepted under the previous config still
// count. Thread-safe: the total is a lock-free atomic; the per-address counts are a map split
// into shards, each under its own mutex (an accept or a close locks one shard briefly). An
// address's entry goes away when its last connection closes, so memory follows the open
// connections, not the addresses ever seen.
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include <boost/asio/ip/address.hpp>

namespace sluice {

class ConnectionLimiter : public std::enable_shared_from_this<ConnectionLimiter> {
 public:
  enum class Refusal { none, max_connections, max_connections_per_ip };

  // A connection's place in the counts, given back when the slot is destroyed or released.
  // Move-only; an empty slot counts nothing.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept { *this = std::move(other); }
    Slot& operator=(Slot&& other) noexcept;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { release(); }
    void release();
    explicit operator bool() const { return limiter_ != nullptr; }

   private:
    friend class ConnectionLimiter;
    std::shared_ptr<ConnectionLimiter> limiter_;
    boost::asio::ip::address_v6::bytes_type key_{};
  };

  // Counts a new connection from `peer` unless that would exceed `max_total` open connections
  // or `max_per_ip` from one address (0: no per-address limit). On success `slot` holds the
  // place. Any thread.
  Refusal try_acquire(const boost::asio::ip::address& peer, uint32_t max_total, uint32_t max_per_ip,
                      Slot& slot);

  size_t active() const { return active_.load(std::memory_order_relaxed); }
  // Open connections from `peer`, and how many addresses have one open (tests, metrics).
  size_t active_from(const boost::asio::ip::address& peer) const;
  size_t addresses() const;

 private:
  using Key = boost::asio::ip::address_v6::bytes_type;
  struct KeyHash {
    size_t operator()(const Key& k) const noexcept;
  };
  struct Shard {
    mutable std::mutex mutex;
    std::unordered_map<Key, uint32_t, KeyHash> counts;
  };
  static Key key_of(const boost::asio::ip::address& a);
  Shard& shard(const Key& k) { return shards_[KeyHash{}(k) % shards_.size()]; }
  const Shard& shard(const Key& k) const { return shards_[KeyHash{}(k) % shards_.size()]; }
  void release_address(const Key& k);
  void release(const Key& k);  // a slot's: the total and the address

  std::atomic<size_t> active_{0};
  std::array<Shard, 16> shards_;
};

}  // namespace sluice
