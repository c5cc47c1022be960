#pragma once
// One JSON line per finished exchange. Each worker has its own AccessLog writing to a shared
// file descriptor with one write() per line (O_APPEND files and pipes keep lines whole).
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

std::string format_access_log_line(const RequestHead& request, const StreamInfo& info);

}  // namespace sluice
