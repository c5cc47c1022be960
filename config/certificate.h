#pragma once
// Reads a certificate and its private key the way the TLS layer will, so that a config with a
// missing, malformed or mismatched pair is rejected at load time with the position of the
// offending key, before it can replace a running config. Main (loading) thread only.
#include <string>
#include <vector>

namespace sluice::config {

struct CertificateCheck {
  enum class Problem { none, cert, key };
  Problem problem = Problem::none;  // which file `error` is about
  std::string error;
  std::vector<std::string> names;  // DNS subjectAltNames (CN when none), lower case
  bool expired = false;
  std::string not_after;  // "Jan  1 00:00:00 2027 GMT"
};

CertificateCheck inspect_certificate(const std::string& cert_file, const std::string& key_file);

// Empty when `ca_file` holds at least one PEM certificate, else why not.
std::string check_ca_file(const std::string& ca_file);

}  // namespace sluice::config
