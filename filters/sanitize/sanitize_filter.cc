#include "filters/sanitize/sanitize_filter.h"

#include <algorithm>

#include "core/stats.h"

namespace sluice::sanitize {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A query as an application reads it: %XX decoded, '+' as a space. Malformed escapes are
// kept as they are.
std::string decode_query(std::string_view q) {
  std::string out;
  out.reserve(q.size());
  for (size_t i = 0; i < q.size(); ++i) {
    const char c = q[i];
    if (c == '%' && i + 2 < q.size() && hex_value(q[i + 1]) >= 0 && hex_value(q[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(q[i + 1]) * 16 + hex_value(q[i + 2]));
      i += 2;
    } else {
      out += c == '+' ? ' ' : c;
    }
  }
  return out;
}

bool matches(const DenyRule& rule, const RequestHead& head) {
  if (!rule.methods.empty() &&
      std::find(rule.methods.begin(), rule.methods.end(), head.method) == rule.methods.end()) {
    return false;
  }
  if (rule.path_regex && !RE2::PartialMatch(head.path(), *rule.path_regex)) return false;
  if (rule.query_regex && !RE2::PartialMatch(head.query(), *rule.query_regex) &&
      !RE2::PartialMatch(decode_query(head.query()), *rule.query_regex)) {
    return false;
  }
  if (rule.header_regex) {
    bool any = false;
    for (const Header& h : head.headers) {
      if (iequals(h.name, rule.header) && RE2::PartialMatch(h.value, *rule.header_regex)) {
        any = true;
        break;
      }
    }
    if (!any) return false;
  }
  return true;
}

class SanitizeFilter : public Filter {
 public:
  explicit SanitizeFilter(const SanitizeFactory& factory) : factory_(factory) {}

  FilterStatus on_request_headers(RequestHead& head, bool) override {
    const Settings& s = factory_.settings();
    if (head.target != "*") {
      const size_t q = head.target.find('?');
      const std::string_view path = std::string_view(head.target).substr(0, q);
      if (q != std::string::npos) {
        for (char c : std::string_view(head.target).substr(q)) {
          const auto u = static_cast<unsigned char>(c);
          if (c == '#') return reject("fragment", "a fragment ('#') in the request target");
          if (u < 0x20 || u == 0x7F) {
            return reject("control_character", "a control character in the query");
          }
        }
      }
      if (!is_plain_canonical(path)) {
        if (FilterStatus st = canonicalize(head, path, q); st != FilterStatus::Continue) return st;
      }
    }
    if (s.underscores_in_headers != Settings::Underscores::allow) {
      auto has_underscore = [](const Header& h) { return h.name.find('_') != h.name.npos; };
      if (s.underscores_in_headers == Settings::Underscores::reject) {
        if (std::any_of(head.headers.begin(), head.headers.end(), has_underscore)) {
          return reject("underscore_header", "a header name with '_'");
        }
      } else {
        head.headers.remove_if(has_underscore);
      }
    }
    if (!s.deny.empty()) {
      for (const DenyRule& rule : s.deny) {
        if (!matches(rule, head)) continue;
        count(rule.reason);
        callbacks().info().error = "sanitize: " + rule.reason;
        callbacks().send_local_reply(rule.status, rule.body);
        return FilterStatus::Stop;
      }
    }
    return FilterStatus::Continue;
  }

 private:
  // The slow path, for a path that is not plainly canonical: `q` is where the query starts.
  FilterStatus canonicalize(RequestHead& head, std::string_view path, size_t q) {
    PathResult r = canonicalize_path(path, factory_.settings().path);
    if (r.error != PathError::none) {
      std::string detail = std::string(path_error_name(r.error));
      if (r.error == PathError::encoded_character) {
        detail = "encoded " + std::string(encoded_char_text(r.encoded)) + " in the path";
      }
      return reject(path_error_name(r.error), detail);
    }
    if (r.path != path) {
      if (q != std::string::npos) r.path.append(head.target, q);
      head.target = std::move(r.path);
      callbacks().clear_route_cache();
    }
    return FilterStatus::Continue;
  }

  FilterStatus reject(std::string_view reason, std::string_view detail) {
    count(reason);
    callbacks().info().error = "sanitize: " + std::string(reason) + ": " + std::string(detail);
    callbacks().send_local_reply(400, "Bad Request: " + std::string(detail) + "\n");
    return FilterStatus::Stop;
  }

  void count(std::string_view reason) {
    callbacks().stats().sanitize_rejection(factory_.listener(), reason).add();
  }

  const SanitizeFactory& factory_;
};

}  // namespace

FilterPtr SanitizeFactory::create(WorkerServices&) const {
  return std::make_unique<SanitizeFilter>(*this);
}

FilterRegistration registration() {
  FilterRegistration r;
  r.schema = schema();
  r.runs_first = true;
  r.applies_to = [](const config::FilterConfig& fc, const config::Listener& listener) {
    return static_cast<const SanitizeConfig&>(fc).for_listener(listener.name).enabled;
  };
  r.make_factory = [](const config::FilterConfig& fc, FactoryContext& context,
                      std::string*) -> FilterFactoryPtr {
    const Settings& s = static_cast<const SanitizeConfig&>(fc).for_listener(context.listener.name);
    return std::make_shared<SanitizeFactory>(s, context.listener.name);
  };
  return r;
}

}  // namespace sluice::sanitize
