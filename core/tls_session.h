#pragma once
// TLS for one connection over memory BIOs, server side (downstream) or client side (HTTPS
// upstreams): the connection reads and writes the socket itself and passes ciphertext through
// here. No I/O here, only bytes in and out. Keeping the socket I/O in the connection keeps its
// idle-wait-without-buffer scheme and gathered writes for TLS too, and makes "anything
// buffered?" answerable: only OpenSSL's own state can hold bytes.
// Owned by its connection; used on the connection's worker thread only.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

struct ssl_st;
struct ssl_ctx_st;
struct bio_st;

namespace sluice {

class TlsSession {
 public:
  // Server side.
  explicit TlsSession(ssl_ctx_st* ctx);
  // Client side: sends `sni` (if not empty) and, when `verify_name` (a DNS name or an IP
  // literal) is set, checks the server's certificate against it (the context decides whether
  // verification happens at all).
  TlsSession(ssl_ctx_st* ctx, const std::string& sni, const std::string& verify_name);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  enum class Result {
    ok,      // progress made (possibly zero plaintext bytes)
    closed,  // the peer sent close_notify
    error,   // fatal: a bad handshake or record; error() says why
  };

  // Takes ciphertext that arrived on the socket.
  void put_input(std::string_view ciphertext);
  // Advances the handshake, then decrypts into [out, out + capacity). `*produced` is the
  // plaintext length. After a full buffer call again: more may be ready (has_plaintext()).
  Result read(char* out, size_t capacity, size_t* produced);
  // The connections' receive step: the `n` ciphertext bytes just read into `buf` go in, and
  // the plaintext comes back over them, up to `capacity` bytes (plaintext is never longer
  // than the ciphertext it came from). `*n` becomes the plaintext length.
  Result decrypt_in_place(char* buf, size_t* n, size_t capacity);
  // The last decrypt filled its capacity: more plaintext may wait inside OpenSSL, so read
  // again before waiting on the socket.
  bool more() const { return more_; }
  // Encrypts `plaintext` (all of it) and appends records to the output.
  Result write(std::string_view plaintext);
  // Queues a close_notify alert.
  void shutdown();
  // Appends ciphertext waiting to go to the socket (handshake messages, records, alerts).
  void take_output(std::string& out);
  bool has_output() const;

  // Frees OpenSSL's record buffers while nothing is buffered in them, and the session's own
  // empty input and output strings: for idle connections, which then cost no buffer memory
  // until their next record.
  void release_buffers();

  bool handshake_done() const { return handshake_done_; }
  // Decrypted bytes or whole records are waiting inside OpenSSL: read() before waiting on
  // the socket.
  bool has_plaintext() const;
  std::string_view alpn() const;
  // The negotiated protocol version ("TLSv1.3"), a static string; once the handshake is done.
  const char* version() const;
  std::string_view server_name() const;
  // The verified client certificate as an x-forwarded-client-cert element,
  // `Hash=<sha256 of DER, hex>;Subject="<RFC 2253 subject>"`, or "" when none was sent.
  std::string client_certificate() const;
  const std::string& error() const { return error_; }
  // Why it failed, without what failed: error() is "TLS handshake failed: <reason>". A failed
  // certificate check names the check ("certificate verify failed (hostname mismatch)").
  const std::string& error_reason() const { return reason_; }

 private:
  Result fail(std::string_view what, int ssl_error);
  struct Io;  // the BIO between ssl_ and the members below

  ssl_st* ssl_ = nullptr;
  // Ciphertext from the peer not yet taken by OpenSSL: kept bytes (from input_used_ on), then
  // the caller's buffer during decrypt_in_place.
  std::string input_;
  size_t input_used_ = 0;
  std::string_view view_;
  std::string output_;  // ciphertext to the peer
  bool handshake_done_ = false;
  bool more_ = false;
  std::string error_;
  std::string reason_;
};

// A client connection's names: sends `sni` (if not empty) and, when `verify_name` (a DNS name or
// an IP literal) is set, has the server's certificate checked against it: an IP literal against
// the certificate's IP SANs, a name against its DNS SANs. Used by TlsSession and by clients
// on other TLS stacks (the tracing exporter's Beast stream).
void set_client_names(ssl_st* ssl, const std::string& sni, const std::string& verify_name);

}  // namespace sluice
