#include "admin/process_metrics.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/crypto.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include <prometheus/text_serializer.h>

#include "core/version.h"

namespace sluice::admin {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

namespace fs = std::filesystem;

// A directory laid out like /proc, removed at the end of the test.
class FakeProc {
 public:
  FakeProc() {
    char tmpl[] = "/tmp/sluice_proc_XXXXXX";
    root_ = mkdtemp(tmpl);
    fs::create_directories(root_ / "self" / "fd");
  }
  ~FakeProc() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  void write(const std::string& rel, const std::string& text) {
    std::ofstream(root_ / rel) << text;
  }
  std::string root() const { return root_.string(); }
  fs::path path() const { return root_; }

 private:
  fs::path root_;
};

std::string render(const ProcessStats& s) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, process_metric_families(s));
  return out.str();
}

TEST(ProcessMetrics, ReadsAFakeProcTree) {
  FakeProc proc;
  const long ticks = sysconf(_SC_CLK_TCK);
  const long page = sysconf(_SC_PAGESIZE);
  // comm with a space and a ')' must not shift the fields. Fields from 3 on: state ppid pgrp
  // session tty_nr tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) cutime cstime
  // priority nice num_threads itrealvalue starttime(22) vsize(23) rss(24) ...
  proc.write("self/stat", "4242 (sluice w) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 " +
                              std::to_string(3 * ticks) + " " + std::to_string(ticks / 2) +
                              " 0 0 20 0 3 0 " + std::to_string(10 * ticks) +
                              " 123456789 2500 18446744073709551615 1 1 0 0 0 0\n");
  proc.write("stat", "cpu  1 2 3 4\nintr 5\nbtime 1700000000\nprocesses 9\n");
  proc.write("self/limits",
             "Limit                     Soft Limit           Hard Limit           Units     \n"
             "Max cpu time              unlimited            unlimited            seconds   \n"
             "Max open files            4096                 524288               files     \n");
  for (int i = 0; i < 7; ++i) proc.write("self/fd/" + std::to_string(i), "");

  ProcessStats s = read_process_stats(proc.root());
  ASSERT_TRUE(s.cpu_seconds);
  EXPECT_DOUBLE_EQ(*s.cpu_seconds, 3.0 + static_cast<double>(ticks / 2) / ticks);
  ASSERT_TRUE(s.start_time_seconds);
  EXPECT_DOUBLE_EQ(*s.start_time_seconds, 1700000010.0);
  ASSERT_TRUE(s.virtual_bytes);
  EXPECT_DOUBLE_EQ(*s.virtual_bytes, 123456789.0);
  ASSERT_TRUE(s.resident_bytes);
  EXPECT_DOUBLE_EQ(*s.resident_bytes, 2500.0 * page);
  ASSERT_TRUE(s.open_fds);
  EXPECT_EQ(*s.open_fds, 7.0);
  ASSERT_TRUE(s.max_fds);
  EXPECT_EQ(*s.max_fds, 4096.0);

  std::string text = render(s);
  EXPECT_THAT(text, HasSubstr("# TYPE process_cpu_seconds_total counter\n"));
  EXPECT_THAT(text, HasSubstr("process_open_fds 7\n"));
  EXPECT_THAT(text, HasSubstr("process_max_fds 4096\n"));
  EXPECT_THAT(text, HasSubstr("process_start_time_seconds 1700000010\n"));
}

TEST(ProcessMetrics, WhatCannotBeReadIsLeftOut) {
  FakeProc proc;
  proc.write("self/stat", "garbage without a paren\n");
  proc.write("self/limits", "Max open files            unlimited            unlimited  files\n");
  fs::remove(proc.path() / "self" / "fd");
  ProcessStats s = read_process_stats(proc.root());
  EXPECT_FALSE(s.cpu_seconds);
  EXPECT_FALSE(s.start_time_seconds);
  EXPECT_FALSE(s.resident_bytes);
  EXPECT_FALSE(s.open_fds);
  EXPECT_FALSE(s.max_fds);
  std::string text = render(s);
  EXPECT_THAT(text, Not(HasSubstr("process_")));
  // The build is always known.
  EXPECT_THAT(text, HasSubstr("sluice_build_info{"));
}

TEST(ProcessMetrics, ThisProcess) {
  ProcessStats before = read_process_stats();
  ASSERT_TRUE(before.open_fds);
  int fds[3];
  for (int& fd : fds) fd = open("/dev/null", O_RDONLY);
  ProcessStats s = read_process_stats();
  for (int fd : fds) close(fd);
  ASSERT_TRUE(s.open_fds);
  EXPECT_EQ(*s.open_fds, *before.open_fds + 3);

  ASSERT_TRUE(s.cpu_seconds);
  // The kernel counts CPU time in clock ticks (10 ms): a fast start may not have used one yet,
  // so work until the reading moves (bounded).
  std::optional<double> cpu = s.cpu_seconds;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  volatile uint64_t spin = 0;
  while (cpu && *cpu == 0.0 && std::chrono::steady_clock::now() < give_up) {
    for (int i = 0; i < 1'000'000; ++i) spin = spin + 1;
    cpu = read_process_stats().cpu_seconds;
  }
  ASSERT_TRUE(cpu);
  EXPECT_GT(*cpu, 0.0);
  ASSERT_TRUE(s.resident_bytes);
  EXPECT_GT(*s.resident_bytes, 1e6);
  ASSERT_TRUE(s.virtual_bytes);
  EXPECT_GE(*s.virtual_bytes, *s.resident_bytes);

  // Started a moment ago (this test binary), not at boot or in the future.
  ASSERT_TRUE(s.start_time_seconds);
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_LE(*s.start_time_seconds, now + 1);
  EXPECT_GT(*s.start_time_seconds, now - 600);

  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  if (limit.rlim_cur != RLIM_INFINITY) {
    ASSERT_TRUE(s.max_fds);
    EXPECT_EQ(*s.max_fds, static_cast<double>(limit.rlim_cur));
  }
}

TEST(ProcessMetrics, BuildInfo) {
  std::string text = render(ProcessStats{});
  EXPECT_THAT(text, HasSubstr("# TYPE sluice_build_info gauge\n"));
  EXPECT_THAT(text, HasSubstr(std::string("sluice_build_info{version=\"") + kVersion +
                              "\",compiler=\"" + kCompiler + "\",openssl=\"" +
                              OpenSSL_version(OPENSSL_VERSION_STRING) + "\"} 1\n"));
  EXPECT_THAT(std::string(kVersion), ::testing::MatchesRegex("[0-9]+\\.[0-9]+\\.[0-9]+"));
}

}  // namespace
}  // namespace sluice::admin
