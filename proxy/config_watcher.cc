#include "proxy/config_watcher.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace sluice {

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

constexpr uint32_t kDirectoryEvents = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
                                      IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF |
                                      IN_MOVE_SELF;

// The directory of `file`, and of each link on the way to what it names: for the kubelet's
// `sluice.yaml -> ..data/sluice.yaml`, `..data -> ..2026_12_02_…`, that is the volume's root
// (where `..data` is swapped) and the current data directory.
std::set<std::string> directories_of(const std::string& file) {
  std::set<std::string> dirs;
  fs::path p = file;
  for (int hops = 0; hops < 16; ++hops) {
    fs::path dir = p.parent_path();
    if (dir.empty()) dir = ".";
    dirs.insert(dir.string());
    std::error_code ec;
    if (!fs::is_symlink(p, ec)) break;
    fs::path target = fs::read_symlink(p, ec);
    if (ec) break;
    p = target.is_absolute() ? target : dir / target;
  }
  std::error_code ec;
  fs::path real = fs::weakly_canonical(file, ec);
  if (!ec && !real.parent_path().empty()) dirs.insert(real.parent_path().string());
  return dirs;
}

}  // namespace

ConfigWatcher::ConfigWatcher(asio::io_context& ioc, std::function<void()> on_change,
                             std::chrono::milliseconds settle)
    : inotify_(ioc), settle_timer_(ioc), on_change_(std::move(on_change)), settle_(settle) {}

ConfigWatcher::~ConfigWatcher() = default;

bool ConfigWatcher::watch(const std::vector<std::string>& files, std::string* error) {
  if (!inotify_.is_open()) {
    int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
      *error = std::string("inotify: ") + std::strerror(errno);
      return false;
    }
    inotify_.assign(fd);
  }
  for (const auto& [wd, dir] : watches_) ::inotify_rm_watch(inotify_.native_handle(), wd);
  watches_.clear();
  files_ = files;
  add_watches();
  if (!reading_) read_events();
  return true;
}

void ConfigWatcher::add_watches() {
  for (const auto& file : files_) {
    for (const auto& dir : directories_of(file)) {
      // The same directory twice gives the same descriptor.
      int wd = ::inotify_add_watch(inotify_.native_handle(), dir.c_str(), kDirectoryEvents);
      if (wd >= 0) watches_[wd] = dir;
    }
  }
}

void ConfigWatcher::read_events() {
  reading_ = true;
  inotify_.async_read_some(
      asio::buffer(events_), [this](const boost::system::error_code& ec, size_t n) {
        if (ec) {
          reading_ = false;
          return;  // closed with the watcher
        }
        for (size_t at = 0; at + sizeof(inotify_event) <= n;) {
          inotify_event event;
          std::memcpy(&event, events_ + at, sizeof(event));
          // The kernel dropped the watch: its directory was deleted (an old `..2026_…`).
          if (event.mask & IN_IGNORED) watches_.erase(event.wd);
          at += sizeof(inotify_event) + event.len;
        }
        // A kubelet update or an editor's save is several events in a few milliseconds: look
        // once, `settle_` after the first. Counted from the first, not pushed back by each, so
        // that a directory that is never quiet (a log file beside the config) cannot delay a
        // reload forever; the contents comparison makes a look at unchanged files free.
        if (!settle_pending_) {
          settle_pending_ = true;
          settle_timer_.expires_after(settle_);
          settle_timer_.async_wait([this](const boost::system::error_code& timer_ec) {
            settle_pending_ = false;
            if (timer_ec) return;
            add_watches();  // a link may now lead through a new directory
            on_change_();
          });
        }
        read_events();
      });
}

size_t fingerprint_files(const std::vector<std::string>& files) {
  std::string all;
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      all += "\x01missing:" + file;
      continue;
    }
    std::ostringstream content;
    content << in.rdbuf();
    all += "\x02" + file + "\x02" + content.str();
  }
  return std::hash<std::string>{}(all);
}

}  // namespace sluice
