#include "proxy/cpu_limit.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

namespace sluice {
namespace {

namespace fs = std::filesystem;

class CgroupTree : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("sluice_cgroup_" + std::to_string(getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  void write(const std::string& relative, const std::string& text) {
    fs::path p = root_ / relative;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  std::string root() const { return root_.string(); }

  fs::path root_;
};

TEST_F(CgroupTree, V2CpuMaxIsQuotaOverPeriod) {
  write("kubepods/pod1/ctr/cpu.max", "150000 100000\n");
  EXPECT_EQ(cgroup_cpu_quota("0::/kubepods/pod1/ctr\n", root()), 1.5);
}

TEST_F(CgroupTree, V2WithoutALimitIsNone) {
  write("cpu.max", "max 100000\n");
  EXPECT_EQ(cgroup_cpu_quota("0::/\n", root()), std::nullopt);
  EXPECT_EQ(cgroup_cpu_quota("0::/not/there\n", root()), std::nullopt);
}

TEST_F(CgroupTree, TheSmallestLimitOnThePathToTheRootCounts) {
  write("pod/cpu.max", "200000 100000\n");   // the pod: 2 CPUs
  write("pod/ctr/cpu.max", "max 100000\n");  // the container: unlimited within it
  write("pod/ctr/sub/cpu.max", "400000 100000\n");
  EXPECT_EQ(cgroup_cpu_quota("0::/pod/ctr/sub\n", root()), 2.0);
}

TEST_F(CgroupTree, V1CfsQuotaWithTheCpuControllerMountedWithCpuacct) {
  write("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "50000\n");
  write("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(cgroup_cpu_quota("12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n", root()), 0.5);
}

TEST_F(CgroupTree, V1MinusOneIsNoLimit) {
  write("cpu/cpu.cfs_quota_us", "-1\n");
  write("cpu/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(cgroup_cpu_quota("3:cpu:/\n", root()), std::nullopt);
}

TEST_F(CgroupTree, GarbageIsIgnored) {
  write("cpu.max", "lots of cpus\n");
  EXPECT_EQ(cgroup_cpu_quota("0::/\nnot a cgroup line\n", root()), std::nullopt);
}

TEST(UsableCpus, AtLeastOneAndNoMoreThanTheMachineHas) {
  const unsigned n = usable_cpus();
  EXPECT_GE(n, 1u);
  EXPECT_LE(n, std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace
}  // namespace sluice
