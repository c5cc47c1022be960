// Tables of paths and their canonical forms or refusals: RFC 3986's dot-segment examples
// (5.2.4, 5.4.1, 5.4.2) rebased onto a path, the shapes other proxies' normalizers are tested
// with, and path-traversal shapes from published CVEs.
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "filters/sanitize/path_canonicalizer.h"

namespace sluice::sanitize {
namespace {

using namespace std::string_view_literals;

struct Accepted {
  std::string_view in;
  std::string_view out;
};

struct Rejected {
  std::string_view in;
  PathError error;
  EncodedChar encoded = EncodedChar::slash;  // checked with encoded_character only
};

// Printable in a failure message: control and high bytes as \xNN.
std::string show(std::string_view s) {
  std::string r;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7F) {
      static constexpr char kHex[] = "0123456789abcdef";
      r += "\\x";
      r += kHex[c >> 4];
      r += kHex[c & 0xF];
    } else {
      r += ch;
    }
  }
  return r;
}

void expect_accepted(const std::vector<Accepted>& cases, const PathOptions& options) {
  for (const auto& c : cases) {
    const PathResult r = canonicalize_path(c.in, options);
    EXPECT_EQ(r.error, PathError::none) << show(c.in) << " refused: " << path_error_name(r.error);
    EXPECT_EQ(r.path, c.out) << "input " << show(c.in);
    // Every expected output is itself canonical.
    const PathResult again = canonicalize_path(r.path, options);
    EXPECT_EQ(again.error, PathError::none) << show(r.path);
    EXPECT_EQ(again.path, r.path) << "not idempotent on " << show(c.in);
  }
}

void expect_rejected(const std::vector<Rejected>& cases, const PathOptions& options) {
  for (const auto& c : cases) {
    const PathResult r = canonicalize_path(c.in, options);
    EXPECT_EQ(r.error, c.error) << show(c.in) << ": got " << path_error_name(r.error) << ", path "
                                << show(r.path);
    EXPECT_TRUE(r.path.empty()) << show(c.in);
    if (c.error == PathError::encoded_character) {
      EXPECT_EQ(r.encoded, c.encoded) << show(c.in) << ": " << encoded_char_text(r.encoded);
    }
  }
}

PathOptions allow_all() {
  PathOptions o;
  o.allowed_encoded = (1u << kEncodedCharCount) - 1;
  return o;
}

TEST(PathCanonicalizer, PlainPathsPassUnchanged) {
  expect_accepted(
      {
          {"/", "/"},
          {"/api/v1/users", "/api/v1/users"},
          {"/api/v1/users/", "/api/v1/users/"},
          {"/caf%C3%A9", "/caf%C3%A9"},
          {"/a;x=1/b", "/a;x=1/b"},
          {"/a-b_c.d~e", "/a-b_c.d~e"},
          {"/A/B/C", "/A/B/C"},  // letters keep their case
          {"/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="},
          {"/%20%40%3A%7B", "/%20%40%3A%7B"},
          {"/index.html", "/index.html"},
      },
      {});
}

TEST(PathCanonicalizer, EscapesAreDecodedOrUpperCased) {
  expect_accepted(
      {
          {"/caf%c3%a9", "/caf%C3%A9"},
          {"/caf%C3%a9", "/caf%C3%A9"},
          {"/%41%42%43", "/ABC"},      // unreserved: decoded
          {"/%61%7a%30%39", "/az09"},  // lower-case hex too
          {"/%2D%5F%2E%7E", "/-_.~"},  // the four marks
          {"/%7e", "/~"},
          {"/%20", "/%20"},        // not unreserved: stays escaped
          {"/%3a%40", "/%3A%40"},  // reserved gen-delims stay escaped
          {"/%0a%0D", "/%0A%0D"},  // encoded controls other than NUL are only upper-cased
          {"/%ff", "/%FF"},
          {"/%c0%af", "/%C0%AF"},          // overlong UTF-8 '/': a byte sequence, not a slash
          {"/caf\xC3\xA9", "/caf%C3%A9"},  // raw bytes >= 0x80 are encoded
          {"/\x80\xFF", "/%80%FF"},
      },
      {});
}

TEST(PathCanonicalizer, DotSegmentsFromRfc3986) {
  expect_accepted(
      {
          // 5.2.4's own examples.
          {"/a/b/c/./../../g", "/a/g"},
          {"/mid/content=5/../6", "/mid/6"},
          // 5.4.1 and 5.4.2 with base /b/c/d;p: each reference resolved against /b/c/.
          {"/b/c/..", "/b/"},
          {"/b/c/../", "/b/"},
          {"/b/c/../g", "/b/g"},
          {"/b/c/../..", "/"},
          {"/b/c/../../", "/"},
          {"/b/c/../../g", "/g"},
          {"/b/c/.", "/b/c/"},
          {"/b/c/./", "/b/c/"},
          {"/b/c/../../../g", "/g"},
          {"/b/c/../../../../g", "/g"},
          {"/./g", "/g"},
          {"/../g", "/g"},
          {"/b/c/g.", "/b/c/g."},
          {"/b/c/.g", "/b/c/.g"},
          {"/b/c/g..", "/b/c/g.."},
          {"/b/c/..g", "/b/c/..g"},
          {"/b/c/./../g", "/b/g"},
          {"/b/c/./g/.", "/b/c/g/"},
          {"/b/c/g/./h", "/b/c/g/h"},
          {"/b/c/g/../h", "/b/c/h"},
          {"/b/c/g;x=1/./y", "/b/c/g;x=1/y"},
          {"/b/c/g;x=1/../y", "/b/c/y"},
          // The shapes of the brief and of other proxies' suites.
          {"/a/b/../c", "/a/c"},
          {"/a/./b", "/a/b"},
          {"/..", "/"},
          {"/.", "/"},
          {"/./", "/"},
          {"/../", "/"},
          {"/../a", "/a"},
          {"/a/b/..", "/a/"},
          {"/a/.", "/a/"},
          {"/a/./", "/a/"},
          {"/a/../", "/"},
          {"/a/..", "/"},
          {"/a/b/../../../../c", "/c"},
          {"/a/...", "/a/..."},
          {"/a/.../b", "/a/.../b"},
          {"/a/..b/c", "/a/..b/c"},
          {"/a./b", "/a./b"},
          {"/.a", "/.a"},
      },
      {});
}

TEST(PathCanonicalizer, EncodedDotsAreDots) {
  expect_accepted(
      {
          {"/%2e%2E", "/"},
          {"/a/b/%2E%2E/c", "/a/c"},
          {"/a/b/%2e%2e/c", "/a/c"},
          {"/a/b/%2E./c", "/a/c"},
          {"/a/b/.%2e/c", "/a/c"},
          {"/a/b/%2E/c", "/a/b/c"},
          {"/a/%2e%2e%2e/b", "/a/.../b"},
          {"/%2e%2e/", "/"},
          {"/.%2e/", "/"},
          {"/%2e/", "/"},
      },
      {});
}

TEST(PathCanonicalizer, DotSegmentsWithPathParameters) {
  expect_accepted(
      {
          {"/api/..;/admin", "/admin"},
          {"/..;/", "/"},
          {"/.;x/", "/"},
          {"/a/.;/b", "/a/b"},
          {"/a/..;jsessionid=1", "/"},
          {"/a/b/..;x=1/c", "/a/c"},
          {"/a/%2e%2e;/b", "/b"},
          {"/a/...;/b", "/a/...;/b"},  // three dots: a name
          {"/a;x=1/b", "/a;x=1/b"},    // parameters on a name stay
          {"/a/;/b", "/a/;/b"},        // no dots: a name
      },
      {});
}

TEST(PathCanonicalizer, MergesSlashesBeforeResolvingDots) {
  expect_accepted(
      {
          {"//", "/"},
          {"///", "/"},
          {"/a//b", "/a/b"},
          {"/a///b", "/a/b"},
          {"/a/b//", "/a/b/"},
          {"///a///b///", "/a/b/"},
          {"//a/b/c", "/a/b/c"},
          {"//etc/passwd", "/etc/passwd"},
          {"/a//../b", "/b"},
          {"/foo//../../bar/", "/bar/"},
          {"//..", "/"},
          {"/.//a", "/a"},
          {"/a/.//b", "/a/b"},
      },
      {});
}

TEST(PathCanonicalizer, TraversalShapesFromCves) {
  expect_accepted(
      {
          {"/api/../admin", "/admin"},
          {"/py/a/../../../etc/passwd", "/etc/passwd"},
          {"/static/%2e%2e/%2e%2e/etc/passwd", "/etc/passwd"},
          {"/cgi-bin/.%2e/.%2e/.%2e/.%2e/bin/sh", "/bin/sh"},  // CVE-2021-41773's shape
          {"/cgi-bin/%2e%2e/%2e%2e/bin/sh", "/bin/sh"},
          {"/public/..;/private/secret", "/private/secret"},  // Tomcat path parameters
          {"/public/%2e%2e;/private", "/private"},
          {"/a/..%2e/b", "/a/.../b"},  // "..." is a name, for backends too
      },
      {});
  expect_rejected(
      {
          {"/..%2f", PathError::encoded_character, EncodedChar::slash},
          {"/api/..%2F..%2Fadmin", PathError::encoded_character, EncodedChar::slash},
          {"/%252e%252e/etc", PathError::encoded_character, EncodedChar::percent},
          {"/%5c..%5c", PathError::encoded_character, EncodedChar::backslash},
          {"/..\\..\\windows", PathError::backslash},
          {"/a/..\\c", PathError::backslash},
          {"/a\0.php"sv, PathError::control_character},
          {"/xyz/.%00../abc", PathError::encoded_character, EncodedChar::nul},
          {"/xyz/%00.%00./abc", PathError::encoded_character, EncodedChar::nul},
          {"/a/%3B/b", PathError::encoded_character, EncodedChar::semicolon},
          {"/admin%3F.css", PathError::encoded_character, EncodedChar::question},
          {"/admin%23.css", PathError::encoded_character, EncodedChar::hash},
          {"/a\r\nSet-Cookie: x", PathError::control_character},
      },
      {});
}

TEST(PathCanonicalizer, EveryError) {
  expect_rejected(
      {
          {"", PathError::not_absolute},
          {"a/b", PathError::not_absolute},
          {"*", PathError::not_absolute},
          {"http://host/a", PathError::not_absolute},
          {"%2Fa", PathError::not_absolute},
          {".", PathError::not_absolute},
          {"\\a", PathError::not_absolute},

          {"/%", PathError::bad_escape},
          {"/a%", PathError::bad_escape},
          {"/%2", PathError::bad_escape},
          {"/a%2", PathError::bad_escape},
          {"/%zz", PathError::bad_escape},
          {"/%g0", PathError::bad_escape},
          {"/%0g", PathError::bad_escape},
          {"/%%41", PathError::bad_escape},
          {"/%%36%36", PathError::bad_escape},
          {"/%-1", PathError::bad_escape},
          {"/% 1", PathError::bad_escape},
          {"/%2\xC3", PathError::bad_escape},
          {"/xyz/AAAAA%%0000/abc", PathError::bad_escape},

          {"/%2F", PathError::encoded_character, EncodedChar::slash},
          {"/%2f", PathError::encoded_character, EncodedChar::slash},
          {"/%5C", PathError::encoded_character, EncodedChar::backslash},
          {"/%5c", PathError::encoded_character, EncodedChar::backslash},
          {"/%00", PathError::encoded_character, EncodedChar::nul},
          {"/%25", PathError::encoded_character, EncodedChar::percent},
          {"/%3B", PathError::encoded_character, EncodedChar::semicolon},
          {"/%3b", PathError::encoded_character, EncodedChar::semicolon},
          {"/%3F", PathError::encoded_character, EncodedChar::question},
          {"/%3f", PathError::encoded_character, EncodedChar::question},
          {"/%23", PathError::encoded_character, EncodedChar::hash},

          {"/\\", PathError::backslash},
          {"/a\\b", PathError::backslash},

          {"/\0"sv, PathError::control_character},
          {"/a\tb", PathError::control_character},
          {"/a\nb", PathError::control_character},
          {"/a\rb", PathError::control_character},
          {"/\x1F", PathError::control_character},
          {"/\x7F", PathError::control_character},
          {"/a b\x01", PathError::control_character},

          {"/#", PathError::fragment},
          {"/a#b", PathError::fragment},
          {"/a/#/../b", PathError::fragment},
      },
      {});
}

TEST(PathCanonicalizer, FirstOffendingByteDecides) {
  expect_rejected(
      {
          {"/%2F\\", PathError::encoded_character, EncodedChar::slash},
          {"/\\%2F", PathError::backslash},
          {"/#%zz", PathError::fragment},
          {"/%zz#", PathError::bad_escape},
          {"/%5C%2F", PathError::encoded_character, EncodedChar::backslash},
          {"/\x01#", PathError::control_character},
          {"/a/../%", PathError::bad_escape},  // after dot segments were already resolved
      },
      {});
}

TEST(PathCanonicalizer, EachEncodedCharacterCanBeAllowed) {
  const struct {
    EncodedChar c;
    std::string_view in;
    std::string_view out;
  } cases[] = {
      {EncodedChar::slash, "/a%2fb", "/a%2Fb"},     {EncodedChar::backslash, "/a%5cb", "/a%5Cb"},
      {EncodedChar::nul, "/a%00b", "/a%00b"},       {EncodedChar::percent, "/a%25b", "/a%25b"},
      {EncodedChar::semicolon, "/a%3bb", "/a%3Bb"}, {EncodedChar::question, "/a%3fb", "/a%3Fb"},
      {EncodedChar::hash, "/a%23b", "/a%23b"},
  };
  for (const auto& c : cases) {
    PathOptions only;
    only.allow(c.c);
    EXPECT_TRUE(only.allows(c.c));
    expect_accepted({{c.in, c.out}}, only);
    // Allowing one leaves the others refused.
    for (const auto& other : cases) {
      if (other.c == c.c) continue;
      EXPECT_FALSE(only.allows(other.c));
      expect_rejected({{other.in, PathError::encoded_character, other.c}}, only);
    }
  }
}

TEST(PathCanonicalizer, AllowedEscapesAreNotDecodedAgain) {
  expect_accepted(
      {
          // %25 stays %25, and what follows it is text, not an escape.
          {"/%252e%252e/etc", "/%252e%252e/etc"},
          {"/%2541", "/%2541"},
          {"/a%25%41", "/a%25A"},
          // Kept escapes are not separators: this segment is a name, not "..".
          {"/a/..%2F..%2Fb", "/a/..%2F..%2Fb"},
          {"/a/..%5Cb", "/a/..%5Cb"},
          // An allowed %3B after dots is a path parameter like ';'.
          {"/a/..%3B/b", "/b"},
          {"/a/..%3bx=1/b", "/b"},
          {"/a/.%3B/b", "/a/b"},
          {"/a%3Bb/c", "/a%3Bb/c"},
          {"/a/%2e%2e%3B/b", "/b"},
      },
      allow_all());
}

TEST(PathCanonicalizer, EscapedSlashesKeep) {
  PathOptions o;
  o.allow(EncodedChar::slash);
  expect_accepted(
      {
          {"/a%2fb", "/a%2Fb"},
          {"/..%2f", "/..%2F"},
          {"/a%2F%2Fb", "/a%2F%2Fb"},
          {"/api/..%2F..%2Fadmin", "/api/..%2F..%2Fadmin"},
          {"/a/%2F/../b", "/a/b"},
      },
      o);
}

TEST(PathCanonicalizer, EscapedSlashesDecode) {
  PathOptions o;
  o.allow(EncodedChar::slash);
  o.escaped_slashes = PathOptions::EscapedSlashes::decode;
  expect_accepted(
      {
          {"/a%2fb", "/a/b"},
          {"/a%2F%2Fb", "/a/b"},  // decoded before slashes are merged
          {"/..%2f", "/"},        // and before dot segments are resolved
          {"/api%2F..%2Fadmin", "/admin"},
          {"/api/..%2F..%2Fadmin", "/admin"},
      },
      o);
  // Decoding is a way of allowing %2F, which still needs its bit.
  PathOptions decode_only;
  decode_only.escaped_slashes = PathOptions::EscapedSlashes::decode;
  expect_rejected({{"/a%2Fb", PathError::encoded_character, EncodedChar::slash}}, decode_only);

  o.merge_slashes = false;
  expect_accepted({{"/a%2F%2Fb", "/a//b"}, {"/a%2F%2F..%2Fb", "/a/b"}}, o);
}

TEST(PathCanonicalizer, WithoutNormalizePathOnlyValidates) {
  PathOptions o;
  o.normalize_path = false;
  expect_accepted(
      {
          {"/a/../b", "/a/../b"},
          {"/a/./b/.", "/a/./b/."},
          {"/%2e%2e/", "/%2e%2e/"},
          {"/caf%c3%a9", "/caf%c3%a9"},      // escapes keep their case
          {"/%41", "/%41"},                  // unreserved ones are not decoded
          {"/caf\xC3\xA9", "/caf\xC3\xA9"},  // raw high bytes are not encoded
          {"/api/..;/admin", "/api/..;/admin"},
          {"/a//b", "/a/b"},  // merge_slashes still applies
          {"//a//", "/a/"},
      },
      o);
  expect_rejected(
      {
          {"a", PathError::not_absolute},
          {"/%zz", PathError::bad_escape},
          {"/%2f", PathError::encoded_character, EncodedChar::slash},
          {"/\\", PathError::backslash},
          {"/\x7F", PathError::control_character},
          {"/#", PathError::fragment},
      },
      o);

  PathOptions raw = o;
  raw.merge_slashes = false;
  expect_accepted({{"//a//./../b/", "//a//./../b/"}}, raw);

  PathOptions decode = o;
  decode.allow(EncodedChar::slash);
  decode.allow(EncodedChar::percent);
  decode.escaped_slashes = PathOptions::EscapedSlashes::decode;
  expect_accepted({{"/a%2f..%2fb", "/a/../b"}, {"/a%2F%2Fb", "/a/b"}, {"/%25%2e", "/%25%2e"}},
                  decode);
}

TEST(PathCanonicalizer, WithoutMergeSlashesEmptySegmentsCount) {
  PathOptions o;
  o.merge_slashes = false;
  expect_accepted(
      {
          {"//", "//"},
          {"//a", "//a"},
          {"/a//b", "/a//b"},
          {"/a//", "/a//"},
          {"/a//../b", "/a/b"},  // ".." removes the empty segment
          {"/a/b//../c", "/a/b/c"},
          {"//..", "/"},
          {"/./", "/"},
          {"/.//", "//"},
          {"/foo//../../bar/", "/bar/"},
          {"/a/./b", "/a/b"},
      },
      o);
}

TEST(PathCanonicalizer, Names) {
  EXPECT_EQ(path_error_name(PathError::none), "none");
  EXPECT_EQ(path_error_name(PathError::bad_escape), "bad_escape");
  EXPECT_EQ(path_error_name(PathError::encoded_character), "encoded_character");
  EXPECT_EQ(path_error_name(PathError::backslash), "backslash");
  EXPECT_EQ(path_error_name(PathError::control_character), "control_character");
  EXPECT_EQ(path_error_name(PathError::fragment), "fragment");
  EXPECT_EQ(path_error_name(PathError::not_absolute), "not_absolute");

  EXPECT_EQ(encoded_char_text(EncodedChar::slash), "%2F");
  EXPECT_EQ(encoded_char_text(EncodedChar::backslash), "%5C");
  EXPECT_EQ(encoded_char_text(EncodedChar::nul), "%00");
  EXPECT_EQ(encoded_char_text(EncodedChar::percent), "%25");
  EXPECT_EQ(encoded_char_text(EncodedChar::semicolon), "%3B");
  EXPECT_EQ(encoded_char_text(EncodedChar::question), "%3F");
  EXPECT_EQ(encoded_char_text(EncodedChar::hash), "%23");
}

TEST(PathCanonicalizer, EncodedCharTextNamesWhatIsRefused) {
  // The text a log line shows for a refusal is the escape that was refused.
  for (int i = 0; i < kEncodedCharCount; ++i) {
    const auto c = static_cast<EncodedChar>(i);
    const std::string path = "/x" + std::string(encoded_char_text(c));
    const PathResult r = canonicalize_path(path, {});
    EXPECT_EQ(r.error, PathError::encoded_character) << path;
    EXPECT_EQ(r.encoded, c) << path;
    PathOptions allowed;
    allowed.allow(c);
    EXPECT_EQ(canonicalize_path(path, allowed).path, path);
  }
}

TEST(PathCanonicalizer, ResultIsNeverLongerThanInputPlusEncodedHighBytes) {
  const std::string path = "/\xE2\x82\xAC/\xF0\x9F\x98\x80";
  const PathResult r = canonicalize_path(path, {});
  ASSERT_EQ(r.error, PathError::none);
  EXPECT_EQ(r.path, "/%E2%82%AC/%F0%9F%98%80");
  EXPECT_EQ(r.path.size(), path.size() + 2 * 7);
}

}  // namespace
}  // namespace sluice::sanitize
