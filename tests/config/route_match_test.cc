// routes[].match.listeners (names checked, kept in the config and its JSON) and the warning for
// a route an earlier route hides, in both directions: each case that must warn, and the close
// cases that must not.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config.h"
#include "tests/config/diagnostics.h"

namespace sluice::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

// Two listeners, "plain" and "tls" (no certificate needed to name one), then `routes`.
std::string with_routes(std::string_view routes) {
  return "listeners:\n"
         "  - { name: plain, address: 127.0.0.1:8080 }\n"
         "  - { name: secure, address: 127.0.0.1:8443 }\n"
         "  - { name: admin2, address: 127.0.0.1:8081 }\n"
         "routes:\n" +
         std::string(routes);
}

TEST(RouteListeners, KeptInOrder) {
  const LoadResult r = load_string(
      with_routes("  - { name: a, match: { listeners: [secure, plain] }, respond: {} }\n"
                  "  - { name: b, respond: {} }\n"),
      "t.yaml");
  ASSERT_TRUE(r.config) << r.errors[0].str();
  EXPECT_THAT(r.config->routes[0].match.listeners, ElementsAre("secure", "plain"));
  EXPECT_THAT(r.config->routes[1].match.listeners, IsEmpty());
}

TEST(RouteListeners, NamesMayComeLaterInTheFile) {
  const LoadResult r = load_string(
      "routes: [{ name: a, match: { listeners: [plain] }, respond: {} }]\n"
      "listeners: [{ name: plain, address: 127.0.0.1:8080 }]\n",
      "t.yaml");
  ASSERT_TRUE(r.config) << r.errors[0].str();
  EXPECT_THAT(r.config->routes[0].match.listeners, ElementsAre("plain"));
}

TEST(RouteListeners, UnknownNameWithAndWithoutSuggestion) {
  EXPECT_THAT(
      errors_of(
          with_routes("  - { name: a, match: { listeners: [plian] }, respond: {} }\n"
                      "  - { name: b, match: { listeners: [plain, zzzzzzzz] }, respond: {} }\n")),
      ElementsAre("t.yaml:6:37: listeners: unknown listener 'plian' (did you mean 'plain'?)",
                  "t.yaml:7:44: listeners: unknown listener 'zzzzzzzz' (known: admin2, plain, "
                  "secure)"));
}

TEST(RouteListeners, EmptyListDuplicatesAndWrongTypes) {
  EXPECT_THAT(errors_of(with_routes("  - { name: a, match: { listeners: [] }, respond: {} }\n"
                                    "  - { name: b, match: { listeners: [plain, secure, plain] }, "
                                    "respond: {} }\n"
                                    "  - { name: c, match: { listeners: plain }, respond: {} }\n")),
              ElementsAre("t.yaml:6:36: listeners: needs at least one listener (to match on every "
                          "listener, leave 'listeners' out)",
                          "t.yaml:7:52: listeners: 'plain' is listed twice",
                          "t.yaml:8:36: listeners: expected a list, got 'plain'"));
}

TEST(RouteListeners, JsonHasThemOnlyWhenSetAndLoadsBack) {
  const LoadResult first = load_string(
      with_routes("  - { name: a, match: { listeners: [plain] }, redirect: { scheme: https } }\n"
                  "  - { name: b, respond: {} }\n"),
      "t.yaml");
  ASSERT_TRUE(first.config);
  const std::string json = first.config->to_json();
  EXPECT_THAT(json, HasSubstr("\"match\": {\n        \"listeners\": [\n          \"plain\"\n"));
  // Route b has none: an empty list would not load back.
  EXPECT_THAT(json, Not(HasSubstr("\"listeners\": []")));
  std::string source_free = json;
  source_free.erase(
      source_free.find("\"source\""),
      source_free.find('\n', source_free.find("\"source\"")) + 1 - source_free.find("\"source\""));
  const LoadResult second = load_string(source_free, "dump.json");
  ASSERT_TRUE(second.config) << (second.errors.empty() ? "" : second.errors[0].str());
  EXPECT_THAT(second.config->routes[0].match.listeners, ElementsAre("plain"));
  EXPECT_THAT(second.config->routes[1].match.listeners, IsEmpty());
}

// --- shadowed routes ---

TEST(ShadowedRoutes, CatchAllHidesEverythingAfterIt) {
  EXPECT_THAT(
      warnings_of(with_routes("  - { name: all, respond: {} }\n"
                              "  - { name: b, match: { path: { prefix: /b } }, respond: {} }\n"
                              "  - { name: c, match: { listeners: [plain] }, respond: {} }\n")),
      ElementsAre("t.yaml:7:5: route 'b' can never match: route 'all' at line 6 matches "
                  "every request",
                  "t.yaml:8:5: route 'c' can never match: route 'all' at line 6 matches "
                  "every request"));
}

TEST(ShadowedRoutes, ShorterPrefixHidesLongerPrefixAndExactPath) {
  EXPECT_THAT(
      warnings_of(
          with_routes("  - { name: api, match: { path: { prefix: /api } }, respond: {} }\n"
                      "  - { name: v1, match: { path: { prefix: /api/v1 } }, respond: {} }\n"
                      "  - { name: x, match: { path: { exact: /api/x } }, respond: {} }\n"
                      "  - { name: same, match: { path: { prefix: /api } }, respond: {} }\n")),
      ElementsAre("t.yaml:7:5: route 'v1' can never match: route 'api' at line 6 matches every "
                  "request it would",
                  "t.yaml:8:5: route 'x' can never match: route 'api' at line 6 matches every "
                  "request it would",
                  "t.yaml:9:5: route 'same' can never match: route 'api' at line 6 matches every "
                  "request it would"));
}

TEST(ShadowedRoutes, PrefixSlashHidesEvenRegexPaths) {
  EXPECT_THAT(warnings_of(with_routes(
                  "  - { name: root, match: { path: { prefix: / } }, respond: {} }\n"
                  "  - { name: re, match: { path: { regex: \"/a.*\" } }, respond: {} }\n"
                  "  - { name: any, match: { methods: [GET] }, respond: {} }\n")),
              ElementsAre(HasSubstr("route 're' can never match: route 'root'"),
                          HasSubstr("route 'any' can never match: route 'root'")));
}

TEST(ShadowedRoutes, SameRegexAndSameExactPath) {
  EXPECT_THAT(warnings_of(with_routes(
                  "  - { name: r1, match: { path: { regex: \"/a.*\" } }, respond: {} }\n"
                  "  - { name: r2, match: { path: { regex: \"/a.*\" }, methods: [GET] }, "
                  "respond: {} }\n"
                  "  - { name: e1, match: { path: { exact: /x } }, respond: {} }\n"
                  "  - { name: e2, match: { path: { exact: /x } }, respond: {} }\n")),
              ElementsAre(HasSubstr("route 'r2' can never match: route 'r1'"),
                          HasSubstr("route 'e2' can never match: route 'e1'")));
}

TEST(ShadowedRoutes, WildcardHostCoversNamesAndNarrowerWildcards) {
  EXPECT_THAT(
      warnings_of(with_routes(
          "  - { name: w, match: { hosts: [\"*.example.com\", other.org] }, respond: {} }\n"
          "  - { name: a, match: { hosts: [a.example.com] }, respond: {} }\n"
          "  - { name: b, match: { hosts: [\"*.b.example.com\", other.org] }, respond: {} }\n"
          "  - { name: c, match: { hosts: [x.example.com], path: { prefix: /p } }, "
          "respond: {} }\n")),
      ElementsAre(HasSubstr("route 'a' can never match: route 'w'"),
                  HasSubstr("route 'b' can never match: route 'w'"),
                  HasSubstr("route 'c' can never match: route 'w'")));
}

TEST(ShadowedRoutes, MethodsAndListenersSupersets) {
  EXPECT_THAT(
      warnings_of(with_routes(
          "  - { name: m, match: { methods: [GET, HEAD], path: { prefix: /m } }, respond: {} }\n"
          "  - { name: m2, match: { methods: [HEAD], path: { prefix: /m/x } }, respond: {} }\n"
          "  - { name: l, match: { listeners: [plain, secure] }, respond: {} }\n"
          "  - { name: l2, match: { listeners: [secure], path: { exact: /y } }, respond: {} }\n")),
      ElementsAre(HasSubstr("route 'm2' can never match: route 'm' at line 6"),
                  HasSubstr("route 'l2' can never match: route 'l' at line 8")));
}

TEST(ShadowedRoutes, IdenticalHeaderConditionsStillHide) {
  EXPECT_THAT(
      warnings_of(with_routes(
          "  - { name: h, match: { headers: [{ name: x-env, exact: prod }] }, respond: {} }\n"
          "  - { name: h2, match: { headers: [{ name: x-a, present: true }, "
          "{ name: X-Env, exact: prod }], path: { prefix: /h } }, respond: {} }\n")),
      ElementsAre(HasSubstr("route 'h2' can never match: route 'h'")));
}

TEST(ShadowedRoutes, OnlyTheFirstHidingRouteIsNamed) {
  EXPECT_THAT(
      warnings_of(with_routes("  - { name: a, match: { path: { prefix: /a } }, respond: {} }\n"
                              "  - { name: b, match: { path: { prefix: /a } }, respond: {} }\n"
                              "  - { name: c, match: { path: { prefix: /a/c } }, respond: {} }\n")),
      ElementsAre(HasSubstr("route 'b' can never match: route 'a'"),
                  HasSubstr("route 'c' can never match: route 'a'")));
}

// The warnings for two routes, `earlier` then `later`, given as the flow maps of their
// `match:`.
std::vector<std::string> warnings_for(std::string_view earlier, std::string_view later) {
  return warnings_of(with_routes("  - { name: e, match: " + std::string(earlier) +
                                 ", respond: {} }\n  - { name: l, match: " + std::string(later) +
                                 ", respond: {} }\n"));
}

TEST(ShadowedRoutes, EachConditionCoversTheLatersOrLeavesItAlone) {
  struct Case {
    const char* earlier;
    const char* later;
    bool warns;
  };
  const Case cases[] = {
      // Listeners: none covers any; a superset covers; a subset or a disjoint set does not.
      {"{ }", "{ listeners: [plain] }", true},
      {"{ listeners: [plain, secure] }", "{ listeners: [secure] }", true},
      {"{ listeners: [plain] }", "{ listeners: [plain] }", true},
      {"{ listeners: [plain] }", "{ listeners: [secure] }", false},
      {"{ listeners: [plain] }", "{ listeners: [plain, secure] }", false},
      {"{ listeners: [plain] }", "{ }", false},
      // Paths.
      {"{ path: { prefix: /api } }", "{ path: { prefix: /api/v1 } }", true},
      {"{ path: { prefix: /api } }", "{ path: { exact: /api } }", true},
      {"{ path: { prefix: /api/v1 } }", "{ path: { prefix: /api } }", false},
      {"{ path: { prefix: /api } }", "{ path: { prefix: /ap } }", false},
      {"{ path: { prefix: /api } }", "{ }", false},
      {"{ path: { prefix: /api } }", "{ path: { regex: \"/api.*\" } }", false},
      {"{ path: { prefix: / } }", "{ path: { regex: \"/api.*\" } }", true},
      {"{ path: { prefix: / } }", "{ }", true},
      {"{ path: { exact: /e } }", "{ path: { exact: /e } }", true},
      {"{ path: { exact: /e } }", "{ path: { exact: /e/f } }", false},
      {"{ path: { exact: /e } }", "{ path: { prefix: /e } }", false},
      {"{ path: { regex: \"/r.*\" } }", "{ path: { regex: \"/r.*\" } }", true},
      {"{ path: { regex: \"/r.*\" } }", "{ path: { prefix: /r } }", false},
      {"{ path: { regex: \"/r.*\" } }", "{ path: { regex: \"/r.+\" } }", false},
      // Hosts: names, wildcards, and the wildcard's apex it does not match.
      {"{ hosts: [a.example.com, b.org] }", "{ hosts: [b.org] }", true},
      {"{ hosts: [\"*.example.com\"] }", "{ hosts: [a.example.com, b.a.example.com] }", true},
      {"{ hosts: [\"*.example.com\"] }", "{ hosts: [\"*.a.example.com\"] }", true},
      {"{ hosts: [\"*.example.com\"] }", "{ hosts: [example.com] }", false},
      {"{ hosts: [\"*.example.com\"] }", "{ hosts: [a.example.com, b.org] }", false},
      {"{ hosts: [a.example.com] }", "{ hosts: [\"*.example.com\"] }", false},
      {"{ hosts: [a.example.com] }", "{ }", false},
      // Methods.
      {"{ methods: [GET, HEAD] }", "{ methods: [HEAD] }", true},
      {"{ methods: [GET] }", "{ methods: [GET, POST] }", false},
      {"{ methods: [GET] }", "{ }", false},
      // Headers: the earlier's conditions must all be the later's own, to the letter.
      {"{ headers: [{ name: x-a, present: true }] }",
       "{ headers: [{ name: X-A, present: true }, { name: x-b, exact: v }] }", true},
      {"{ headers: [{ name: x-a, present: true }] }", "{ }", false},
      {"{ headers: [{ name: x-a, present: true }] }", "{ headers: [{ name: x-a, exact: v }] }",
       false},
      {"{ headers: [{ name: x-a, regex: \".*\" }] }", "{ headers: [{ name: x-a, regex: \".+\" }] }",
       false},
      // All conditions together: each must cover.
      {"{ listeners: [plain], hosts: [\"*.a.com\"], path: { prefix: /p }, methods: [GET, PUT] }",
       "{ listeners: [plain], hosts: [x.a.com], path: { exact: /p/q }, methods: [PUT], "
       "headers: [{ name: x, present: true }] }",
       true},
      {"{ listeners: [plain], hosts: [\"*.a.com\"], path: { prefix: /p }, methods: [GET, PUT] }",
       "{ listeners: [plain], hosts: [x.a.com], path: { exact: /p/q }, methods: [POST] }", false},
  };
  for (const Case& c : cases) {
    const std::vector<std::string> w = warnings_for(c.earlier, c.later);
    if (c.warns) {
      EXPECT_THAT(w, ElementsAre(StartsWith("t.yaml:7:5: route 'l' can never match: route 'e' at "
                                            "line 6 matches every request")))
          << c.earlier << " then " << c.later;
    } else {
      EXPECT_THAT(w, IsEmpty()) << c.earlier << " then " << c.later;
    }
  }
}

TEST(ShadowedRoutes, HttpsRedirectPerListenerDoesNotWarn) {
  EXPECT_THAT(warnings_of(with_routes(
                  "  - { name: to-https, match: { listeners: [plain] }, redirect: { scheme: https "
                  "} }\n"
                  "  - { name: site, match: { listeners: [secure] }, respond: {} }\n")),
              IsEmpty());
}

}  // namespace
}  // namespace sluice::config
