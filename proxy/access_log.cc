#include "proxy/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "core/json.h"

namespace sluice {

std::unique_ptr<AccessLog> AccessLog::open(const config::AccessLog& config, std::string* error) {
  if (config.path == "off") return nullptr;
  if (config.path == "stdout") return std::unique_ptr<AccessLog>(new AccessLog(1, false));
  if (config.path == "stderr") return std::unique_ptr<AccessLog>(new AccessLog(2, false));
  int fd = ::open(config.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (error) *error = "cannot open access log " + config.path + ": " + std::strerror(errno);
    return nullptr;
  }
  return std::unique_ptr<AccessLog>(new AccessLog(fd, true));
}

AccessLog::~AccessLog() {
  if (owned_) ::close(fd_);
}

void AccessLog::write(const RequestHead& request, const StreamInfo& info) {
  format_access_log_line(request, info, line_);
  line_ += '\n';
  const char* p = line_.data();
  size_t left = line_.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // a full disk or closed pipe must not stop the proxy
    p += n;
    left -= static_cast<size_t>(n);
  }
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
  // Several workers share one descriptor; a write of up to PIPE_BUF bytes to a pipe (stdout
  // under a container runtime or systemd) is never interleaved with another, a longer one can
  // be. Halve the longest client-controlled field until the line fits. Rare: a URL of
  // several KiB.
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
