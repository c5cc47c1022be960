#pragma once
// GET /: the dashboard, one self-contained page (admin/dashboard.html: inline CSS and script, no
// external requests) compiled into the binary. It polls GET /stats. Any thread.
#include <string>
#include <string_view>

namespace sluice::admin {

// The page's bytes (generated from admin/dashboard.html by admin/embed.cmake).
std::string_view dashboard_html();

// The page's Content-Security-Policy: nothing may load but the page itself; its one inline
// <script> and one <style> run because their SHA-256 hashes are listed (worked out from the
// embedded page once, so editing the page cannot leave a stale hash); fetch() may reach this
// origin only. Any other inline script, style attribute or injected markup is refused.
const std::string& dashboard_csp();

// The base64 SHA-256 of the first <tag>…</tag> content of `html` ("" without one), as a CSP
// hash source takes it. Exposed for tests.
std::string inline_element_sha256(std::string_view html, std::string_view tag);

}  // namespace sluice::admin
