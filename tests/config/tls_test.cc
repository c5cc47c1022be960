// listeners[].tls and listeners[].http2: each mistake at its FILE:LINE:COL (the certificate
// files themselves are covered by integration/test_tls.py, which makes real ones).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config.h"

namespace sluice::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> errors_of(std::string_view yaml) {
  const LoadResult r = load_string(yaml, "dir/t.yaml");
  std::vector<std::string> out;
  for (const Diagnostic& d : r.errors) out.push_back(d.str());
  return out;
}

std::string listener(std::string_view tls) {
  return "listeners:\n"
         "  - name: a\n"
         "    address: 127.0.0.1:8443\n"
         "    tls: " +
         std::string(tls) + "\n";
}

TEST(TlsConfig, UnknownKeysAndValues) {
  EXPECT_THAT(errors_of(listener("{ certificates: [], min_vresion: \"1.2\", alpn: [h3, http/1.1, "
                                 "http/1.1], client_auth: { mode: sometimes, ca_file: x } }")),
              ElementsAre("dir/t.yaml:4:26: certificates: list at least one certificate",
                          "dir/t.yaml:4:30: unknown key 'min_vresion' in tls (did you mean "
                          "'min_version'?)",
                          HasSubstr("dir/t.yaml:4:57: alpn: unknown protocol 'h3'"),
                          "dir/t.yaml:4:71: alpn: 'http/1.1' is listed twice",
                          HasSubstr("dir/t.yaml:4:103: mode: unknown mode 'sometimes'"),
                          HasSubstr("dir/t.yaml:4:123: ca_file: cannot read dir/x")));
}

TEST(TlsConfig, CertificateNeedsBothFiles) {
  EXPECT_THAT(errors_of(listener("{ certificates: [{ cert_file: a.crt }] }")),
              ElementsAre("dir/t.yaml:4:27: certificate is missing required key 'key_file'"));
}

TEST(TlsConfig, RelativePathsAreRelativeToTheConfigFile) {
  EXPECT_THAT(errors_of(listener("{ certificates: [{ cert_file: a.crt, key_file: /k.key }] }")),
              ElementsAre(HasSubstr("cert_file: cannot read dir/a.crt: No such file")));
}

TEST(TlsConfig, ClientAuthNeedsACaFile) {
  EXPECT_THAT(errors_of(listener("{ certificates: [{ cert_file: /a, key_file: /b }], "
                                 "client_auth: { mode: optional } }")),
              ElementsAre(HasSubstr("cert_file: cannot read /a"),
                          "dir/t.yaml:4:74: client_auth is missing required key 'ca_file'"));
}

TEST(ClusterTlsConfig, KeysAndCaFile) {
  EXPECT_THAT(errors_of("clusters:\n"
                        "  - name: c\n"
                        "    endpoints: [127.0.0.1:443]\n"
                        "    tls: { sni: api.example.com, verfy: false, ca_file: ca.pem }\n"),
              ElementsAre(HasSubstr("dir/t.yaml:4:34: unknown key 'verfy' in tls (did you mean "
                                    "'verify'?)"),
                          HasSubstr("dir/t.yaml:4:57: ca_file: cannot read dir/ca.pem")));
  const LoadResult r = load_string(
      "clusters: [{ name: c, endpoints: [127.0.0.1:443], tls: { verify: false } }]\n", "t.yaml");
  ASSERT_TRUE(r.config);
  ASSERT_TRUE(r.config->clusters[0].tls);
  EXPECT_FALSE(r.config->clusters[0].tls->verify);
  EXPECT_THAT(r.config->to_json(), HasSubstr("\"verify\": false"));
}

TEST(Http2Config, Keys) {
  const LoadResult r = load_string(
      "listeners:\n"
      "  - { name: a, address: 127.0.0.1:80, http2: { cleartext: true, "
      "max_concurrent_streams: 7 } }\n",
      "t.yaml");
  ASSERT_TRUE(r.config);
  EXPECT_TRUE(r.config->listeners[0].http2.cleartext);
  EXPECT_EQ(r.config->listeners[0].http2.max_concurrent_streams, 7u);
  EXPECT_THAT(r.config->to_json(), HasSubstr("\"max_concurrent_streams\": 7"));
  EXPECT_THAT(errors_of("listeners:\n"
                        "  - { name: a, address: 127.0.0.1:80, http2: { cleartxt: true, "
                        "max_concurrent_streams: 0 } }\n"),
              ElementsAre(HasSubstr("unknown key 'cleartxt' in http2 (did you mean "
                                    "'cleartext'?)"),
                          HasSubstr("max_concurrent_streams:")));
}

}  // namespace
}  // namespace sluice::config
