#pragma once
// Streaming encoders for the content codings sluice produces (gzip, br, zstd), behind one small
// interface so the filter does not care which library is at work. An encoder belongs to one
// response stream, on that stream's worker thread; it exists only while a response is being
// compressed and holds the library's state (tens of KiB to ~1.5 MiB, see make_encoder()).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::compression {

enum class Algorithm : uint8_t { gzip, br, zstd };
inline constexpr size_t kAlgorithmCount = 3;

// The content-coding token: "gzip", "br", "zstd".
std::string_view algorithm_name(Algorithm a);
// The algorithm a token names (lower case; "x-gzip" is gzip, RFC 9110 §8.4.1.3).
std::optional<Algorithm> algorithm_from_name(std::string_view name);

class Encoder {
 public:
  virtual ~Encoder() = default;
  // Appends the encoding of `in` to `out`. Without `finish`, the output is flushed: everything
  // given so far can be decoded from what was appended so far (a server-sent event is not held
  // back), at a few bytes' cost per call. With `finish`, the stream is ended and the encoder
  // must not be used again. False on a library failure (out of memory): the output is unusable.
  virtual bool encode(std::string_view in, bool finish, std::string& out) = 0;
};

using EncoderPtr = std::unique_ptr<Encoder>;

// Levels chosen for dynamic content, where compression runs for every response: gzip 6
// (zlib's default; nginx users mostly set 5-6), brotli quality 4 with a 1 MiB window (on text it
// beats gzip 6 in size at a similar speed; 5+ gets much slower), zstd level 3 (its default)
// with a 1 MiB window (RFC 9659 asks encoders to stay within 8 MiB; smaller keeps per-stream
// memory down). Null if the library could not allocate its state.
EncoderPtr make_encoder(Algorithm algorithm);

}  // namespace sluice::compression
