#include "core/tls_session.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "core/hex.h"

namespace sluice {

// The session's transport, one BIO for both directions: reads come from the session's input
// (the caller's buffer during decrypt_in_place, else the bytes kept from an earlier call), and
// writes append to its output string. Unlike a pair of memory BIOs, nothing of OpenSSL's holds
// a buffer between calls (two memory BIOs kept about 1 KB while idle: the largest flight
// written, the handshake's) and ciphertext is not copied through them.
struct TlsSession::Io {
  static int read(BIO* b, char* out, size_t len, size_t* done) {
    auto* s = static_cast<TlsSession*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    size_t n = 0;
    if (!s->input_.empty()) {
      n = std::min(len, s->input_.size() - s->input_used_);
      std::memcpy(out, s->input_.data() + s->input_used_, n);
      s->input_used_ += n;
      if (s->input_used_ == s->input_.size()) {
        s->input_.clear();
        s->input_used_ = 0;
      }
    } else if (!s->view_.empty()) {
      n = std::min(len, s->view_.size());
      std::memcpy(out, s->view_.data(), n);
      s->view_.remove_prefix(n);
    }
    *done = n;
    if (n == 0) {
      BIO_set_retry_read(b);  // "wait for the socket", not end of file
      return 0;
    }
    return 1;
  }
  static int write(BIO* b, const char* in, size_t len, size_t* done) {
    auto* s = static_cast<TlsSession*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    s->output_.append(in, len);
    *done = len;
    return 1;
  }
  static long ctrl(BIO* b, int cmd, long, void*) {
    auto* s = static_cast<TlsSession*>(BIO_get_data(b));
    switch (cmd) {
      case BIO_CTRL_FLUSH:
        return 1;
      case BIO_CTRL_PENDING:
        return static_cast<long>(s->input_.size() - s->input_used_ + s->view_.size());
      case BIO_CTRL_WPENDING:
        return static_cast<long>(s->output_.size());
      default:
        return 0;
    }
  }
  static BIO_METHOD* method() {
    static BIO_METHOD* m = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sluice tls");
      BIO_meth_set_read_ex(m, read);
      BIO_meth_set_write_ex(m, write);
      BIO_meth_set_ctrl(m, ctrl);
      BIO_meth_set_create(m, [](BIO* b) {
        BIO_set_init(b, 1);
        return 1;
      });
      return m;
    }();
    return m;
  }
};

TlsSession::TlsSession(SSL_CTX* ctx) : ssl_(SSL_new(ctx)) {
  BIO* bio = BIO_new(Io::method());
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);  // ssl_ owns it now, as its read and its write BIO
  SSL_set_accept_state(ssl_);
}

TlsSession::TlsSession(SSL_CTX* ctx, const std::string& sni, const std::string& verify_name)
    : TlsSession(ctx) {
  SSL_set_connect_state(ssl_);
  set_client_names(ssl_, sni, verify_name);
}

void set_client_names(SSL* ssl, const std::string& sni, const std::string& verify_name) {
  if (!sni.empty()) SSL_set_tlsext_host_name(ssl, sni.c_str());
  if (!verify_name.empty()) {
    // An IP literal is matched against the certificate's IP SANs, a name against DNS SANs.
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (X509_VERIFY_PARAM_set1_ip_asc(param, verify_name.c_str()) != 1) {
      SSL_set1_host(ssl, verify_name.c_str());
    }
    ERR_clear_error();
  }
}

TlsSession::~TlsSession() { SSL_free(ssl_); }

void TlsSession::put_input(std::string_view ciphertext) {
  if (input_used_ > 0) {
    input_.erase(0, input_used_);
    input_used_ = 0;
  }
  input_.append(ciphertext);
}

TlsSession::Result TlsSession::fail(std::string_view what, int ssl_error) {
  // The last error is the TLS layer's own reason; earlier ones are what led to it (an EVP
  // failure under a certificate check reads "EVP lib").
  unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  reason_.clear();
  if (e != 0) {
    const char* reason = ERR_reason_error_string(e);
    reason_ = reason ? reason : "unknown";
    // "certificate verify failed" alone does not say which check: the chain, the name, dates.
    const long verify = SSL_get_verify_result(ssl_);
    if (ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED && verify != X509_V_OK) {
      reason_ += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
    }
  } else if (ssl_error == SSL_ERROR_SYSCALL) {
    reason_ = "unexpected end of stream";
  }
  error_ = std::string(what);
  if (!reason_.empty()) error_ += ": " + reason_;
  return Result::error;
}

TlsSession::Result TlsSession::read(char* out, size_t capacity, size_t* produced) {
  *produced = 0;
  if (!handshake_done_) {
    // SSL_get_error() is right, and the reason reported is this handshake's, only with an
    // empty error queue: a thread that does other OpenSSL work (the control thread loads
    // configs and runs health probes) may have left an error behind.
    ERR_clear_error();
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
  // Read straight from `buf`: with read-ahead off OpenSSL takes one record at a time and
  // writes its plaintext only after taking all of its ciphertext, so the plaintext (shorter
  // by a header and a tag per record) never overtakes the ciphertext still unread. Unless
  // OpenSSL already holds part of a record, or plaintext, from an earlier call: the first
  // plaintext written can then be longer than the ciphertext taken from `buf` so far, and
  // the ciphertext is copied aside first (as memory BIOs always did).
  if (input_.empty() && SSL_has_pending(ssl_) == 0) {
    view_ = {buf, *n};
  } else {
    put_input({buf, *n});  // after bytes kept from an earlier call
  }
  Result r = read(buf, capacity, n);
  if (!view_.empty()) {
    // Not taken yet (the plaintext filled the capacity): kept, the caller reuses `buf`.
    put_input(view_);
    view_ = {};
  }
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
  if (output_.empty()) std::string().swap(output_);
  if (input_.empty()) std::string().swap(input_);
}

void TlsSession::shutdown() {
  if (handshake_done_) SSL_shutdown(ssl_);
  ERR_clear_error();
}

void TlsSession::take_output(std::string& out) {
  if (out.empty()) {
    out.swap(output_);  // no copy; the session keeps the caller's old buffer
  } else {
    out.append(output_);
  }
  output_.clear();
}

bool TlsSession::has_output() const { return !output_.empty(); }

bool TlsSession::has_plaintext() const {
  return SSL_pending(ssl_) > 0 || (handshake_done_ && input_.size() > input_used_);
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
  std::string out = "Hash=";
  append_hex(out, md, md_len);
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
