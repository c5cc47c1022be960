#pragma once
// A non-blocking Redis client for one worker thread (rate limits and other filters that keep
// shared state in Redis). One TCP connection, opened on first use and re-opened after an
// error; commands are pipelined on it: every call made in one event-loop turn goes out in one
// write, and replies are matched to calls in order.
//
// Threading and ownership: one client per worker, created, used and destroyed on that worker's
// thread; every handler and callback runs on the executor given to the constructor. The owner
// (the worker's services) owns the client; the client owns each callback until it has run it.
// Nothing here blocks: the address is an IP literal (no DNS), connect/read/write are async.
//
// Every call's callback runs exactly once, always later on the executor (never inside the
// call), and no later than `timeout` after the call (plus scheduling delay). When the oldest
// outstanding call passes its deadline it fails with "timeout" together with every call
// pipelined behind it, and the connection is closed: later replies could not be matched.
//
// Circuit breaker: `failures_to_open` consecutive connection failures (a timeout, a refused or
// failed connect, a connection closed or broken with calls outstanding, a protocol error; each
// such event counts once, however many calls it failed) open the breaker. While open, calls fail
// at once with "circuit open" and nothing is sent. After `open_for` one PING probe is sent in the
// background: a reply closes the breaker, a failure keeps it open for another `open_for`. Any
// reply, including a Redis error reply, resets the count: Redis answered.
#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

namespace sluice::upstream::redis {

struct Settings {
  std::string host;  // IP literal, v4 or v6; anything else makes every call fail with "connect"
  uint16_t port = 6379;
  std::chrono::milliseconds timeout{50};  // per call, from the call to its callback
  uint32_t failures_to_open = 5;          // 0: the breaker never opens
  std::chrono::milliseconds open_for{1000};
};

// An owned copy of one reply.
struct Reply {
  enum class Type : uint8_t { nil, integer, string, status, error, array };
  Type type = Type::nil;
  int64_t integer = 0;          // integer
  std::string str;              // string, status, error
  std::vector<Reply> elements;  // array

  bool is_error() const { return type == Type::error; }
};

// Why a call got no reply. A Redis error reply is not a failure: it is a Reply of type error.
enum class Failure : uint8_t {
  none,
  timeout,       // no reply within the timeout
  connect,       // the connection could not be opened
  closed,        // the connection broke with the call outstanding, or the client was closed
  circuit_open,  // not sent: the breaker is open
  protocol,      // Redis sent something that is not RESP, or the call was malformed
};
// "timeout", "connect", "closed", "circuit open", "protocol"; "" for none.
std::string_view to_string(Failure failure);

struct Result {
  Failure failure = Failure::none;
  Reply reply;  // meaningful when ok()

  bool ok() const { return failure == Failure::none; }
  std::string_view error() const { return to_string(failure); }
};

using Callback = std::function<void(Result result)>;

class RedisClient {
 public:
  RedisClient(boost::asio::any_io_executor executor, Settings settings);
  // Closes the client: outstanding callbacks still run later, with Failure::closed, and touch
  // nothing of the client. Safe with operations pending.
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Sends one command, e.g. {"INCRBY", key, "1"}. The arguments are encoded before the call
  // returns; nothing refers to them afterwards.
  void execute(std::span<const std::string_view> args, Callback done);
  void execute(std::initializer_list<std::string_view> args, Callback done) {
    execute(std::span(args.begin(), args.size()), std::move(done));
  }

  // Runs a Lua script by its SHA1 (EVALSHA). When Redis does not know the script (NOSCRIPT:
  // first use, a restart, SCRIPT FLUSH) the call is retried once as EVAL, which also loads it,
  // within the same deadline; the caller sees only the final reply. Scripts are expected to be
  // a small fixed set: the SHA1 of the most recent few is remembered.
  void eval_script(std::string_view script, std::span<const std::string_view> keys,
                   std::span<const std::string_view> args, Callback done);
  void eval_script(std::string_view script, std::initializer_list<std::string_view> keys,
                   std::initializer_list<std::string_view> args, Callback done) {
    eval_script(script, std::span(keys.begin(), keys.size()), std::span(args.begin(), args.size()),
                std::move(done));
  }

  // Fails every outstanding call with Failure::closed (posted) and closes the connection; calls
  // made afterwards fail with Failure::closed too.
  void close();

  // True while the breaker is open or its probe is outstanding.
  bool circuit_open() const;
  // Calls that got no reply (any Failure), for a metric. Error replies are not counted.
  uint64_t errors() const;

 private:
  class Impl;
  // Shared with the client's pending async handlers, so that the buffers they use outlive them;
  // after close() those handlers do nothing.
  std::shared_ptr<Impl> impl_;
};

}  // namespace sluice::upstream::redis
