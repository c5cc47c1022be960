#include "proxy/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

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
  return std::unique_ptr<AccessLog>(new AccessLog(writer.open(fd, owned, std::move(dropped))));
}

std::string AccessLog::check_path(const config::AccessLog& config) {
  if (config.path == "off" || config.path == "stdout" || config.path == "stderr") return {};
  std::string error;
  int fd = open_for_append(config.path, &error);
  if (fd >= 0) ::close(fd);
  return error;
}

void AccessLog::write(const RequestHead& request, const StreamInfo& info) {
  format_access_log_line(request, info, line_);
  line_ += '\n';
  channel_->push(line_);  // a full buffer drops the line and counts it
}

namespace {

// How much of each client-controlled field goes into the line.
struct FieldLimits {
  size_t method;
  size_t path;
  size_t host;
};

void append_line(std::string& out, const RequestHead& request, const StreamInfo& info,
                 const char* when, double duration_ms, const FieldLimits& limits, bool truncated) {
  char num[64];
  out.clear();
  out += "{\"time\":\"";
  out += when;
  out += "\",\"listener\":";
  append_json_string(out, info.listener);
  // The client (behind trusted proxies, who they forward for) and the connection's peer.
  out += ",\"client\":";
  append_json_string(out, info.client_ip.to_string());
  out += ",\"peer\":";
  append_json_string(out, format_endpoint(info.peer_ip, info.peer_port));
  out += ",\"method\":";
  append_json_string(out, std::string_view(request.method).substr(0, limits.method));
  out += ",\"path\":";
  append_json_string(out, std::string_view(request.target).substr(0, limits.path));
  out += ",\"host\":";
  append_json_string(out, std::string_view(request.authority).substr(0, limits.host));
  out += request.version == 20   ? ",\"protocol\":\"HTTP/2\""
         : request.version == 10 ? ",\"protocol\":\"HTTP/1.0\""
                                 : ",\"protocol\":\"HTTP/1.1\"";
  std::snprintf(num, sizeof(num), ",\"status\":%u", info.status);
  out += num;
  std::snprintf(num, sizeof(num), ",\"bytes_in\":%llu,\"bytes_out\":%llu",
                static_cast<unsigned long long>(info.bytes_received),
                static_cast<unsigned long long>(info.bytes_sent));
  out += num;
  std::snprintf(num, sizeof(num), ",\"duration_ms\":%.3f", duration_ms);
  out += num;
  out += ",\"request_id\":";
  append_json_string(out, info.request_id);
  out += ",\"route\":";
  append_json_string(out, info.route);
  out += ",\"upstream\":";
  append_json_string(out, info.upstream_host);
  if (info.response_aborted) out += ",\"aborted\":true";
  if (!info.error.empty()) {
    out += ",\"error\":";
    append_json_string(out, info.error);
  }
  if (truncated) out += ",\"truncated\":true";
  out += '}';
}

}  // namespace

void format_access_log_line(const RequestHead& request, const StreamInfo& info, std::string& out) {
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
  double duration_ms = duration<double, std::milli>(steady_clock::now() - info.start).count();

  FieldLimits limits{request.method.size(), request.target.size(), request.authority.size()};
  append_line(out, request, info, when, duration_ms, limits, false);
  // Halve the longest client-controlled field until the line fits. Rare: a URL of several KiB.
  while (out.size() + 1 > kMaxAccessLogLine) {
    size_t* longest = &limits.path;
    if (limits.host > *longest) longest = &limits.host;
    if (limits.method > *longest) longest = &limits.method;
    if (*longest == 0) break;  // only operator-chosen names are left
    *longest /= 2;
    append_line(out, request, info, when, duration_ms, limits, true);
  }
}

}  // namespace sluice
