#include "admin/dashboard.h"

#include <openssl/evp.h>

namespace sluice::admin {

std::string inline_element_sha256(std::string_view html, std::string_view tag) {
  const std::string open = "<" + std::string(tag) + ">";
  const std::string close = "</" + std::string(tag) + ">";
  const size_t begin = html.find(open);
  if (begin == std::string_view::npos) return "";
  const size_t from = begin + open.size();
  const size_t end = html.find(close, from);
  if (end == std::string_view::npos) return "";
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(html.data() + from, end - from, digest, &size, EVP_sha256(), nullptr) != 1) {
    return "";
  }
  std::string out(4 * ((size + 2) / 3), '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), digest, static_cast<int>(size));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

const std::string& dashboard_csp() {
  static const std::string csp = [] {
    const std::string_view html = dashboard_html();
    return "default-src 'none'; script-src 'sha256-" + inline_element_sha256(html, "script") +
           "'; style-src 'sha256-" + inline_element_sha256(html, "style") +
           "'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
           "frame-ancestors 'none'";
  }();
  return csp;
}

}  // namespace sluice::admin
