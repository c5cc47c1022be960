// core/tls_session.h: a server and a client session talking through strings, records
// delivered whole, coalesced or split, decrypted in place, and buffers released while idle.
#include "core/tls_session.h"

#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <string>

namespace sluice {
namespace {

class TlsSessionTest : public ::testing::Test {
 protected:
  TlsSessionTest() {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_sign(cert, key, EVP_sha256());
    server_ctx_ = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(server_ctx_, cert);
    SSL_CTX_use_PrivateKey(server_ctx_, key);
    client_ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(client_ctx_, TLS1_3_VERSION);
    X509_free(cert);
    EVP_PKEY_free(key);
    server_ = std::make_unique<TlsSession>(server_ctx_);
    client_ = std::make_unique<TlsSession>(client_ctx_, "localhost", "");
  }
  ~TlsSessionTest() override {
    server_.reset();
    client_.reset();
    SSL_CTX_free(server_ctx_);
    SSL_CTX_free(client_ctx_);
  }

  // What `from` has queued, delivered to `to` in pieces of at most `piece` bytes, each
  // decrypted in place as a connection does (reading again while more() says the capacity
  // was filled); returns the plaintext.
  static std::string deliver(TlsSession& from, TlsSession& to, size_t piece = SIZE_MAX) {
    std::string wire;
    from.take_output(wire);
    std::string plain;
    for (size_t at = 0; at < wire.size(); at += piece) {
      std::string buf = wire.substr(at, piece);
      buf.resize(buf.size() + 64, '\0');  // room after the ciphertext, as in a read buffer
      size_t n = std::min(piece, wire.size() - at);
      EXPECT_EQ(to.decrypt_in_place(buf.data(), &n, buf.size()), TlsSession::Result::ok)
          << to.error();
      plain.append(buf.data(), n);
      while (to.more()) {  // the capacity was filled: the rest waits inside OpenSSL
        n = 0;
        EXPECT_EQ(to.decrypt_in_place(buf.data(), &n, buf.size()), TlsSession::Result::ok);
        plain.append(buf.data(), n);
      }
    }
    return plain;
  }

  void handshake() {
    size_t n = 0;
    char none[1];
    ASSERT_EQ(client_->read(none, 0, &n), TlsSession::Result::ok);  // ClientHello
    for (int i = 0; i < 4 && !(server_->handshake_done() && client_->handshake_done()); ++i) {
      EXPECT_EQ(deliver(*client_, *server_), "");
      EXPECT_EQ(deliver(*server_, *client_), "");
    }
    ASSERT_TRUE(server_->handshake_done());
    ASSERT_TRUE(client_->handshake_done());
  }

  SSL_CTX* server_ctx_ = nullptr;
  SSL_CTX* client_ctx_ = nullptr;
  std::unique_ptr<TlsSession> server_;
  std::unique_ptr<TlsSession> client_;
};

TEST_F(TlsSessionTest, CoalescedRecordsDecryptInPlace) {
  handshake();
  std::string sent;
  for (int i = 0; i < 5; ++i) {
    std::string piece = "request " + std::to_string(i) + std::string(100 * i, 'x');
    ASSERT_EQ(client_->write(piece), TlsSession::Result::ok);  // a record each
    sent += piece;
  }
  EXPECT_EQ(deliver(*client_, *server_), sent);
  EXPECT_FALSE(server_->has_plaintext());
}

TEST_F(TlsSessionTest, RecordsSplitAnywhereAreKeptUntilComplete) {
  handshake();
  std::string sent(3000, 'a');
  sent += "end";
  ASSERT_EQ(client_->write(sent), TlsSession::Result::ok);
  EXPECT_EQ(deliver(*client_, *server_, 7), sent);
  ASSERT_EQ(server_->write("response"), TlsSession::Result::ok);
  EXPECT_EQ(deliver(*server_, *client_, 1), "response");
}

TEST_F(TlsSessionTest, FullRecordsSplitAcrossReadsAsFromASocket) {
  // 16 KiB records cut at arbitrary points, as socket reads cut them: a record completed by
  // the next read yields more plaintext than that read's ciphertext, which must not overwrite
  // the ciphertext after it in the same buffer.
  handshake();
  std::string sent;
  for (int i = 0; sent.size() < 100000; ++i) sent += "chunk " + std::to_string(i) + ";";
  ASSERT_EQ(client_->write(sent), TlsSession::Result::ok);
  EXPECT_EQ(deliver(*client_, *server_, 10000), sent);
  ASSERT_EQ(client_->write(sent), TlsSession::Result::ok);
  EXPECT_EQ(deliver(*client_, *server_, 65536), sent);
  ASSERT_EQ(client_->write(sent), TlsSession::Result::ok);
  EXPECT_EQ(deliver(*client_, *server_, 16000), sent);
}

TEST_F(TlsSessionTest, ReleasedBuffersBetweenExchanges) {
  handshake();
  for (int i = 0; i < 3; ++i) {
    server_->release_buffers();
    client_->release_buffers();
    EXPECT_FALSE(server_->has_output());
    std::string request = "GET /" + std::to_string(i);
    ASSERT_EQ(client_->write(request), TlsSession::Result::ok);
    EXPECT_EQ(deliver(*client_, *server_), request);
    ASSERT_EQ(server_->write("200 " + std::to_string(i)), TlsSession::Result::ok);
    EXPECT_EQ(deliver(*server_, *client_), "200 " + std::to_string(i));
  }
  // Half a record held while going idle stays and completes later.
  ASSERT_EQ(client_->write("after idle"), TlsSession::Result::ok);
  std::string wire;
  client_->take_output(wire);
  std::string first = wire.substr(0, 10);
  size_t n = first.size();
  ASSERT_EQ(server_->decrypt_in_place(first.data(), &n, first.size()), TlsSession::Result::ok);
  EXPECT_EQ(n, 0u);
  server_->release_buffers();
  std::string rest = wire.substr(10);
  n = rest.size();
  ASSERT_EQ(server_->decrypt_in_place(rest.data(), &n, rest.size()), TlsSession::Result::ok);
  EXPECT_EQ(std::string(rest.data(), n), "after idle");
}

TEST_F(TlsSessionTest, SmallReadsLeaveThePlaintextWaiting) {
  handshake();
  std::string sent(500, 'z');
  ASSERT_EQ(client_->write(sent), TlsSession::Result::ok);
  std::string wire;
  client_->take_output(wire);
  server_->put_input(wire);
  std::string got;
  char buf[64];
  do {
    size_t n = 0;
    ASSERT_EQ(server_->read(buf, sizeof(buf), &n), TlsSession::Result::ok);
    got.append(buf, n);
    if (n == 0) break;
  } while (server_->has_plaintext() || got.size() < sent.size());
  EXPECT_EQ(got, sent);
}

TEST_F(TlsSessionTest, CloseNotifyEndsTheStream) {
  handshake();
  client_->shutdown();
  std::string wire;
  client_->take_output(wire);
  size_t n = wire.size();
  EXPECT_EQ(server_->decrypt_in_place(wire.data(), &n, wire.size()), TlsSession::Result::closed);
}

}  // namespace
}  // namespace sluice
