#include "admin/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/http.h"

namespace sluice::admin {

bool bearer_token_matches(std::string_view header, const std::string& token) {
  constexpr std::string_view kScheme = "Bearer";
  if (header.size() <= kScheme.size() || !iequals(header.substr(0, kScheme.size()), kScheme)) {
    return false;
  }
  std::string_view credentials = header.substr(kScheme.size());
  if (credentials.front() != ' ') return false;
  const size_t begin = credentials.find_first_not_of(" \t");
  if (begin == std::string_view::npos) return false;
  credentials = credentials.substr(begin, credentials.find_last_not_of(" \t") + 1 - begin);
  unsigned char given[EVP_MAX_MD_SIZE];
  unsigned char wanted[EVP_MAX_MD_SIZE];
  unsigned int given_size = 0;
  unsigned int wanted_size = 0;
  if (EVP_Digest(credentials.data(), credentials.size(), given, &given_size, EVP_sha256(),
                 nullptr) != 1 ||
      EVP_Digest(token.data(), token.size(), wanted, &wanted_size, EVP_sha256(), nullptr) != 1 ||
      given_size != wanted_size) {
    return false;
  }
  return CRYPTO_memcmp(given, wanted, given_size) == 0;
}

AuthThrottle::AuthThrottle(size_t max_failures, Clock::duration window, size_t max_tracked)
    : max_failures_(max_failures), window_(window), max_tracked_(max_tracked) {}

AuthThrottle::Clock::duration AuthThrottle::wait_for(const std::string& client,
                                                     Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(client);
  if (it == entries_.end() || it->second.failures < max_failures_) return {};
  const Clock::time_point ends = it->second.window_start + window_;
  if (now >= ends) {
    entries_.erase(it);
    return {};
  }
  return ends - now;
}

void AuthThrottle::failed(const std::string& client, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (entries_.size() >= max_tracked_ && !entries_.contains(client)) {
    std::erase_if(entries_, [&](const auto& e) { return now - e.second.window_start >= window_; });
    // Still full: many addresses are guessing at once. Forgetting the oldest state would let
    // each of them start over; refusing to track new ones lets them guess untracked. The
    // first is bounded by the window, so start over.
    if (entries_.size() >= max_tracked_) entries_.clear();
  }
  Entry& e = entries_[client];
  if (e.failures == 0 || now - e.window_start >= window_) {
    e.failures = 0;
    e.window_start = now;
  }
  ++e.failures;
}

void AuthThrottle::succeeded(const std::string& client) {
  std::lock_guard lock(mutex_);
  entries_.erase(client);
}

}  // namespace sluice::admin
