// http health checks of a `tls` cluster: probes connect with the cluster's client context (its
// CA, `verify`, SNI and the verified name), speak HTTP/1.1 inside TLS, and a failed handshake
// or certificate check is a failing probe that says so. The server is Asio's SSL stream, not
// sluice's TLS code.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tests/upstream/health/health_test_util.h"
#include "tests/upstream/loopback_server.h"
#include "upstream/connector.h"
#include "upstream/health/health_checker.h"

namespace sluice::upstream::health {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using std::chrono::milliseconds;
using test::fast_check;
using test::make_set;
using test::run_until;
using test::status_of;
using ::testing::HasSubstr;

constexpr milliseconds kLimit{15000};

// A CA and a leaf it signed, in memory; the CA also as a PEM file for `ca_file`.
class Pki {
 public:
  explicit Pki(const std::string& stem) {
    ca_key_ = EVP_EC_gen("P-256");
    ca_ = make_cert(ca_key_, "test CA " + stem, nullptr, ca_key_, "critical,CA:TRUE", "");
    leaf_key_ = EVP_EC_gen("P-256");
    leaf_ = make_cert(leaf_key_, "backend.test", ca_, ca_key_, "CA:FALSE",
                      "DNS:backend.test,IP:127.0.0.1");
    // ctest runs each test in a process of its own, in parallel: a fixed name let one
    // process's CA replace (or remove) another's.
    ca_file_ =
        ::testing::TempDir() + "health-" + stem + "-ca-" + std::to_string(::getpid()) + ".pem";
    FILE* f = std::fopen(ca_file_.c_str(), "w");
    PEM_write_X509(f, ca_);
    std::fclose(f);
  }
  ~Pki() {
    X509_free(ca_);
    X509_free(leaf_);
    EVP_PKEY_free(ca_key_);
    EVP_PKEY_free(leaf_key_);
    std::remove(ca_file_.c_str());
  }
  Pki(const Pki&) = delete;
  Pki& operator=(const Pki&) = delete;

  const std::string& ca_file() const { return ca_file_; }
  void use_leaf(ssl::context& ctx) const {
    SSL_CTX_use_certificate(ctx.native_handle(), leaf_);
    SSL_CTX_use_PrivateKey(ctx.native_handle(), leaf_key_);
  }

 private:
  static X509* make_cert(EVP_PKEY* key, const std::string& cn, X509* issuer, EVP_PKEY* signer,
                         const char* constraints, const char* sans) {
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    static long serial = 1;
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(issuer ? issuer : cert));
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer ? issuer : cert, cert, nullptr, nullptr, 0);
    auto add = [&](int nid, const char* value) {
      if (X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value)) {
        X509_add_ext(cert, ext, -1);
        X509_EXTENSION_free(ext);
      }
    };
    add(NID_basic_constraints, constraints);
    if (*sans) add(NID_subject_alt_name, sans);
    X509_sign(cert, signer, EVP_sha256());
    return cert;
  }

  EVP_PKEY* ca_key_ = nullptr;
  X509* ca_ = nullptr;
  EVP_PKEY* leaf_key_ = nullptr;
  X509* leaf_ = nullptr;
  std::string ca_file_;
};

// An HTTPS health endpoint on 127.0.0.1:<ephemeral>: the handshake, then one request answered
// with the status set, then close.
class TlsHealthServer {
 public:
  TlsHealthServer(asio::io_context& ioc, const Pki& pki)
      : acceptor_(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        ctx_(ssl::context::tls_server) {
    pki.use_leaf(ctx_);
    accept();
  }
  ~TlsHealthServer() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (auto& c : conns_) c->stream.lowest_layer().close(ignored);
  }

  std::string name() const {
    return "127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }
  void respond(unsigned status) { status_ = status; }
  int handshakes() const { return handshakes_; }
  int failed_handshakes() const { return failed_handshakes_; }
  int requests() const { return requests_; }
  const std::string& last_request() const { return last_request_; }
  const std::string& last_sni() const { return last_sni_; }

 private:
  struct Conn {
    Conn(tcp::socket s, ssl::context& ctx) : stream(std::move(s), ctx) {}
    ssl::stream<tcp::socket> stream;
    std::string in;
    std::string out;
  };

  void accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket s) {
      if (ec) return;
      auto c = std::make_shared<Conn>(std::move(s), ctx_);
      conns_.push_back(c);
      c->stream.async_handshake(ssl::stream_base::server, [this,
                                                           c](const boost::system::error_code& ec) {
        if (ec) {
          ++failed_handshakes_;
          return;
        }
        ++handshakes_;
        const char* sni = SSL_get_servername(c->stream.native_handle(), TLSEXT_NAMETYPE_host_name);
        last_sni_ = sni ? sni : "";
        serve(c);
      });
      accept();
    });
  }
  void serve(const std::shared_ptr<Conn>& c) {
    asio::async_read_until(c->stream, asio::dynamic_buffer(c->in), "\r\n\r\n",
                           [this, c](const boost::system::error_code& ec, size_t n) {
                             if (ec) return;
                             ++requests_;
                             last_request_ = c->in.substr(0, n);
                             c->out = "HTTP/1.1 " + std::to_string(status_) +
                                      " Test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
                             asio::async_write(c->stream, asio::buffer(c->out),
                                               [c](const boost::system::error_code&, size_t) {
                                                 boost::system::error_code ignored;
                                                 c->stream.lowest_layer().close(ignored);
                                               });
                           });
  }

  tcp::acceptor acceptor_;
  ssl::context ctx_;
  unsigned status_ = 200;
  int handshakes_ = 0;
  int failed_handshakes_ = 0;
  int requests_ = 0;
  std::string last_request_;
  std::string last_sni_;
  std::vector<std::shared_ptr<Conn>> conns_;
};

// The transport SharedCluster gives the checker of a cluster with these `tls` settings.
ProbeTransport tls_transport(const config::ClusterTls& tls) {
  ProbeTransport t;
  t.tls = tls;
  t.tls_context = make_client_tls_context(tls, false);
  return t;
}

class TlsProbe : public ::testing::Test {
 protected:
  asio::io_context ioc_;
  Pki pki_{"trusted"};
  TlsHealthServer server_{ioc_, pki_};
  HostPtr host_ = std::make_shared<Host>(server_.name(), 1);
  std::vector<HealthChecker::Transition> seen_;

  std::shared_ptr<HealthChecker> start(const config::ClusterTls& tls, unsigned healthy = 2,
                                       unsigned unhealthy = 2) {
    auto checker = std::make_shared<HealthChecker>(
        ioc_, "c", fast_check(healthy, unhealthy, milliseconds(2000)), make_set({host_}),
        [this](const HealthChecker::Transition& t) { seen_.push_back(t); }, tls_transport(tls));
    checker->start();
    return checker;
  }
};

TEST_F(TlsProbe, HealthyHttpsHostPassesAndA503OverTlsTakesItOut) {
  config::ClusterTls tls;
  tls.ca_file = pki_.ca_file();
  tls.sni = "backend.test";
  auto checker = start(tls);
  ASSERT_TRUE(run_until(
      ioc_, [&] { return status_of(*checker, host_).probes >= 3; }, kLimit));
  EXPECT_TRUE(seen_.empty());
  EXPECT_TRUE(host_->healthy());
  EXPECT_EQ(status_of(*checker, host_).last_result, "status 200");
  // The request went inside TLS, with the cluster's SNI; the Host header is the endpoint's.
  EXPECT_EQ(server_.last_sni(), "backend.test");
  EXPECT_EQ(server_.last_request(), "GET /healthz HTTP/1.1\r\nHost: " + server_.name() +
                                        "\r\nUser-Agent: sluice-health-check\r\n"
                                        "Connection: close\r\n\r\n");
  EXPECT_EQ(server_.failed_handshakes(), 0);

  server_.respond(503);
  ASSERT_TRUE(run_until(
      ioc_, [&] { return !seen_.empty(); }, kLimit));
  EXPECT_FALSE(seen_[0].healthy);
  EXPECT_EQ(seen_[0].reason, "status 503");
  EXPECT_FALSE(host_->available());
}

TEST_F(TlsProbe, IpEndpointIsVerifiedAgainstTheCertificatesIpSan) {
  config::ClusterTls tls;  // no sni: the IP address is what is checked
  tls.ca_file = pki_.ca_file();
  auto checker = start(tls);
  ASSERT_TRUE(run_until(
      ioc_, [&] { return status_of(*checker, host_).probes >= 2; }, kLimit));
  EXPECT_EQ(status_of(*checker, host_).last_result, "status 200");
  EXPECT_EQ(server_.last_sni(), "");
}

TEST_F(TlsProbe, UntrustedCertificateFailsWithTheVerificationReason) {
  Pki stranger("stranger");
  config::ClusterTls tls;
  tls.ca_file = stranger.ca_file();
  tls.sni = "backend.test";
  auto checker = start(tls);
  ASSERT_TRUE(run_until(
      ioc_, [&] { return !seen_.empty(); }, kLimit));
  EXPECT_FALSE(seen_[0].healthy);
  EXPECT_EQ(seen_[0].reason,
            "tls: certificate verify failed (unable to get local issuer certificate)");
  EXPECT_EQ(status_of(*checker, host_).last_result, seen_[0].reason);
  EXPECT_EQ(server_.requests(), 0);  // nothing was sent to a server that was not trusted
}

TEST_F(TlsProbe, NameMismatchFailsWithTheVerificationReason) {
  config::ClusterTls tls;
  tls.ca_file = pki_.ca_file();
  tls.sni = "other.test";
  auto checker = start(tls);
  ASSERT_TRUE(run_until(
      ioc_, [&] { return !seen_.empty(); }, kLimit));
  EXPECT_EQ(seen_[0].reason, "tls: certificate verify failed (hostname mismatch)");
}

TEST_F(TlsProbe, VerifyFalseAcceptsTheUntrustedCertificate) {
  Pki stranger("stranger2");
  config::ClusterTls tls;
  tls.ca_file = stranger.ca_file();
  tls.sni = "other.test";
  tls.verify = false;
  host_->set_healthy(false);
  auto checker = start(tls);
  ASSERT_TRUE(run_until(
      ioc_, [&] { return !seen_.empty(); }, kLimit));
  EXPECT_TRUE(seen_[0].healthy);
  EXPECT_EQ(seen_[0].reason, "status 200");
  EXPECT_GE(server_.requests(), 2);
}

TEST_F(TlsProbe, ServerThatNeverAnswersTheHandshakeTimesOut) {
  // A plain listener that accepts and never writes: the ClientHello gets no answer.
  tcp::acceptor silent(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  std::vector<tcp::socket> accepted;
  std::function<void()> accept = [&] {
    silent.async_accept([&](const boost::system::error_code& ec, tcp::socket s) {
      if (ec) return;
      accepted.push_back(std::move(s));
      accept();
    });
  };
  accept();
  auto host =
      std::make_shared<Host>("127.0.0.1:" + std::to_string(silent.local_endpoint().port()), 1);
  auto settings = fast_check(2, 1);
  settings.timeout = milliseconds(100);
  config::ClusterTls tls;
  tls.ca_file = pki_.ca_file();
  auto checker = std::make_shared<HealthChecker>(
      ioc_, "c", settings, make_set({host}),
      [this](const HealthChecker::Transition& t) { seen_.push_back(t); }, tls_transport(tls));
  checker->start();
  ASSERT_TRUE(run_until(
      ioc_, [&] { return !seen_.empty(); }, kLimit));
  EXPECT_EQ(seen_[0].reason, "timeout after 100ms (tls handshake)");
  checker->stop();
}

TEST_F(TlsProbe, TcpCheckOfATlsClusterOnlyConnects) {
  config::ClusterTls tls;
  tls.ca_file = pki_.ca_file();
  auto settings = fast_check(1, 1);
  settings.type = config::HealthCheck::Type::tcp;
  auto checker = std::make_shared<HealthChecker>(ioc_, "c", settings, make_set({host_}), nullptr,
                                                 tls_transport(tls));
  checker->start();
  ASSERT_TRUE(run_until(
      ioc_, [&] { return status_of(*checker, host_).probes >= 2; }, kLimit));
  EXPECT_EQ(status_of(*checker, host_).last_result, "connected");
  EXPECT_EQ(server_.handshakes(), 0);
}

}  // namespace
}  // namespace sluice::upstream::health
