#include "proxy/connection_limiter.h"

#include <cstring>

namespace sluice {

ConnectionLimiter::Slot& ConnectionLimiter::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    release();
    limiter_ = std::move(other.limiter_);
    key_ = other.key_;
    other.limiter_ = nullptr;
  }
  return *this;
}

void ConnectionLimiter::Slot::release() {
  if (!limiter_) return;
  limiter_->release(key_);
  limiter_ = nullptr;
}

size_t ConnectionLimiter::KeyHash::operator()(const Key& k) const noexcept {
  uint64_t hi = 0;
  uint64_t lo = 0;
  std::memcpy(&hi, k.data(), 8);
  std::memcpy(&lo, k.data() + 8, 8);
  // Mix both halves (an IPv4 address lives in the low one) so the shard and the bucket depend
  // on every byte.
  uint64_t h = (hi * 0x9E3779B97F4A7C15ull) ^ lo;
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  return static_cast<size_t>(h);
}

ConnectionLimiter::Key ConnectionLimiter::key_of(const boost::asio::ip::address& a) {
  // One form per address: IPv4 and its IPv4-mapped IPv6 spelling count as one client.
  if (a.is_v4()) {
    return boost::asio::ip::make_address_v6(boost::asio::ip::v4_mapped, a.to_v4()).to_bytes();
  }
  return a.to_v6().to_bytes();
}

ConnectionLimiter::Refusal ConnectionLimiter::try_acquire(const boost::asio::ip::address& peer,
                                                          uint32_t max_total, uint32_t max_per_ip,
                                                          Slot& slot) {
  const Key key = key_of(peer);
  Shard& s = shard(key);
  {
    // Counted per address even without a per-address limit, so that one set by a reload
    // applies to the connections already open.
    std::lock_guard lock(s.mutex);
    uint32_t& n = s.counts.try_emplace(key, 0).first->second;
    if (max_per_ip != 0 && n >= max_per_ip) return Refusal::max_connections_per_ip;  // n > 0
    ++n;
  }
  // A compare-exchange, not an add then undo, so a refused attempt never makes another one
  // see the listener fuller than it is.
  size_t total = active_.load(std::memory_order_relaxed);
  do {
    if (total >= max_total) {
      release_address(key);
      return Refusal::max_connections;
    }
  } while (!active_.compare_exchange_weak(total, total + 1, std::memory_order_relaxed));
  slot.release();
  slot.limiter_ = shared_from_this();
  slot.key_ = key;
  return Refusal::none;
}

void ConnectionLimiter::release_address(const Key& k) {
  Shard& s = shard(k);
  std::lock_guard lock(s.mutex);
  auto it = s.counts.find(k);
  if (it == s.counts.end()) return;
  if (--it->second == 0) s.counts.erase(it);
}

void ConnectionLimiter::release(const Key& k) {
  active_.fetch_sub(1, std::memory_order_relaxed);
  release_address(k);
}

size_t ConnectionLimiter::active_from(const boost::asio::ip::address& peer) const {
  const Key key = key_of(peer);
  const Shard& s = shard(key);
  std::lock_guard lock(s.mutex);
  auto it = s.counts.find(key);
  return it == s.counts.end() ? 0 : it->second;
}

size_t ConnectionLimiter::addresses() const {
  size_t n = 0;
  for (const Shard& s : shards_) {
    std::lock_guard lock(s.mutex);
    n += s.counts.size();
  }
  return n;
}

}  // namespace sluice
