#pragma once
// The compression filter's config: `compression:` in a listener (every response on it) or in a
// route (responses of that route, replacing its listener's block whole; `enabled: false` turns
// a listener's compression off for the route). `compression: {}` gives the defaults below.
// Parsed once per load with FILE:LINE:COL diagnostics, then read-only on every worker.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/extensions.h"
#include "filters/compression/encoder.h"

namespace sluice::compression {

struct Settings {
  bool enabled = true;
  // Media types compressed, lower case, without parameters; "text/*" matches a whole type and
  // "*/*" every type. Defaults: text formats, JSON/XML/JavaScript, SVG and uncompressed fonts
  // (close to Caddy's and Envoy's lists; images, video, archives and woff2 are compressed
  // already).
  std::vector<std::string> types;
  // Responses whose Content-Length is below this stay as they are: a few hundred bytes gain
  // little and cost a compressor. Unknown length (chunked, streams): compressed.
  uint64_t min_bytes = 1024;
  // Server preference, which breaks ties between codings the client accepts with equal q.
  std::vector<Algorithm> algorithms = {Algorithm::br, Algorithm::zstd, Algorithm::gzip};

  Settings();
  // `content_type`: a Content-Type value; its parameters are ignored, case does not matter.
  bool type_matches(std::string_view content_type) const;
};

class CompressionConfig : public config::FilterConfig {
 public:
  std::map<std::string, Settings> listeners;  // by listener name, as given
  std::map<std::string, Settings> routes;     // by route name, as given
  // match.listeners of each route in `routes` (empty: every listener), for applies_to.
  std::map<std::string, std::vector<std::string>> route_listeners;

  JsonMembers listener_json(std::string_view listener) const override;
  JsonMembers route_json(std::string_view route) const override;
};

config::FilterSchema schema();

}  // namespace sluice::compression
