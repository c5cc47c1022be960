#pragma once
// A header field as nghttp2 takes it: pointers into strings the caller keeps alive until the
// submit call returns (nghttp2 copies them). Used by the HTTP/2 codec, the HTTP/2 upstream
// client and the HTTP/2 health probe.
#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string_view>

namespace sluice {

inline nghttp2_nv make_nv(std::string_view name, std::string_view value) {
  return nghttp2_nv{const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(name.data())),
                    const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(value.data())),
                    name.size(), value.size(), NGHTTP2_NV_FLAG_NONE};
}

}  // namespace sluice
