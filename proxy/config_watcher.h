#pragma once
// `--watch`: reloads when the config file, or a certificate or key it names, changes. Watches
// the directories holding them with inotify rather than the files, because the usual ways to
// update a file replace it: an editor's rename over the old one, and the kubelet's update of a
// ConfigMap or Secret volume, which writes a new directory and swaps the `..data` symlink to it
// (the file itself, `sluice.yaml -> ..data/sluice.yaml`, never changes). A burst of events is
// looked at once, after a short delay; then the files' contents are compared with what the last
// reload read, so touching a file or an unrelated change in the directory reloads nothing.
// Runs on the control thread.
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

namespace sluice {

class ConfigWatcher {
 public:
  static constexpr std::chrono::milliseconds kDefaultSettle{250};

  // `on_change` runs on `ioc` `settle` after the first event of a burst in a watched
  // directory.
  ConfigWatcher(boost::asio::io_context& ioc, std::function<void()> on_change,
                std::chrono::milliseconds settle = kDefaultSettle);
  ~ConfigWatcher();

  // Watches the directories of `files` (and of what they link to) from now on, replacing the
  // previous set. False with `error` when inotify is not available; a directory that cannot be
  // watched (gone, no permission) is skipped.
  bool watch(const std::vector<std::string>& files, std::string* error);

 private:
  void read_events();
  void add_watches();

  boost::asio::posix::stream_descriptor inotify_;
  boost::asio::steady_timer settle_timer_;
  std::function<void()> on_change_;
  std::chrono::milliseconds settle_;
  std::vector<std::string> files_;
  std::map<int, std::string> watches_;  // watch descriptor -> directory
  char events_[8192];
  bool reading_ = false;
  bool settle_pending_ = false;
};

// A hash of the contents of `files` (a missing file hashes as such), to tell whether a reload
// would read anything new.
size_t fingerprint_files(const std::vector<std::string>& files);

}  // namespace sluice
