#pragma once
// Hexadecimal digits, for the places that write bytes as hex: digests (client certificates,
// Redis script hashes), ids, JSON and percent escapes.
#include <cstddef>
#include <string>

namespace sluice {

inline constexpr char kLowerHexDigits[] = "0123456789abcdef";
inline constexpr char kUpperHexDigits[] = "0123456789ABCDEF";

// Appends two lower-case hex digits per byte.
inline void append_hex(std::string& out, const unsigned char* bytes, size_t n) {
  const size_t at = out.size();
  out.resize(at + 2 * n);
  for (size_t i = 0; i < n; ++i) {
    out[at + 2 * i] = kLowerHexDigits[bytes[i] >> 4];
    out[at + 2 * i + 1] = kLowerHexDigits[bytes[i] & 0xf];
  }
}

}  // namespace sluice
