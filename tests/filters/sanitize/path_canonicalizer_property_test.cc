// Laws of canonicalize_path for random paths (RapidCheck). Paths are built from pieces that
// matter to a normalizer (dots, slashes, escapes of dots and slashes, path parameters, high
// bytes) so that most of them hit dot segments and escapes rather than plain names.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "filters/sanitize/path_canonicalizer.h"
#include "tests/filters/sanitize/reference_path.h"

namespace sluice::sanitize {
namespace {

using namespace std::string_literals;
using namespace reference;

// Never refused with the default options.
const std::vector<std::string> kBenign = {
    "/",        "/",    "/",      "//",  ".",   "..",  ".",      "..",  "a",     "b",
    "Z",        "0",    "-",      "_",   "~",   ";",   ";x=1",   "=",   "%2e",   "%2E",
    ".%2e",     "%2e.", "%2e%2e", "%41", "%61", "%7e", "%c3%a9", "%C3", "%20",   "%3a",
    "\xC3\xA9", "\xFF", "..;",    ".;",  "%40", "...", "/../",   "/./", "/..;/", "%2E%2e",
};
// Refused unless allowed.
const std::vector<std::string> kEncoded = {"%2F", "%2f", "%5C", "%5c", "%25", "%252e",
                                           "%3B", "%3b", "%3F", "%23", "%00"};
// Always refused, with this error, wherever they stand between two pieces.
const std::vector<std::pair<std::string, PathError>> kRefused = {
    {"\\", PathError::backslash},           {"#", PathError::fragment},
    {"\x01", PathError::control_character}, {"\x7F", PathError::control_character},
    {"\0"s, PathError::control_character},  {"%zz", PathError::bad_escape},
    {"%g1", PathError::bad_escape},
};

std::string join(const std::vector<std::string>& pieces) {
  std::string path = "/";
  for (const auto& p : pieces) path += p;
  return path;
}

std::vector<std::string> gen_pieces(bool with_encoded) {
  if (!with_encoded)
    return *rc::gen::container<std::vector<std::string>>(rc::gen::elementOf(kBenign));
  return *rc::gen::container<std::vector<std::string>>(rc::gen::weightedOneOf<std::string>(
      {{4, rc::gen::elementOf(kBenign)}, {1, rc::gen::elementOf(kEncoded)}}));
}

PathOptions allow_all_decode() {
  PathOptions o;
  o.allowed_encoded = (1u << kEncodedCharCount) - 1;
  o.escaped_slashes = PathOptions::EscapedSlashes::decode;
  return o;
}

// What every accepted path looks like when normalize_path is on.
void check_canonical(const std::string& path, bool merge) {
  RC_ASSERT(!path.empty());
  RC_ASSERT(path.front() == '/');
  if (merge) RC_ASSERT(path.find("//") == std::string::npos);
  for (size_t i = 0; i < path.size(); ++i) {
    const auto c = static_cast<unsigned char>(path[i]);
    RC_ASSERT(c >= 0x20);
    RC_ASSERT(c < 0x7F);
    RC_ASSERT(c != '\\');
    RC_ASSERT(c != '#');
    if (c == '%') {
      RC_ASSERT(i + 2 < path.size());
      RC_ASSERT(is_upper_hex(path[i + 1]));
      RC_ASSERT(is_upper_hex(path[i + 2]));
      const char decoded = static_cast<char>(hex_value(path[i + 1]) * 16 + hex_value(path[i + 2]));
      const bool unreserved = (decoded >= 'a' && decoded <= 'z') ||
                              (decoded >= 'A' && decoded <= 'Z') ||
                              (decoded >= '0' && decoded <= '9') || decoded == '-' ||
                              decoded == '.' || decoded == '_' || decoded == '~';
      RC_ASSERT(!unreserved);
    }
  }
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    const std::string_view segment(path.data() + start, end - start);
    for (const std::string_view dot : {".", ".."}) {
      RC_ASSERT(segment != dot);
      if (segment.starts_with(dot)) {
        const std::string_view rest = segment.substr(dot.size());
        RC_ASSERT(!rest.starts_with(";"));
        RC_ASSERT(!rest.starts_with("%3B"));
      }
    }
    start = end + 1;
  }
}

RC_GTEST_PROP(PathCanonicalizerProperty, DefaultOptionsCanonicalAndAgreeWithBackend, ()) {
  const std::string in = join(gen_pieces(false));
  const PathOptions options;
  const PathResult r = canonicalize_path(in, options);
  RC_ASSERT(r.error == PathError::none);
  check_canonical(r.path, true);
  RC_ASSERT(canonicalize_path(r.path, options).path == r.path);
  // A backend that decodes once, merges and resolves routes on what we routed on: both from
  // our output and from the client's original path.
  const std::string routed = decode_once(r.path);
  RC_ASSERT(backend_view(r.path, true, true) == routed);
  RC_ASSERT(backend_view(in, true, true) == routed);
}

RC_GTEST_PROP(PathCanonicalizerProperty, AllowAllDecodeCanonicalAndIdempotent, ()) {
  const std::string in = join(gen_pieces(true));
  const PathOptions options = allow_all_decode();
  const PathResult r = canonicalize_path(in, options);
  RC_ASSERT(r.error == PathError::none);
  check_canonical(r.path, true);
  RC_ASSERT(canonicalize_path(r.path, options).path == r.path);
  // %5C is allowed and kept: only a backend that does not take '\' for '/' agrees. %25 is
  // kept, so decoding once more does not reach a second layer.
  RC_ASSERT(backend_view(in, false, true) == decode_once(r.path));
}

RC_GTEST_PROP(PathCanonicalizerProperty, AnyOptionsIdempotent, ()) {
  PathOptions options;
  options.normalize_path = *rc::gen::arbitrary<bool>();
  options.merge_slashes = *rc::gen::arbitrary<bool>();
  options.allowed_encoded = *rc::gen::inRange<uint8_t>(0, 1u << kEncodedCharCount);
  options.escaped_slashes =
      *rc::gen::element(PathOptions::EscapedSlashes::keep, PathOptions::EscapedSlashes::decode);
  const std::string in = join(gen_pieces(true));
  const PathResult r = canonicalize_path(in, options);
  if (r.error != PathError::none) {
    RC_ASSERT(r.path.empty());
    RC_ASSERT(r.error == PathError::encoded_character);
    RC_ASSERT(!options.allows(r.encoded));
    return;
  }
  const PathResult again = canonicalize_path(r.path, options);
  RC_ASSERT(again.error == PathError::none);
  RC_ASSERT(again.path == r.path);
  if (options.normalize_path) check_canonical(r.path, options.merge_slashes);
  if (options.merge_slashes) RC_ASSERT(r.path.find("//") == std::string::npos);
  const bool decodes_slashes = options.allows(EncodedChar::slash) &&
                               options.escaped_slashes == PathOptions::EscapedSlashes::decode;
  if (options.normalize_path) {
    // A backend that decodes once agrees unless it decodes an escape we kept into a separator.
    const bool keeps_slashes = options.allows(EncodedChar::slash) && !decodes_slashes;
    if (!options.allows(EncodedChar::backslash) && !keeps_slashes) {
      RC_ASSERT(backend_view(in, true, options.merge_slashes) == decode_once(r.path));
    }
  } else {
    // Without normalize_path: the input with %2F decoded if asked and slashes merged if asked,
    // and nothing else.
    std::string expected;
    for (size_t i = 0; i < in.size(); ++i) {
      char c = in[i];
      if (c == '%') {
        const std::string_view escape(in.data() + i, 3);
        i += 2;
        if (!decodes_slashes || (escape != "%2F" && escape != "%2f")) {
          expected += escape;
          continue;
        }
        c = '/';
      }
      if (!(options.merge_slashes && c == '/' && expected.ends_with('/'))) expected += c;
    }
    RC_ASSERT(r.path == expected);
  }
}

RC_GTEST_PROP(PathCanonicalizerProperty, RefusedPieceRefusesThePath, ()) {
  auto pieces = gen_pieces(false);
  const auto [bad, error] = *rc::gen::elementOf(kRefused);
  const size_t at = *rc::gen::inRange<size_t>(0, pieces.size() + 1);
  pieces.insert(pieces.begin() + static_cast<std::ptrdiff_t>(at), bad);
  const std::string in = join(pieces);
  for (const PathOptions& options : {PathOptions{}, allow_all_decode()}) {
    const PathResult r = canonicalize_path(in, options);
    RC_ASSERT(r.error == error);
    RC_ASSERT(r.path.empty());
  }
}

RC_GTEST_PROP(PathCanonicalizerProperty, PlainPathsUnchanged, ()) {
  static const std::string kUnreserved =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~";
  const auto segments = *rc::gen::container<std::vector<std::string>>(rc::gen::suchThat(
      rc::gen::nonEmpty(rc::gen::container<std::string>(rc::gen::elementOf(kUnreserved))),
      [](const std::string& s) { return s != "." && s != ".."; }));
  std::string in;
  for (const auto& s : segments) in += "/" + s;
  if (in.empty() || *rc::gen::arbitrary<bool>()) in += "/";
  PathOptions no_normalize;
  no_normalize.normalize_path = false;
  PathOptions no_merge;
  no_merge.merge_slashes = false;
  for (const PathOptions& options : {PathOptions{}, allow_all_decode(), no_normalize, no_merge}) {
    const PathResult r = canonicalize_path(in, options);
    RC_ASSERT(r.error == PathError::none);
    RC_ASSERT(r.path == in);
  }
}

}  // namespace
}  // namespace sluice::sanitize

namespace sluice::sanitize {
namespace {

// The filter's shortcut: a path is_plain_canonical() accepts comes back unchanged under every
// option set, so skipping canonicalize_path() for it changes nothing.
RC_GTEST_PROP(PathCanonicalizerProperty, PlainCanonicalShortcutIsExact, ()) {
  // Mostly names that look like dot segments but are not; now and then one that is, or an
  // escape, which the shortcut must turn down.
  const auto segments = *rc::gen::container<std::vector<std::string>>(
      rc::gen::weightedElement<std::string>({{8, "a"},
                                             {8, ".a"},
                                             {8, "a."},
                                             {8, "..."},
                                             {8, "a;x=1"},
                                             {8, "..b"},
                                             {8, "~"},
                                             {1, "."},
                                             {1, ".."},
                                             {1, "..;x"},
                                             {1, ""},
                                             {1, "%2e"}}));
  std::string in;
  for (const auto& seg : segments) in += "/" + seg;
  if (in.empty() || *rc::gen::arbitrary<bool>()) in += "/";
  RC_PRE(is_plain_canonical(in));
  PathOptions options;
  options.normalize_path = *rc::gen::arbitrary<bool>();
  options.merge_slashes = *rc::gen::arbitrary<bool>();
  options.allowed_encoded = *rc::gen::inRange<uint8_t>(0, 1u << kEncodedCharCount);
  const PathResult r = canonicalize_path(in, options);
  RC_ASSERT(r.error == PathError::none);
  RC_ASSERT(r.path == in);
}

TEST(PathCanonicalizer, PlainCanonicalShortcut) {
  for (const char* p : {"/", "/api/v1/users", "/a/b/", "/a;x=1/b", "/a.b/.c/..d/...", "/~u"}) {
    EXPECT_TRUE(is_plain_canonical(p)) << p;
  }
  for (const char* p : {"", "a", "//", "/a//b", "/./a", "/a/..", "/a/.;x/b", "/a/..;/b", "/%41",
                        "/a\\b", "/a#b", "/caf\xc3\xa9", "/a\tb"}) {
    EXPECT_FALSE(is_plain_canonical(p)) << p;
  }
}

}  // namespace
}  // namespace sluice::sanitize
