#include "core/tls_session.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <climits>

namespace sluice {

TlsSession::TlsSession(SSL_CTX* ctx) : ssl_(SSL_new(ctx)) {
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  // An empty input BIO means "wait for the socket", not end of file.
  BIO_set_mem_eof_return(in_, -1);
  BIO_set_mem_eof_return(out_, -1);
  SSL_set_bio(ssl_, in_, out_);  // ssl_ owns both now
  SSL_set_accept_state(ssl_);
}

TlsSession::TlsSession(SSL_CTX* ctx, const std::string& sni, const std::string& verify_name)
    : TlsSession(ctx) {
  SSL_set_connect_state(ssl_);
  if (!sni.empty()) SSL_set_tlsext_host_name(ssl_, sni.c_str());
  if (!verify_name.empty()) {
    // An IP literal is matched against the certificate's IP SANs, a name against DNS SANs.
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
    if (X509_VERIFY_PARAM_set1_ip_asc(param, verify_name.c_str()) != 1) {
      SSL_set1_host(ssl_, verify_name.c_str());
    }
    ERR_clear_error();
  }
}

TlsSession::~TlsSession() { SSL_free(ssl_); }

void TlsSession::put_input(std::string_view ciphertext) {
  if (!ciphertext.empty()) BIO_write(in_, ciphertext.data(), static_cast<int>(ciphertext.size()));
}

TlsSession::Result TlsSession::fail(std::string_view what, int ssl_error) {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  error_ = std::string(what);
  if (e != 0) {
    const char* reason = ERR_reason_error_string(e);
    error_ += ": ";
    error_ += reason ? reason : "unknown";
  } else if (ssl_error == SSL_ERROR_SYSCALL) {
    error_ += ": unexpected end of stream";
  }
  return Result::error;
}

TlsSession::Result TlsSession::read(char* out, size_t capacity, size_t* produced) {
  *produced = 0;
  if (!handshake_done_) {
    int rc = SSL_do_handshake(ssl_);
    if (rc != 1) {
      int err = SSL_get_error(ssl_, rc);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return Result::ok;
      return fail("TLS handshake failed", err);
    }
    handshake_done_ = true;
  }
  while (*produced < capacity) {
    size_t n = 0;
    int rc = SSL_read_ex(ssl_, out + *produced, capacity - *produced, &n);
    if (rc == 1) {
      *produced += n;
      continue;
    }
    int err = SSL_get_error(ssl_, rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) break;
    if (err == SSL_ERROR_ZERO_RETURN) return *produced > 0 ? Result::ok : Result::closed;
    return fail("TLS read failed", err);
  }
  return Result::ok;
}

TlsSession::Result TlsSession::decrypt_in_place(char* buf, size_t* n, size_t capacity) {
  put_input({buf, *n});
  Result r = read(buf, capacity, n);
  more_ = r == Result::ok && *n == capacity;
  return r;
}

TlsSession::Result TlsSession::write(std::string_view plaintext) {
  while (!plaintext.empty()) {
    size_t n = 0;
    // Memory BIOs grow as needed, so a write never waits.
    int rc = SSL_write_ex(ssl_, plaintext.data(), plaintext.size(), &n);
    if (rc != 1) return fail("TLS write failed", SSL_get_error(ssl_, rc));
    plaintext.remove_prefix(n);
  }
  return Result::ok;
}

void TlsSession::release_buffers() {
  if (handshake_done_) SSL_free_buffers(ssl_);  // refuses (harmlessly) while bytes are held
}

void TlsSession::shutdown() {
  if (handshake_done_) SSL_shutdown(ssl_);
  ERR_clear_error();
}

void TlsSession::take_output(std::string& out) {
  char* data = nullptr;
  long len = BIO_get_mem_data(out_, &data);
  if (len <= 0) return;
  out.append(data, static_cast<size_t>(len));
  (void)BIO_reset(out_);
}

bool TlsSession::has_output() const { return BIO_ctrl_pending(out_) > 0; }

bool TlsSession::has_plaintext() const {
  return SSL_pending(ssl_) > 0 || (handshake_done_ && BIO_ctrl_pending(in_) > 0);
}

const char* TlsSession::version() const { return SSL_get_version(ssl_); }

std::string_view TlsSession::alpn() const {
  const unsigned char* p = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(ssl_, &p, &len);
  return p ? std::string_view(reinterpret_cast<const char*>(p), len) : std::string_view();
}

std::string TlsSession::client_certificate() const {
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (cert == nullptr || SSL_get_verify_result(ssl_) != X509_V_OK) return "";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned md_len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &md_len) != 1) return "";
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "Hash=";
  for (unsigned i = 0; i < md_len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  BIO* mem = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long len = BIO_get_mem_data(mem, &data);
  std::string subject(data, static_cast<size_t>(len > 0 ? len : 0));
  BIO_free(mem);
  out += ";Subject=\"";
  for (char c : subject) {
    if (c == '"' || c == '\\') out += '\\';  // quoted-string escaping
    if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) out += c;
  }
  out += '"';
  return out;
}

std::string_view TlsSession::server_name() const {
  const char* n = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
  return n ? std::string_view(n) : std::string_view();
}

}  // namespace sluice
