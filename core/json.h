#pragma once
// Minimal JSON output helpers (there is no JSON library dependency). Pure; any thread.
#include <string>
#include <string_view>

namespace sluice {

// Appends `s` as a quoted JSON string. Quotes, backslashes and control characters are escaped;
// bytes that are not valid UTF-8 become U+FFFD, so the output is always valid JSON.
void append_json_string(std::string& out, std::string_view s);

inline std::string json_string(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

}  // namespace sluice
