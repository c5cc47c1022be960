#include "filters/compression/compression_filter.h"

#include <algorithm>
#include <optional>
#include <string>

#include "core/http.h"
#include "core/stats.h"
#include "filters/router/route_table.h"

namespace sluice::compression {
namespace {

bool is_token_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u <= 0x20 || u >= 0x7F) return false;
  return std::string_view("\"(),/:;<=>?@[\\]{}").find(c) == std::string_view::npos;
}

// Whether an element of the list `value` is `token` (case-insensitive; parameters ignored).
bool element_is(std::string_view value, std::string_view token) {
  bool found = false;
  for_each_list_element(value, [&](std::string_view e) {
    found = found || iequals(trim_ows(e.substr(0, e.find_first_of("=;"))), token);
  });
  return found;
}

}  // namespace

std::optional<int> parse_qvalue(std::string_view s) {
  if (s.empty() || s.size() > 5 || (s[0] != '0' && s[0] != '1')) return std::nullopt;
  int value = s[0] == '1' ? 1000 : 0;
  if (s.size() == 1) return value;
  if (s[1] != '.') return std::nullopt;
  int scale = 100;
  for (char c : s.substr(2)) {
    if (c < '0' || c > '9') return std::nullopt;
    if (value == 1000 && c != '0') return std::nullopt;  // above 1
    value += (c - '0') * scale;
    scale /= 10;
  }
  return value;
}

void AcceptEncoding::add(std::string_view value) {
  present_ = true;
  for_each_list_element(value, [&](std::string_view element) {
    const size_t semi = element.find(';');
    const std::string_view coding = trim_ows(element.substr(0, semi));
    if (coding.empty() || !std::all_of(coding.begin(), coding.end(), is_token_char)) return;
    int q = 1000;
    if (semi != std::string_view::npos) {
      std::string_view params = element.substr(semi + 1);
      while (!params.empty()) {
        const size_t next = params.find(';');
        const std::string_view param = trim_ows(params.substr(0, next));
        const size_t eq = param.find('=');
        if (eq != std::string_view::npos && iequals(trim_ows(param.substr(0, eq)), "q")) {
          q = parse_qvalue(trim_ows(param.substr(eq + 1))).value_or(0);
        }
        if (next == std::string_view::npos) break;
        params.remove_prefix(next + 1);
      }
    }
    // A coding listed twice keeps its highest q.
    auto keep = [q](int& slot) { slot = std::max(slot, q); };
    if (coding == "*") {
      keep(star_);
    } else if (iequals(coding, "identity")) {
      keep(identity_);
    } else {
      for (size_t i = 0; i < kAlgorithmCount; ++i) {
        const auto a = static_cast<Algorithm>(i);
        if (iequals(coding, algorithm_name(a)) ||
            (a == Algorithm::gzip && iequals(coding, "x-gzip"))) {
          keep(q_[i]);
        }
      }
    }
  });
}

std::optional<Algorithm> AcceptEncoding::choose(std::span<const Algorithm> preference) const {
  std::optional<Algorithm> best;
  int best_q = 0;
  for (Algorithm a : preference) {
    int q = q_[static_cast<size_t>(a)];
    if (q == kUnset) q = star_ == kUnset ? 0 : star_;
    if (q > best_q) {
      best = a;
      best_q = q;
    }
  }
  if (best && identity_ > best_q) return std::nullopt;
  return best;
}

bool compressible(const Settings& settings, const ResponseHead& head, bool end_stream) {
  if (end_stream || status_has_no_body(head.status) || head.status == 206) return false;
  // One pass over the fields, names told apart by length first: this runs for every response
  // where compression is configured, asked for or not.
  std::optional<std::string_view> type;
  std::optional<std::string_view> length;
  for (const Header& h : head.headers) {
    switch (h.name.size()) {
      case 12:  // content-type
        if (!type && iequals(h.name, "content-type")) type = h.value;
        break;
      case 13:  // cache-control
        if (iequals(h.name, "cache-control") && element_is(h.value, "no-transform")) return false;
        break;
      case 14:  // content-length
        if (!length && iequals(h.name, "content-length")) length = h.value;
        break;
      case 16:  // content-encoding
        if (iequals(h.name, "content-encoding")) {
          const std::string_view v = trim_ows(h.value);
          if (!v.empty() && !iequals(v, "identity")) return false;
        }
        break;
      default:
        break;
    }
  }
  if (!type || !settings.type_matches(*type)) return false;
  if (length) {
    uint64_t n = 0;
    const std::string_view v = trim_ows(*length);
    for (char c : v) {
      if (c < '0' || c > '9' || n > (uint64_t{1} << 60)) return false;  // let others judge it
      n = n * 10 + static_cast<uint64_t>(c - '0');
    }
    if (v.empty() || n < settings.min_bytes) return false;
  }
  return true;
}

void add_vary(HeaderMap& headers) {
  std::optional<size_t> first;
  for (size_t i = 0; i < headers.size(); ++i) {
    const Header& h = headers[i];
    if (h.name.size() != 4 || !iequals(h.name, "vary")) continue;
    if (element_is(h.value, "accept-encoding") || element_is(h.value, "*")) return;
    if (!first) first = i;
  }
  if (!first) {
    headers.add("vary", "Accept-Encoding");
  } else if (const std::string_view value = headers[*first].value; trim_ows(value).empty()) {
    headers.set_value(*first, "Accept-Encoding");
  } else {
    headers.set_value(*first, std::string(value) + ", Accept-Encoding");
  }
}

void rewrite_head(ResponseHead& head, Algorithm algorithm) {
  HeaderMap& h = head.headers;
  h.set("content-encoding", algorithm_name(algorithm));
  h.remove("content-length");
  h.remove("accept-ranges");
  for (size_t i = 0; i < h.size(); ++i) {
    // The encoded bytes differ from the original's: only a weak validator still holds (nginx).
    if (iequals(h[i].name, "etag") && !h[i].value.starts_with("W/")) {
      h.set_value(i, "W/" + std::string(h[i].value));
    }
  }
  add_vary(h);
}

namespace {

class CompressionFilter : public Filter {
 public:
  explicit CompressionFilter(const CompressionFactory& factory) : factory_(factory) {}

  FilterStatus on_request_headers(RequestHead& head, bool) override {
    head_request_ = head.method == "HEAD";
    for (const Header& h : head.headers) {
      if (h.name.size() == 15 && iequals(h.name, "accept-encoding")) accept_.add(h.value);
    }
    return FilterStatus::Continue;
  }

  FilterStatus on_response_headers(ResponseHead& head, bool end_stream) override {
    const router::CompiledRoute* route = callbacks().route();
    const Settings* settings = factory_.settings_for(route ? route->route : nullptr);
    // A HEAD response ends with its head but describes the GET one: it gets the same Vary.
    if (!settings || !compressible(*settings, head, end_stream && !head_request_)) {
      return FilterStatus::Continue;
    }
    // A HEAD response describes the GET one but has no body to encode: only Vary.
    std::optional<Algorithm> algorithm;
    if (!head_request_ && accept_.present()) algorithm = accept_.choose(settings->algorithms);
    if (algorithm) encoder_ = make_encoder(*algorithm);
    if (!encoder_) {
      add_vary(head.headers);
      return FilterStatus::Continue;
    }
    algorithm_ = *algorithm;
    rewrite_head(head, *algorithm);
    stats().responses.add();
    return FilterStatus::Continue;
  }

  FilterStatus on_response_body(std::string& data, bool end_stream) override {
    if (!encoder_ || finishing_) return FilterStatus::Continue;
    encode(data, end_stream);
    return FilterStatus::Continue;
  }

  FilterStatus on_response_trailers(HeaderMap&) override {
    if (!encoder_) return FilterStatus::Continue;
    // Trailers end the body: the encoding's end goes out as one more chunk before them. The
    // stream runs it through the filters again; this one lets it pass.
    std::string tail;
    encode(tail, true);
    if (!tail.empty()) {
      finishing_ = true;
      callbacks().encode_data(tail, false);
      finishing_ = false;
    }
    return FilterStatus::Continue;
  }

 private:
  CompressionStats& stats() {
    return callbacks().stats().compression[static_cast<size_t>(algorithm_)];
  }

  // Replaces `data` by its encoding; frees the encoder at the end.
  void encode(std::string& data, bool end_stream) {
    out_.clear();
    const bool ok = encoder_->encode(data, end_stream, out_);
    CompressionStats& s = stats();
    s.bytes_in.add(data.size());
    s.bytes_out.add(out_.size());
    data.swap(out_);
    if (end_stream || !ok) {
      encoder_.reset();
      out_ = std::string();
    }
    if (!ok) {
      data.clear();
      callbacks().info().error = "compression: encoder failed";
      callbacks().abort_response("compression: encoder failed");
    }
  }

  const CompressionFactory& factory_;
  AcceptEncoding accept_;
  bool head_request_ = false;
  bool finishing_ = false;
  Algorithm algorithm_ = Algorithm::gzip;
  EncoderPtr encoder_;  // only while compressing
  std::string out_;     // encoder output, swapped with each chunk; reused
};

}  // namespace

CompressionFactory::CompressionFactory(const CompressionConfig& config,
                                       const config::Config& snapshot,
                                       const config::Listener& listener) {
  if (auto it = config.listeners.find(listener.name);
      it != config.listeners.end() && it->second.enabled) {
    listener_ = &it->second;
  }
  for (const config::Route& r : snapshot.routes) {
    auto it = config.routes.find(r.name);
    if (it == config.routes.end()) continue;
    routes_[&r] = it->second.enabled ? &it->second : nullptr;
  }
}

const Settings* CompressionFactory::settings_for(const config::Route* route) const {
  if (route && !routes_.empty()) {
    if (auto it = routes_.find(route); it != routes_.end()) return it->second;
  }
  return listener_;
}

FilterPtr CompressionFactory::create(WorkerServices&) const {
  return std::make_unique<CompressionFilter>(*this);
}

FilterRegistration registration() {
  FilterRegistration r;
  r.schema = schema();
  r.applies_to = [](const config::FilterConfig& fc, const config::Listener& listener) {
    const auto& cfg = static_cast<const CompressionConfig&>(fc);
    if (auto it = cfg.listeners.find(listener.name);
        it != cfg.listeners.end() && it->second.enabled) {
      return true;
    }
    // A route's block counts where the route can match; applies_to has no config::Config, so
    // the routes' listeners were recorded when parsing.
    for (const auto& [name, settings] : cfg.routes) {
      if (!settings.enabled) continue;
      auto it = cfg.route_listeners.find(name);
      if (it == cfg.route_listeners.end() || it->second.empty() ||
          std::find(it->second.begin(), it->second.end(), listener.name) != it->second.end()) {
        return true;
      }
    }
    return false;
  };
  r.make_factory = [](const config::FilterConfig& fc, FactoryContext& context,
                      std::string*) -> FilterFactoryPtr {
    return std::make_shared<CompressionFactory>(static_cast<const CompressionConfig&>(fc),
                                                context.config, context.listener);
  };
  return r;
}

}  // namespace sluice::compression
