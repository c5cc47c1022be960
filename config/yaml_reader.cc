#include "config/yaml_reader.h"

#include <re2/re2.h>

#include <algorithm>
#include <charconv>

#include "config/values.h"

namespace sluice::config::detail {
namespace {

std::optional<std::string_view> scalar(Diagnostics& diag, const Field& f, std::string_view want) {
  if (!f.value.IsScalar()) {
    diag.error(f.mark(), f.name + ": expected " + std::string(want) + ", got " + describe(f.value));
    return std::nullopt;
  }
  return std::string_view(f.value.Scalar());
}

}  // namespace

std::string quote(std::string_view s) { return "'" + std::string(s) + "'"; }

Diagnostic Diagnostics::make(const YAML::Mark& at, std::string message) const {
  Diagnostic d;
  d.file = file_;
  if (!at.is_null() && at.line >= 0) {
    d.line = at.line + 1;
    d.column = at.column + 1;
  }
  d.message = std::move(message);
  return d;
}

void Diagnostics::error(const YAML::Mark& at, std::string message) {
  errors_.push_back(make(at, std::move(message)));
}

void Diagnostics::warning(const YAML::Mark& at, std::string message) {
  warnings_.push_back(make(at, std::move(message)));
}

static void sort_by_position(std::vector<Diagnostic>& v) {
  std::stable_sort(v.begin(), v.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::pair(a.line, a.column) < std::pair(b.line, b.column);
  });
}

std::vector<Diagnostic> Diagnostics::take_errors() {
  sort_by_position(errors_);
  return std::move(errors_);
}

std::vector<Diagnostic> Diagnostics::take_warnings() {
  sort_by_position(warnings_);
  return std::move(warnings_);
}

YAML::Mark Field::mark() const {
  // yaml-cpp marks a null value at the next token, often on a later line; the key is where
  // the reader should look.
  if (!value.IsDefined() || value.IsNull()) return key.Mark();
  return value.Mark();
}

std::string describe(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "null";
  if (node.IsMap()) return "a map";
  if (node.IsSequence()) return "a list";
  const std::string& s = node.Scalar();
  constexpr size_t kMax = 40;
  return s.size() > kMax ? quote(s.substr(0, kMax) + "...") : quote(s);
}

std::optional<std::string_view> closest(std::string_view word,
                                        std::span<const std::string_view> candidates) {
  std::optional<std::string_view> best;
  size_t best_distance = 3;
  for (std::string_view c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

std::string did_you_mean(std::string_view word, std::span<const std::string_view> candidates) {
  const std::optional<std::string_view> c = closest(word, candidates);
  return c ? " (did you mean " + quote(*c) + "?)" : "";
}

std::string hint(std::string_view word, std::span<const std::string_view> candidates) {
  std::string out = did_you_mean(word, candidates);
  if (!out.empty() || candidates.empty()) return out;
  for (std::string_view c : candidates) out += (out.empty() ? " (known: " : ", ") + std::string(c);
  return out + ")";
}

MapReader::MapReader(Diagnostics& diag, const Field& field, std::string what,
                     std::span<const std::string_view> known)
    : diag_(diag), what_(std::move(what)), mark_(field.mark()) {
  if (!field.value.IsMap()) {
    diag_.error(mark_, field.name + ": expected a map, got " + describe(field.value));
    return;
  }
  is_map_ = true;
  for (auto it = field.value.begin(); it != field.value.end(); ++it) {
    // Copies: the iterator hands out a temporary pair, so references would dangle.
    const YAML::Node key = it->first;
    if (!key.IsScalar()) {
      diag_.error(key.Mark(), "expected a key in " + what_ + ", got " + describe(key));
      continue;
    }
    const std::string& name = key.Scalar();
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      diag_.error(key.Mark(),
                  "unknown key " + quote(name) + " in " + what_ + did_you_mean(name, known));
      continue;
    }
    if (const Field* first = get(name)) {
      diag_.error(key.Mark(), "duplicate key " + quote(name) + " in " + what_ + " (first at line " +
                                  std::to_string(first->key.Mark().line + 1) + ")");
      continue;
    }
    fields_.push_back(Field{name, key, it->second});
  }
}

const Field* MapReader::get(std::string_view key) const {
  for (const Field& f : fields_) {
    if (f.name == key) return &f;
  }
  return nullptr;
}

const Field* MapReader::require(std::string_view key) {
  const Field* f = get(key);
  if (f == nullptr && is_map_) {
    diag_.error(mark_, what_ + " is missing required key " + quote(key));
  }
  return f;
}

bool expect_list(Diagnostics& diag, const Field& f) {
  if (f.value.IsSequence()) return true;
  diag.error(f.mark(), f.name + ": expected a list, got " + describe(f.value));
  return false;
}

std::optional<std::string> read_string(Diagnostics& diag, const Field& f) {
  const std::optional<std::string_view> s = scalar(diag, f, "a string");
  if (!s) return std::nullopt;
  return std::string(*s);
}

std::optional<std::string> read_nonempty(Diagnostics& diag, const Field& f) {
  std::optional<std::string> s = read_string(diag, f);
  if (s && s->empty()) {
    diag.error(f.mark(), f.name + ": must not be empty");
    return std::nullopt;
  }
  return s;
}

std::optional<std::string> read_choice(Diagnostics& diag, const Field& f,
                                       std::span<const std::string_view> choices) {
  std::optional<std::string> s = read_nonempty(diag, f);
  if (!s) return std::nullopt;
  if (std::find(choices.begin(), choices.end(), *s) == choices.end()) {
    diag.error(f.mark(), f.name + ": unknown value " + quote(*s) + hint(*s, choices));
    return std::nullopt;
  }
  return s;
}

std::optional<bool> read_bool(Diagnostics& diag, const Field& f) {
  const std::optional<std::string_view> s = scalar(diag, f, "true or false");
  if (!s) return std::nullopt;
  if (*s == "true") return true;
  if (*s == "false") return false;
  diag.error(f.mark(), f.name + ": expected true or false, got " + describe(f.value));
  return std::nullopt;
}

std::optional<int64_t> read_integer(Diagnostics& diag, const Field& f, int64_t min, int64_t max) {
  const std::optional<std::string_view> s = scalar(diag, f, "an integer");
  if (!s) return std::nullopt;
  const std::string range = "must be from " + std::to_string(min) + " to " + std::to_string(max);
  const bool negative = !s->empty() && s->front() == '-';
  const std::string_view digits = negative ? s->substr(1) : *s;
  const bool all_digits = !digits.empty() && std::all_of(digits.begin(), digits.end(), [](char c) {
    return c >= '0' && c <= '9';
  });
  if (!all_digits) {
    diag.error(f.mark(), f.name + ": expected an integer, got " + describe(f.value));
    return std::nullopt;
  }
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
  if (ec != std::errc() || end != s->data() + s->size() || v < min || v > max) {
    diag.error(f.mark(), f.name + ": " + range + ", got " + std::string(*s));
    return std::nullopt;
  }
  return v;
}

std::optional<Duration> read_duration(Diagnostics& diag, const Field& f, bool allow_zero) {
  const std::optional<std::string_view> s = scalar(diag, f, "a duration");
  if (!s) return std::nullopt;
  const std::optional<Duration> d = parse_duration(*s);
  if (!d) {
    diag.error(f.mark(), f.name + ": invalid duration " + describe(f.value) +
                             " (expected an integer and a unit: 250ms, 5s, 1m, 1h)");
    return std::nullopt;
  }
  if (!allow_zero && d->count() == 0) {
    diag.error(f.mark(), f.name + ": must be greater than 0");
    return std::nullopt;
  }
  return d;
}

std::optional<uint64_t> read_size(Diagnostics& diag, const Field& f, uint64_t min, uint64_t max) {
  const std::optional<std::string_view> s = scalar(diag, f, "a size");
  if (!s) return std::nullopt;
  const std::optional<uint64_t> n = parse_size(*s);
  if (!n) {
    diag.error(f.mark(), f.name + ": invalid size " + describe(f.value) +
                             " (expected bytes, or an integer and a unit: 512, 64KiB, 10MiB, "
                             "1GiB, 1KB, 1MB, 1GB)");
    return std::nullopt;
  }
  if (*n < min || *n > max) {
    diag.error(f.mark(), f.name + ": must be from " + std::to_string(min) + " to " +
                             std::to_string(max) + " bytes, got " + std::string(*s));
    return std::nullopt;
  }
  return n;
}

std::optional<SocketAddress> read_address(Diagnostics& diag, const Field& f, bool bind) {
  if (f.value.IsSequence()) {
    // `address: [::1]:80` is YAML flow-list syntax, so IPv6 addresses must be quoted.
    diag.error(f.mark(), f.name +
                             ": expected an address, got a list (quote IPv6 addresses: "
                             "\"[::1]:8080\")");
    return std::nullopt;
  }
  const std::optional<std::string_view> s = scalar(diag, f, "an address");
  if (!s) return std::nullopt;
  std::string why;
  std::optional<SocketAddress> a = parse_address(*s, &why);
  if (!a) {
    diag.error(f.mark(), f.name + ": invalid address " + describe(f.value) + ": " + why);
    return std::nullopt;
  }
  if (bind && a->host != "localhost" && !is_ip_literal(a->host)) {
    diag.error(f.mark(), f.name + ": " + quote(a->host) +
                             " must be an IP address or 'localhost' (a local address to bind)");
    return std::nullopt;
  }
  return a;
}

std::optional<std::string> read_regex(Diagnostics& diag, const Field& f) {
  std::optional<std::string> s = read_string(diag, f);
  if (!s) return std::nullopt;
  const RE2 re(*s, RE2::Quiet);
  if (!re.ok()) {
    diag.error(f.mark(), f.name + ": invalid regex " + describe(f.value) + ": " + re.error());
    return std::nullopt;
  }
  return s;
}

std::optional<std::string> read_unique_name(Diagnostics& diag, const Field& f,
                                            std::string_view kind,
                                            std::map<std::string, YAML::Mark>& seen) {
  std::optional<std::string> name = read_nonempty(diag, f);
  if (!name) return std::nullopt;
  // Names become metric labels and admin API paths, so keep them plain.
  const bool plain = std::all_of(name->begin(), name->end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
  if (!plain) {
    diag.error(f.mark(),
               "name: " + quote(*name) + " may contain only letters, digits, '_', '-' and '.'");
    return std::nullopt;
  }
  const auto [it, inserted] = seen.emplace(*name, f.mark());
  if (!inserted) {
    diag.error(f.mark(), "duplicate " + std::string(kind) + " name " + quote(*name) +
                             " (first defined at line " + std::to_string(it->second.line + 1) +
                             ")");
    return std::nullopt;
  }
  return name;
}

}  // namespace sluice::config::detail
