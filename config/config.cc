// Plain config value types and the value syntax (durations, sizes, addresses).
#include "config/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "config/values.h"

namespace sluice::config {
namespace {

// Parses a run of decimal digits (at least one, nothing else) without overflow.
std::optional<uint64_t> parse_digits(std::string_view s) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

// Splits "123unit" into the number and the unit.
std::pair<std::string_view, std::string_view> split_number(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  return {s.substr(0, i), s.substr(i)};
}

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

}  // namespace

std::string SocketAddress::str() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string Diagnostic::str() const {
  std::string out = file;
  if (line > 0) {
    out += ":" + std::to_string(line);
    if (column > 0) out += ":" + std::to_string(column);
  }
  out += ": ";
  out += message;
  return out;
}

const Cluster* Config::find_cluster(std::string_view name) const {
  for (const Cluster& c : clusters) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

const FilterConfig* Config::filter_config(std::string_view name) const {
  for (const auto& [n, c] : filter_configs) {
    if (n == name) return c.get();
  }
  return nullptr;
}

std::optional<Duration> parse_duration(std::string_view s) {
  const auto [number, unit] = split_number(s);
  const std::optional<uint64_t> n = parse_digits(number);
  if (!n) return std::nullopt;
  uint64_t ms_per_unit = 0;
  if (unit == "ms") {
    ms_per_unit = 1;
  } else if (unit == "s") {
    ms_per_unit = 1000;
  } else if (unit == "m") {
    ms_per_unit = 60 * 1000;
  } else if (unit == "h") {
    ms_per_unit = 60 * 60 * 1000;
  } else {
    return std::nullopt;
  }
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<Duration::rep>::max());
  if (*n > kMax / ms_per_unit) return std::nullopt;
  return Duration(static_cast<Duration::rep>(*n * ms_per_unit));
}

std::optional<uint64_t> parse_size(std::string_view s) {
  const auto [number, unit] = split_number(s);
  const std::optional<uint64_t> n = parse_digits(number);
  if (!n) return std::nullopt;
  struct Unit {
    std::string_view name;
    uint64_t bytes;
  };
  static constexpr Unit kUnits[] = {
      {"", 1},
      {"KiB", uint64_t{1} << 10},
      {"MiB", uint64_t{1} << 20},
      {"GiB", uint64_t{1} << 30},
      {"KB", 1000},
      {"MB", 1000 * 1000},
      {"GB", 1000 * 1000 * 1000},
  };
  for (const Unit& u : kUnits) {
    if (u.name != unit) continue;
    if (*n > std::numeric_limits<uint64_t>::max() / u.bytes) return std::nullopt;
    return *n * u.bytes;
  }
  return std::nullopt;
}

std::optional<SocketAddress> parse_address(std::string_view s) {
  std::string why;
  return detail::parse_address(s, &why);
}

namespace detail {

std::optional<SocketAddress> parse_address(std::string_view s, std::string* why) {
  std::string_view host;
  std::string_view rest;
  if (s.empty()) {
    *why = "empty address";
    return std::nullopt;
  }
  if (s.front() == '[') {
    const size_t close = s.find(']');
    if (close == std::string_view::npos) {
      *why = "missing ']'";
      return std::nullopt;
    }
    host = s.substr(1, close - 1);
    rest = s.substr(close + 1);
    in6_addr a6;
    if (std::string h(host); inet_pton(AF_INET6, h.c_str(), &a6) != 1) {
      *why = "'" + h + "' is not an IPv6 address";
      return std::nullopt;
    }
    if (rest.empty() || rest.front() != ':') {
      *why = "missing port (expected [host]:port)";
      return std::nullopt;
    }
    rest.remove_prefix(1);
  } else {
    const size_t colon = s.rfind(':');
    if (colon == std::string_view::npos) {
      *why = "missing port (expected host:port)";
      return std::nullopt;
    }
    host = s.substr(0, colon);
    rest = s.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      *why = "IPv6 addresses need brackets, as in [::1]:8080";
      return std::nullopt;
    }
    if (host.empty()) {
      *why = "missing host (use 0.0.0.0 or [::] for every interface)";
      return std::nullopt;
    }
    if (!is_hostname(host)) {
      *why = "'" + std::string(host) + "' is not an IP address or host name";
      return std::nullopt;
    }
  }
  const std::optional<uint64_t> port = rest.size() <= 5 ? parse_digits(rest) : std::nullopt;
  if (!port || *port < 1 || *port > 65535) {
    *why = "port must be an integer from 1 to 65535";
    return std::nullopt;
  }
  return SocketAddress{lowercase(host), static_cast<uint16_t>(*port)};
}

bool is_ip_literal(std::string_view host) {
  const std::string h(host);
  in_addr a4;
  in6_addr a6;
  return inet_pton(AF_INET, h.c_str(), &a4) == 1 || inet_pton(AF_INET6, h.c_str(), &a6) == 1;
}

bool is_hostname(std::string_view host) {
  if (is_ip_literal(host)) return true;
  if (host.empty() || host.size() > 253) return false;
  if (host.back() == '.') host.remove_suffix(1);  // fully qualified "example.com."
  std::string_view last;
  while (!host.empty()) {
    const size_t dot = host.find('.');
    const std::string_view label = host.substr(0, dot);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!is_alnum(c) && c != '-') return false;
    }
    last = label;
    if (dot == std::string_view::npos) break;
    host.remove_prefix(dot + 1);
    if (host.empty()) return false;  // "a..b" or trailing dots
  }
  // An all-numeric last label ("1.2.3") is a mistyped IPv4 address, not a name.
  return !last.empty() &&
         !std::all_of(last.begin(), last.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  static constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  return std::all_of(s.begin(), s.end(), [](char c) {
    return is_alnum(c) || kExtra.find(c) != std::string_view::npos;
  });
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  const size_t n = a.size();
  const size_t m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

std::string format_duration(Duration d) {
  const int64_t ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace detail

bool is_loopback(const SocketAddress& a) {
  if (a.host == "localhost") return true;
  in_addr a4;
  in6_addr a6;
  if (inet_pton(AF_INET, a.host.c_str(), &a4) == 1) {
    return (ntohl(a4.s_addr) >> 24) == 127;
  }
  if (inet_pton(AF_INET6, a.host.c_str(), &a6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&a6)) return true;
  return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
}

}  // namespace sluice::config
