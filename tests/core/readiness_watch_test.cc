// core/readiness_watch.h: a wait queued on Asio's reactor without a syscall still sees what
// arrives next (bytes, a FIN), ends when the socket closes, and goes quietly with the context.
#include "core/readiness_watch.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

namespace sluice {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;
using Outcome = ReadinessWatch::Outcome;

class ReadinessWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tcp::acceptor acceptor(*ioc_, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    client_->connect(acceptor.local_endpoint());
    server_ = std::make_unique<tcp::socket>(acceptor.accept());
    server_->non_blocking(true);
  }

  // What the watch was promised: the last recv failed with EAGAIN.
  void expect_nothing_to_read() {
    char c;
    boost::system::error_code ec;
    server_->read_some(asio::buffer(&c, 1), ec);
    ASSERT_EQ(ec, asio::error::would_block);
  }

  static void record(void* self, Outcome outcome) {
    static_cast<ReadinessWatchTest*>(self)->outcomes_.push_back(outcome);
  }

  std::unique_ptr<asio::io_context> ioc_ = std::make_unique<asio::io_context>();
  std::unique_ptr<tcp::socket> client_ = std::make_unique<tcp::socket>(*ioc_);
  std::unique_ptr<tcp::socket> server_;
  std::vector<Outcome> outcomes_;
  std::shared_ptr<int> owner_ = std::make_shared<int>(0);  // what arm() keeps alive
  ReadinessWatch watch_{&ReadinessWatchTest::record, this};
};

TEST_F(ReadinessWatchTest, WaitsUntilBytesArriveThenReportsOnce) {
  expect_nothing_to_read();
  watch_.arm(*server_, owner_);
  EXPECT_TRUE(watch_.armed());
  EXPECT_EQ(owner_.use_count(), 2);  // held while armed
  ioc_->run_for(50ms);
  EXPECT_TRUE(outcomes_.empty());
  asio::write(*client_, asio::buffer("GET", 3));
  ioc_->run_for(1s);
  ASSERT_EQ(outcomes_, std::vector<Outcome>{Outcome::readable});
  EXPECT_FALSE(watch_.armed());
  EXPECT_EQ(owner_.use_count(), 1);  // and let go once reported
  char buf[8];
  EXPECT_EQ(server_->read_some(asio::buffer(buf)), 3u);
}

TEST_F(ReadinessWatchTest, SeesThePeersClose) {
  expect_nothing_to_read();
  watch_.arm(*server_, owner_);
  client_->close();
  ioc_->run_for(1s);
  ASSERT_EQ(outcomes_, std::vector<Outcome>{Outcome::readable});
  char c;
  boost::system::error_code ec;
  server_->read_some(asio::buffer(&c, 1), ec);
  EXPECT_EQ(ec, asio::error::eof);
}

TEST_F(ReadinessWatchTest, CanBeArmedAgainAfterEachReport) {
  for (int round = 0; round < 3; ++round) {
    expect_nothing_to_read();
    watch_.arm(*server_, owner_);
    asio::write(*client_, asio::buffer("x", 1));
    ioc_->restart();  // it ran out of work after the last report
    ioc_->run_for(1s);
    ASSERT_EQ(outcomes_.size(), static_cast<size_t>(round + 1));
    char c;
    EXPECT_EQ(server_->read_some(asio::buffer(&c, 1)), 1u);
  }
}

TEST_F(ReadinessWatchTest, IsAbortedWhenTheSocketCloses) {
  expect_nothing_to_read();
  watch_.arm(*server_, owner_);
  server_->close();
  ioc_->run_for(1s);
  EXPECT_EQ(outcomes_, std::vector<Outcome>{Outcome::aborted});
}

TEST_F(ReadinessWatchTest, IsDestroyedWithItsContextWhenNeverRun) {
  expect_nothing_to_read();
  watch_.arm(*server_, owner_);
  server_->close();  // the abort is queued, never run
  server_.reset();
  client_.reset();
  ioc_.reset();
  EXPECT_EQ(outcomes_, std::vector<Outcome>{Outcome::destroyed});
  EXPECT_EQ(owner_.use_count(), 1);
}

}  // namespace
}  // namespace sluice
