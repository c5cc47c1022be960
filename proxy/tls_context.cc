#include "proxy/tls_context.h"

#include "proxy/tls_ticket_keys.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>

#include <boost/asio/ssl/context.hpp>

namespace sluice {

namespace ssl = boost::asio::ssl;

namespace {

// Mozilla's "intermediate" TLS 1.2 suites: forward secret AEAD only. TLS 1.3 keeps OpenSSL's
// defaults, which are all strong.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

bool matches(std::string_view pattern, std::string_view name) {
  if (pattern == name) return true;
  // "*.example.com" covers exactly one more label: a.example.com, not a.b.example.com.
  if (pattern.size() > 2 && pattern.substr(0, 2) == "*.") {
    size_t dot = name.find('.');
    return dot != std::string_view::npos && dot > 0 && name.substr(dot) == pattern.substr(1);
  }
  return false;
}

int on_server_name(SSL* ssl, int*, void* arg) {
  const auto* self = static_cast<const TlsServerContext*>(arg);
  const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (sni == nullptr) return SSL_TLSEXT_ERR_OK;  // the first certificate
  std::string name(sni);
  for (char& c : name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  if (!name.empty() && name.back() == '.') name.pop_back();
  size_t i = self->pick(name);
  if (i != 0) SSL_set_SSL_CTX(ssl, self->context_at(i));
  return SSL_TLSEXT_ERR_OK;
}

int on_alpn(SSL*, const unsigned char** out, unsigned char* out_len, const unsigned char* in,
            unsigned int in_len, void* arg) {
  const auto* wire = static_cast<const std::string*>(arg);
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(
          &selected, out_len, reinterpret_cast<const unsigned char*>(wire->data()),
          static_cast<unsigned>(wire->size()), in, in_len) != OPENSSL_NPN_NEGOTIATED) {
    // No protocol in common: go on without ALPN, as nginx does; HTTP/1.1 is assumed.
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

TlsServerContext::~TlsServerContext() = default;

SSL_CTX* TlsServerContext::context_at(size_t i) const { return contexts_[i]->native_handle(); }

size_t TlsServerContext::pick(std::string_view server_name) const {
  for (size_t i = 0; i < names_.size(); ++i) {
    for (const auto& n : names_[i]) {
      if (n == server_name) return i;
    }
  }
  for (size_t i = 0; i < names_.size(); ++i) {
    for (const auto& n : names_[i]) {
      if (matches(n, server_name)) return i;
    }
  }
  return 0;
}

TlsServerContextPtr TlsServerContext::build(const config::Listener& listener, std::string* error) {
  const config::ListenerTls& tls = *listener.tls;
  std::shared_ptr<TlsServerContext> self(new TlsServerContext());
  for (const auto& p : tls.alpn) {
    self->alpn_wire_ += static_cast<char>(p.size());
    self->alpn_wire_ += p;
  }
  ERR_clear_error();
  for (const config::Certificate& cert : tls.certificates) {
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
    SSL_CTX* c = ctx->native_handle();
    auto fail = [&](const std::string& what) {
      *error = "listener " + listener.name + ": " + what + ": " + openssl_error();
      return nullptr;
    };
    SSL_CTX_set_min_proto_version(c, tls.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(
        c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    // No SSL_MODE_RELEASE_BUFFERS: it frees and reallocates the record buffers around every
    // write. A connection gives them back itself when it goes idle (TlsSession::release_buffers).
    if (SSL_CTX_set_cipher_list(c, kTls12Ciphers) != 1) return fail("ciphers");
    if (SSL_CTX_use_certificate_chain_file(c, cert.cert_file.c_str()) != 1) {
      return fail("cert_file " + cert.cert_file);
    }
    if (SSL_CTX_use_PrivateKey_file(c, cert.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return fail("key_file " + cert.key_file);
    }
    if (SSL_CTX_check_private_key(c) != 1) return fail("key_file " + cert.key_file);
    // Session resumption: a server-side cache (per context, so per generation) and tickets
    // sealed with process-wide rotating keys (so they survive reloads).
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
    TicketKeys::attach(c);
    const auto* sid = reinterpret_cast<const unsigned char*>(listener.name.data());
    SSL_CTX_set_session_id_context(
        c, sid,
        static_cast<unsigned>(std::min<size_t>(listener.name.size(), SSL_MAX_SID_CTX_LENGTH)));
    if (tls.client_auth.mode != config::ClientAuth::Mode::none) {
      const char* ca = tls.client_auth.ca_file.c_str();
      if (SSL_CTX_load_verify_locations(c, ca, nullptr) != 1)
        return fail("ca_file " + tls.client_auth.ca_file);
      // The CA names go in the CertificateRequest, so clients know which certificate to send.
      if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca)) {
        SSL_CTX_set_client_CA_list(c, names);
      }
      int mode = SSL_VERIFY_PEER;
      if (tls.client_auth.mode == config::ClientAuth::Mode::require) {
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
      }
      // A certificate that is sent but does not verify fails the handshake in both modes.
      SSL_CTX_set_verify(c, mode, nullptr);
      SSL_CTX_set_verify_depth(c, 4);
    }
    SSL_CTX_set_tlsext_servername_callback(c, on_server_name);
    SSL_CTX_set_tlsext_servername_arg(c, self.get());
    SSL_CTX_set_alpn_select_cb(c, on_alpn, &self->alpn_wire_);
    self->contexts_.push_back(std::move(ctx));
    self->names_.push_back(cert.names);
  }
  if (self->contexts_.empty()) {
    *error = "listener " + listener.name + ": tls has no certificates";
    return nullptr;
  }
  return self;
}

}  // namespace sluice
