#pragma once
// The compression filter: compresses response bodies with br, zstd or gzip when the listener's
// or the route's `compression:` applies, the client accepts one of its algorithms
// (Accept-Encoding with q-values) and the response is compressible (a listed Content-Type, at
// least min_bytes when its length is known, not encoded already, no Cache-Control:
// no-transform, a status and method that carry a body). It streams: each body chunk is
// compressed and flushed as it passes, nothing is buffered. A compressible response gets
// `Vary: Accept-Encoding` whether or not this client asked, so caches keep the variants apart.
//
// Runs on the stream's worker thread. It is in a listener's chain only when the listener or a
// route that can match there has a `compression:` block; the factory is immutable and shared
// by every worker; the per-stream filter holds an encoder only while it compresses.
#include <array>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/http.h"
#include "filters/compression/compression_config.h"
#include "filters/registry.h"

namespace sluice::compression {

// What a request's Accept-Encoding fields say (RFC 9110 §12.5.3), reduced to what sluice can
// produce. Elements are comma-separated codings, each with an optional q-value (0 to 1, at most
// three decimals); `*` stands for every coding not listed; `identity` is kept to tell whether
// the client prefers no coding. Malformed elements are skipped and a malformed q-value refuses
// its coding (as nginx does): a broken header never leads to a coding the client did not ask
// for.
class AcceptEncoding {
 public:
  // Adds one Accept-Encoding field value (a request may carry several).
  void add(std::string_view value);
  // The algorithm to use: the highest q among `preference` (ties: the earlier one in
  // `preference`), none when that q is 0 or the client rates identity higher.
  std::optional<Algorithm> choose(std::span<const Algorithm> preference) const;
  bool present() const { return present_; }

 private:
  static constexpr int kUnset = -1;
  std::array<int, kAlgorithmCount> q_{kUnset, kUnset, kUnset};  // thousandths
  int star_ = kUnset;
  int identity_ = kUnset;
  bool present_ = false;
};

// Parses a qvalue ("0", "0.5", "1.000"); nullopt if malformed. In thousandths.
std::optional<int> parse_qvalue(std::string_view s);

// Whether a response may be compressed under `settings` (everything but the client's choice):
// `end_stream` when the headers end the response (nothing to encode).
bool compressible(const Settings& settings, const ResponseHead& head, bool end_stream);
// Adds "Accept-Encoding" to Vary, once (merged into an existing Vary; nothing with "Vary: *").
void add_vary(HeaderMap& headers);
// The response head of a response about to be compressed with `algorithm`: Content-Encoding
// set, Content-Length and Accept-Ranges removed (the length is no longer known, byte ranges
// of the encoding are not those of the original), a strong ETag made weak, Vary added.
void rewrite_head(ResponseHead& head, Algorithm algorithm);

class CompressionFactory : public FilterFactory {
 public:
  // Main thread. Settings point into `config`, which outlives the chain holding the factory.
  CompressionFactory(const CompressionConfig& config, const config::Config& snapshot,
                     const config::Listener& listener);
  FilterPtr create(WorkerServices& services) const override;

  // The settings for a response on this listener whose route is `route` (null: no route);
  // null when nothing is compressed there.
  const Settings* settings_for(const config::Route* route) const;

 private:
  const Settings* listener_ = nullptr;  // null without a block, or `enabled: false`
  // Routes with their own block (null when it says `enabled: false`).
  std::unordered_map<const config::Route*, const Settings*> routes_;
};

// The registry entry: schema, on a listener only where a block applies, and the factory.
FilterRegistration registration();

}  // namespace sluice::compression
