#pragma once
// Whole small files (/proc and /sys entries): not for the hot path.
#include <optional>
#include <string>

namespace sluice {

// The file's bytes, or nullopt when it cannot be opened or read.
std::optional<std::string> read_file(const std::string& path);

}  // namespace sluice
