#pragma once
// Hash functions of the load-balancing library: stable across processes, platforms and versions
// (the ring, the Maglev table and PickContext::hash must map a key to the same host after a
// restart), unlike std::hash. Pure functions, any thread.
#include <cstdint>
#include <string_view>

namespace sluice::upstream::lb {

// xxHash64 (Yann Collet's reference algorithm, little-endian reading on every platform).
uint64_t xxhash64(std::string_view data, uint64_t seed);

// splitmix64's finalizer: a bijection that spreads every input bit over the output.
constexpr uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace sluice::upstream::lb
