#pragma once
// Value syntax helpers behind parse_duration/parse_size/parse_address, with the reasons the
// loader puts in its diagnostics. Pure functions; any thread may call them.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"

namespace sluice::config::detail {

// Like parse_address(), but on failure sets `why` to a short reason ("missing port", ...).
std::optional<SocketAddress> parse_address(std::string_view s, std::string* why);

bool is_ip_literal(std::string_view host);  // dotted-quad IPv4 or IPv6 (without brackets)
bool is_hostname(std::string_view host);    // RFC 1123 name, or an IP literal
bool is_token(std::string_view s);          // RFC 9110 token: methods and header names
std::string lowercase(std::string_view s);

// Optimal string alignment distance (insert, delete, substitute, swap adjacent); for
// "did you mean" hints on short names.
size_t edit_distance(std::string_view a, std::string_view b);

// The largest unit that represents `d` exactly: "2s", "250ms", "1h". Parses back to `d`.
std::string format_duration(Duration d);

}  // namespace sluice::config::detail
