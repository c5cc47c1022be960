#pragma once
// Cancellation for asynchronous work started on behalf of an owner that may go away first (a
// stream, a filter). The owner holds a CancellationSource; each piece of async work captures a
// CancellationToken and checks it before touching the owner. Single-threaded: source and
// tokens are used on the owner's executor. One shared allocation per source, made on first use.
#include <memory>
#include <utility>

namespace sluice {

class CancellationToken {
 public:
  CancellationToken() = default;  // already cancelled
  bool cancelled() const { return alive_.expired(); }
  // For APIs that take a guard of their own (LazyTimer).
  const std::weak_ptr<const void>& guard() const { return alive_; }

  // `fn` wrapped so that it does nothing once the token is cancelled.
  template <typename Fn>
  auto bind(Fn fn) const {
    return [token = *this, fn = std::move(fn)](auto&&... args) mutable {
      if (!token.cancelled()) fn(std::forward<decltype(args)>(args)...);
    };
  }

 private:
  friend class CancellationSource;
  explicit CancellationToken(std::weak_ptr<const void> alive) : alive_(std::move(alive)) {}
  std::weak_ptr<const void> alive_;
};

class CancellationSource {
 public:
  CancellationSource() = default;
  CancellationSource(const CancellationSource&) = delete;
  CancellationSource& operator=(const CancellationSource&) = delete;
  ~CancellationSource() { cancel(); }

  CancellationToken token() {
    if (!alive_ && !cancelled_) alive_ = std::make_shared<char>(0);
    return CancellationToken(alive_);
  }
  // Every token handed out (and any handed out later) reads as cancelled from now on.
  void cancel() {
    cancelled_ = true;
    alive_.reset();
  }
  bool cancelled() const { return cancelled_; }

 private:
  std::shared_ptr<const void> alive_;
  bool cancelled_ = false;
};

}  // namespace sluice
