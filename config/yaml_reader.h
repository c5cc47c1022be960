#pragma once
// Reading YAML nodes into typed values while collecting positioned diagnostics. Used only by
// the loader, on the thread that loads the config; never throws.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace sluice::config::detail {

// Collects the errors and warnings of one load.
class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  void error(const YAML::Mark& at, std::string message);
  void warning(const YAML::Mark& at, std::string message);
  bool has_errors() const { return !errors_.empty(); }
  // Sorted by position, so output follows the file.
  std::vector<Diagnostic> take_errors();
  std::vector<Diagnostic> take_warnings();

 private:
  Diagnostic make(const YAML::Mark& at, std::string message) const;

  std::string file_;
  std::vector<Diagnostic> errors_;
  std::vector<Diagnostic> warnings_;
};

// A value and where it came from. `key` is the map key (or the value itself for list items),
// used for positions when the value is null and has no useful mark of its own.
struct Field {
  std::string name;  // for messages: the key ("address") or what a list item is ("endpoint")
  YAML::Node key;
  YAML::Node value;

  static Field item(std::string name, const YAML::Node& node) {
    return {std::move(name), node, node};
  }
  YAML::Mark mark() const;
};

// 's' in single quotes, as messages name values and keys.
std::string quote(std::string_view s);

// "a map", "a list", "null" or the quoted scalar text, for "expected X, got Y" messages.
std::string describe(const YAML::Node& node);

// The candidate closest to `word` within edit distance 2, if any.
std::optional<std::string_view> closest(std::string_view word,
                                        std::span<const std::string_view> candidates);
// " (did you mean 'x'?)" or "".
std::string did_you_mean(std::string_view word, std::span<const std::string_view> candidates);
// did_you_mean(), or else " (known: a, b)" listing every candidate; "" when there are none.
std::string hint(std::string_view word, std::span<const std::string_view> candidates);

// One YAML map checked against the keys its section allows. Unknown keys (with a hint) and
// duplicate keys are reported on construction; so is a node that is not a map.
class MapReader {
 public:
  // `what` names the section in messages ("listener", "limits").
  MapReader(Diagnostics& diag, const Field& field, std::string what,
            std::span<const std::string_view> known);

  bool is_map() const { return is_map_; }
  const std::string& what() const { return what_; }
  YAML::Mark mark() const { return mark_; }
  // Null when the key is absent.
  const Field* get(std::string_view key) const;
  // Like get(), but reports "<what> is missing required key '<key>'" at the map's position.
  const Field* require(std::string_view key);

 private:
  Diagnostics& diag_;
  std::string what_;
  YAML::Mark mark_;
  bool is_map_ = false;
  std::vector<Field> fields_;
};

// Typed readers. Each reports what is wrong with the value and returns nullopt.
bool expect_list(Diagnostics& diag, const Field& f);
std::optional<std::string> read_string(Diagnostics& diag, const Field& f);
// A string that must not be empty.
std::optional<std::string> read_nonempty(Diagnostics& diag, const Field& f);
// One of `choices`; otherwise "unknown value 'x'" with a hint.
std::optional<std::string> read_choice(Diagnostics& diag, const Field& f,
                                       std::span<const std::string_view> choices);
std::optional<bool> read_bool(Diagnostics& diag, const Field& f);
std::optional<int64_t> read_integer(Diagnostics& diag, const Field& f, int64_t min, int64_t max);
std::optional<Duration> read_duration(Diagnostics& diag, const Field& f, bool allow_zero);
std::optional<uint64_t> read_size(Diagnostics& diag, const Field& f, uint64_t min, uint64_t max);
// `bind`: the address is for a local socket, so it must be an IP literal or "localhost".
std::optional<SocketAddress> read_address(Diagnostics& diag, const Field& f, bool bind);
// A name for a listener, route, cluster or rate limit: non-empty, metric-label safe (letters,
// digits, '_', '-', '.'), and unique among `seen` (which records where each name was first
// defined). `kind` names it in messages ("route").
std::optional<std::string> read_unique_name(Diagnostics& diag, const Field& f,
                                            std::string_view kind,
                                            std::map<std::string, YAML::Mark>& seen);
// Compiles with RE2 to validate; reports RE2's error.
std::optional<std::string> read_regex(Diagnostics& diag, const Field& f);

}  // namespace sluice::config::detail
