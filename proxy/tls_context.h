#pragma once
// Server-side TLS for one listener in one config generation: an OpenSSL context per
// certificate, the one served picked by SNI against the certificate's names (exact first,
// then "*." wildcards, else the first certificate). Built on the main thread with the
// snapshot; workers only create connections from it, which OpenSSL allows concurrently.
// A reload builds new contexts: new handshakes use them, open connections keep theirs.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

struct ssl_ctx_st;
namespace boost::asio::ssl {
class context;
}

namespace sluice {

class TlsServerContext {
 public:
  // Null with `error` set when OpenSSL refuses the files or settings.
  static std::shared_ptr<const TlsServerContext> build(const config::Listener& listener,
                                                       std::string* error);
  ~TlsServerContext();

  // The context new connections start with (the SNI callback may switch it).
  boost::asio::ssl::context& context() const { return *contexts_.front(); }
  // Index of the certificate served for `server_name` (lower case, no trailing dot).
  size_t pick(std::string_view server_name) const;
  ssl_ctx_st* context_at(size_t i) const;

 private:
  TlsServerContext() = default;
  std::vector<std::unique_ptr<boost::asio::ssl::context>> contexts_;
  std::vector<std::vector<std::string>> names_;  // parallel to contexts_
  std::string alpn_wire_;                        // ALPN protocols, length-prefixed
};

using TlsServerContextPtr = std::shared_ptr<const TlsServerContext>;

}  // namespace sluice
