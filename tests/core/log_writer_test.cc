#include "core/log_writer.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace sluice {
namespace {

using namespace std::chrono_literals;

struct Pipe {
  int read_end = -1;
  int write_end = -1;
  Pipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    read_end = fds[0];
    write_end = fds[1];
  }
  ~Pipe() {
    if (read_end >= 0) ::close(read_end);
    if (write_end >= 0) ::close(write_end);
  }
  // Everything written until the write end closes.
  std::string read_all() {
    std::string out;
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(read_end, buf, sizeof(buf));
      if (n <= 0) return out;
      out.append(buf, static_cast<size_t>(n));
    }
  }
};

LogWriter::DropCounter counter() { return std::make_shared<std::atomic<uint64_t>>(0); }

std::string numbered_line(int i) {
  return "line " + std::to_string(i) + std::string(60, 'x') + "\n";
}

TEST(LogWriter, LinesReachTheFileInOrderAndWhole) {
  Pipe pipe;
  std::string got;
  std::thread reader([&] { got = pipe.read_all(); });
  auto dropped = counter();
  std::string expected;
  {
    LogWriter writer(5ms);
    // Owned: closed once the channel is gone and its lines are written, which ends read_all().
    auto channel = writer.open(pipe.write_end, true, dropped, 4096);
    pipe.write_end = -1;
    for (int i = 0; i < 2000; ++i) {
      std::string line = numbered_line(i);
      // A small buffer fills faster than the thread drains it; retry until the line fits.
      while (!channel->push(line)) std::this_thread::sleep_for(100us);
      expected += line;
    }
  }
  reader.join();
  EXPECT_EQ(got, expected);
}

TEST(LogWriter, AFullBufferDropsAndCountsInsteadOfBlocking) {
  // A pipe nobody reads: the kernel takes 64 KiB, then write() blocks the logging thread. The
  // producer must keep going, dropping what does not fit its 16 KiB buffer.
  signal(SIGPIPE, SIG_IGN);
  Pipe pipe;
  auto dropped = counter();
  LogWriter writer(1ms);
  auto channel = writer.open(pipe.write_end, false, dropped, 16 * 1024);
  int accepted = 0;
  const int total = 20000;  // about 1.4 MB: far beyond the pipe and the buffer
  for (int i = 0; i < total; ++i) accepted += channel->push(numbered_line(i)) ? 1 : 0;
  EXPECT_LT(accepted, total);
  EXPECT_EQ(dropped->load(), static_cast<uint64_t>(total - accepted));
  channel.reset();
  // The thread is stuck in write(): stop gives up after its deadline rather than hang.
  writer.stop(50ms);
  ::close(pipe.write_end);
  pipe.write_end = -1;
  // The lines that got through are whole and in order.
  std::string got = pipe.read_all();
  int next = 0;
  size_t pos = 0;
  while (pos < got.size()) {
    size_t end = got.find('\n', pos);
    ASSERT_NE(end, std::string::npos) << "a cut line at byte " << pos;
    std::string line = got.substr(pos, end + 1 - pos);
    int n = std::stoi(line.substr(5));
    EXPECT_GE(n, next);
    EXPECT_EQ(line, numbered_line(n));
    next = n + 1;
    pos = end + 1;
  }
  EXPECT_GT(got.size(), 0u);
}

TEST(LogWriter, AFailedWriteCountsTheLinesItLost) {
  signal(SIGPIPE, SIG_IGN);
  Pipe pipe;
  ::close(pipe.read_end);  // every write fails with EPIPE
  pipe.read_end = -1;
  auto dropped = counter();
  {
    LogWriter writer(1ms);
    auto channel = writer.open(pipe.write_end, false, dropped);
    for (int i = 0; i < 10; ++i) EXPECT_TRUE(channel->push(numbered_line(i)));
  }
  EXPECT_EQ(dropped->load(), 10u);
}

TEST(LogWriter, ErrorLogGoesThroughTheWriterWhileRouted) {
  Pipe pipe;
  int saved_stderr = ::dup(2);
  ASSERT_GE(saved_stderr, 0);
  ASSERT_EQ(::dup2(pipe.write_end, 2), 2);
  ::close(pipe.write_end);
  pipe.write_end = -1;
  {
    LogWriter writer(1ms);
    route_error_log(&writer, counter());
    log_line("through the writer");
    route_error_log(nullptr, nullptr);
    log_line("written directly");
  }
  ::dup2(saved_stderr, 2);  // closes the pipe's last write end
  ::close(saved_stderr);
  std::string got = pipe.read_all();
  auto first = got.find("sluice: through the writer\n");
  auto second = got.find("sluice: written directly\n");
  EXPECT_NE(first, std::string::npos) << got;
  EXPECT_NE(second, std::string::npos) << got;
}

}  // namespace
}  // namespace sluice
