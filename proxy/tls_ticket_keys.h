#pragma once
// Session-ticket keys shared by every TLS context in the process. Tickets are sealed with the
// current key and accepted under the current or the previous one (and then renewed), the keys
// rotate every kRotation, so a ticket stays valid for at most two rotations and a stolen key
// exposes little. Being process-wide, they survive config reloads: clients keep resuming.
// Called from OpenSSL on any worker thread during handshakes (not per request): a mutex.
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <chrono>

namespace sluice {

class TicketKeys {
 public:
  static constexpr std::chrono::hours kRotation{12};

  // Installs the ticket callback on `ctx`.
  static void attach(SSL_CTX* ctx);
};

}  // namespace sluice
