// The header_rules config: blocks of listeners and routes, names lower-cased and validated,
// framing and hop-by-hop headers refused, values compiled (variables, %%), FILE:LINE:COL
// errors, which listeners run the filter, and the JSON dump.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "filters/headers/header_rules_config.h"
#include "tests/filters/filter_config_test.h"

namespace sluice::header_rules {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class HeaderRulesConfigTest : public FilterConfigTest<HeaderRulesConfig> {
 protected:
  const HeaderRulesConfig& parsed(const std::string& yaml) {
    return FilterConfigTest::parsed(yaml, "header_rules");
  }
};

// Listener `public` on line 3, route `app` on line 6: tests append keys to either.
std::string with(const std::string& listener_keys, const std::string& route_keys = "") {
  return "clusters: [{ name: api, endpoints: [127.0.0.1:9000] }]\n"
         "listeners:\n"
         "  - name: public\n"
         "    address: 127.0.0.1:8080\n" +
         listener_keys +
         "routes:\n"
         "  - name: app\n"
         "    match: { path: { prefix: / } }\n"
         "    cluster: api\n" +
         route_keys;
}

TEST_F(HeaderRulesConfigTest, NoRulesNoFilterInTheChain) {
  const HeaderRulesConfig& c = parsed(with(""));
  EXPECT_TRUE(c.listeners.empty());
  EXPECT_TRUE(c.routes.empty());
  EXPECT_THAT(chain_of(0), ElementsAre("sanitize", "router"));
}

TEST_F(HeaderRulesConfigTest, BlocksParsedNamesLowerCased) {
  const HeaderRulesConfig& c =
      parsed(with("    response_headers:\n"
                  "      set: { Strict-Transport-Security: \"max-age=63072000\" }\n"
                  "      remove: [Server, X-Powered-By]\n",
                  "    request_headers:\n"
                  "      set: { Host: backend.internal }\n"
                  "      add: { X-Client: \"%{client_ip} via %{host} (100%%)\" }\n"));
  const RuleSet* l = c.for_listener("public");
  ASSERT_TRUE(l);
  EXPECT_TRUE(l->request.empty());
  EXPECT_THAT(l->response.remove, ElementsAre("server", "x-powered-by"));
  ASSERT_EQ(l->response.set.size(), 1u);
  EXPECT_EQ(l->response.set[0].name, "strict-transport-security");
  EXPECT_TRUE(l->response.set[0].value.is_literal());
  EXPECT_EQ(l->response.set[0].value.literal(), "max-age=63072000");
  const RuleSet* r = c.for_route("app");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->request.set[0].name, "host");
  ASSERT_EQ(r->request.add.size(), 1u);
  const ValueTemplate& v = r->request.add[0].value;
  EXPECT_FALSE(v.is_literal());
  ASSERT_EQ(v.parts.size(), 4u);
  EXPECT_EQ(v.parts[0].variable, Variable::client_ip);
  EXPECT_EQ(v.parts[1].literal, " via ");
  EXPECT_EQ(v.parts[2].variable, Variable::host);
  EXPECT_EQ(v.parts[3].literal, " (100%)");
  EXPECT_THAT(chain_of(0), ElementsAre("sanitize", "header_rules", "router"));
}

TEST_F(HeaderRulesConfigTest, CompileValue) {
  ValueTemplate t;
  std::string error;
  size_t at = 0;
  ASSERT_TRUE(compile_value("", t, &error));
  EXPECT_TRUE(t.is_literal());
  EXPECT_EQ(t.literal(), "");
  ASSERT_TRUE(compile_value("%%{host}", t, &error));
  EXPECT_EQ(t.literal(), "%{host}");
  ASSERT_TRUE(compile_value("%{request_id}", t, &error));
  ASSERT_EQ(t.parts.size(), 1u);
  EXPECT_EQ(t.parts[0].variable, Variable::request_id);
  EXPECT_FALSE(compile_value("id=%{requestid}", t, &error, &at));
  EXPECT_THAT(error, HasSubstr("unknown variable '%{requestid}' (did you mean 'request_id'?)"));
  EXPECT_EQ(at, 3u);
  EXPECT_FALSE(compile_value("ab%{host", t, &error, &at));
  EXPECT_THAT(error, HasSubstr("unterminated '%{'"));
  EXPECT_EQ(at, 2u);
  EXPECT_FALSE(compile_value("100%", t, &error, &at));
  EXPECT_THAT(error, HasSubstr("write '%%' for a literal '%'"));
  EXPECT_EQ(at, 3u);
  EXPECT_FALSE(compile_value(std::string_view("a\0b", 3), t, &error, &at));
  EXPECT_THAT(error, HasSubstr("NUL"));
  EXPECT_FALSE(compile_value("a\r\nb", t, &error));
  EXPECT_THAT(error, HasSubstr("carriage return"));
  EXPECT_TRUE(compile_value("a\tb", t, &error));
}

TEST_F(HeaderRulesConfigTest, ForbiddenHeadersNamedWithWhy) {
  EXPECT_THAT(errors_of(with("    request_headers: { set: { Connection: close } }\n")),
              ElementsAre("t.yaml:5:31: set: 'connection' cannot be changed: it is hop-by-hop "
                          "(RFC 9110 §7.6.1), it describes one connection and sluice writes it "
                          "for each hop"));
  for (const char* name : {"keep-alive", "proxy-connection", "te", "trailer", "upgrade"}) {
    EXPECT_THAT(errors_of(with(std::string("    response_headers: { remove: [") + name + "] }\n")),
                ElementsAre(HasSubstr("hop-by-hop")))
        << name;
  }
  EXPECT_THAT(errors_of(with("", "    response_headers: { add: { content-length: \"1\" } }\n")),
              ElementsAre(HasSubstr("t.yaml:9:32: add: 'content-length' cannot be changed: it "
                                    "frames the message")));
  EXPECT_THAT(errors_of(with("    request_headers: { remove: [Transfer-Encoding] }\n")),
              ElementsAre(HasSubstr("'transfer-encoding' cannot be changed: it frames")));
  EXPECT_THAT(errors_of(with("    request_headers: { set: { \":path\": /x } }\n")),
              ElementsAre("t.yaml:5:31: ':path' is a pseudo-header: sluice derives it from the "
                          "request and header rules cannot change it"));
  EXPECT_THAT(errors_of(with("    request_headers: { add: { host: a } }\n")),
              ElementsAre(HasSubstr("use 'set' to change the upstream Host")));
  EXPECT_THAT(errors_of(with("    request_headers: { remove: [host] }\n")),
              ElementsAre(HasSubstr("exactly one Host")));
  EXPECT_THAT(errors_of(with("    response_headers: { set: { host: a } }\n")),
              ElementsAre(HasSubstr("'host' is a request header")));
  EXPECT_THAT(errors_of(with("    request_headers: { set: { X-Forwarded-For: a } }\n")),
              ElementsAre(HasSubstr("trusted_proxies")));
  EXPECT_THAT(errors_of(with("    request_headers: { set: { x-request-id: a } }\n")),
              ElementsAre(HasSubstr("assigns the request id")));
  // Fine in a response, though.
  EXPECT_THAT(errors_of(with("    response_headers: { set: { x-forwarded-for: a } }\n")),
              ElementsAre());
}

TEST_F(HeaderRulesConfigTest, ErrorsWithPositions) {
  EXPECT_THAT(
      errors_of(with("    response_headers:\n"
                     "      set: { \"bad name\": x, ok: \"%{nope}\" }\n"
                     "      add: { x-a: \"a%{host\", x-b: 50% }\n"
                     "      remove: x-c\n"
                     "      append: {}\n")),
      ElementsAre("t.yaml:6:14: 'bad name' is not a valid header name (RFC 9110 token)",
                  "t.yaml:6:33: ok: unknown variable '%{nope}' (known: client_ip, request_id, "
                  "host)",
                  "t.yaml:7:19: x-a: unterminated '%{' (variables are written %{NAME})",
                  "t.yaml:7:37: x-b: a lone '%': write '%%' for a literal '%', '%{NAME}' for a "
                  "variable",
                  HasSubstr("t.yaml:8:15: remove: expected a list"),
                  "t.yaml:9:7: unknown key 'append' in response_headers"));
  EXPECT_THAT(errors_of(with("    request_headers: { set: { X-A: 1, x-a: 2 } }\n")),
              ElementsAre("t.yaml:5:39: set: 'x-a' is listed twice (names are case-insensitive)"));
  EXPECT_THAT(errors_of(with("    request_headers: { remove: [x-a, X-A] }\n")),
              ElementsAre("t.yaml:5:38: remove: 'x-a' is listed twice"));
  EXPECT_THAT(errors_of(with("    request_headers: { set: [x-a] }\n")),
              ElementsAre(HasSubstr("t.yaml:5:29: set: expected a map of header names")));
  EXPECT_THAT(errors_of(with("    request_headers: { set: { x-a: { b: c } } }\n")),
              ElementsAre(HasSubstr("t.yaml:5:36: x-a:")));
}

TEST_F(HeaderRulesConfigTest, RouteRulesPutTheFilterOnlyWhereTheRouteMatches) {
  parsed(
      "clusters: [{ name: api, endpoints: [127.0.0.1:9000] }]\n"
      "listeners:\n"
      "  - { name: a, address: 127.0.0.1:8080 }\n"
      "  - { name: b, address: 127.0.0.1:8081 }\n"
      "  - { name: c, address: 127.0.0.1:8082, request_headers: { add: { x-l: c } } }\n"
      "routes:\n"
      "  - name: only-b\n"
      "    match: { listeners: [b], path: { prefix: /b } }\n"
      "    cluster: api\n"
      "    response_headers: { set: { x-b: \"1\" } }\n"
      "  - { name: rest, match: { path: { prefix: / } }, cluster: api }\n");
  EXPECT_THAT(chain_of(0), ElementsAre("sanitize", "router"));
  EXPECT_THAT(chain_of(1), ElementsAre("sanitize", "header_rules", "router"));
  EXPECT_THAT(chain_of(2), ElementsAre("sanitize", "header_rules", "router"));
}

TEST_F(HeaderRulesConfigTest, JsonDumpLoadsBackTheSame) {
  const std::string yaml = with(
      "    response_headers: { remove: [server], set: { strict-transport-security: max-age=1 } }\n",
      "    request_headers: { set: { host: b.internal }, add: { x-id: \"%{request_id} 5%%\" } }\n");
  parsed(yaml);
  const std::string json = config_->to_json();
  EXPECT_THAT(json, HasSubstr("\"response_headers\": {\"remove\": [\"server\"], \"set\": "
                              "{\"strict-transport-security\": \"max-age=1\"}}"));
  EXPECT_THAT(json, HasSubstr("\"request_headers\": {\"set\": {\"host\": \"b.internal\"}, "
                              "\"add\": {\"x-id\": \"%{request_id} 5%%\"}}"));
  // As GET /config without `source` (the file it came from, not a key of the file).
  std::string loadable = json;
  const size_t source = loadable.find("\"source\": ");
  ASSERT_NE(source, std::string::npos);
  loadable.erase(source, loadable.find('\n', source) - source + 1);
  const config::LoadResult again = config::load_string(loadable, "t.yaml");
  for (const auto& d : again.errors) ADD_FAILURE() << d.str();
  ASSERT_TRUE(again.config);
  EXPECT_EQ(again.config->to_json(), json);
}

}  // namespace
}  // namespace sluice::header_rules
