#include "config/certificate.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace sluice::config {
namespace {

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;

// The reason of the last OpenSSL error, without the library's numeric prefix.
std::string openssl_reason() {
  unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (e == 0) return "no PEM data found";
  const char* reason = ERR_reason_error_string(e);
  return reason ? reason : "unknown error";
}

// Opens for reading, with the system's reason when it cannot be.
BioPtr open_file(const std::string& path, std::string& error) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    error = "cannot read " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  return BioPtr(BIO_new_fp(f, BIO_CLOSE));
}

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return s;
}

std::vector<std::string> dns_names(X509* cert) {
  std::vector<std::string> names;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, i);
      if (n->type != GEN_DNS) continue;
      const ASN1_STRING* s = n->d.dNSName;
      names.push_back(lower(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                        static_cast<size_t>(ASN1_STRING_length(s)))));
    }
    GENERAL_NAMES_free(sans);
  }
  if (names.empty()) {
    char cn[256];
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
    if (n > 0) names.push_back(lower(std::string(cn, static_cast<size_t>(n))));
  }
  return names;
}

std::string time_text(const ASN1_TIME* t) {
  BioPtr mem(BIO_new(BIO_s_mem()));
  if (!mem || ASN1_TIME_print(mem.get(), t) != 1) return "?";
  char* data = nullptr;
  long len = BIO_get_mem_data(mem.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

}  // namespace

CertificateCheck inspect_certificate(const std::string& cert_file, const std::string& key_file) {
  CertificateCheck r;
  ERR_clear_error();
  BioPtr cert_bio = open_file(cert_file, r.error);
  if (!cert_bio) {
    r.problem = CertificateCheck::Problem::cert;
    return r;
  }
  X509Ptr cert(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    r.problem = CertificateCheck::Problem::cert;
    r.error = cert_file + " is not a PEM certificate: " + openssl_reason();
    return r;
  }
  BioPtr key_bio = open_file(key_file, r.error);
  if (!key_bio) {
    r.problem = CertificateCheck::Problem::key;
    return r;
  }
  KeyPtr key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    r.problem = CertificateCheck::Problem::key;
    r.error = key_file + " is not a PEM private key (or is encrypted): " + openssl_reason();
    return r;
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    r.problem = CertificateCheck::Problem::key;
    r.error = key_file + " does not match the certificate in " + cert_file;
    return r;
  }
  r.names = dns_names(cert.get());
  const ASN1_TIME* not_after = X509_get0_notAfter(cert.get());
  r.not_after = time_text(not_after);
  r.expired = X509_cmp_current_time(not_after) < 0;
  ERR_clear_error();
  return r;
}

std::string check_ca_file(const std::string& ca_file) {
  ERR_clear_error();
  std::string error;
  BioPtr bio = open_file(ca_file, error);
  if (!bio) return error;
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return ca_file + " holds no PEM certificate: " + openssl_reason();
  ERR_clear_error();
  return "";
}

}  // namespace sluice::config
