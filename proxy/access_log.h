#pragma once
// One JSON line per finished exchange. Each worker has its own AccessLog writing to a shared
// file descriptor with one write() per line (O_APPEND files and pipes keep lines whole).
// Opened on the main thread (to check the path) and by each worker for every snapshot, so a
// reload reopens a file that was moved away (log rotation); written on its worker's thread.
#include <memory>
#include <string>

#include "config/config.h"
#include "core/http.h"
#include "filters/filter.h"

namespace sluice {

class AccessLog {
 public:
  // Opens config.path ("stdout", "stderr" or a file). Null when the path is "off".
  static std::unique_ptr<AccessLog> open(const config::AccessLog& config, std::string* error);
  ~AccessLog();
  void write(const RequestHead& request, const StreamInfo& info);

 private:
  explicit AccessLog(int fd, bool owned) : fd_(fd), owned_(owned) {}
  int fd_;
  bool owned_;
  std::string line_;  // reused between writes
};

// Longest line written, newline included: PIPE_BUF, so that lines from several workers
// never interleave on a pipe.
inline constexpr size_t kMaxAccessLogLine = 4096;

// Replaces `out` with one JSON object (no newline). When the line would exceed
// kMaxAccessLogLine, the longest of path, host and method is shortened and "truncated":true is
// added. Any thread.
void format_access_log_line(const RequestHead& request, const StreamInfo& info, std::string& out);

}  // namespace sluice
