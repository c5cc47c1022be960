#include "admin/dashboard.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>
#include <string>

namespace sluice::admin {
namespace {

using ::testing::HasSubstr;

TEST(Dashboard, InlineElementHashIsBase64Sha256OfTheContent) {
  // echo -n 'alert(1)' | openssl dgst -sha256 -binary | base64
  EXPECT_EQ(inline_element_sha256("<p><script>alert(1)</script>", "script"),
            "bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI=");
  EXPECT_EQ(inline_element_sha256("<style></style>", "style"),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
  EXPECT_EQ(inline_element_sha256("<script>never closed", "script"), "");
  EXPECT_EQ(inline_element_sha256("no script here", "script"), "");
}

TEST(Dashboard, PageIsEmbeddedWithOneScriptAndOneStyle) {
  const std::string page(dashboard_html());
  EXPECT_EQ(page.rfind("<!doctype html>", 0), 0u);
  EXPECT_THAT(page, HasSubstr("</html>"));
  auto count = [&](const std::string& needle) {
    size_t n = 0;
    for (size_t at = page.find(needle); at != std::string::npos; at = page.find(needle, at + 1)) {
      ++n;
    }
    return n;
  };
  // The policy lists one hash for each; a second element would be refused by the browser.
  EXPECT_EQ(count("<script"), 1u);
  EXPECT_EQ(count("<style"), 1u);
  EXPECT_EQ(count(" style=\""), 0u);  // style attributes are refused too
}

TEST(Dashboard, PolicyAllowsExactlyThePagesInlineScriptAndStyle) {
  const std::string& csp = dashboard_csp();
  const std::string page(dashboard_html());
  EXPECT_THAT(csp, HasSubstr("default-src 'none';"));
  EXPECT_THAT(csp, HasSubstr("script-src 'sha256-" + inline_element_sha256(page, "script") + "';"));
  EXPECT_THAT(csp, HasSubstr("style-src 'sha256-" + inline_element_sha256(page, "style") + "';"));
  EXPECT_THAT(csp, HasSubstr("connect-src 'self';"));
  EXPECT_THAT(csp, HasSubstr("frame-ancestors 'none'"));
  EXPECT_TRUE(std::regex_search(csp, std::regex("script-src 'sha256-[A-Za-z0-9+/]{43}='")));
  EXPECT_TRUE(std::regex_search(csp, std::regex("style-src 'sha256-[A-Za-z0-9+/]{43}='")));
}

}  // namespace
}  // namespace sluice::admin
