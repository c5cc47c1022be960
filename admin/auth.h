#pragma once
// The admin API's bearer-token check, and a brake on guessing: a client address that keeps
// sending wrong tokens is refused (429) for a while without its tokens being checked.
#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace sluice::admin {

// Whether `header` (an Authorization value) is "Bearer <token>" (RFC 6750; the scheme is
// case-insensitive). Compared in constant time, over hashes, so neither the token nor its
// length shows in the timing.
bool bearer_token_matches(std::string_view header, const std::string& token);

// Failed attempts per client address in fixed windows: once `max_failures` have failed within
// `window` of the first, the address waits until that window ends. Thread-safe (the admin
// server's two threads both check tokens).
class AuthThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  explicit AuthThrottle(size_t max_failures = 10, Clock::duration window = std::chrono::minutes(1),
                        size_t max_tracked = 4096);

  // How long `client` must wait before its next attempt counts; zero when it may try now.
  Clock::duration wait_for(const std::string& client, Clock::time_point now);
  void failed(const std::string& client, Clock::time_point now);
  void succeeded(const std::string& client);

 private:
  struct Entry {
    size_t failures = 0;
    Clock::time_point window_start;
  };
  const size_t max_failures_;
  const Clock::duration window_;
  const size_t max_tracked_;
  std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace sluice::admin
