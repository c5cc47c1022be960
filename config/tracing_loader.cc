// YAML → Tracing: the OTLP endpoint (http://host:port/path), sampling, export headers and the
// exporter's batching bounds.
#include <boost/url/parse.hpp>
#include <charconv>
#include <cmath>

#include "config/certificate.h"
#include "config/loader.h"
#include "config/values.h"

namespace sluice::config::detail {
namespace {

constexpr std::string_view kTracingKeys[] = {
    "otlp_endpoint",   "service_name", "sample_rate",    "headers", "max_queue_spans",
    "max_batch_spans", "batch_delay",  "export_timeout", "ca_file", "compression"};
constexpr std::string_view kCompressions[] = {"none", "gzip"};

// Headers the exporter writes itself, which tracing.headers may not set.
constexpr std::string_view kExporterHeaders[] = {"content-type", "content-length",
                                                 "host",         "transfer-encoding",
                                                 "connection",   "content-encoding"};

// A number from 0 to 1 ("0.01", "1").
std::optional<double> read_rate(Diagnostics& diag, const Field& f) {
  const std::string s = f.value.IsScalar() ? f.value.Scalar() : std::string();
  double rate = -1;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), rate);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || !std::isfinite(rate) ||
      rate < 0 || rate > 1) {
    diag.error(f.mark(), f.name +
                             ": expected a number from 0 to 1 (0.01 records 1% of new "
                             "traces), got " +
                             describe(f.value));
    return std::nullopt;
  }
  return rate;
}

}  // namespace

void Loader::load_otlp_endpoint(const Field& f, Tracing& tracing) {
  std::optional<std::string> s = read_nonempty(diag_, f);
  if (!s) return;
  auto fail = [&](std::string_view why) {
    diag_.error(f.mark(), "otlp_endpoint: " + quote(*s) + " " + std::string(why) +
                              " (expected a URL like http://collector:4318/v1/traces)");
  };
  boost::system::result<boost::urls::url_view> url = boost::urls::parse_absolute_uri(*s);
  if (!url) return fail("is not a URL");
  const bool tls = url->scheme() == "https";
  if (url->scheme() != "http" && !tls) return fail("has an unsupported scheme");
  if (url->has_userinfo()) return fail("must not hold credentials; use 'headers'");
  if (url->has_fragment()) return fail("must not have a fragment");
  std::string host = url->host_address();
  if (host.empty() || !is_hostname(host)) return fail("has no valid host");
  // OTLP/HTTP's registered port; over https, the scheme's, as hosted collectors use it.
  uint16_t port = tls ? 443 : 4318;
  if (url->has_port()) {
    if (url->port_number() == 0) return fail("has an invalid port");
    port = url->port_number();
  }
  std::string target(url->encoded_path());
  if (target.empty()) target = "/v1/traces";  // where OTLP/HTTP receivers take traces
  if (url->has_query()) target += "?" + std::string(url->encoded_query());
  tracing.otlp_endpoint = *s;
  tracing.endpoint_host = std::move(host);
  tracing.endpoint_port = port;
  tracing.endpoint_target = std::move(target);
  tracing.endpoint_tls = tls;
}

void Loader::load_tracing(const Field& f) {
  MapReader m(diag_, f, "tracing", kTracingKeys);
  if (!m.is_map()) return;
  Tracing& t = config_.tracing;
  if (const Field* e = m.require("otlp_endpoint")) load_otlp_endpoint(*e, t);
  if (const Field* n = m.get("service_name")) {
    if (auto s = read_nonempty(diag_, *n)) t.service_name = *s;
  }
  if (const Field* r = m.get("sample_rate")) {
    if (auto rate = read_rate(diag_, *r)) t.sample_rate = *rate;
  }
  if (const Field* h = m.get("headers")) {
    load_header_map(*h, kExporterHeaders, "is set by the exporter", t.headers);
  }
  if (const Field* q = m.get("max_queue_spans")) {
    if (auto n = read_integer(diag_, *q, 1, 1'000'000)) t.max_queue_spans = static_cast<size_t>(*n);
  }
  if (const Field* b = m.get("max_batch_spans")) {
    if (auto n = read_integer(diag_, *b, 1, 100'000)) t.max_batch_spans = static_cast<size_t>(*n);
  }
  if (const Field* d = m.get("batch_delay")) {
    if (auto v = read_duration(diag_, *d, /*allow_zero=*/false)) t.batch_delay = *v;
  }
  if (const Field* d = m.get("export_timeout")) {
    if (auto v = read_duration(diag_, *d, /*allow_zero=*/false)) t.export_timeout = *v;
  }
  if (const Field* c = m.get("ca_file")) {
    if (auto s = read_nonempty(diag_, *c)) {
      t.ca_file = resolve_path(*s);
      if (std::string error = check_ca_file(t.ca_file); !error.empty()) {
        diag_.error(c->mark(), "ca_file: " + error);
      } else if (!t.endpoint_tls && !t.otlp_endpoint.empty()) {
        diag_.error(c->mark(), "ca_file: only used with an https otlp_endpoint");
      }
    }
  }
  if (const Field* c = m.get("compression")) {
    if (auto choice = read_choice(diag_, *c, kCompressions)) t.gzip = *choice == "gzip";
  }
  if (t.max_batch_spans > t.max_queue_spans) {
    diag_.error(m.mark(), "tracing: max_batch_spans (" + std::to_string(t.max_batch_spans) +
                              ") must not exceed max_queue_spans (" +
                              std::to_string(t.max_queue_spans) + ")");
  }
}

}  // namespace sluice::config::detail
