// The admin section: token_file (read at load, trailing newline dropped, errors at its
// FILE:LINE:COL), the loopback rule for unauthenticated admin ports, and /config's JSON, which
// names the token file but never holds the token.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "config/config.h"
#include "tests/config/diagnostics.h"

namespace sluice::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// A temporary directory with files written into it; removed with its contents.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/sluice-admin-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() {
    for (const std::string& f : files_) ::unlink(f.c_str());
    ::rmdir(path_.c_str());
  }
  std::string write(const std::string& name, const std::string& content) {
    std::string p = path_ + "/" + name;
    std::ofstream(p, std::ios::binary) << content;
    files_.push_back(p);
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

LoadResult load(const std::string& yaml) { return load_string(yaml, "t.yaml"); }

TEST(AdminConfig, DefaultsAreLoopbackWithoutAToken) {
  LoadResult r = load("admin: { address: 127.0.0.1:9902 }\n");
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->admin.token_file, "");
  EXPECT_EQ(r.config->admin.token, "");
  EXPECT_FALSE(r.config->admin.allow_unauthenticated);
}

TEST(AdminConfig, TokenFileIsReadAndItsTrailingNewlineDropped) {
  TempDir dir;
  std::string file = dir.write("token", "s3cr3t-token\n");
  LoadResult r = load("admin: { address: 0.0.0.0:9901, token_file: " + file + " }\n");
  ASSERT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors[0].str());
  EXPECT_EQ(r.config->admin.token_file, file);
  EXPECT_EQ(r.config->admin.token, "s3cr3t-token");
  for (const Diagnostic& w : r.warnings) EXPECT_THAT(w.message, Not(HasSubstr("loopback")));

  dir.write("crlf", "abc\r\n\r\n");
  r = load("admin: { token_file: " + dir.path() + "/crlf }\n");
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->admin.token, "abc");
}

TEST(AdminConfig, RelativeTokenFileIsRelativeToTheConfig) {
  TempDir dir;
  dir.write("token", "t0k");
  LoadResult r = load_string("admin: { token_file: token }\n", dir.path() + "/sluice.yaml");
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->admin.token_file, dir.path() + "/token");
  EXPECT_EQ(r.config->admin.token, "t0k");
}

TEST(AdminConfig, MissingEmptyOrMultiLineTokenFileIsAnError) {
  TempDir dir;
  std::string empty = dir.write("empty", "\n");
  std::string spaced = dir.write("spaced", "two words\n");
  EXPECT_THAT(errors_of("admin:\n"
                        "  token_file: " +
                        dir.path() + "/absent\n"),
              ElementsAre("t.yaml:2:15: token_file: cannot read " + dir.path() +
                          "/absent: No such file or directory"));
  EXPECT_THAT(errors_of("admin: { token_file: " + empty + " }\n"),
              ElementsAre("t.yaml:1:22: token_file: " + empty + " is empty"));
  EXPECT_THAT(errors_of("admin: { token_file: " + spaced + " }\n"),
              ElementsAre("t.yaml:1:22: token_file: " + spaced +
                          ": the token must be one line of printable ASCII without spaces"));
  EXPECT_THAT(errors_of("admin: { token_file: \"\" }\n"),
              ElementsAre("t.yaml:1:22: token_file: must not be empty"));
  EXPECT_THAT(
      errors_of("admin: { token_file: " + dir.path() + " }\n"),
      ElementsAre("t.yaml:1:22: token_file: cannot read " + dir.path() + ": Is a directory"));
}

TEST(AdminConfig, OffLoopbackWithoutATokenIsAnError) {
  EXPECT_THAT(errors_of("workers: 1\n"
                        "admin:\n"
                        "  address: 0.0.0.0:9901\n"),
              ElementsAre("t.yaml:3:12: address: the admin API on 0.0.0.0:9901 (not loopback) "
                          "needs 'token_file' (or 'allow_unauthenticated: true')"));
  EXPECT_THAT(errors_of("admin: { address: \"[::]:9901\" }\n"),
              ElementsAre(HasSubstr("[::]:9901")));
  EXPECT_THAT(errors_of("admin: { address: 10.1.2.3:9901, allow_unauthenticated: false }\n"),
              ElementsAre(HasSubstr("t.yaml:1:19: address: the admin API on 10.1.2.3:9901")));
}

TEST(AdminConfig, LoopbackAddressesNeedNoToken) {
  for (const char* a : {"127.0.0.1:9901", "127.8.9.10:1", "\"[::1]:9901\"", "localhost:9901",
                        "\"[::ffff:127.0.0.1]:9901\""}) {
    SCOPED_TRACE(a);
    EXPECT_THAT(errors_of(std::string("admin: { address: ") + a + " }\n"), IsEmpty());
  }
}

TEST(AdminConfig, AllowUnauthenticatedTurnsTheErrorIntoAWarning) {
  EXPECT_THAT(warnings_of("admin: { address: 0.0.0.0:9901, allow_unauthenticated: true }\n"),
              ElementsAre(HasSubstr("no listeners"),
                          "t.yaml:1:19: address: the admin API on 0.0.0.0:9901 (not loopback) "
                          "takes requests from anyone who can reach it (allow_unauthenticated: "
                          "true)"));
  EXPECT_THAT(errors_of("admin: { allow_unauthenticated: maybe }\n"),
              ElementsAre(HasSubstr("t.yaml:1:33: allow_unauthenticated:")));
}

TEST(AdminConfig, UnknownKeyGetsAHint) {
  EXPECT_THAT(errors_of("admin: { token: abc }\n"),
              ElementsAre(HasSubstr("unknown key 'token' in admin")));
}

TEST(AdminConfig, JsonNamesTheTokenFileButNeverTheToken) {
  TempDir dir;
  std::string file = dir.write("token", "very-secret-value\n");
  LoadResult r = load("admin: { address: 0.0.0.0:9901, token_file: " + file + " }\n");
  ASSERT_TRUE(r.config);
  std::string json = r.config->to_json();
  EXPECT_THAT(json, HasSubstr("\"token_file\": \"" + file + "\""));
  EXPECT_THAT(json, Not(HasSubstr("very-secret-value")));

  // Without `source` (not a config key) it loads back as the same admin section.
  const size_t source = json.find("\n  \"source\": ");
  ASSERT_NE(source, std::string::npos);
  json.erase(source, json.find('\n', source + 1) - source);
  std::string reloaded_file = dir.write("config.json", json);
  LoadResult again = load_file(reloaded_file);
  ASSERT_TRUE(again.config) << (again.errors.empty() ? "" : again.errors[0].str());
  EXPECT_EQ(again.config->admin.token, "very-secret-value");
  EXPECT_EQ(again.config->admin.address.str(), "0.0.0.0:9901");

  r = load("admin: { address: 0.0.0.0:9901, allow_unauthenticated: true }\n");
  ASSERT_TRUE(r.config);
  EXPECT_THAT(r.config->to_json(), HasSubstr("\"allow_unauthenticated\": true"));
}

}  // namespace
}  // namespace sluice::config
