#pragma once
// Reference models for the path canonicalizer's tests (property tests and the fuzz target):
// how a backend that decodes a path once would read it, written plainly and apart from the
// one-pass code under test, so the two can check each other.
#include <string>
#include <string_view>

namespace sluice::sanitize::reference {

inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Every valid escape decoded, once.
inline std::string decode_once(std::string_view s) {
  std::string r;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      r += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      r += s[i];
    }
  }
  return r;
}

// RFC 3986 5.2.4, written as the RFC states it (a buffer of input and one of output), as an
// independent check of the one-pass version.
inline std::string remove_dot_segments(std::string in) {
  std::string out;
  const auto pop_last = [&out] {
    const size_t slash = out.rfind('/');
    out.resize(slash == std::string::npos ? 0 : slash);
  };
  while (!in.empty()) {
    if (in.starts_with("../")) {
      in.erase(0, 3);
    } else if (in.starts_with("./")) {
      in.erase(0, 2);
    } else if (in.starts_with("/./")) {
      in.erase(0, 2);
    } else if (in == "/.") {
      in = "/";
    } else if (in.starts_with("/../")) {
      in.erase(0, 3);
      pop_last();
    } else if (in == "/..") {
      in = "/";
      pop_last();
    } else if (in == "." || in == "..") {
      in.clear();
    } else {
      const size_t next = in.find('/', 1);
      out += in.substr(0, next);
      in.erase(0, next == std::string::npos ? in.size() : next);
    }
  }
  return out;
}

// How a backend that decodes the path once sees it: it decodes every escape, may take '\' for
// '/', merges slashes, drops the parameters of a dot segment (`..;x` is `..` to a servlet
// container) and resolves dot segments.
inline std::string backend_view(std::string_view path, bool backslash_is_slash, bool merge) {
  std::string decoded = decode_once(path);
  if (backslash_is_slash) {
    for (char& c : decoded) c = c == '\\' ? '/' : c;
  }
  std::string merged;
  for (const char c : decoded) {
    if (!(merge && c == '/' && !merged.empty() && merged.back() == '/')) merged += c;
  }
  std::string stripped;
  size_t start = 0;
  while (start <= merged.size()) {
    size_t end = merged.find('/', start);
    if (end == std::string::npos) end = merged.size();
    std::string_view segment(merged.data() + start, end - start);
    if (segment.starts_with("..;")) {
      segment = "..";
    } else if (segment.starts_with(".;")) {
      segment = ".";
    }
    stripped += segment;
    if (end < merged.size()) stripped += '/';
    start = end + 1;
  }
  return remove_dot_segments(stripped);
}

inline bool is_upper_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }

}  // namespace sluice::sanitize::reference
