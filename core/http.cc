#include "core/http.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>

namespace sluice {

namespace {
// ASCII only, as HTTP field names are; no locale lookup per character.
inline char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }
constexpr size_t kTypicalFields = 16;
}  // namespace

bool iequals_chars(const char* a, const char* b, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i] && ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

// A block's bytes follow it in the same allocation.
struct HeaderMap::Block {
  Block* next;
  size_t size;
  char* bytes() { return reinterpret_cast<char*>(this + 1); }
};

namespace {
// Holds a browser's request head or a typical response head (most are well under this).
constexpr size_t kFirstBlockBytes = 1024 - 2 * sizeof(void*);
}  // namespace

HeaderMap::HeaderMap(const HeaderMap& other) {
  fields_.reserve(other.fields_.size());
  for (const Header& h : other.fields_) add(h.name, h.value);
}

HeaderMap& HeaderMap::operator=(const HeaderMap& other) {
  if (this != &other) {
    HeaderMap copy(other);
    *this = std::move(copy);
  }
  return *this;
}

HeaderMap::HeaderMap(HeaderMap&& other) noexcept
    : fields_(std::move(other.fields_)),
      blocks_(std::exchange(other.blocks_, nullptr)),
      free_(std::exchange(other.free_, nullptr)),
      free_size_(std::exchange(other.free_size_, 0)) {
  other.fields_.clear();
}

HeaderMap& HeaderMap::operator=(HeaderMap&& other) noexcept {
  if (this != &other) {
    free_blocks(blocks_);
    fields_ = std::move(other.fields_);
    other.fields_.clear();
    blocks_ = std::exchange(other.blocks_, nullptr);
    free_ = std::exchange(other.free_, nullptr);
    free_size_ = std::exchange(other.free_size_, 0);
  }
  return *this;
}

HeaderMap::~HeaderMap() { free_blocks(blocks_); }

void HeaderMap::free_blocks(Block* from) noexcept {
  while (from) {
    Block* next = from->next;
    ::operator delete(from);
    from = next;
  }
}

char* HeaderMap::room(size_t bytes) {
  if (bytes > free_size_) {
    // Each block at least doubles the last, so a head of n bytes takes O(log n) blocks.
    const size_t size = std::max(bytes, blocks_ ? 2 * blocks_->size : kFirstBlockBytes);
    auto* block = new (::operator new(sizeof(Block) + size)) Block{blocks_, size};
    blocks_ = block;
    free_ = block->bytes();
    free_size_ = size;
  }
  char* at = free_;
  free_ += bytes;
  free_size_ -= bytes;
  return at;
}

std::string_view HeaderMap::keep(std::string_view s) {
  if (s.empty()) return {"", 0};  // not a null pointer: nghttp2 and memcpy take it
  char* at = room(s.size());
  std::memcpy(at, s.data(), s.size());
  return {at, s.size()};
}

void HeaderMap::add(std::string_view name, std::string_view value) {
  // One allocation for a typical head instead of five while the vector doubles.
  if (fields_.capacity() == 0) fields_.reserve(kTypicalFields);
  if (name.empty() || value.empty()) {
    const std::string_view kept_name = keep(name);
    fields_.push_back(Header{kept_name, keep(value)});
    return;
  }
  // Name and value side by side, with one test for room.
  char* at = room(name.size() + value.size());
  std::memcpy(at, name.data(), name.size());
  std::memcpy(at + name.size(), value.data(), value.size());
  fields_.push_back(Header{{at, name.size()}, {at + name.size(), value.size()}});
}

void HeaderMap::set(std::string_view name, std::string_view value) {
  remove(name);
  add(name, value);
}

void HeaderMap::set_value(size_t index, std::string_view value) {
  fields_.at(index).value = keep(value);
}

void HeaderMap::lowercase_names() {
  for (Header& h : fields_) {
    // The names are the map's own copies, in its blocks: writable.
    char* c = const_cast<char*>(h.name.data());
    for (size_t i = 0; i < h.name.size(); ++i) c[i] = ascii_lower(c[i]);
  }
}

void HeaderMap::clear() {
  fields_.clear();
  if (!blocks_) return;
  free_blocks(blocks_->next);
  blocks_->next = nullptr;
  free_ = blocks_->bytes();
  free_size_ = blocks_->size;
}

size_t HeaderMap::remove(std::string_view name) {
  auto it = std::remove_if(fields_.begin(), fields_.end(),
                           [&](const Header& h) { return iequals(h.name, name); });
  size_t removed = static_cast<size_t>(fields_.end() - it);
  fields_.erase(it, fields_.end());
  return removed;
}

void HeaderMap::remove_any(std::initializer_list<std::string_view> names) {
  // A bit per name length: most fields are told apart by one test instead of one per name.
  uint64_t lengths = 0;
  for (std::string_view n : names)
    lengths |= n.size() < 64 ? uint64_t{1} << n.size() : ~uint64_t{0};
  fields_.erase(std::remove_if(fields_.begin(), fields_.end(),
                               [&](const Header& h) {
                                 const size_t size = h.name.size();
                                 if (size < 64 && ((lengths >> size) & 1) == 0) return false;
                                 for (std::string_view n : names) {
                                   if (iequals(h.name, n)) return true;
                                 }
                                 return false;
                               }),
                fields_.end());
}

std::optional<std::string_view> HeaderMap::get(std::string_view name) const {
  for (const auto& h : fields_) {
    if (iequals(h.name, name)) return std::string_view(h.value);
  }
  return std::nullopt;
}

size_t HeaderMap::count(std::string_view name) const {
  return static_cast<size_t>(std::count_if(fields_.begin(), fields_.end(),
                                           [&](const Header& h) { return iequals(h.name, name); }));
}

std::string_view RequestHead::path() const {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

std::string_view RequestHead::query() const {
  std::string_view t = target;
  auto q = t.find('?');
  return q == std::string_view::npos ? std::string_view() : t.substr(q + 1);
}

std::string_view reason_phrase(unsigned status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 103:
      return "Early Hints";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 421:
      return "Misdirected Request";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

bool is_hop_by_hop(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "connection", "keep-alive",        "proxy-connection", "te",
      "trailer",    "transfer-encoding", "upgrade",
  };
  for (auto n : kNames) {
    if (iequals(n, name)) return true;
  }
  return false;
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_connection_specific(std::string_view name) {
  return iequals(name, "connection") || iequals(name, "keep-alive") ||
         iequals(name, "proxy-connection") || iequals(name, "transfer-encoding") ||
         iequals(name, "upgrade");
}

std::string_view status_class(unsigned status) {
  static constexpr std::string_view kClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  if (status < 100 || status > 599) return "5xx";
  return kClasses[status / 100 - 1];
}

void set_forwarded_client_cert(HeaderMap& headers, std::string_view verified) {
  headers.remove("x-forwarded-client-cert");
  if (!verified.empty()) headers.add("x-forwarded-client-cert", verified);
}

void append_fields(const HeaderMap& fields, std::string& out) {
  // One growth and plain copies: four appends per field each checked the capacity and could
  // reallocate, the largest cost of writing a head.
  size_t size = 0;
  for (const auto& h : fields) size += h.name.size() + h.value.size() + 4;
  size_t at = out.size();
  out.resize(at + size);
  char* p = out.data() + at;
  for (const auto& h : fields) {
    p = std::copy(h.name.begin(), h.name.end(), p);
    *p++ = ':';
    *p++ = ' ';
    p = std::copy(h.value.begin(), h.value.end(), p);
    *p++ = '\r';
    *p++ = '\n';
  }
}

void append_last_chunk(const HeaderMap& trailers, std::string& out) {
  out += "0\r\n";
  append_fields(trailers, out);
  out += "\r\n";
}

std::string_view authority_host(std::string_view authority) {
  if (authority.starts_with('[')) {
    size_t close = authority.find(']');
    return close == std::string_view::npos ? authority : authority.substr(0, close + 1);
  }
  size_t colon = authority.find(':');
  // More than one colon: an unbracketed IPv6 literal, which has no port to strip.
  if (colon == std::string_view::npos || authority.find(':', colon + 1) != std::string_view::npos) {
    return authority;
  }
  return authority.substr(0, colon);
}

AuthorityParts split_authority(std::string_view authority) {
  std::string_view host = authority_host(authority);
  std::string_view rest = authority.substr(host.size());
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::optional<uint16_t> port;
  if (rest.size() >= 2 && rest.size() <= 6 && rest.front() == ':' &&
      rest.find_first_not_of("0123456789", 1) == std::string_view::npos) {
    const unsigned n = static_cast<unsigned>(std::stoul(std::string(rest.substr(1))));
    if (n > 0 && n <= 65535) port = static_cast<uint16_t>(n);
  }
  return {host, port};
}

}  // namespace sluice
