#pragma once
// The codec-independent HTTP message model: request and response heads that HTTP/1.1 and
// HTTP/2 codecs fill in and filters read and modify. Plain values, owned by their Stream.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

// The characters of two equally long strings, compared case-insensitively (ASCII).
bool iequals_chars(const char* a, const char* b, size_t n);
// Inline so that the usual outcome, names of different lengths, costs no call: a lookup by
// name over a browser's 15 fields compares mostly lengths.
inline bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && iequals_chars(a.data(), b.data(), a.size());
}

// A field of a HeaderMap. The views point into the map's own storage: they stay valid, even
// across later changes to the map, until the map is cleared or destroyed.
struct Header {
  std::string_view name;
  std::string_view value;
};

// Ordered multimap of headers; names compare case-insensitively. Small, so linear search
// over a contiguous vector beats hashing. The names and values are copied into blocks the map
// owns (an arena): a head's fields cost one or two allocations instead of up to two each, and
// are freed at once with the map.
class HeaderMap {
 public:
  HeaderMap() = default;
  HeaderMap(const HeaderMap& other);
  HeaderMap& operator=(const HeaderMap& other);
  // The blocks move with the fields: views into them stay valid.
  HeaderMap(HeaderMap&& other) noexcept;
  HeaderMap& operator=(HeaderMap&& other) noexcept;
  ~HeaderMap();

  void add(std::string_view name, std::string_view value);
  // Replaces every field named `name` by one with `value`.
  void set(std::string_view name, std::string_view value);
  // Gives the field at `index` (in order) a new value.
  void set_value(size_t index, std::string_view value);
  // Removes every field named `name`; returns how many were removed.
  size_t remove(std::string_view name);
  // Removes every field with any of these names, in one pass.
  void remove_any(std::initializer_list<std::string_view> names);
  // Removes every field for which pred(const Header&) is true; returns how many were removed.
  template <typename Pred>
  size_t remove_if(Pred&& pred) {
    const size_t before = fields_.size();
    std::erase_if(fields_, pred);
    return before - fields_.size();
  }
  // Lower-cases every field name in place (HTTP/2 sends only lower-case names).
  void lowercase_names();
  // First value named `name`, if any.
  std::optional<std::string_view> get(std::string_view name) const;
  size_t count(std::string_view name) const;
  bool contains(std::string_view name) const { return get(name).has_value(); }

  size_t size() const { return fields_.size(); }
  bool empty() const { return fields_.empty(); }
  void reserve(size_t fields) { fields_.reserve(fields); }
  // Removes every field; keeps the largest block for the fields that follow.
  void clear();
  const Header& operator[](size_t index) const { return fields_[index]; }
  auto begin() const { return fields_.begin(); }
  auto end() const { return fields_.end(); }

 private:
  struct Block;
  // `bytes` of free space in the map's blocks, taken.
  char* room(size_t bytes);
  // A copy of `s` in the map's blocks.
  std::string_view keep(std::string_view s);
  void free_blocks(Block* from) noexcept;

  std::vector<Header> fields_;
  Block* blocks_ = nullptr;  // newest (and largest) first
  char* free_ = nullptr;     // the unused end of blocks_
  size_t free_size_ = 0;
};

struct RequestHead {
  std::string method;
  std::string target;     // path and query, as sent (origin-form)
  std::string authority;  // Host header (HTTP/1.1) or :authority (HTTP/2)
  std::string scheme = "http";
  unsigned version = 11;  // 10 or 11 (HTTP/2 streams report 20)
  HeaderMap headers;
  // The protocol the client asks to switch to, lower case: HTTP/1.1 `Upgrade` (with
  // `Connection: upgrade`) or HTTP/2 extended CONNECT's `:protocol` (RFC 8441). Empty for an
  // ordinary request. The Upgrade and Connection fields themselves are hop-by-hop and are not
  // in `headers`.
  std::string upgrade;

  std::string_view path() const;   // target up to '?'
  std::string_view query() const;  // after '?', without it
};

struct ResponseHead {
  unsigned status = 200;
  std::string reason;  // empty: the standard reason phrase
  unsigned version = 11;
  HeaderMap headers;
};

// The host part of an authority, as written: "example.com:8080" -> "example.com", "[::1]:443" ->
// "[::1]" (brackets kept). An unbracketed IPv6 literal (more than one colon) has no port to
// strip and is returned whole.
std::string_view authority_host(std::string_view authority);

// The host and port of an authority ("example.com:8080", "[::1]:443", "example.com"): the host
// as authority_host() finds it, without IPv6 brackets; the port absent when not given or not a
// valid port number.
struct AuthorityParts {
  std::string_view host;
  std::optional<uint16_t> port;
};
AuthorityParts split_authority(std::string_view authority);

// Standard reason phrase for a status code ("Unknown" when there is none).
std::string_view reason_phrase(unsigned status);

// Responses that never carry a body, whatever their headers say (RFC 9110 §6.4.1).
inline bool status_has_no_body(unsigned status) {
  return status < 200 || status == 204 || status == 304;
}

// Header fields that describe one connection and must not be forwarded (RFC 9110 §7.6.1).
// Fields named in a Connection header are hop-by-hop too; callers remove those themselves.
bool is_hop_by_hop(std::string_view name);
// `s` without optional whitespace (SP, HTAB) at either end.
std::string_view trim_ows(std::string_view s);
// Calls fn(element) for each element of a comma-separated field value (RFC 9110 §5.6.1),
// trimmed, in order; empty elements ("a, ,b", a trailing comma) are skipped.
template <typename Fn>
void for_each_list_element(std::string_view value, Fn&& fn) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    const std::string_view element = trim_ows(value.substr(0, comma));
    if (!element.empty()) fn(element);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}
// Fields HTTP/2 forbids as connection-specific (RFC 9113 §8.2.2); TE, allowed there only as
// "trailers", is the caller's to check.
bool is_connection_specific(std::string_view name);

// Only sluice vouches for a client certificate: a client's own x-forwarded-client-cert is
// removed, and `verified` (the connection's verified certificate; empty: none) is added.
void set_forwarded_client_cert(HeaderMap& headers, std::string_view verified);

// HTTP/1.1 wire form: "name: value\r\n" for each field.
void append_fields(const HeaderMap& fields, std::string& out);
// The last chunk of a chunked body, carrying `trailers`: "0\r\n", the fields, "\r\n".
void append_last_chunk(const HeaderMap& trailers, std::string& out);

// The status class label used by metrics: "1xx" … "5xx".
std::string_view status_class(unsigned status);

}  // namespace sluice
