#pragma once
// Log lines leave the threads that make them through one logging thread, so a slow or stalled
// sink (a pipe nobody reads, a full disk, a hung network file system) never blocks a worker or
// the control thread. Each producer appends complete lines to its own bounded buffer (a
// LogChannel); the thread swaps the buffers out every flush interval, or sooner when one is half
// full, and writes each with as few write() calls as it can. A line that does not fit is
// dropped and counted, never queued without bound: memory stays at most two buffers per
// channel, whatever the sink does.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace sluice {

class LogWriter;

// One producer's buffer in front of one file descriptor. Lines pushed to one channel reach
// the file in order and whole.
class LogChannel {
 public:
  ~LogChannel();
  LogChannel(const LogChannel&) = delete;
  LogChannel& operator=(const LogChannel&) = delete;

  // Queues `line` (complete, newline included). Returns false, writing nothing, when the
  // buffer has no room for it: the line is dropped. Any thread; cheap (a short lock and a copy).
  bool push(std::string_view line);

 private:
  friend class LogWriter;
  struct State;
  explicit LogChannel(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

class LogWriter {
 public:
  static constexpr std::chrono::milliseconds kDefaultFlushInterval{50};
  static constexpr size_t kDefaultCapacity = size_t{1} << 20;

  explicit LogWriter(std::chrono::milliseconds flush_interval = kDefaultFlushInterval);
  // Stops: see stop().
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // Lines dropped because a buffer was full or lost to a failed write (a closed pipe, a full
  // disk). Shared, so that a count can span the channels a reload replaces.
  using DropCounter = std::shared_ptr<std::atomic<uint64_t>>;

  // How soon a pushed line is written: within the flush interval (many lines per write, for
  // a busy log), or at once (for a rare one that someone may be waiting to read).
  enum class Flush { batched, immediate };

  // A channel writing to `fd` (closed after the channel when `owned`) with a buffer of
  // `capacity` bytes. Lines still buffered when the channel is destroyed are written after.
  std::unique_ptr<LogChannel> open(int fd, bool owned, DropCounter dropped,
                                   size_t capacity = kDefaultCapacity,
                                   Flush flush = Flush::batched);

  // Writes what is buffered and ends the thread, waiting at most `deadline` for a sink that
  // does not take the lines (the thread is then left to finish on its own, so that exit is not
  // held up by a stalled pipe). Idempotent.
  void stop(std::chrono::milliseconds deadline = std::chrono::seconds(2));

 private:
  friend class LogChannel;
  struct Shared;
  std::shared_ptr<Shared> shared_;
};

// The process's error log: one timestamped line on stderr. Through the logging thread while
// route_error_log() has a writer in place (so a stalled stderr blocks nobody), written directly
// otherwise (at start, in --check, after shutdown). Any thread.
void log_line(std::string_view message);
// Sends log_line() through `writer`, counting dropped lines in `dropped`; nullptr goes back
// to writing directly. The writer must outlive the routing.
void route_error_log(LogWriter* writer, LogWriter::DropCounter dropped);

}  // namespace sluice
