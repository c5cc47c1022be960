#pragma once
// Candidate index behind RouteTable::match(): which routes a request's host and path can select,
// as ascending lists of route positions, so a table of 10,000 routes is not scanned linearly.
// Built on the main thread with its RouteTable; immutable afterwards and read concurrently by
// every worker.
//
// A route is a candidate on the host side when it has no hosts or "*", an exact host equal to
// the request's, or a "*.suffix" that ends it; on the path side when its path is any, the same
// exact path, a prefix of the path, or a regex whose block and leaf may match (RE2::Sets: the
// regex routes in order in at most 16 blocks, each in leaves of 16 routes). A Walk yields the
// intersection of the two sides in ascending order (leapfrog over the lists); the caller checks
// each candidate in full and stops at the first that holds: the route a linear first-match scan
// finds, since every route the scan would accept is a candidate.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sluice::router {

struct CompiledRoute;

class RouteIndex {
  struct RegexBlock;

 public:
  // One request's walk over the candidates, on the caller's stack: match() does not allocate.
  // Its cursors are fixed arrays; a request that needs more lists than they hold (a host of
  // dozens of labels under as many wildcards, dozens of nested prefixes) walks every route.
  class Walk {
   public:
    // Every route is a candidate: a plain scan in order is the cheapest walk.
    bool everything() const { return overflow_ || (host_all_ && path_all_); }

   private:
    friend class RouteIndex;
    static constexpr size_t kMaxLists = 48;
    struct Cursor {
      const uint32_t* it;
      const uint32_t* end;
      // Regex routes only: their block, whose sets are asked once the cursor reaches a
      // candidate, and how far they have answered yes.
      const RegexBlock* block;
      const uint32_t* begin;
      bool block_passed;
      size_t leaf_passed;  // SIZE_MAX: none yet
    };
    Cursor host_lists_[kMaxLists];
    Cursor path_lists_[kMaxLists];
    size_t host_count_ = 0;
    size_t path_count_ = 0;
    bool host_all_ = false;  // every route is a host candidate
    bool path_all_ = false;  // every route is a path candidate
    bool overflow_ = false;
    uint32_t next_ = 0;  // candidates below this have been handed out
    std::string_view request_path_;
  };

  RouteIndex();
  // Main thread. Copies what it needs from `routes` (patterns, not pointers into it).
  explicit RouteIndex(const std::vector<CompiledRoute>& routes);
  ~RouteIndex();
  RouteIndex(RouteIndex&&) noexcept;
  RouteIndex& operator=(RouteIndex&&) noexcept;

  // Any worker. Starts `walk` for `host` (comparable form: no port, brackets or trailing dot;
  // any case) and `path`; both must outlive it.
  void start(std::string_view host, std::string_view path, Walk& walk) const;
  // Any worker. The next candidates (route positions, ascending) into `out`, at most
  // `capacity`; 0 when there are no more.
  size_t next(Walk& walk, uint32_t* out, size_t capacity) const;

 private:
  struct Span {
    uint32_t begin = 0;
    uint32_t end = 0;
  };
  struct FoldHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const;
  };
  struct FoldEqual {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const;
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  using FoldMap = std::unordered_map<std::string, Span, FoldHash, FoldEqual>;
  using ExactMap = std::unordered_map<std::string, Span, Hash, std::equal_to<>>;

  uint32_t route_count_ = 0;
  std::vector<uint32_t> ids_;  // every list below is a Span of this array, ascending
  // Hosts.
  Span any_host_;
  FoldMap exact_hosts_;     // key: comparable form, lower case
  FoldMap wildcard_hosts_;  // key: ".suffix" of "*.suffix", lower case
  // Paths.
  Span any_path_;
  ExactMap exact_paths_;
  // Prefixes sorted; prefix_parent_[i] is the longest other prefix that is a prefix of
  // prefixes_[i] (-1 if none), so the prefixes of a path form a chain from one binary search.
  std::vector<std::string> prefixes_;
  std::vector<int32_t> prefix_parent_;
  std::vector<Span> prefix_ids_;
  std::vector<RegexBlock> regex_blocks_;  // regex routes in order, up to 16 blocks
};

}  // namespace sluice::router
