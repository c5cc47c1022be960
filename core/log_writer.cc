#include "core/log_writer.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sluice {

struct LogWriter::Shared {
  std::chrono::milliseconds interval;
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::shared_ptr<LogChannel::State>> channels;  // guarded
  bool wake = false;                                         // guarded
  bool stopping = false;                                     // guarded
  std::thread thread;
  std::future<void> finished;

  void run();
  void notify() {
    {
      std::lock_guard lock(mutex);
      wake = true;
    }
    cv.notify_one();
  }
};

struct LogChannel::State {
  int fd;
  bool owned;
  size_t capacity;
  bool immediate;
  LogWriter::DropCounter dropped;
  std::weak_ptr<LogWriter::Shared> writer;  // to wake it early; it may be gone
  std::mutex mutex;
  std::string pending;    // guarded
  bool released = false;  // guarded: the channel is gone; write the rest, then close
  bool woken = false;     // guarded: the writer was asked to come early for this buffer
  bool finished = false;  // writer thread only: released and written out

  ~State() {
    if (owned) ::close(fd);
  }
};

namespace {

size_t count_lines(std::string_view s) {
  return static_cast<size_t>(std::count(s.begin(), s.end(), '\n'));
}

// Writes all of `data`; on an error other than EINTR the rest is lost and counted.
void write_all(int fd, std::string_view data, std::atomic<uint64_t>& dropped) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // A line the error cut short counts as lost.
      dropped.fetch_add(std::max<size_t>(1, count_lines(data)), std::memory_order_relaxed);
      return;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

void LogWriter::Shared::run() {
  std::string batch;
  std::unique_lock lock(mutex);
  for (;;) {
    cv.wait_for(lock, interval, [&] { return wake || stopping; });
    wake = false;
    const bool last = stopping;
    std::vector<std::shared_ptr<LogChannel::State>> list = channels;
    lock.unlock();
    for (const auto& ch : list) {
      bool released;
      {
        std::lock_guard channel_lock(ch->mutex);
        batch.swap(ch->pending);  // the channel keeps the emptied buffer's capacity
        ch->woken = false;
        released = ch->released;
      }
      write_all(ch->fd, batch, *ch->dropped);
      batch.clear();
      ch->finished = released;
    }
    list.clear();
    lock.lock();
    std::erase_if(channels, [](const auto& ch) { return ch->finished; });
    if (last) return;
  }
}

LogChannel::~LogChannel() {
  {
    std::lock_guard lock(state_->mutex);
    state_->released = true;
  }
  if (auto writer = state_->writer.lock()) writer->notify();
}

bool LogChannel::push(std::string_view line) {
  bool wake = false;
  {
    std::lock_guard lock(state_->mutex);
    if (state_->pending.size() + line.size() > state_->capacity) {
      state_->dropped->fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (state_->pending.capacity() < state_->capacity / 4) {
      state_->pending.reserve(state_->capacity / 4);
    }
    state_->pending.append(line);
    // Half full before the flush interval is up (a burst), or a line wanted at once.
    if (!state_->woken && (state_->immediate || state_->pending.size() >= state_->capacity / 2)) {
      state_->woken = wake = true;
    }
  }
  if (wake) {
    if (auto writer = state_->writer.lock()) writer->notify();
  }
  return true;
}

LogWriter::LogWriter(std::chrono::milliseconds flush_interval)
    : shared_(std::make_shared<Shared>()) {
  shared_->interval = flush_interval;
  std::promise<void> done;
  shared_->finished = done.get_future();
  // The thread holds the shared state: if stop() gives up on a stalled sink, the thread may
  // outlive this object.
  shared_->thread = std::thread([shared = shared_, done = std::move(done)]() mutable {
    pthread_setname_np(pthread_self(), "sluice-log");
    shared->run();
    done.set_value();
  });
}

LogWriter::~LogWriter() { stop(); }

std::unique_ptr<LogChannel> LogWriter::open(int fd, bool owned, DropCounter dropped,
                                            size_t capacity, Flush flush) {
  auto state = std::make_shared<LogChannel::State>();
  state->fd = fd;
  state->owned = owned;
  state->capacity = capacity;
  state->immediate = flush == Flush::immediate;
  state->dropped = std::move(dropped);
  state->writer = shared_;
  {
    std::lock_guard lock(shared_->mutex);
    shared_->channels.push_back(state);
  }
  return std::unique_ptr<LogChannel>(new LogChannel(std::move(state)));
}

void LogWriter::stop(std::chrono::milliseconds deadline) {
  if (!shared_->thread.joinable()) return;
  {
    std::lock_guard lock(shared_->mutex);
    shared_->stopping = true;
  }
  shared_->cv.notify_one();
  if (shared_->finished.wait_for(deadline) == std::future_status::ready) {
    shared_->thread.join();
  } else {
    shared_->thread.detach();  // blocked in write(); it ends with the process
  }
}

namespace {

std::mutex error_log_mutex;
std::unique_ptr<LogChannel> error_log;  // guarded by error_log_mutex

}  // namespace

void log_line(std::string_view message) {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char when[32];
  std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::string line = std::string(when) + " sluice: " + std::string(message) + "\n";
  std::lock_guard lock(error_log_mutex);
  if (error_log) {
    error_log->push(line);
    return;
  }
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

void route_error_log(LogWriter* writer, LogWriter::DropCounter dropped) {
  std::unique_ptr<LogChannel> channel;
  if (writer) {
    channel =
        writer->open(2, false, std::move(dropped), size_t{256} << 10, LogWriter::Flush::immediate);
  }
  std::lock_guard lock(error_log_mutex);
  error_log = std::move(channel);
}

}  // namespace sluice
