// libFuzzer target: bytes -> canonicalize_path. The first byte picks the options (bit 0 set:
// normalize_path off, bit 1 set: merge_slashes off, bit 2: escaped_slashes decode, bits 3-7:
// allow %2F, %5C, %25, %3B, and %00 %3F %23 together); the rest is the path.
//
// Besides the sanitizers it checks the laws the property tests check, on whatever bytes the
// fuzzer finds: the verdict is the one a plain left-to-right validator gives; an accepted path
// comes back unchanged when fed in again, has no "//" (merging), no dot segment and only
// upper-case escapes (normalizing); and a backend that decodes the original path once and
// resolves it the RFC 3986 way lands on the path we route on, unless an allowed escape is one
// such a backend turns into a separator. Without normalize_path the result is the input with
// only slashes merged and %2F decoded, if asked.
//
// Built without libFuzzer, replay_main.cc runs the committed corpus through it as a test.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "filters/sanitize/path_canonicalizer.h"
#include "tests/filters/sanitize/reference_path.h"

namespace {

using sluice::sanitize::canonicalize_path;
using sluice::sanitize::EncodedChar;
using sluice::sanitize::PathError;
using sluice::sanitize::PathOptions;
using sluice::sanitize::PathResult;
using namespace sluice::sanitize::reference;

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "path_canonicalizer_fuzz: invariant violated: %s\n", what);
  std::abort();
}

void check(bool ok, const char* what) {
  if (!ok) violated(what);
}

bool unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

int encoded_index(unsigned char byte) {
  switch (byte) {
    case '/':
      return static_cast<int>(EncodedChar::slash);
    case '\\':
      return static_cast<int>(EncodedChar::backslash);
    case 0:
      return static_cast<int>(EncodedChar::nul);
    case '%':
      return static_cast<int>(EncodedChar::percent);
    case ';':
      return static_cast<int>(EncodedChar::semicolon);
    case '?':
      return static_cast<int>(EncodedChar::question);
    case '#':
      return static_cast<int>(EncodedChar::hash);
    default:
      return -1;
  }
}

// The verdict, found the plain way: the first offending byte from the left.
PathResult reference_verdict(std::string_view path, const PathOptions& options) {
  PathResult r;
  if (path.empty() || path[0] != '/') {
    r.error = PathError::not_absolute;
    return r;
  }
  for (size_t i = 0; i < path.size(); ++i) {
    const auto c = static_cast<unsigned char>(path[i]);
    if (c < 0x20 || c == 0x7F) {
      r.error = PathError::control_character;
    } else if (c == '\\') {
      r.error = PathError::backslash;
    } else if (c == '#') {
      r.error = PathError::fragment;
    } else if (c == '%') {
      if (i + 2 >= path.size() || hex_value(path[i + 1]) < 0 || hex_value(path[i + 2]) < 0) {
        r.error = PathError::bad_escape;
      } else {
        const int which = encoded_index(
            static_cast<unsigned char>(hex_value(path[i + 1]) * 16 + hex_value(path[i + 2])));
        if (which >= 0 && !options.allows(static_cast<EncodedChar>(which))) {
          r.error = PathError::encoded_character;
          r.encoded = static_cast<EncodedChar>(which);
        }
        i += 2;
      }
    }
    if (r.error != PathError::none) return r;
  }
  return r;
}

void check_normalized(const std::string& path) {
  for (size_t i = 0; i < path.size(); ++i) {
    const auto c = static_cast<unsigned char>(path[i]);
    check(c >= 0x20 && c < 0x7F && c != '\\' && c != '#', "raw byte left in a normalized path");
    if (c != '%') continue;
    check(i + 2 < path.size() && is_upper_hex(path[i + 1]) && is_upper_hex(path[i + 2]),
          "escape not upper case");
    check(!unreserved(
              static_cast<unsigned char>(hex_value(path[i + 1]) * 16 + hex_value(path[i + 2]))),
          "escaped unreserved character");
  }
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    const std::string_view segment(path.data() + start, end - start);
    for (const std::string_view dot : {".", ".."}) {
      if (!segment.starts_with(dot)) continue;
      const std::string_view rest = segment.substr(dot.size());
      check(!rest.empty() && !rest.starts_with(";") && !rest.starts_with("%3B"),
            "dot segment left");
    }
    start = end + 1;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t bits = data[0];
  PathOptions options;
  options.normalize_path = (bits & 1) == 0;
  options.merge_slashes = (bits & 2) == 0;
  if (bits & 4) options.escaped_slashes = PathOptions::EscapedSlashes::decode;
  if (bits & 8) options.allow(EncodedChar::slash);
  if (bits & 16) options.allow(EncodedChar::backslash);
  if (bits & 32) options.allow(EncodedChar::percent);
  if (bits & 64) options.allow(EncodedChar::semicolon);
  if (bits & 128) {
    options.allow(EncodedChar::nul);
    options.allow(EncodedChar::question);
    options.allow(EncodedChar::hash);
  }
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);

  const PathResult r = canonicalize_path(in, options);
  const PathResult expected = reference_verdict(in, options);
  check(r.error == expected.error, "verdict differs from the reference");
  if (r.error != PathError::none) {
    check(r.path.empty(), "a refused path has a result");
    if (r.error == PathError::encoded_character) {
      check(r.encoded == expected.encoded, "a different escape named");
    }
    return 0;
  }

  check(!r.path.empty() && r.path[0] == '/', "result not absolute");
  size_t high = 0;
  for (const char c : in) high += static_cast<unsigned char>(c) >> 7;
  check(r.path.size() <= in.size() + 2 * high, "result longer than the bound");
  const PathResult again = canonicalize_path(r.path, options);
  check(again.error == PathError::none && again.path == r.path, "not idempotent");
  if (options.merge_slashes) check(r.path.find("//") == std::string::npos, "\"//\" left");

  const bool decodes_slashes = options.allows(EncodedChar::slash) &&
                               options.escaped_slashes == PathOptions::EscapedSlashes::decode;
  if (options.normalize_path) {
    check_normalized(r.path);
    const bool keeps_slashes = options.allows(EncodedChar::slash) && !decodes_slashes;
    if (!options.allows(EncodedChar::backslash) && !keeps_slashes) {
      check(backend_view(in, /*backslash_is_slash=*/true, options.merge_slashes) ==
                decode_once(r.path),
            "a backend decoding once sees another path");
    }
  } else {
    std::string unchanged;
    for (size_t i = 0; i < in.size(); ++i) {
      char c = in[i];
      if (c == '%') {
        const std::string_view escape = in.substr(i, 3);
        i += 2;
        if (!decodes_slashes || (escape != "%2F" && escape != "%2f")) {
          unchanged += escape;
          continue;
        }
        c = '/';
      }
      if (!(options.merge_slashes && c == '/' && unchanged.ends_with('/'))) unchanged += c;
    }
    check(r.path == unchanged, "changed more than asked without normalize_path");
  }
  return 0;
}
