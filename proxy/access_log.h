#pragma once
// One JSON line per finished exchange. Each worker has its own AccessLog, opened for every
// snapshot (so a reload reopens a file that was moved away: log rotation), formatting on its
// worker's thread and handing the line to the logging thread (core/log_writer.h): a sink that
// cannot keep up costs dropped lines (sluice_access_log_dropped_total), never a blocked worker.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/http.h"
#include "core/log_writer.h"
#include "filters/filter.h"

namespace sluice {

// Which fields a line has, in order (access_log.fields); built once per snapshot.
class AccessLogFormat {
 public:
  AccessLogFormat() = default;                                      // every field
  explicit AccessLogFormat(const std::vector<std::string>& names);  // kAccessLogFields names

 private:
  friend void format_access_log_line(const RequestHead&, const StreamInfo&, std::string&,
                                     const AccessLogFormat&);
  std::vector<uint8_t> fields_;  // indexes into config::kAccessLogFields; empty: all
};

class AccessLog {
 public:
  // Opens config.path ("stdout", "stderr" or a file) on `writer`; lines it drops count in
  // `dropped`. Null when the path is "off" or cannot be opened (then `error` says why).
  static std::unique_ptr<AccessLog> open(const config::AccessLog& config, LogWriter& writer,
                                         LogWriter::DropCounter dropped, std::string* error);
  // Whether config.path can be opened for appending; empty when it can (or is off). The
  // control thread checks this before a snapshot is handed to the workers.
  static std::string check_path(const config::AccessLog& config);

  void write(const RequestHead& request, const StreamInfo& info);

 private:
  AccessLog(std::unique_ptr<LogChannel> channel, AccessLogFormat format)
      : channel_(std::move(channel)), format_(std::move(format)) {}
  std::unique_ptr<LogChannel> channel_;
  AccessLogFormat format_;
  std::string line_;  // reused between writes
};

// Longest line written, newline included: PIPE_BUF, so that a line stays one atomic write for
// anyone reading the pipe, and one request cannot take a large share of the buffer.
inline constexpr size_t kMaxAccessLogLine = 4096;

// Replaces `out` with one JSON object (no newline). When the line would exceed
// kMaxAccessLogLine, the longest of path, host and method is shortened and "truncated":true is
// added. Any thread.
void format_access_log_line(const RequestHead& request, const StreamInfo& info, std::string& out,
                            const AccessLogFormat& format = {});

}  // namespace sluice
