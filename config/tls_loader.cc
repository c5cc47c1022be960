// YAML → ListenerTls: certificates (read and checked here), versions, ALPN, timeouts.
#include <algorithm>

#include "config/certificate.h"
#include "config/loader.h"

namespace sluice::config::detail {
namespace {

constexpr std::string_view kTlsKeys[] = {"certificates", "min_version", "alpn", "handshake_timeout",
                                         "client_auth"};
constexpr std::string_view kClientAuthKeys[] = {"ca_file", "mode"};
constexpr std::string_view kClientAuthModes[] = {"none", "optional", "require"};
constexpr std::string_view kCertificateKeys[] = {"cert_file", "key_file"};
constexpr std::string_view kTlsVersions[] = {"1.2", "1.3"};
constexpr std::string_view kAlpnProtocols[] = {"h2", "http/1.1"};

}  // namespace

std::string Loader::resolve_path(const std::string& path) const {
  if (path.empty() || path.front() == '/') return path;
  const std::string& source = config_.source;
  size_t slash = source.rfind('/');
  if (slash == std::string::npos) return path;
  return source.substr(0, slash + 1) + path;
}

void Loader::load_tls(const Field& f, ListenerTls& tls) {
  MapReader m(diag_, f, "tls", kTlsKeys);
  if (!m.is_map()) return;
  if (const Field* c = m.require("certificates"); c && expect_list(diag_, *c)) {
    for (const YAML::Node& node : c->value) load_certificate(node, tls);
    if (c->value.size() == 0) {
      diag_.error(c->mark(), "certificates: list at least one certificate");
    }
  }
  if (const Field* v = m.get("min_version")) {
    if (auto s = read_nonempty(diag_, *v)) {
      if (std::find(std::begin(kTlsVersions), std::end(kTlsVersions), *s) ==
          std::end(kTlsVersions)) {
        diag_.error(v->mark(), "min_version: " + quote(*s) +
                                   " is not supported (use \"1.2\" or \"1.3\"; older versions "
                                   "are insecure)");
      } else {
        tls.min_version = *s;
      }
    }
  }
  if (const Field* v = m.get("alpn"); v && expect_list(diag_, *v)) {
    tls.alpn.clear();
    for (const YAML::Node& node : v->value) {
      const Field item = Field::item("protocol", node);
      auto proto = read_nonempty(diag_, item);
      if (!proto) continue;
      if (std::find(std::begin(kAlpnProtocols), std::end(kAlpnProtocols), *proto) ==
          std::end(kAlpnProtocols)) {
        diag_.error(item.mark(),
                    "alpn: unknown protocol " + quote(*proto) + hint(*proto, kAlpnProtocols));
      } else if (std::find(tls.alpn.begin(), tls.alpn.end(), *proto) != tls.alpn.end()) {
        diag_.error(item.mark(), "alpn: " + quote(*proto) + " is listed twice");
      } else {
        tls.alpn.push_back(*proto);
      }
    }
    if (v->value.size() == 0) diag_.error(v->mark(), "alpn: list at least one protocol");
  }
  if (const Field* v = m.get("handshake_timeout")) {
    if (auto d = read_duration(diag_, *v, /*allow_zero=*/false)) tls.handshake_timeout = *d;
  }
  if (const Field* v = m.get("client_auth")) load_client_auth(*v, tls.client_auth);
}

void Loader::load_client_auth(const Field& f, ClientAuth& auth) {
  MapReader m(diag_, f, "client_auth", kClientAuthKeys);
  if (!m.is_map()) return;
  auth.mode = ClientAuth::Mode::require;
  if (const Field* v = m.get("mode")) {
    if (auto s = read_nonempty(diag_, *v)) {
      if (*s == "none") {
        auth.mode = ClientAuth::Mode::none;
      } else if (*s == "optional") {
        auth.mode = ClientAuth::Mode::optional;
      } else if (*s != "require") {
        diag_.error(v->mark(), "mode: unknown mode " + quote(*s) + hint(*s, kClientAuthModes));
      }
    }
  }
  const Field* ca = m.get("ca_file");
  if (!ca) {
    if (auth.mode != ClientAuth::Mode::none) {
      diag_.error(m.mark(), "client_auth is missing required key 'ca_file'");
    }
    return;
  }
  if (auto s = read_nonempty(diag_, *ca)) {
    auth.ca_file = resolve_path(*s);
    if (std::string error = check_ca_file(auth.ca_file); !error.empty()) {
      diag_.error(ca->mark(), "ca_file: " + error);
    }
  }
}

void Loader::load_certificate(const YAML::Node& node, ListenerTls& tls) {
  MapReader m(diag_, Field::item("certificate", node), "certificate", kCertificateKeys);
  if (!m.is_map()) return;
  const Field* cert_field = m.require("cert_file");
  const Field* key_field = m.require("key_file");
  if (!cert_field || !key_field) return;
  auto cert = read_nonempty(diag_, *cert_field);
  auto key = read_nonempty(diag_, *key_field);
  if (!cert || !key) return;
  Certificate c{resolve_path(*cert), resolve_path(*key), {}};
  CertificateCheck check = inspect_certificate(c.cert_file, c.key_file);
  switch (check.problem) {
    case CertificateCheck::Problem::cert:
      diag_.error(cert_field->mark(), "cert_file: " + check.error);
      return;
    case CertificateCheck::Problem::key:
      diag_.error(key_field->mark(), "key_file: " + check.error);
      return;
    case CertificateCheck::Problem::none:
      break;
  }
  if (check.expired) {
    diag_.warning(cert_field->mark(),
                  "cert_file: " + c.cert_file + " expired on " + check.not_after);
  }
  c.names = std::move(check.names);
  tls.certificates.push_back(std::move(c));
}

}  // namespace sluice::config::detail
