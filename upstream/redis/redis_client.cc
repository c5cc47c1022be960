#include "upstream/redis/redis_client.h"

#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include <algorithm>
#include <charconv>
#include <utility>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "core/hex.h"

namespace sluice::upstream::redis {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

std::string_view to_string(Failure failure) {
  switch (failure) {
    case Failure::none:
      return "";
    case Failure::timeout:
      return "timeout";
    case Failure::connect:
      return "connect";
    case Failure::closed:
      return "closed";
    case Failure::circuit_open:
      return "circuit open";
    case Failure::protocol:
      return "protocol";
  }
  return "";
}

namespace {

constexpr size_t kReadSize = 16 * 1024;
constexpr size_t kMaxKeptBuffer = 256 * 1024;  // a write buffer above this is not kept for reuse
constexpr size_t kMaxScripts = 16;

void append_number(std::string& out, uint64_t n) {
  char buf[24];
  const auto end = std::to_chars(buf, buf + sizeof buf, n).ptr;
  out.append(buf, end);
}

void append_array_header(std::string& out, size_t count) {
  out += '*';
  append_number(out, count);
  out += "\r\n";
}

void append_bulk(std::string& out, std::string_view s) {
  out += '$';
  append_number(out, s.size());
  out += "\r\n";
  out.append(s);
  out += "\r\n";
}

void append_bulk_number(std::string& out, uint64_t n) {
  char buf[24];
  append_bulk(out, std::string_view(buf, std::to_chars(buf, buf + sizeof buf, n).ptr));
}

void release_if_large(std::string& buffer) {
  if (buffer.capacity() > kMaxKeptBuffer) std::string().swap(buffer);
}

Reply copy_reply(const redisReply& r) {
  Reply out;
  switch (r.type) {
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::integer;
      out.integer = r.integer;
      break;
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::string;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::status;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::error;
      out.str.assign(r.str, r.len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::array;
      out.elements.reserve(r.elements);
      for (size_t i = 0; i < r.elements; ++i) out.elements.push_back(copy_reply(*r.element[i]));
      break;
    default:  // REDIS_REPLY_NIL
      break;
  }
  return out;
}

std::string sha1_hex(std::string_view body) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(body.data()), body.size(), digest);
  std::string hex;
  append_hex(hex, digest, SHA_DIGEST_LENGTH);
  return hex;
}

enum class Kind : uint8_t { user, eval, probe };

// One call whose command is buffered or on the wire, in the order of its bytes.
struct Pending {
  Callback done;  // empty for the probe
  Clock::time_point deadline;
  Kind kind = Kind::user;
  // Kind::eval: the same call as EVAL with the script body, sent once on NOSCRIPT. Left in its
  // slot when the call completes, so the queue reuses its capacity.
  std::string eval_fallback;
};

// FIFO of Pending in a ring that keeps its slots (and their buffers) across calls; a
// std::deque would allocate and free a block every few calls.
class PendingQueue {
 public:
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  Pending& front() { return slots_[head_]; }
  Pending& at(size_t i) { return slots_[(head_ + i) % slots_.size()]; }
  // The new back slot: fields reset except eval_fallback, which is cleared but keeps capacity.
  Pending& push_back() {
    if (size_ == slots_.size()) grow();
    Pending& p = slots_[(head_ + size_) % slots_.size()];
    ++size_;
    p.done = nullptr;
    p.kind = Kind::user;
    p.eval_fallback.clear();
    return p;
  }
  void pop_front() {
    Pending& p = slots_[head_];
    p.done = nullptr;
    release_if_large(p.eval_fallback);
    head_ = (head_ + 1) % slots_.size();
    --size_;
  }

 private:
  void grow() {
    std::vector<Pending> bigger(std::max<size_t>(16, 2 * slots_.size()));
    for (size_t i = 0; i < size_; ++i) bigger[i] = std::move(at(i));
    slots_ = std::move(bigger);
    head_ = 0;
  }

  std::vector<Pending> slots_;
  size_t head_ = 0;
  size_t size_ = 0;
};

struct ReplyDeleter {
  void operator()(void* reply) const { freeReplyObject(reply); }
};
using ReplyPtr = std::unique_ptr<void, ReplyDeleter>;

}  // namespace

class RedisClient::Impl : public std::enable_shared_from_this<Impl> {
 public:
  Impl(asio::any_io_executor executor, Settings settings)
      : executor_(std::move(executor)),
        settings_(std::move(settings)),
        socket_(executor_),
        read_buffer_(kReadSize),
        timer_(executor_) {
    error_code ec;
    const auto address = asio::ip::make_address(settings_.host, ec);
    address_valid_ = !ec;
    if (address_valid_) endpoint_ = tcp::endpoint(address, settings_.port);
  }
  ~Impl() {
    if (reader_) redisReaderFree(reader_);
  }

  void execute(std::span<const std::string_view> args, Callback done) {
    if (!admit(done)) return;
    if (args.empty()) {  // Redis would not answer "*0", and the replies would be out of step
      post_failure(std::move(done), Failure::protocol);
      return;
    }
    append_array_header(out_, args.size());
    for (std::string_view a : args) append_bulk(out_, a);
    push_call(std::move(done), Kind::user);
    send();
  }

  void eval_script(std::string_view script, std::span<const std::string_view> keys,
                   std::span<const std::string_view> args, Callback done) {
    if (!admit(done)) return;
    const size_t count = 3 + keys.size() + args.size();
    append_array_header(out_, count);
    append_bulk(out_, "EVALSHA");
    append_bulk(out_, sha_of(script));
    const size_t tail = out_.size();  // numkeys, keys, args: the same for EVAL
    append_bulk_number(out_, keys.size());
    for (std::string_view k : keys) append_bulk(out_, k);
    for (std::string_view a : args) append_bulk(out_, a);
    Pending& p = push_call(std::move(done), Kind::eval);
    append_array_header(p.eval_fallback, count);
    append_bulk(p.eval_fallback, "EVAL");
    append_bulk(p.eval_fallback, script);
    p.eval_fallback.append(out_, tail);
    send();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    ++timer_gen_;
    timer_.cancel();
    drop_connection();
    fail_all(Failure::closed);
  }

  bool circuit_open() const { return breaker_ != Breaker::closed; }
  uint64_t errors() const { return errors_; }

 private:
  enum class Conn : uint8_t { down, connecting, up };
  enum class Breaker : uint8_t { closed, open, probing };

  // False when the call is refused; its failure is then posted.
  bool admit(Callback& done) {
    if (closed_) {
      post_failure(std::move(done), Failure::closed);
      return false;
    }
    if (breaker_ != Breaker::closed) {
      post_failure(std::move(done), Failure::circuit_open);
      return false;
    }
    return true;
  }

  // Records the call whose command was just appended to out_; send() follows.
  Pending& push_call(Callback done, Kind kind,
                     Clock::time_point deadline = Clock::time_point::min()) {
    Pending& p = pending_.push_back();
    p.done = std::move(done);
    p.kind = kind;
    p.deadline = deadline == Clock::time_point::min() ? Clock::now() + settings_.timeout : deadline;
    arm_timer(p.deadline);
    return p;
  }

  // Gets out_ written: now if connected and idle, else after the connect or the current write.
  void send() {
    if (conn_ == Conn::down) {
      start_connect();
    } else {
      schedule_flush();
    }
  }

  std::string_view sha_of(std::string_view script) {
    for (const auto& [body, sha] : scripts_) {
      if (body == script) return sha;
    }
    if (scripts_.size() < kMaxScripts) {
      scripts_.emplace_back(std::string(script), sha1_hex(script));
      return scripts_.back().second;
    }
    auto& slot = scripts_[next_script_slot_];
    next_script_slot_ = (next_script_slot_ + 1) % kMaxScripts;
    slot = {std::string(script), sha1_hex(script)};
    return slot.second;
  }

  // --- connection ---

  void start_connect() {
    conn_ = Conn::connecting;
    error_code ec;
    if (address_valid_) socket_.open(endpoint_.protocol(), ec);
    if (!address_valid_ || ec) {
      fail_connection(Failure::connect);
      return;
    }
    socket_.set_option(tcp::no_delay(true), ec);
    reader_ = redisReaderCreate();
    socket_.async_connect(endpoint_, [self = shared_from_this(), gen = conn_gen_](error_code ec) {
      self->on_connect(ec, gen);
    });
  }

  void on_connect(error_code ec, uint64_t gen) {
    if (gen != conn_gen_ || closed_) return;  // this connection was dropped meanwhile
    if (ec || !reader_) {
      fail_connection(Failure::connect);
      return;
    }
    conn_ = Conn::up;
    start_read();
    flush();  // everything called while connecting, in one write
  }

  // Closes the socket (its pending handlers see a newer generation and do nothing) and forgets
  // the unsent and half-read bytes. The calls in pending_ are the caller's to fail.
  void drop_connection() {
    ++conn_gen_;
    error_code ignored;
    socket_.close(ignored);
    conn_ = Conn::down;
    writing_ = false;
    out_.clear();
    write_buffer_.clear();
    if (reader_) {
      redisReaderFree(reader_);
      reader_ = nullptr;
    }
  }

  void fail_connection(Failure why) {
    drop_connection();
    const bool probe_failed = fail_all(why);
    if (breaker_ == Breaker::probing || probe_failed) {
      open_breaker();
    } else if (settings_.failures_to_open > 0 &&
               ++consecutive_failures_ >= settings_.failures_to_open) {
      open_breaker();
    }
  }

  // Fails every pending call (posted, in order). True when the probe was among them.
  bool fail_all(Failure why) {
    bool probe = false;
    std::vector<Callback> failed;
    failed.reserve(pending_.size());
    while (!pending_.empty()) {
      Pending& p = pending_.front();
      if (p.kind == Kind::probe) {
        probe = true;
      } else {
        failed.push_back(std::move(p.done));
      }
      pending_.pop_front();
    }
    if (failed.empty()) return probe;
    errors_ += failed.size();
    // The handler owns the callbacks and nothing else: it is safe after the client is gone.
    asio::post(executor_, [failed = std::move(failed), why]() mutable {
      for (auto& done : failed) done(Result{why, {}});
    });
    return probe;
  }

  void post_failure(Callback done, Failure why) {
    ++errors_;
    asio::post(executor_, [done = std::move(done), why]() mutable { done(Result{why, {}}); });
  }

  // --- writing: one write per batch; calls made while a write is out wait for the next ---

  void schedule_flush() {
    if (conn_ != Conn::up || writing_ || flush_posted_) return;
    flush_posted_ = true;
    asio::post(executor_, [self = shared_from_this()] {
      self->flush_posted_ = false;
      if (!self->closed_) self->flush();
    });
  }

  void flush() {
    if (conn_ != Conn::up || writing_ || out_.empty()) return;
    std::swap(out_, write_buffer_);  // out_ takes the empty buffer, keeping its capacity
    writing_ = true;
    asio::async_write(socket_, asio::buffer(write_buffer_),
                      [self = shared_from_this(), gen = conn_gen_](error_code ec, size_t) {
                        self->on_write(ec, gen);
                      });
  }

  void on_write(error_code ec, uint64_t gen) {
    if (gen != conn_gen_ || closed_) return;
    writing_ = false;
    write_buffer_.clear();
    release_if_large(write_buffer_);
    if (ec) {
      fail_connection(Failure::closed);
      return;
    }
    flush();
  }

  // --- reading: one read outstanding while connected; every complete reply is delivered ---

  void start_read() {
    socket_.async_read_some(asio::buffer(read_buffer_),
                            [self = shared_from_this(), gen = conn_gen_](error_code ec, size_t n) {
                              self->on_read(ec, n, gen);
                            });
  }

  void on_read(error_code ec, size_t n, uint64_t gen) {
    if (gen != conn_gen_ || closed_) return;
    if (ec) {
      if (pending_.empty()) {
        drop_connection();  // closed while idle: nobody failed, reconnect on the next call
      } else {
        fail_connection(Failure::closed);
      }
      return;
    }
    if (redisReaderFeed(reader_, read_buffer_.data(), n) != REDIS_OK) {
      fail_connection(Failure::protocol);
      return;
    }
    for (;;) {
      void* raw = nullptr;
      if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
        fail_connection(Failure::protocol);
        return;
      }
      if (!raw) break;
      ReplyPtr reply(raw);
      if (pending_.empty()) {  // a reply nobody asked for: the stream is out of step
        fail_connection(Failure::protocol);
        return;
      }
      Reply copy = copy_reply(*static_cast<const redisReply*>(reply.get()));
      reply.reset();
      deliver(std::move(copy));
      // The callback may have closed or destroyed the client (this Impl lives on in `self`).
      if (gen != conn_gen_ || closed_) return;
    }
    start_read();
  }

  void deliver(Reply&& reply) {
    consecutive_failures_ = 0;  // Redis answered, even if with an error
    Pending& p = pending_.front();
    switch (p.kind) {
      case Kind::probe:
        pending_.pop_front();
        breaker_ = Breaker::closed;
        return;
      case Kind::eval:
        if (reply.is_error() && reply.str.starts_with("NOSCRIPT")) {
          // Retry at the back of the pipeline, same deadline, and no second retry.
          out_.append(p.eval_fallback);
          Callback done = std::move(p.done);
          const auto deadline = p.deadline;
          pending_.pop_front();
          push_call(std::move(done), Kind::user, deadline);
          schedule_flush();
          return;
        }
        break;
      case Kind::user:
        break;
    }
    Callback done = std::move(p.done);
    pending_.pop_front();
    done(Result{Failure::none, std::move(reply)});
  }

  // --- one timer for every deadline and for the breaker ---

  // Makes the timer fire no later than `at`. It is re-armed only for an earlier time; a wake
  // that finds nothing due re-arms for what is left (see LazyTimer for the same idea).
  void arm_timer(Clock::time_point at) {
    if (closed_ || (timer_waiting_ && timer_at_ <= at)) return;
    timer_waiting_ = true;
    timer_at_ = at;
    timer_.expires_at(at);
    timer_.async_wait([self = shared_from_this(), gen = ++timer_gen_](error_code ec) {
      if (ec || gen != self->timer_gen_ || self->closed_) return;  // superseded or closed
      self->timer_waiting_ = false;
      self->on_timer();
    });
  }

  void on_timer() {
    const auto now = Clock::now();
    if (breaker_ == Breaker::open && now >= open_until_) send_probe();
    bool expired = false;
    auto next = Clock::time_point::max();
    for (size_t i = 0; i < pending_.size(); ++i) {
      const auto deadline = pending_.at(i).deadline;
      expired = expired || deadline <= now;
      next = std::min(next, deadline);
    }
    if (expired) {
      fail_connection(Failure::timeout);  // later replies could no longer be matched
    } else if (!pending_.empty()) {
      arm_timer(next);
    }
    if (breaker_ == Breaker::open) arm_timer(open_until_);
  }

  void open_breaker() {
    breaker_ = Breaker::open;
    open_until_ = Clock::now() + settings_.open_for;
    arm_timer(open_until_);
  }

  void send_probe() {
    breaker_ = Breaker::probing;
    append_array_header(out_, 1);
    append_bulk(out_, "PING");
    push_call(nullptr, Kind::probe);
    send();
  }

  asio::any_io_executor executor_;
  const Settings settings_;
  tcp::endpoint endpoint_;
  bool address_valid_ = false;

  tcp::socket socket_;
  Conn conn_ = Conn::down;
  uint64_t conn_gen_ = 0;  // bumped when a connection is dropped; stale handlers compare it
  redisReader* reader_ = nullptr;
  std::vector<char> read_buffer_;
  std::string out_;           // commands not yet handed to a write
  std::string write_buffer_;  // the write in flight
  bool writing_ = false;
  bool flush_posted_ = false;
  PendingQueue pending_;

  asio::steady_timer timer_;
  Clock::time_point timer_at_{};
  bool timer_waiting_ = false;
  uint64_t timer_gen_ = 0;

  Breaker breaker_ = Breaker::closed;
  uint32_t consecutive_failures_ = 0;
  Clock::time_point open_until_{};

  std::vector<std::pair<std::string, std::string>> scripts_;  // body, SHA1 hex
  size_t next_script_slot_ = 0;

  uint64_t errors_ = 0;
  bool closed_ = false;
};

RedisClient::RedisClient(boost::asio::any_io_executor executor, Settings settings)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(settings))) {}

RedisClient::~RedisClient() { impl_->close(); }

void RedisClient::execute(std::span<const std::string_view> args, Callback done) {
  impl_->execute(args, std::move(done));
}

void RedisClient::eval_script(std::string_view script, std::span<const std::string_view> keys,
                              std::span<const std::string_view> args, Callback done) {
  impl_->eval_script(script, keys, args, std::move(done));
}

void RedisClient::close() { impl_->close(); }
bool RedisClient::circuit_open() const { return impl_->circuit_open(); }
uint64_t RedisClient::errors() const { return impl_->errors(); }

}  // namespace sluice::upstream::redis
