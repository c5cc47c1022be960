// The access-log line: every field by default, the chosen ones in their order with
// access_log.fields, absent values as null, and the conditional fields only when set.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "proxy/access_log.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

RequestHead request() {
  RequestHead r;
  r.method = "GET";
  r.target = "/chat";
  r.authority = "example.com";
  r.headers.add("user-agent", "curl/7.88.1");
  r.headers.add("referer", "https://example.com/\"quoted\"");
  return r;
}

StreamInfo upgraded_info() {
  StreamInfo info;
  info.listener = "web";
  info.status = 101;
  info.route = "chat";
  info.cluster = "chat-backends";
  info.upstream_status = 101;
  info.upstream_time = std::chrono::microseconds(2500);
  info.tls_version = "TLSv1.3";
  info.upgrade = "websocket";
  return info;
}

TEST(AccessLogLine, EveryFieldByDefault) {
  std::string line;
  format_access_log_line(request(), upgraded_info(), line);
  EXPECT_THAT(line, HasSubstr("\"cluster\":\"chat-backends\",\"upstream\":\"\","
                              "\"upstream_status\":101,\"upstream_time_ms\":2.500,"
                              "\"user_agent\":\"curl/7.88.1\","
                              "\"referer\":\"https://example.com/\\\"quoted\\\"\","
                              "\"tls_version\":\"TLSv1.3\",\"upgrade\":\"websocket\"}"));
  EXPECT_EQ(line.rfind("{\"time\":\"", 0), 0u);
}

TEST(AccessLogLine, AbsentValuesAreNullAndConditionalFieldsLeftOut) {
  StreamInfo info;
  info.status = 404;
  info.error = "no_route";
  std::string line;
  format_access_log_line(RequestHead{}, info, line);
  EXPECT_THAT(line, HasSubstr("\"upstream_status\":null,\"upstream_time_ms\":null,"
                              "\"user_agent\":\"\",\"referer\":\"\",\"tls_version\":null,"
                              "\"error\":\"no_route\"}"));
  EXPECT_THAT(line, Not(HasSubstr("upgrade")));
  EXPECT_THAT(line, Not(HasSubstr("aborted")));
}

TEST(AccessLogLine, ChosenFieldsInTheirOrder) {
  std::string line;
  format_access_log_line(request(), upgraded_info(), line,
                         AccessLogFormat({"status", "upgrade", "method", "upstream_time_ms"}));
  EXPECT_EQ(line,
            "{\"status\":101,\"upgrade\":\"websocket\",\"method\":\"GET\","
            "\"upstream_time_ms\":2.500}");
}

TEST(AccessLogLine, LongUserAgentIsShortenedToFit) {
  RequestHead r = request();
  r.headers.set("user-agent", std::string(10000, 'a'));
  std::string line;
  format_access_log_line(r, upgraded_info(), line);
  EXPECT_LE(line.size() + 1, kMaxAccessLogLine);
  EXPECT_THAT(line, HasSubstr("\"truncated\":true}"));
  EXPECT_THAT(line, HasSubstr("\"path\":\"/chat\""));  // the short fields are whole
}

}  // namespace
}  // namespace sluice
