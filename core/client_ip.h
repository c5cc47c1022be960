#pragma once
// Who the client is. The peer of a connection is the client unless it is a trusted proxy (a
// load balancer in front of sluice); then the client is found in X-Forwarded-For, walking from
// the right past every trusted proxy. Every consumer (rate-limit keys, the access log,
// X-Forwarded-For to the backend) uses the one value computed here. Pure functions; any thread.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>

#include "core/http.h"

namespace sluice {

using IpAddress = boost::asio::ip::address;

// An IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4 peer) as plain IPv4, so
// "::ffff:10.0.0.1" and "10.0.0.1" are one client.
IpAddress unmap_v4(const IpAddress& ip);

// A literal address as found in X-Forwarded-For: "192.0.2.1", "2001:db8::1", "[2001:db8::1]",
// with an optional ":port" after an IPv4 or bracketed IPv6 address. Nullopt when it is not one.
std::optional<IpAddress> parse_forwarded_ip(std::string_view s);

// "ip:port", IPv6 in brackets.
std::string format_endpoint(const IpAddress& ip, uint16_t port);

class TrustedProxies {
 public:
  // "10.0.0.0/8", "2001:db8::/32", or a single address (a /32 or /128). On a bad value returns
  // false and sets `error` to what is wrong.
  bool add(std::string_view cidr, std::string* error);
  bool contains(const IpAddress& ip) const;
  bool empty() const { return v4_.empty() && v6_.empty(); }
  // As configured, for the admin API.
  const std::vector<std::string>& entries() const { return entries_; }
  bool operator==(const TrustedProxies& o) const { return entries_ == o.entries_; }

 private:
  std::vector<boost::asio::ip::network_v4> v4_;
  std::vector<boost::asio::ip::network_v6> v6_;
  std::vector<std::string> entries_;
};

// The client of a request that came from `peer`. When the peer is not a trusted proxy it is
// the client, whatever the request claims. Otherwise every X-Forwarded-For field (in order) is
// read right to left: the first entry that is not a trusted proxy is the client; an entry that
// is not an address stops the walk and the last trusted hop is the client (nothing left of a
// malformed entry can be believed); if every entry is trusted, the leftmost is the client.
IpAddress resolve_client_ip(const IpAddress& peer, const HeaderMap& headers,
                            const TrustedProxies& trusted);

// The forwarding fields of a request going upstream. From a peer that is not a trusted proxy
// nothing the client claims survives: X-Forwarded-For and X-Real-IP become the peer,
// X-Forwarded-Proto and -Host this hop's scheme and authority, and Forwarded is removed (it
// would otherwise pass as if true). From a trusted proxy its fields are kept, the peer is
// appended to X-Forwarded-For (and to Forwarded, if present), and absent ones are filled in
// (X-Real-IP with `client`, the resolved client).
// At most this many fields more than `headers` had.
inline constexpr size_t kForwardingFields = 4;
void set_forwarding_headers(HeaderMap& headers, const IpAddress& peer, bool peer_trusted,
                            const IpAddress& client, std::string_view scheme,
                            std::string_view authority);

}  // namespace sluice
