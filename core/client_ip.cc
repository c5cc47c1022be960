#include "core/client_ip.h"

#include <charconv>
#include <iterator>

namespace sluice {

namespace ip = boost::asio::ip;

IpAddress unmap_v4(const IpAddress& addr) {
  if (addr.is_v6() && addr.to_v6().is_v4_mapped()) {
    return ip::make_address_v4(ip::v4_mapped, addr.to_v6());
  }
  return addr;
}

namespace {

// address::to_string() goes through inet_ntop and sprintf (about 1,800 instructions); this
// runs for every forwarded request, so IPv4 is formatted here. IPv6 keeps Asio's formatting
// (zero compression, scope ids).
std::string address_text(const IpAddress& addr) {
  if (!addr.is_v4()) return addr.to_string();
  const auto bytes = addr.to_v4().to_bytes();
  char buf[16];
  char* p = buf;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i) *p++ = '.';
    p = std::to_chars(p, buf + sizeof(buf), static_cast<unsigned>(bytes[i])).ptr;
  }
  return std::string(buf, p);
}

bool is_port(std::string_view s) {
  unsigned port = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), port);
  return ec == std::errc() && end == s.data() + s.size() && port <= 65535 && !s.empty();
}

std::optional<IpAddress> parse_literal(std::string_view s) {
  boost::system::error_code ec;
  IpAddress addr = ip::make_address(std::string(s), ec);
  if (ec) return std::nullopt;
  // Scoped IPv6 ("fe80::1%eth0") names an interface of someone else's host: not a client.
  if (addr.is_v6() && addr.to_v6().scope_id() != 0) return std::nullopt;
  return unmap_v4(addr);
}

}  // namespace

std::optional<IpAddress> parse_forwarded_ip(std::string_view s) {
  s = trim_ows(s);
  if (s.empty()) return std::nullopt;
  if (s.front() == '[') {
    const size_t close = s.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view rest = s.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || !is_port(rest.substr(1)))) return std::nullopt;
    auto addr = parse_literal(s.substr(1, close - 1));
    if (!addr || !addr->is_v6()) return std::nullopt;
    return addr;
  }
  const size_t colon = s.find(':');
  if (colon != std::string_view::npos && s.find(':', colon + 1) == std::string_view::npos) {
    // One colon: IPv4 with a port.
    if (!is_port(s.substr(colon + 1))) return std::nullopt;
    auto addr = parse_literal(s.substr(0, colon));
    if (!addr || !addr->is_v4()) return std::nullopt;
    return addr;
  }
  return parse_literal(s);
}

std::string format_endpoint(const IpAddress& addr, uint16_t port) {
  std::string host = addr.to_string();
  if (addr.is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(port);
}

bool TrustedProxies::add(std::string_view cidr, std::string* error) {
  const std::string text(trim_ows(cidr));
  const size_t slash = text.find('/');
  boost::system::error_code ec;
  IpAddress addr = ip::make_address(text.substr(0, slash), ec);
  if (ec) {
    *error = "'" + text + "' is not an IP address or CIDR range (expected e.g. 10.0.0.0/8)";
    return false;
  }
  addr = unmap_v4(addr);
  unsigned bits = addr.is_v4() ? 32 : 128;
  if (slash != std::string::npos) {
    const std::string_view len = std::string_view(text).substr(slash + 1);
    unsigned n = 0;
    auto [end, fc] = std::from_chars(len.data(), len.data() + len.size(), n);
    if (fc != std::errc() || end != len.data() + len.size() || len.empty() || n > bits) {
      *error = "'" + text + "': prefix length must be 0 to " + std::to_string(bits);
      return false;
    }
    bits = n;
  }
  if (addr.is_v4()) {
    const ip::network_v4 net = ip::make_network_v4(addr.to_v4(), bits);
    if (net.network() != addr.to_v4()) {
      *error =
          "'" + text + "' has host bits set (did you mean " + net.canonical().to_string() + "?)";
      return false;
    }
    v4_.push_back(net);
  } else {
    const ip::network_v6 net = ip::make_network_v6(addr.to_v6(), bits);
    if (net.network() != addr.to_v6()) {
      *error =
          "'" + text + "' has host bits set (did you mean " + net.canonical().to_string() + "?)";
      return false;
    }
    v6_.push_back(net);
  }
  entries_.push_back(text);
  return true;
}

bool TrustedProxies::contains(const IpAddress& raw) const {
  const IpAddress addr = unmap_v4(raw);
  if (addr.is_v4()) {
    const uint32_t a = addr.to_v4().to_uint();
    for (const auto& net : v4_) {
      const uint32_t mask = net.netmask().to_uint();
      if ((a & mask) == net.network().to_uint()) return true;
    }
    return false;
  }
  const auto bytes = addr.to_v6().to_bytes();
  for (const auto& net : v6_) {
    const auto prefix = net.network().to_bytes();
    unsigned bits = net.prefix_length();
    bool match = true;
    for (size_t i = 0; i < bytes.size() && bits > 0 && match; ++i) {
      const unsigned take = bits >= 8 ? 8 : bits;
      const uint8_t mask = static_cast<uint8_t>(0xff00 >> take);
      match = (bytes[i] & mask) == (prefix[i] & mask);
      bits -= take;
    }
    if (match) return true;
  }
  return false;
}

IpAddress resolve_client_ip(const IpAddress& peer, const HeaderMap& headers,
                            const TrustedProxies& trusted) {
  if (trusted.empty() || !trusted.contains(peer)) return peer;
  // Fields in order, entries in order: walk all of them right to left.
  IpAddress client = peer;
  const auto first = std::make_reverse_iterator(headers.end());
  const auto last = std::make_reverse_iterator(headers.begin());
  for (auto f = first; f != last; ++f) {
    if (!iequals(f->name, "x-forwarded-for")) continue;
    std::string_view list = f->value;
    while (true) {
      const size_t comma = list.rfind(',');
      const std::string_view entry =
          comma == std::string_view::npos ? list : list.substr(comma + 1);
      if (!trim_ows(entry).empty()) {
        const std::optional<IpAddress> hop = parse_forwarded_ip(entry);
        if (!hop) return client;
        client = *hop;
        if (!trusted.contains(client)) return client;
      }
      if (comma == std::string_view::npos) break;
      list = list.substr(0, comma);
    }
  }
  return client;
}

void set_forwarding_headers(HeaderMap& headers, const IpAddress& peer, bool peer_trusted,
                            const IpAddress& client, std::string_view scheme,
                            std::string_view authority) {
  const std::string hop = address_text(peer);
  if (!peer_trusted) {
    // Whatever the client said goes, in one pass over the fields (a set() per name was a
    // pass each, the most of this function's cost).
    headers.remove_any(
        {"x-forwarded-for", "x-real-ip", "forwarded", "x-forwarded-proto", "x-forwarded-host"});
    headers.add("x-forwarded-for", hop);
    headers.add("x-real-ip", hop);
    headers.add("x-forwarded-proto", scheme);
    if (!authority.empty()) headers.add("x-forwarded-host", authority);
    return;
  }
  // Several fields of one name are one list (RFC 9110 §5.3): join them, then append.
  auto append = [&headers](std::string_view name, std::string_view item) {
    std::string joined;
    for (const Header& f : headers) {
      if (!iequals(f.name, name)) continue;
      if (!joined.empty()) joined += ", ";
      joined += f.value;
    }
    if (joined.empty()) return false;
    headers.set(name, joined + ", " + std::string(item));
    return true;
  };
  if (!append("x-forwarded-for", hop)) headers.add("x-forwarded-for", hop);
  const std::string forwarded_for = peer.is_v6() ? "for=\"[" + hop + "]\"" : "for=" + hop;
  append("forwarded", forwarded_for);
  if (!headers.contains("x-real-ip")) headers.add("x-real-ip", address_text(client));
  if (!headers.contains("x-forwarded-proto")) headers.add("x-forwarded-proto", scheme);
  if (!headers.contains("x-forwarded-host") && !authority.empty()) {
    headers.add("x-forwarded-host", authority);
  }
}

}  // namespace sluice
