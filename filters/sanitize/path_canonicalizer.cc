#include "filters/sanitize/path_canonicalizer.h"

#include <array>
#include <cstring>
#include <utility>

#include "core/hex.h"

// A hand-written single pass rather than Boost.URL's normalize(): that needs a parsed url
// object first, cannot decode %2F before dot segments are resolved, knows nothing of
// `..;params` and refuses nothing. This loop validates, decodes, encodes, merges and resolves
// in one walk over the bytes with one allocation; it runs on every request.

namespace sluice::sanitize {
namespace {

enum class ByteClass : uint8_t { copy, slash, percent, high, control, backslash, hash };

constexpr std::array<ByteClass, 256> kByteClass = [] {
  std::array<ByteClass, 256> t{};
  for (int c = 0; c < 256; ++c) {
    ByteClass k = ByteClass::copy;
    if (c < 0x20 || c == 0x7F) {
      k = ByteClass::control;
    } else if (c >= 0x80) {
      k = ByteClass::high;
    } else if (c == '/') {
      k = ByteClass::slash;
    } else if (c == '%') {
      k = ByteClass::percent;
    } else if (c == '\\') {
      k = ByteClass::backslash;
    } else if (c == '#') {
      k = ByteClass::hash;
    }
    t[c] = k;
  }
  return t;
}();

constexpr std::array<int8_t, 256> kHexValue = [] {
  std::array<int8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    t[c] = c >= '0' && c <= '9'   ? static_cast<int8_t>(c - '0')
           : c >= 'A' && c <= 'F' ? static_cast<int8_t>(c - 'A' + 10)
           : c >= 'a' && c <= 'f' ? static_cast<int8_t>(c - 'a' + 10)
                                  : int8_t{-1};
  }
  return t;
}();

// What an escape's byte is to the canonicalizer: an EncodedChar (its index), or one of these.
constexpr int8_t kUnreserved = -1;  // ALPHA DIGIT - . _ ~: decoded when normalizing
constexpr int8_t kOtherByte = -2;   // kept escaped

constexpr std::array<int8_t, 256> kEscapeKind = [] {
  std::array<int8_t, 256> t{};
  for (int c = 0; c < 256; ++c) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    t[c] = alnum || c == '-' || c == '.' || c == '_' || c == '~' ? kUnreserved : kOtherByte;
  }
  t['/'] = static_cast<int8_t>(EncodedChar::slash);
  t['\\'] = static_cast<int8_t>(EncodedChar::backslash);
  t[0] = static_cast<int8_t>(EncodedChar::nul);
  t['%'] = static_cast<int8_t>(EncodedChar::percent);
  t[';'] = static_cast<int8_t>(EncodedChar::semicolon);
  t['?'] = static_cast<int8_t>(EncodedChar::question);
  t['#'] = static_cast<int8_t>(EncodedChar::hash);
  return t;
}();

// 1 for `.`, 2 for `..`, 0 for any other segment. Path parameters after the dots (`..;x`,
// `..%3B`) do not make it another segment: servlet containers strip them, then resolve `..`.
int dot_segment(std::string_view segment) {
  size_t dots = 0;
  while (dots < 2 && dots < segment.size() && segment[dots] == '.') ++dots;
  if (dots == 0) return 0;
  segment.remove_prefix(dots);
  if (segment.empty() || segment.front() == ';' || segment.starts_with("%3B")) {
    return static_cast<int>(dots);
  }
  return 0;
}

PathResult fail(PathError error, EncodedChar encoded = EncodedChar::slash) {
  return PathResult{error, encoded, {}};
}

}  // namespace

std::string_view encoded_char_text(EncodedChar c) {
  switch (c) {
    case EncodedChar::slash:
      return "%2F";
    case EncodedChar::backslash:
      return "%5C";
    case EncodedChar::nul:
      return "%00";
    case EncodedChar::percent:
      return "%25";
    case EncodedChar::semicolon:
      return "%3B";
    case EncodedChar::question:
      return "%3F";
    case EncodedChar::hash:
      return "%23";
  }
  return "?";
}

std::string_view path_error_name(PathError e) {
  switch (e) {
    case PathError::none:
      return "none";
    case PathError::bad_escape:
      return "bad_escape";
    case PathError::encoded_character:
      return "encoded_character";
    case PathError::backslash:
      return "backslash";
    case PathError::control_character:
      return "control_character";
    case PathError::fragment:
      return "fragment";
    case PathError::not_absolute:
      return "not_absolute";
  }
  return "unknown";
}

PathResult canonicalize_path(std::string_view path, const PathOptions& options) {
  if (path.empty() || path.front() != '/') return fail(PathError::not_absolute);
  const bool normalize = options.normalize_path;
  const bool merge = options.merge_slashes;
  const bool decode_slashes = options.escaped_slashes == PathOptions::EscapedSlashes::decode;

  // Decoding, merging and resolving only shrink the path; encoding a raw byte >= 0x80 is the
  // one thing that grows it, and the buffer grows once, at the first such byte, by exactly what
  // the rest needs. Then plain stores through `w`: std::string's append and push_back cost
  // more than the work itself here.
  std::string out(path.size(), '\0');
  char* base = out.data();
  char* w = base;
  *w++ = '/';
  char* segment = w;  // where the segment being written starts
  bool grown = false;
  const auto grow_for_high_bytes = [&](std::string_view rest) {
    size_t high = 0;
    for (const char c : rest) high += static_cast<unsigned char>(c) >> 7;
    const auto written = w - base;
    const auto open = segment - base;
    out.resize(out.size() + 2 * high);
    base = out.data();
    w = base + written;
    segment = base + open;
    grown = true;
  };

  // Closes the segment [segment, w); `separator`: a '/' follows it. The byte before the open
  // segment is always '/', so a removed dot segment leaves exactly that '/', which then stands
  // for the separator too (RFC 3986 5.2.4 B, C). Inlined into its three callers: out of line,
  // it would keep `w` in memory for the whole loop (-11 % instructions per path).
  const auto end_segment = [&](bool separator) __attribute__((always_inline)) {
    if (normalize) {
      const int dots = dot_segment(std::string_view(segment, static_cast<size_t>(w - segment)));
      if (dots != 0) {
        w = segment;
        if (dots == 2 && segment - base > 1) {
          char* prev = segment - 2;  // the last byte of the previous segment, or its '/'
          while (*prev != '/') --prev;
          segment = w = prev + 1;
        }
        return;
      }
    }
    if (separator && !(merge && w == segment)) {
      *w++ = '/';
      segment = w;
    }
  };
  const auto put_escape = [&w](unsigned char byte) {
    w[0] = '%';
    w[1] = kUpperHexDigits[byte >> 4];
    w[2] = kUpperHexDigits[byte & 0xF];
    w += 3;
  };

  const size_t n = path.size();
  size_t i = 1;
  while (i < n) {
    const auto c = static_cast<unsigned char>(path[i]);
    switch (kByteClass[c]) {
      case ByteClass::copy: {
        // Byte by byte, as the runs between slashes are too short for a memcpy call to pay
        // off; through a local pointer, as a char store may alias `w`, which lambdas share.
        char* d = w;
        do {
          *d++ = path[i++];
        } while (i < n && kByteClass[static_cast<unsigned char>(path[i])] == ByteClass::copy);
        w = d;
        break;
      }
      case ByteClass::slash:
        end_segment(true);
        ++i;
        break;
      case ByteClass::high:
        if (normalize) {
          if (!grown) grow_for_high_bytes(path.substr(i));
          put_escape(c);
        } else {
          *w++ = static_cast<char>(c);
        }
        ++i;
        break;
      case ByteClass::control:
        return fail(PathError::control_character);
      case ByteClass::backslash:
        return fail(PathError::backslash);
      case ByteClass::hash:
        return fail(PathError::fragment);
      case ByteClass::percent: {
        if (n - i < 3) return fail(PathError::bad_escape);
        const int hi = kHexValue[static_cast<unsigned char>(path[i + 1])];
        const int lo = kHexValue[static_cast<unsigned char>(path[i + 2])];
        if (hi < 0 || lo < 0) return fail(PathError::bad_escape);
        const auto byte = static_cast<unsigned char>(hi << 4 | lo);
        const int kind = kEscapeKind[byte];
        if (kind >= 0) {
          const auto which = static_cast<EncodedChar>(kind);
          if (!options.allows(which)) return fail(PathError::encoded_character, which);
          if (which == EncodedChar::slash && decode_slashes) {
            end_segment(true);
            i += 3;
            break;
          }
        }
        if (!normalize) {
          std::memcpy(w, path.data() + i, 3);
          w += 3;
        } else if (kind == kUnreserved) {
          *w++ = static_cast<char>(byte);
        } else {
          put_escape(byte);
        }
        i += 3;
        break;
      }
    }
  }
  end_segment(false);
  out.resize(static_cast<size_t>(w - base));
  return PathResult{PathError::none, EncodedChar::slash, std::move(out)};
}

bool is_plain_canonical(std::string_view path) {
  if (path.empty() || path.front() != '/') return false;
  const size_t n = path.size();
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(path[i]);
    if (c == '/') {
      // No empty segment before the end (`//`), no dot segment; a trailing '/' is fine.
      if (i + 1 < n && path[i + 1] == '/') return false;
      if (i + 1 < n && path[i + 1] == '.' &&
          dot_segment(path.substr(i + 1, path.find('/', i + 1) - (i + 1))) != 0) {
        return false;
      }
      continue;
    }
    if (kByteClass[c] != ByteClass::copy) return false;
  }
  return true;
}

}  // namespace sluice::sanitize
