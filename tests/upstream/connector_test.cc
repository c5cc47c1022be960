// upstream/connector.h: the names a TLS cluster sends as SNI and checks the certificate against.
#include <gtest/gtest.h>

#include "upstream/connector.h"

namespace sluice::upstream {
namespace {

config::ClusterTls tls(std::string sni = {}, bool verify = true) {
  config::ClusterTls t;
  t.sni = std::move(sni);
  t.verify = verify;
  return t;
}

TEST(TlsNames, ConfiguredSniIsSentAndChecked) {
  TlsNames n = tls_names(tls("api.example.com"), Host("10.0.0.1:443", 1, "backend.internal"));
  EXPECT_EQ(n.sni, "api.example.com");
  EXPECT_EQ(n.verify_name, "api.example.com");
}

TEST(TlsNames, EndpointHostnameWhenNoSni) {
  TlsNames n = tls_names(tls(), Host("10.0.0.1:443", 1, "backend.internal"));
  EXPECT_EQ(n.sni, "backend.internal");
  EXPECT_EQ(n.verify_name, "backend.internal");
}

TEST(TlsNames, AnIpEndpointIsCheckedAsAnAddressAndSendsNoSni) {
  TlsNames v4 = tls_names(tls(), Host("10.0.0.1:443", 1));
  EXPECT_EQ(v4.sni, "");
  EXPECT_EQ(v4.verify_name, "10.0.0.1");
  // Without the brackets, or OpenSSL takes it for a host name and no certificate matches.
  TlsNames v6 = tls_names(tls(), Host("[2001:db8::1]:443", 1));
  EXPECT_EQ(v6.sni, "");
  EXPECT_EQ(v6.verify_name, "2001:db8::1");
}

TEST(TlsNames, VerifyFalseChecksNothing) {
  TlsNames n = tls_names(tls("", false), Host("[::1]:443", 1, "backend.internal"));
  EXPECT_EQ(n.sni, "backend.internal");
  EXPECT_EQ(n.verify_name, "");
}

}  // namespace
}  // namespace sluice::upstream
