// upstream/redis/redis_client: pipelining, scripts, timeouts, the circuit breaker and teardown,
// against a real redis-server started on a free loopback port for each test.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include "tests/upstream/redis_server.h"
#include "upstream/redis/redis_client.h"

namespace sluice::upstream::redis {
namespace {

using namespace std::chrono_literals;
using ::testing::AnyOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// Runs `ioc` until `pred` holds; false when `limit` passed first. Every wait is bounded by this.
bool run_until(asio::io_context& ioc, const std::function<bool()>& pred,
               std::chrono::milliseconds limit = 5s) {
  const auto deadline = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() >= deadline) return false;
    ioc.restart();
    ioc.run_for(2ms);
  }
  return true;
}

void run_for(asio::io_context& ioc, std::chrono::milliseconds d) {
  const auto deadline = Clock::now() + d;
  while (Clock::now() < deadline) {
    ioc.restart();
    ioc.run_for(2ms);
  }
}

// "calls" of one command in INFO commandstats, or -1.
long long command_calls(const test::RedisServer& server, std::string_view command) {
  const std::string stats = server.command("INFO commandstats\r\n");
  const std::string key = "cmdstat_" + std::string(command) + ":calls=";
  const size_t at = stats.find(key);
  if (at == std::string::npos) return 0;  // never called
  return std::strtoll(stats.c_str() + at + key.size(), nullptr, 10);
}

std::vector<int64_t> integers(const Reply& r) {
  std::vector<int64_t> out;
  for (const Reply& e : r.elements) out.push_back(e.type == Reply::Type::integer ? e.integer : -1);
  return out;
}

class RedisClientTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server_.ok()) << "redis-server did not start"; }

  Settings settings(std::chrono::milliseconds timeout = 100ms) {
    Settings s;
    s.host = "127.0.0.1";
    s.port = server_.port();
    s.timeout = timeout;
    s.failures_to_open = 5;
    s.open_for = 300ms;
    return s;
  }
  std::unique_ptr<RedisClient> client(Settings s) {
    return std::make_unique<RedisClient>(ioc_.get_executor(), std::move(s));
  }

  // One call, run to completion (bounded).
  Result call(RedisClient& c, std::initializer_list<std::string_view> args) {
    std::optional<Result> result;
    c.execute(args, [&](Result r) { result = std::move(r); });
    EXPECT_FALSE(result.has_value()) << "callback ran inside execute()";
    EXPECT_TRUE(run_until(ioc_, [&] { return result.has_value(); }));
    return result ? std::move(*result) : Result{Failure::protocol, {}};
  }
  Result eval(RedisClient& c, std::string_view script, std::initializer_list<std::string_view> keys,
              std::initializer_list<std::string_view> args) {
    std::optional<Result> result;
    c.eval_script(script, keys, args, [&](Result r) { result = std::move(r); });
    EXPECT_FALSE(result.has_value()) << "callback ran inside eval_script()";
    EXPECT_TRUE(run_until(ioc_, [&] { return result.has_value(); }));
    return result ? std::move(*result) : Result{Failure::protocol, {}};
  }
  // A call's failure and how long it took to arrive.
  std::pair<Result, std::chrono::milliseconds> timed_call(RedisClient& c) {
    const auto start = Clock::now();
    Result r = call(c, {"PING"});
    return {std::move(r),
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start)};
  }

  asio::io_context ioc_;
  test::RedisServer server_;
};

TEST_F(RedisClientTest, SetGetIncrOnOneConnection) {
  auto c = client(settings());
  const long long connections = server_.info_field("stats", "total_connections_received");

  Result set = call(*c, {"SET", "k", "v"});
  ASSERT_TRUE(set.ok()) << set.error();
  EXPECT_EQ(set.reply.type, Reply::Type::status);
  EXPECT_EQ(set.reply.str, "OK");

  Result get = call(*c, {"GET", "k"});
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(get.reply.type, Reply::Type::string);
  EXPECT_EQ(get.reply.str, "v");

  const std::string binary("a\r\n\0b$*", 7);  // binary-safe arguments and replies
  ASSERT_TRUE(call(*c, {"SET", "bin", binary}).ok());
  EXPECT_EQ(call(*c, {"GET", "bin"}).reply.str, binary);

  EXPECT_EQ(call(*c, {"GET", "missing"}).reply.type, Reply::Type::nil);

  Result incr = call(*c, {"INCR", "n"});
  ASSERT_TRUE(incr.ok());
  EXPECT_EQ(incr.reply.type, Reply::Type::integer);
  EXPECT_EQ(incr.reply.integer, 1);
  EXPECT_EQ(call(*c, {"INCRBY", "n", "41"}).reply.integer, 42);

  // Every call above went over one connection (the INFO above is its own).
  EXPECT_EQ(server_.info_field("stats", "total_connections_received"), connections + 2);
  EXPECT_EQ(c->errors(), 0u);
  EXPECT_FALSE(c->circuit_open());
}

TEST_F(RedisClientTest, ThousandPipelinedIncrsAnsweredInOrderInFewWrites) {
  auto c = client(settings(2000ms));     // generous: this is about order and batching, not speed
  ASSERT_TRUE(call(*c, {"PING"}).ok());  // connected, so the batch below is one write
  const long long reads_before = server_.info_field("stats", "total_reads_processed");
  ASSERT_GE(reads_before, 0);

  constexpr int kCalls = 1000;
  std::vector<int64_t> seen;
  int out_of_order = 0;
  for (int i = 0; i < kCalls; ++i) {
    c->execute({"INCR", "counter"}, [&, i](Result r) {
      if (!r.ok() || r.reply.integer != i + 1 || static_cast<int>(seen.size()) != i) {
        ++out_of_order;
      }
      seen.push_back(r.ok() ? r.reply.integer : -1);
    });
  }
  EXPECT_TRUE(seen.empty()) << "a callback ran inside execute()";
  ASSERT_TRUE(run_until(ioc_, [&] { return seen.size() == kCalls; }));
  EXPECT_EQ(out_of_order, 0);
  EXPECT_EQ(seen.back(), kCalls);

  // The server read the 1000 commands (~30 KB) in a handful of reads, not one per command.
  const long long reads = server_.info_field("stats", "total_reads_processed") - reads_before;
  EXPECT_LT(reads, 20) << "commands were not batched";

  EXPECT_EQ(call(*c, {"GET", "counter"}).reply.str, "1000");
}

TEST_F(RedisClientTest, EvalShaLoadsOnNoscriptAndAfterScriptFlush) {
  auto c = client(settings(1000ms));
  const std::string script = "return redis.call('INCRBY', KEYS[1], ARGV[1])";

  // A fresh server does not know the script: EVALSHA, NOSCRIPT, then EVAL, in one call.
  Result first = eval(*c, script, {"s"}, {"5"});
  ASSERT_TRUE(first.ok()) << first.error();
  EXPECT_EQ(first.reply.type, Reply::Type::integer);
  EXPECT_EQ(first.reply.integer, 5);
  EXPECT_EQ(command_calls(server_, "eval"), 1);
  const long long evalsha_after_first = command_calls(server_, "evalsha");

  // Now known: EVALSHA only.
  Result second = eval(*c, script, {"s"}, {"5"});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second.reply.integer, 10);
  EXPECT_EQ(command_calls(server_, "eval"), 1);
  EXPECT_EQ(command_calls(server_, "evalsha"), evalsha_after_first + 1);

  // Forgotten again: the retry is transparent.
  ASSERT_EQ(call(*c, {"SCRIPT", "FLUSH"}).reply.str, "OK");
  Result third = eval(*c, script, {"s"}, {"5"});
  ASSERT_TRUE(third.ok()) << third.error();
  EXPECT_EQ(third.reply.type, Reply::Type::integer);
  EXPECT_EQ(third.reply.integer, 15);
  EXPECT_EQ(command_calls(server_, "eval"), 2);
  EXPECT_EQ(c->errors(), 0u);
}

TEST_F(RedisClientTest, PipelinedEvalsOnAFreshServerAllRetryInOrder) {
  auto c = client(settings(1000ms));
  const std::string script = "return redis.call('INCR', KEYS[1])";
  constexpr int kCalls = 50;
  std::vector<int64_t> seen;
  for (int i = 0; i < kCalls; ++i) {
    const std::array<std::string_view, 1> keys = {"e"};
    c->eval_script(script, keys, {},
                   [&](Result r) { seen.push_back(r.ok() ? r.reply.integer : -1); });
  }
  ASSERT_TRUE(run_until(ioc_, [&] { return seen.size() == kCalls; }));
  // Every call got NOSCRIPT and was retried as EVAL, in order; each ran exactly once.
  for (int i = 0; i < kCalls; ++i) EXPECT_EQ(seen[i], i + 1);
  EXPECT_EQ(call(*c, {"GET", "e"}).reply.str, std::to_string(kCalls));
}

TEST_F(RedisClientTest, ScriptReturnsArrays) {
  auto c = client(settings(1000ms));
  Result r =
      eval(*c, "return {1, 2, tonumber(ARGV[1]), redis.call('INCR', KEYS[1])}", {"a"}, {"42"});
  ASSERT_TRUE(r.ok()) << r.error();
  ASSERT_EQ(r.reply.type, Reply::Type::array);
  EXPECT_THAT(integers(r.reply), ElementsAre(1, 2, 42, 1));

  Result nested = eval(*c, "return {'x', {3, 4}, redis.status_reply('FINE')}", {}, {});
  ASSERT_TRUE(nested.ok());
  ASSERT_EQ(nested.reply.type, Reply::Type::array);
  ASSERT_EQ(nested.reply.elements.size(), 3u);
  EXPECT_EQ(nested.reply.elements[0].type, Reply::Type::string);
  EXPECT_EQ(nested.reply.elements[0].str, "x");
  EXPECT_THAT(integers(nested.reply.elements[1]), ElementsAre(3, 4));
  EXPECT_EQ(nested.reply.elements[2].type, Reply::Type::status);
  EXPECT_EQ(nested.reply.elements[2].str, "FINE");

  Result empty = eval(*c, "return {}", {}, {});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty.reply.type, Reply::Type::array);
  EXPECT_TRUE(empty.reply.elements.empty());
}

TEST_F(RedisClientTest, ErrorReplyIsAReplyNotAFailure) {
  Settings s = settings();
  s.failures_to_open = 2;
  auto c = client(s);
  ASSERT_TRUE(call(*c, {"SET", "str", "abc"}).ok());
  for (int i = 0; i < 5; ++i) {
    Result r = call(*c, {"INCR", "str"});
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(r.reply.type, Reply::Type::error);
    EXPECT_THAT(r.reply.str, StartsWith("ERR"));
  }
  Result script_error = eval(*c, "return redis.call('INCR', KEYS[1])", {"str"}, {});
  ASSERT_TRUE(script_error.ok());
  EXPECT_EQ(script_error.reply.type, Reply::Type::error);
  EXPECT_THAT(script_error.reply.str, HasSubstr("not an integer"));
  Result unknown = call(*c, {"NOSUCHCOMMAND"});
  ASSERT_TRUE(unknown.ok());
  EXPECT_EQ(unknown.reply.type, Reply::Type::error);

  EXPECT_FALSE(c->circuit_open());
  EXPECT_EQ(c->errors(), 0u);
  EXPECT_EQ(call(*c, {"GET", "str"}).reply.str, "abc");  // and the connection is still fine
}

TEST_F(RedisClientTest, TimeoutFailsTheCallsBehindItAndReconnects) {
  const auto timeout = 100ms;
  auto c = client(settings(timeout));
  ASSERT_TRUE(call(*c, {"PING"}).ok());
  const long long connections = server_.info_field("stats", "total_connections_received");

  // BLPOP holds this connection for 2 s on the server; the PING behind it is stuck too.
  std::vector<std::string> results;
  const auto start = Clock::now();
  c->execute({"BLPOP", "empty-list", "2"}, [&](Result r) { results.emplace_back(r.error()); });
  c->execute({"PING"}, [&](Result r) { results.emplace_back(r.error()); });
  ASSERT_TRUE(run_until(ioc_, [&] { return results.size() == 2; }));
  EXPECT_LT(Clock::now() - start, 4 * timeout);
  EXPECT_GE(Clock::now() - start, timeout);
  EXPECT_THAT(results, ElementsAre("timeout", "timeout"));
  EXPECT_EQ(c->errors(), 2u);
  EXPECT_FALSE(c->circuit_open());  // one failure of five

  // The next call reconnects and succeeds.
  Result r = call(*c, {"PING"});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.reply.str, "PONG");
  EXPECT_EQ(server_.info_field("stats", "total_connections_received"), connections + 2);
}

TEST_F(RedisClientTest, StoppedServerTimesOutThenTheBreakerOpensAndTheProbeClosesIt) {
  const auto timeout = 100ms;
  auto c = client(settings(timeout));
  ASSERT_TRUE(call(*c, {"PING"}).ok());

  server_.pause();  // SIGSTOP: the kernel still accepts connections, nobody answers
  for (int i = 0; i < 5; ++i) {
    auto [r, took] = timed_call(*c);
    EXPECT_EQ(r.error(), "timeout") << "call " << i;
    EXPECT_LT(took, 4 * timeout) << "call " << i;
  }
  EXPECT_TRUE(c->circuit_open());

  // Open: refused at once, without waiting for the network.
  auto [refused, took] = timed_call(*c);
  EXPECT_EQ(refused.error(), "circuit open");
  EXPECT_LT(took, timeout);
  EXPECT_EQ(c->errors(), 6u);

  // The probe after open_for (300 ms) times out too: still open.
  run_for(ioc_, 300ms + 2 * timeout);
  EXPECT_TRUE(c->circuit_open());
  EXPECT_EQ(timed_call(*c).first.error(), "circuit open");

  server_.resume();
  ASSERT_TRUE(run_until(
      ioc_, [&] { return !c->circuit_open(); }, 5s));
  Result r = call(*c, {"PING"});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r.reply.str, "PONG");
}

TEST_F(RedisClientTest, KilledServerFailsCallsAndARestartRecovers) {
  Settings s = settings();
  s.open_for = 100ms;
  auto c = client(s);
  ASSERT_TRUE(call(*c, {"SET", "k", "v"}).ok());

  server_.stop();
  // The first call may find the old connection broken ("closed") or be refused ("connect").
  EXPECT_THAT(std::string(call(*c, {"GET", "k"}).error()), AnyOf("closed", "connect"));
  EXPECT_EQ(call(*c, {"GET", "k"}).error(), "connect");

  ASSERT_TRUE(server_.start());
  // Recovers: at once if the breaker is still closed, or after its probe.
  bool recovered = false;
  ASSERT_TRUE(run_until(
      ioc_,
      [&] {
        if (!recovered && !c->circuit_open()) recovered = call(*c, {"PING"}).ok();
        return recovered;
      },
      5s));
  EXPECT_EQ(call(*c, {"GET", "k"}).reply.type, Reply::Type::nil);  // a fresh server
}

TEST_F(RedisClientTest, RefusedConnectsOpenTheBreaker) {
  Settings s = settings();
  s.failures_to_open = 3;
  server_.stop();
  auto c = client(s);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(call(*c, {"PING"}).error(), "connect");
  EXPECT_TRUE(c->circuit_open());
  EXPECT_EQ(call(*c, {"PING"}).error(), "circuit open");
  EXPECT_EQ(c->errors(), 4u);
}

TEST_F(RedisClientTest, InvalidAddressFailsWithConnect) {
  Settings s = settings();
  s.host = "redis.example.com";  // not an IP literal: never resolved on a worker
  auto c = client(s);
  EXPECT_EQ(call(*c, {"PING"}).error(), "connect");
}

TEST_F(RedisClientTest, GarbageFromTheServerIsAProtocolFailure) {
  // A fake server on the same loop that answers anything with a non-RESP line.
  tcp::acceptor acceptor(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  tcp::socket peer(ioc_);
  asio::streambuf request;
  acceptor.async_accept(peer, [&](boost::system::error_code ec) {
    if (ec) return;
    asio::async_read_until(peer, request, "\r\n", [&](boost::system::error_code ec2, size_t) {
      if (!ec2) asio::write(peer, asio::buffer(std::string_view("garbage\r\n")), ec2);
    });
  });
  Settings s = settings();
  s.port = acceptor.local_endpoint().port();
  auto c = client(s);
  EXPECT_EQ(call(*c, {"PING"}).error(), "protocol");
  EXPECT_EQ(c->errors(), 1u);
}

TEST_F(RedisClientTest, EmptyCommandIsRefused) {
  auto c = client(settings());
  EXPECT_EQ(call(*c, {}).error(), "protocol");
  EXPECT_TRUE(call(*c, {"PING"}).ok());
}

TEST_F(RedisClientTest, CloseFailsPendingCallsAndLaterOnes) {
  auto c = client(settings(1000ms));
  ASSERT_TRUE(call(*c, {"PING"}).ok());
  std::vector<std::string> results;
  for (int i = 0; i < 10; ++i) {
    c->execute({"INCR", "x"}, [&](Result r) { results.emplace_back(r.error()); });
  }
  c->close();
  EXPECT_TRUE(results.empty()) << "a callback ran inside close()";
  ASSERT_TRUE(run_until(ioc_, [&] { return results.size() == 10; }));
  for (const auto& r : results) EXPECT_EQ(r, "closed");
  EXPECT_EQ(call(*c, {"PING"}).error(), "closed");
  run_for(ioc_, 20ms);
  EXPECT_EQ(results.size(), 10u);  // exactly once
}

TEST_F(RedisClientTest, DestroyingTheClientWithCallsPendingIsSafe) {
  // While connecting.
  int connecting_calls = 0;
  {
    auto c = client(settings(1000ms));
    for (int i = 0; i < 100; ++i)
      c->execute({"INCR", "d"}, [&](Result r) {
        EXPECT_EQ(r.error(), "closed");
        ++connecting_calls;
      });
  }
  ASSERT_TRUE(run_until(ioc_, [&] { return connecting_calls == 100; }));

  // From inside one of its own callbacks, with a write and replies in flight.
  auto c = client(settings(1000ms));
  ASSERT_TRUE(call(*c, {"PING"}).ok());
  int ok = 0;
  int closed = 0;
  for (int i = 0; i < 1000; ++i) {
    c->execute({"INCR", "d"}, [&](Result r) {
      if (r.ok()) {
        ++ok;
        c.reset();  // destroys the client; the rest of this read's replies must not be used
      } else {
        EXPECT_EQ(r.error(), "closed");
        ++closed;
      }
    });
  }
  ASSERT_TRUE(run_until(ioc_, [&] { return ok + closed == 1000; }));
  EXPECT_EQ(ok, 1);
  run_for(ioc_, 50ms);
  EXPECT_EQ(ok + closed, 1000);

  // With the breaker open (its timer pending) and a probe in flight.
  Settings s = settings(100ms);
  s.failures_to_open = 1;
  s.open_for = 10ms;
  server_.pause();
  auto b = client(s);
  EXPECT_EQ(call(*b, {"PING"}).error(), "timeout");
  EXPECT_TRUE(b->circuit_open());
  run_for(ioc_, 30ms);  // the probe is out now
  b.reset();
  run_for(ioc_, 200ms);
  server_.resume();
}

TEST_F(RedisClientTest, DestroyingTheIoContextFirstIsSafe) {
  // The worker's loop may go away with the client's handlers still queued.
  auto ioc = std::make_unique<asio::io_context>();
  auto c = std::make_unique<RedisClient>(ioc->get_executor(), settings(1000ms));
  int called = 0;
  for (int i = 0; i < 10; ++i) c->execute({"PING"}, [&](Result) { ++called; });
  ioc->run_for(1ms);
  c.reset();
  ioc.reset();  // destroys the queued "closed" callbacks without running them
  EXPECT_LE(called, 10);
}

}  // namespace
}  // namespace sluice::upstream::redis
