#pragma once
// The one canonical form of a request path. Routing, rate-limit keys, deny rules, the access
// log and the request sent upstream all use what canonicalize_path() returns, so a prefix
// route cannot be walked around with `..`, `%2e%2e`, `//` or an escape a backend decodes once
// more. Pure functions, any thread; no allocation beyond the result.
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::sanitize {

// Escapes whose meaning changes if a backend decodes the path once more (Traefik's list):
// rejected unless allowed one by one.
enum class EncodedChar : uint8_t {
  slash,      // %2F
  backslash,  // %5C
  nul,        // %00
  percent,    // %25
  semicolon,  // %3B
  question,   // %3F
  hash,       // %23
};
inline constexpr int kEncodedCharCount = 7;
// "%2F" … "%23" (upper case), for config and logs.
std::string_view encoded_char_text(EncodedChar c);

struct PathOptions {
  // true: decode percent-encoded unreserved characters (ALPHA DIGIT - . _ ~), upper-case the
  // other escapes, percent-encode raw bytes >= 0x80 and remove dot segments (RFC 3986 6.2.2,
  // 5.2.4). `%2e` forms count as dots, and a `.` or `..` segment followed by path parameters
  // (`..;x`, and `..%3B` when %3B is allowed) counts as that dot segment, as Tomcat and Jetty
  // strip the parameters before resolving it.
  // false: the path is only validated (every PathError still applies) and comes back byte for
  // byte, except that merge_slashes and escaped_slashes == decode still apply. Routing on
  // such a path is only as safe as the backend's agreement with it.
  bool normalize_path = true;
  // "//" → "/". Runs of slashes are merged before dot segments are resolved, so `/a//../b` is
  // `/b` (as nginx does); without merging the empty segment is a segment and it is `/a/b`.
  bool merge_slashes = true;
  // Bit (1 << EncodedChar) set: that escape may appear in the path and is kept as is (upper
  // case: %5C, %3B … stay escaped); not set: the path is refused with encoded_character. %2F
  // is accepted only with its bit set too; escaped_slashes then says whether it stays %2F
  // (part of a segment: safe only if the backend does not split on it after decoding) or
  // becomes '/' before dot segments are removed and slashes merged.
  uint8_t allowed_encoded = 0;
  enum class EscapedSlashes : uint8_t { keep, decode };
  EscapedSlashes escaped_slashes = EscapedSlashes::keep;

  bool allows(EncodedChar c) const { return (allowed_encoded >> static_cast<int>(c)) & 1; }
  void allow(EncodedChar c) { allowed_encoded |= static_cast<uint8_t>(1u << static_cast<int>(c)); }
};

// Why a path was refused; each is answered with 400. Stable names: they are metric labels.
// The first offending byte, left to right, decides which one.
enum class PathError : uint8_t {
  none,
  bad_escape,         // '%' not followed by two hex digits
  encoded_character,  // one of EncodedChar, not allowed
  backslash,          // a raw '\'
  control_character,  // a raw byte < 0x20 or 0x7F
  fragment,           // a raw '#'
  not_absolute,       // the path does not start with '/' (an empty path, `*`, absolute-form)
};
std::string_view path_error_name(PathError e);  // "bad_escape", …

struct PathResult {
  PathError error = PathError::none;
  // With error == encoded_character: which one (for the log line).
  EncodedChar encoded = EncodedChar::slash;
  // The canonical path (empty on error). Never longer than the input except for raw bytes
  // >= 0x80 (three bytes each). With normalize_path it starts with '/' and holds no `.` or
  // `..` segment; with merge_slashes no "//".
  std::string path;
};

// `path` is the request target's path: from the first '/' up to, not including, the '?'
// (the caller keeps the query byte for byte). Raw bytes >= 0x80 are percent-encoded in the
// result (upper case), as a backend would receive them from a browser. Other raw bytes that
// are not rejected (';', '=', '@', '"' …) are kept as they are. canonicalize_path is
// idempotent: a result fed back in comes back unchanged.
PathResult canonicalize_path(std::string_view path, const PathOptions& options);

// True when canonicalize_path(path, options) returns `path` unchanged whatever the options:
// it starts with '/', has only plain path bytes (no '%', '\', '#', control or high bytes),
// and no empty, `.` or `..` segment (nor one starting `.;`/`..;`). One pass and no allocation:
// most requests take only this.
bool is_plain_canonical(std::string_view path);

}  // namespace sluice::sanitize
