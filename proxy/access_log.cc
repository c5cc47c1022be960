#include "proxy/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <span>

#include "core/json.h"

namespace sluice {

namespace {

// Opens a file for appending, or -1 with `error` set.
int open_for_append(const std::string& path, std::string* error) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) *error = "cannot open access log " + path + ": " + std::strerror(errno);
  return fd;
}

}  // namespace

std::unique_ptr<AccessLog> AccessLog::open(const config::AccessLog& config, LogWriter& writer,
                                           LogWriter::DropCounter dropped, std::string* error) {
  if (config.path == "off") return nullptr;
  int fd = config.path == "stdout" ? 1 : config.path == "stderr" ? 2 : -1;
  const bool owned = fd < 0;
  if (owned) fd = open_for_append(config.path, error);
  if (fd < 0) return nullptr;
  return std::unique_ptr<AccessLog>(
      new AccessLog(writer.open(fd, owned, std::move(dropped)), AccessLogFormat(config.fields)));
}

std::string AccessLog::check_path(const config::AccessLog& config) {
  if (config.path == "off" || config.path == "stdout" || config.path == "stderr") return {};
  std::string error;
  int fd = open_for_append(config.path, &error);
  if (fd >= 0) ::close(fd);
  return error;
}

void AccessLog::write(const RequestHead& request, const StreamInfo& info) {
  format_access_log_line(request, info, line_, format_);
  line_ += '\n';
  channel_->push(line_);  // a full buffer drops the line and counts it
}

namespace {

// The fields of config::kAccessLogFields, in the same order.
enum class LogField : uint8_t {
  time,
  listener,
  client,
  peer,
  method,
  path,
  host,
  protocol,
  status,
  bytes_in,
  bytes_out,
  duration_ms,
  request_id,
  trace_id,
  route,
  cluster,
  upstream,
  upstream_status,
  upstream_time_ms,
  user_agent,
  referer,
  tls_version,
  upgrade,
  aborted,
  error,
};
constexpr size_t kFieldCount = std::size(config::kAccessLogFields);
static_assert(static_cast<size_t>(LogField::error) + 1 == kFieldCount);

constexpr auto kAllFields = [] {
  std::array<uint8_t, kFieldCount> all{};
  for (size_t i = 0; i < kFieldCount; ++i) all[i] = static_cast<uint8_t>(i);
  return all;
}();

// How much of each client-controlled field goes into the line.
struct FieldLimits {
  size_t method;
  size_t path;
  size_t host;
  size_t user_agent;
  size_t referer;
};

// What a line is made of; the limits change between attempts at a line that is too long.
struct LineInput {
  const RequestHead& request;
  const StreamInfo& info;
  const char* when;
  double duration_ms;
  std::span<const uint8_t> fields;  // LogField values
  std::string_view user_agent;
  std::string_view referer;
};

void append_key(std::string& out, LogField f) {
  if (out.size() > 1) out += ',';
  out += '"';
  out += config::kAccessLogFields[static_cast<size_t>(f)];
  out += "\":";
}

void append_uint(std::string& out, uint64_t v) {
  char num[24];
  int n = std::snprintf(num, sizeof(num), "%llu", static_cast<unsigned long long>(v));
  out.append(num, static_cast<size_t>(n));
}

void append_ms(std::string& out, double ms) {
  char num[32];
  int n = std::snprintf(num, sizeof(num), "%.3f", ms);
  out.append(num, static_cast<size_t>(n));
}

void append_field(std::string& out, LogField f, const LineInput& in, const FieldLimits& limits) {
  const StreamInfo& info = in.info;
  const RequestHead& request = in.request;
  switch (f) {
    case LogField::time:
      append_key(out, f);
      out += '"';
      out += in.when;
      out += '"';
      return;
    case LogField::listener:
      append_key(out, f);
      return append_json_string(out, info.listener);
    case LogField::client:  // who the peer forwards for, behind trusted proxies
      append_key(out, f);
      return append_json_string(out, info.client_ip.to_string());
    case LogField::peer:
      append_key(out, f);
      return append_json_string(out, format_endpoint(info.peer_ip, info.peer_port));
    case LogField::method:
      append_key(out, f);
      return append_json_string(out, std::string_view(request.method).substr(0, limits.method));
    case LogField::path:
      append_key(out, f);
      return append_json_string(out, std::string_view(request.target).substr(0, limits.path));
    case LogField::host:
      append_key(out, f);
      return append_json_string(out, std::string_view(request.authority).substr(0, limits.host));
    case LogField::protocol:
      append_key(out, f);
      out += request.version == 20   ? "\"HTTP/2\""
             : request.version == 10 ? "\"HTTP/1.0\""
                                     : "\"HTTP/1.1\"";
      return;
    case LogField::status:
      append_key(out, f);
      return append_uint(out, info.status);
    case LogField::bytes_in:
      append_key(out, f);
      return append_uint(out, info.bytes_received);
    case LogField::bytes_out:
      append_key(out, f);
      return append_uint(out, info.bytes_sent);
    case LogField::duration_ms:
      append_key(out, f);
      return append_ms(out, in.duration_ms);
    case LogField::request_id:
      append_key(out, f);
      return append_json_string(out, info.request_id);
    case LogField::trace_id:
      append_key(out, f);
      // Empty for a request that never got as far as its headers.
      return append_json_string(
          out, info.trace.trace_id[0] == '\0' ? std::string_view() : to_view(info.trace.trace_id));
    case LogField::route:
      append_key(out, f);
      return append_json_string(out, info.route);
    case LogField::cluster:
      append_key(out, f);
      return append_json_string(out, info.cluster);
    case LogField::upstream:
      append_key(out, f);
      return append_json_string(out, info.upstream_host);
    case LogField::upstream_status:
      append_key(out, f);
      if (info.upstream_status == 0) {
        out += "null";
        return;
      }
      return append_uint(out, info.upstream_status);
    case LogField::upstream_time_ms:
      append_key(out, f);
      if (info.upstream_time.count() < 0) {
        out += "null";
        return;
      }
      return append_ms(out, std::chrono::duration<double, std::milli>(info.upstream_time).count());
    case LogField::user_agent:
      append_key(out, f);
      return append_json_string(out, in.user_agent.substr(0, limits.user_agent));
    case LogField::referer:
      append_key(out, f);
      return append_json_string(out, in.referer.substr(0, limits.referer));
    case LogField::tls_version:
      append_key(out, f);
      if (info.tls_version == nullptr) {
        out += "null";
        return;
      }
      return append_json_string(out, info.tls_version);
    // The last three only appear when they say something.
    case LogField::upgrade:
      if (info.upgrade.empty()) return;
      append_key(out, f);
      return append_json_string(out, info.upgrade);
    case LogField::aborted:
      if (!info.response_aborted) return;
      append_key(out, f);
      out += "true";
      return;
    case LogField::error:
      if (info.error.empty()) return;
      append_key(out, f);
      return append_json_string(out, info.error);
  }
}

void append_line(std::string& out, const LineInput& in, const FieldLimits& limits, bool truncated) {
  out.clear();
  out += '{';
  for (uint8_t f : in.fields) append_field(out, static_cast<LogField>(f), in, limits);
  if (truncated) out += out.size() > 1 ? ",\"truncated\":true" : "\"truncated\":true";
  out += '}';
}

}  // namespace

AccessLogFormat::AccessLogFormat(const std::vector<std::string>& names) {
  for (const auto& name : names) {
    for (size_t i = 0; i < kFieldCount; ++i) {
      if (config::kAccessLogFields[i] == name) fields_.push_back(static_cast<uint8_t>(i));
    }
  }
}

void format_access_log_line(const RequestHead& request, const StreamInfo& info, std::string& out,
                            const AccessLogFormat& format) {
  using namespace std::chrono;
  auto wall = info.start_wall;
  std::time_t secs = system_clock::to_time_t(wall);
  auto millis = duration_cast<milliseconds>(wall.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char when[96];
  std::snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(millis));
  std::span<const uint8_t> fields = kAllFields;
  if (!format.fields_.empty()) fields = format.fields_;
  const LineInput in{request,
                     info,
                     when,
                     duration<double, std::milli>(steady_clock::now() - info.start).count(),
                     fields,
                     request.headers.get("user-agent").value_or(""),
                     request.headers.get("referer").value_or("")};
  FieldLimits limits{request.method.size(), request.target.size(), request.authority.size(),
                     in.user_agent.size(), in.referer.size()};
  append_line(out, in, limits, false);
  // Halve the longest client-controlled field until the line fits. Rare: a URL of several KiB.
  while (out.size() + 1 > kMaxAccessLogLine) {
    size_t* longest = &limits.path;
    for (size_t* l : {&limits.host, &limits.method, &limits.user_agent, &limits.referer}) {
      if (*l > *longest) longest = l;
    }
    if (*longest == 0) break;  // only operator-chosen names are left
    *longest /= 2;
    append_line(out, in, limits, true);
  }
}

}  // namespace sluice
