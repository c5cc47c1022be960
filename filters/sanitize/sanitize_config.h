#pragma once
// The sanitize filter's config: top-level `sanitize:` (defaults for every listener) and a
// listener's own `sanitize:`, whose keys replace the top-level ones for that listener. Without
// either, every listener gets the safe defaults: canonical paths, the risky escapes refused,
// header names with '_' dropped. Parsed with FILE:LINE:COL diagnostics; deny-rule regexes are
// compiled once here and shared read-only by every worker.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <re2/re2.h>

#include "config/config.h"
#include "config/extensions.h"
#include "filters/sanitize/path_canonicalizer.h"

namespace sluice::sanitize {

// A request that matches every condition a rule gives is answered with `status` and `body`.
struct DenyRule {
  std::string name;
  std::shared_ptr<const RE2> path_regex;    // searched in the canonical path
  std::shared_ptr<const RE2> query_regex;   // in the raw query and in its decoded form
  std::string header;                       // lower case; with header_regex
  std::shared_ptr<const RE2> header_regex;  // searched in each value of `header`
  std::vector<std::string> methods;         // any of these
  unsigned status = 403;
  std::string body = "Forbidden\n";
  std::string reason;  // "deny:NAME", the metric label
};

struct Settings {
  bool enabled = true;
  PathOptions path;
  enum class Underscores { allow, drop, reject };
  Underscores underscores_in_headers = Underscores::drop;
  std::vector<DenyRule> deny;
};

class SanitizeConfig : public config::FilterConfig {
 public:
  Settings defaults;  // top level, or the built-in defaults
  bool has_root = false;
  std::map<std::string, Settings> listeners;  // a listener's own section, resolved

  const Settings& for_listener(const std::string& name) const {
    auto it = listeners.find(name);
    return it == listeners.end() ? defaults : it->second;
  }

  JsonMembers root_json() const override;
  JsonMembers listener_json(std::string_view listener) const override;
};

config::FilterSchema schema();

}  // namespace sluice::sanitize
