#include "proxy/tls_ticket_keys.h"

#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <cstring>
#include <mutex>

namespace sluice {
namespace {

struct Key {
  unsigned char name[16];
  unsigned char aes[32];
  unsigned char hmac[32];
  std::chrono::steady_clock::time_point created;
};

class KeyRing {
 public:
  // Returns the key to seal with, rotating first when it is due.
  Key current() {
    std::lock_guard lock(mutex_);
    auto now = std::chrono::steady_clock::now();
    if (!have_current_ || now - current_.created >= TicketKeys::kRotation) {
      previous_ = current_;
      have_previous_ = have_current_;
      have_current_ = fresh(current_, now);
    }
    return current_;
  }
  // The key named `name`; `*renew` when it is the previous one.
  bool find(const unsigned char* name, Key& out, bool* renew) {
    std::lock_guard lock(mutex_);
    if (have_current_ && std::memcmp(name, current_.name, sizeof(current_.name)) == 0) {
      out = current_;
      *renew = false;
      return true;
    }
    if (have_previous_ && std::memcmp(name, previous_.name, sizeof(previous_.name)) == 0 &&
        std::chrono::steady_clock::now() - previous_.created < 2 * TicketKeys::kRotation) {
      out = previous_;
      *renew = true;
      return true;
    }
    return false;
  }

 private:
  static bool fresh(Key& k, std::chrono::steady_clock::time_point now) {
    k.created = now;
    return RAND_bytes(k.name, sizeof(k.name)) == 1 && RAND_bytes(k.aes, sizeof(k.aes)) == 1 &&
           RAND_bytes(k.hmac, sizeof(k.hmac)) == 1;
  }

  std::mutex mutex_;
  Key current_{};
  Key previous_{};
  bool have_current_ = false;
  bool have_previous_ = false;
};

KeyRing& ring() {
  static KeyRing* r = new KeyRing();  // never destroyed: handshakes may run during exit
  return *r;
}

bool set_hmac_key(EVP_MAC_CTX* hctx, unsigned char* key) {
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, 32),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end(),
  };
  return EVP_MAC_CTX_set_params(hctx, params) == 1;
}

// OpenSSL's contract: sealing returns 1 (or <0 on error); opening returns 0 for an unknown
// key (full handshake), 1 to accept, 2 to accept and issue a new ticket.
int on_ticket(SSL*, unsigned char* key_name, unsigned char* iv, EVP_CIPHER_CTX* cctx,
              EVP_MAC_CTX* hctx, int seal) {
  if (seal) {
    Key k = ring().current();
    if (RAND_bytes(iv, 16) != 1) return -1;
    std::memcpy(key_name, k.name, sizeof(k.name));
    if (EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), nullptr, k.aes, iv) != 1) return -1;
    return set_hmac_key(hctx, k.hmac) ? 1 : -1;
  }
  Key k;
  bool renew = false;
  if (!ring().find(key_name, k, &renew)) return 0;
  if (!set_hmac_key(hctx, k.hmac)) return -1;
  if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), nullptr, k.aes, iv) != 1) return -1;
  return renew ? 2 : 1;
}

}  // namespace

void TicketKeys::attach(SSL_CTX* ctx) { SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket); }

}  // namespace sluice
