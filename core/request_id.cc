#include "core/request_id.h"

#include <sys/random.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <optional>

#include "core/hex.h"

namespace sluice {

namespace {

// xoshiro256** (Blackman and Vigna): fast, 256 bits of state, fine for unique ids.
class Xoshiro256 {
 public:
  Xoshiro256() {
    if (getrandom(s_, sizeof(s_), 0) != static_cast<ssize_t>(sizeof(s_))) {
      // No entropy source (very old kernel): the address and the clock still differ per thread.
      uint64_t seed = reinterpret_cast<uintptr_t>(this) ^ static_cast<uint64_t>(std::time(nullptr));
      for (auto& word : s_) word = seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    }
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

bool is_lower_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool all_zero(std::string_view s) { return s.find_first_not_of('0') == std::string_view::npos; }

bool looks_like_request_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxRequestIdLength) return false;
  for (unsigned char c : id) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

// The two hex digits of every byte value: a request's 80 random digits take 40 lookups.
constexpr std::array<char, 512> kHexPairs = [] {
  std::array<char, 512> t{};
  for (size_t i = 0; i < 256; ++i) {
    t[2 * i] = kLowerHexDigits[i >> 4];
    t[2 * i + 1] = kLowerHexDigits[i & 0xf];
  }
  return t;
}();

Xoshiro256& rng() {
  static thread_local Xoshiro256 generator;
  return generator;
}

}  // namespace

uint64_t random_u64() { return rng().next(); }

// 16 digits per 64-bit draw.
void fill_random_hex(char* out, size_t n) {
  Xoshiro256& gen = rng();
  for (; n >= 16; n -= 16) {
    uint64_t bits = gen.next();
    for (int i = 0; i < 8; ++i, bits >>= 8, out += 2)
      std::memcpy(out, &kHexPairs[2 * (bits & 0xff)], 2);
  }
  if (n == 0) return;
  for (uint64_t bits = gen.next(); n > 0; --n, bits >>= 4) *out++ = kLowerHexDigits[bits & 0xf];
}

std::string random_hex(size_t n) {
  std::string out(n, '0');
  fill_random_hex(out.data(), n);
  return out;
}

bool is_valid_traceparent(std::string_view v) {
  // version "-" trace-id "-" parent-id "-" flags: 2-32-16-2 hex digits. A later version may
  // append fields after another "-"; version ff is invalid.
  if (v.size() < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-') return false;
  std::string_view version = v.substr(0, 2), trace = v.substr(3, 32), parent = v.substr(36, 16),
                   flags = v.substr(53, 2);
  if (!is_lower_hex(version) || version == "ff") return false;
  if (version == "00" ? v.size() != 55 : (v.size() > 55 && v[55] != '-')) return false;
  return is_lower_hex(trace) && is_lower_hex(parent) && is_lower_hex(flags) && !all_zero(trace) &&
         !all_zero(parent);
}

std::string assign_request_ids(HeaderMap& headers, bool peer_trusted, TraceContext& trace) {
  // One pass finds the three fields read here (a lookup each was a pass each over the head).
  std::optional<std::string_view> given_id, traceparent;
  bool has_tracestate = false;
  for (const Header& f : headers) {
    if (!given_id && iequals(f.name, "x-request-id")) {
      given_id = f.value;
    } else if (!traceparent && iequals(f.name, "traceparent")) {
      traceparent = f.value;
    } else if (iequals(f.name, "tracestate")) {
      has_tracestate = true;
    }
  }
  // Everything is read before the fields change: the views above point into them.
  const bool keep_id = given_id && peer_trusted && looks_like_request_id(*given_id);
  std::string id = keep_id ? std::string(*given_id) : random_hex(32);
  const bool keep_trace = traceparent && is_valid_traceparent(*traceparent);
  if (keep_trace) {
    std::memcpy(trace.trace_id.data(), traceparent->data() + 3, trace.trace_id.size());
    std::memcpy(trace.parent_id.data(), traceparent->data() + 36, trace.parent_id.size());
    trace.has_parent = true;
    const char flags_low = (*traceparent)[54];  // the sampled flag is the lowest bit
    trace.parent_sampled = ((flags_low >= 'a' ? flags_low - 'a' + 10 : flags_low - '0') & 1) != 0;
  }
  // add() where the name is known to be absent: set() would look for it again.
  if (!keep_id) {
    if (given_id) {
      headers.set("x-request-id", id);
    } else {
      headers.add("x-request-id", id);
    }
  }
  if (!keep_trace) {
    // A new trace, not sampled (the stream samples it when tracing is on).
    trace.trace_id = new_trace_id();
    std::string value = format_traceparent(trace.trace_id, new_span_id(), false);
    if (traceparent) {
      headers.set("traceparent", value);
    } else {
      headers.add("traceparent", value);
    }
    if (has_tracestate) headers.remove("tracestate");  // belongs to the trace that was dropped
  }
  return id;
}

}  // namespace sluice
