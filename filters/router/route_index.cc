#include "filters/router/route_index.h"

#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>
#include <map>

#include "filters/router/route_table.h"

namespace sluice::router {
namespace {

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

// Same as route_table.cc's comparable_host(), for patterns.
std::string_view comparable_pattern(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  return host;
}

// Regex routes per RE2::Set: up to kMaxRegexBlocks blocks (each one cursor, so a request never
// needs more lists for them), each split into leaves of kRegexLeaf routes with sets of their own,
// so that a block that matches is narrowed to the leaves that do before any route's own regex
// runs.
constexpr size_t kMaxRegexBlocks = 16;
constexpr size_t kMinRegexBlock = 32;
constexpr size_t kRegexLeaf = 16;

// One set over the regexes of regex_routes[start, stop): null when it cannot be built (the
// routes are then always candidates).
std::unique_ptr<re2::RE2::Set> regex_set(const std::vector<CompiledRoute>& routes,
                                         const std::vector<uint32_t>& regex_routes, size_t start,
                                         size_t stop) {
  // The options RouteTable compiles each route's regex with; anchored at both ends, as
  // RE2::FullMatch is.
  re2::RE2::Options options;
  options.set_log_errors(false);
  auto set = std::make_unique<re2::RE2::Set>(options, re2::RE2::ANCHOR_BOTH);
  for (size_t i = start; i < stop; ++i) {
    if (set->Add(routes[regex_routes[i]].route->match.path.value, nullptr) < 0) return nullptr;
  }
  return set->Compile() ? std::move(set) : nullptr;
}

// Whether `set` may match: a DFA out of memory is not "no match".
bool may_match(const re2::RE2::Set* set, std::string_view path) {
  if (set == nullptr) return true;
  re2::RE2::Set::ErrorInfo error{};
  return set->Match(re2::StringPiece(path.data(), path.size()), nullptr, &error) ||
         error.kind != re2::RE2::Set::kNoError;
}

constexpr uint32_t kNone = UINT32_MAX;  // past every list
// First element >= x in [it, end), by doubling steps from `it`: dense lists advance in O(1).
const uint32_t* gallop(const uint32_t* it, const uint32_t* end, uint32_t x) {
  if (it == end || *it >= x) return it;
  const size_t n = static_cast<size_t>(end - it);
  size_t lo = 0;  // it[lo] < x
  size_t step = 1;
  while (lo + step < n && it[lo + step] < x) {
    lo += step;
    step *= 2;
  }
  return std::lower_bound(it + lo + 1, it + std::min(lo + step, n), x);
}

}  // namespace

struct RouteIndex::RegexBlock {
  std::unique_ptr<re2::RE2::Set> set;  // null when it could not be built: always a candidate
  Span ids;
  // Sets of kRegexLeaf consecutive routes each; none when the block is no larger than one.
  std::vector<std::unique_ptr<re2::RE2::Set>> leaves;
};

size_t RouteIndex::FoldHash::operator()(std::string_view s) const {
  uint64_t h = 14695981039346656037ull;  // FNV-1a over the lower-cased bytes
  for (char c : s) {
    h ^= static_cast<unsigned char>(ascii_lower(c));
    h *= 1099511628211ull;
  }
  return static_cast<size_t>(h);
}

bool RouteIndex::FoldEqual::operator()(std::string_view a, std::string_view b) const {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  }
  return true;
}

RouteIndex::RouteIndex() = default;
RouteIndex::~RouteIndex() = default;
RouteIndex::RouteIndex(RouteIndex&&) noexcept = default;
RouteIndex& RouteIndex::operator=(RouteIndex&&) noexcept = default;

RouteIndex::RouteIndex(const std::vector<CompiledRoute>& routes)
    : route_count_(static_cast<uint32_t>(routes.size())) {
  // Lists gathered per key first (ascending, as routes are visited in order), then laid out in
  // ids_.
  std::vector<uint32_t> any_host, any_path, regex_routes;
  std::map<std::string, std::vector<uint32_t>> exact_hosts, wildcard_hosts, exact_paths, prefixes;
  const auto add = [](std::vector<uint32_t>& list, uint32_t id) {
    if (list.empty() || list.back() != id) list.push_back(id);
  };
  for (uint32_t id = 0; id < route_count_; ++id) {
    const config::RouteMatch& m = routes[id].route->match;
    if (m.hosts.empty() || std::find(m.hosts.begin(), m.hosts.end(), "*") != m.hosts.end()) {
      add(any_host, id);
    } else {
      for (const std::string& pattern : m.hosts) {
        if (pattern.size() >= 2 && pattern[0] == '*' && pattern[1] == '.') {
          add(wildcard_hosts[lower(std::string_view(pattern).substr(1))], id);
        } else {
          add(exact_hosts[lower(comparable_pattern(pattern))], id);
        }
      }
    }
    switch (m.path.kind) {
      case config::PathMatch::Kind::any:
        add(any_path, id);
        break;
      case config::PathMatch::Kind::exact:
        add(exact_paths[m.path.value], id);
        break;
      case config::PathMatch::Kind::prefix:
        add(prefixes[m.path.value], id);
        break;
      case config::PathMatch::Kind::regex:
        add(regex_routes, id);
        break;
    }
  }

  const auto lay_out = [this](const std::vector<uint32_t>& list) {
    Span span{static_cast<uint32_t>(ids_.size()), 0};
    ids_.insert(ids_.end(), list.begin(), list.end());
    span.end = static_cast<uint32_t>(ids_.size());
    return span;
  };
  any_host_ = lay_out(any_host);
  any_path_ = lay_out(any_path);
  for (const auto& [key, list] : exact_hosts) exact_hosts_.emplace(key, lay_out(list));
  for (const auto& [key, list] : wildcard_hosts) wildcard_hosts_.emplace(key, lay_out(list));
  for (const auto& [key, list] : exact_paths) exact_paths_.emplace(key, lay_out(list));
  // std::map iterates in byte order, which is the order the binary search in start() uses.
  std::vector<int32_t> stack;  // the chain of prefixes of the current one
  for (const auto& [key, list] : prefixes) {
    while (!stack.empty() && !key.starts_with(prefixes_[static_cast<size_t>(stack.back())])) {
      stack.pop_back();
    }
    prefix_parent_.push_back(stack.empty() ? -1 : stack.back());
    stack.push_back(static_cast<int32_t>(prefixes_.size()));
    prefixes_.push_back(key);
    prefix_ids_.push_back(lay_out(list));
  }

  const size_t block =
      std::max(kMinRegexBlock, (regex_routes.size() + kMaxRegexBlocks - 1) / kMaxRegexBlocks);
  for (size_t start = 0; start < regex_routes.size(); start += block) {
    const size_t stop = std::min(start + block, regex_routes.size());
    RegexBlock& b = regex_blocks_.emplace_back();
    b.ids = lay_out(std::vector<uint32_t>(regex_routes.begin() + static_cast<ptrdiff_t>(start),
                                          regex_routes.begin() + static_cast<ptrdiff_t>(stop)));
    b.set = regex_set(routes, regex_routes, start, stop);
    if (stop - start > kRegexLeaf) {
      for (size_t leaf = start; leaf < stop; leaf += kRegexLeaf) {
        b.leaves.push_back(
            regex_set(routes, regex_routes, leaf, std::min(leaf + kRegexLeaf, stop)));
      }
    }
  }
}

void RouteIndex::start(std::string_view host, std::string_view path, Walk& walk) const {
  walk.request_path_ = path;
  const auto push = [&](Walk::Cursor* lists, size_t& count, Span span, const RegexBlock* block) {
    if (span.begin == span.end) return;
    if (count == Walk::kMaxLists) {
      walk.overflow_ = true;
      return;
    }
    const uint32_t* begin = ids_.data() + span.begin;
    lists[count++] = {begin, ids_.data() + span.end, block, begin, false, SIZE_MAX};
  };

  // Host side. When every route takes any host, no other host list exists.
  walk.host_all_ = any_host_.end - any_host_.begin == route_count_;
  if (!walk.host_all_) {
    push(walk.host_lists_, walk.host_count_, any_host_, nullptr);
    if (!exact_hosts_.empty()) {
      if (auto it = exact_hosts_.find(host); it != exact_hosts_.end()) {
        push(walk.host_lists_, walk.host_count_, it->second, nullptr);
      }
    }
    if (!wildcard_hosts_.empty()) {
      // "*.suffix" needs at least one character before ".suffix": every '.' but a leading one.
      for (size_t dot = host.find('.', 1); dot != std::string_view::npos;
           dot = host.find('.', dot + 1)) {
        if (auto it = wildcard_hosts_.find(host.substr(dot)); it != wildcard_hosts_.end()) {
          push(walk.host_lists_, walk.host_count_, it->second, nullptr);
        }
      }
    }
  }

  // Path side. A route is in one path list at most, so lists adding up to every route cover
  // every route (a catch-all prefix "/" on all of them, say). Regex blocks a set can rule out
  // do not count: they are candidates only if their set matches.
  uint32_t path_total = 0;
  const auto push_path = [&](Span span, const RegexBlock* block) {
    if (block == nullptr || (block->set == nullptr && block->leaves.empty())) {
      path_total += span.end - span.begin;
    }
    push(walk.path_lists_, walk.path_count_, span, block);
  };
  push_path(any_path_, nullptr);
  if (!exact_paths_.empty()) {
    if (auto it = exact_paths_.find(path); it != exact_paths_.end()) push_path(it->second, nullptr);
  }
  if (!prefixes_.empty()) {
    // Every prefix of `path` sorts at or before it, and every string between such a prefix and
    // `path` starts with that prefix: so all of them are prefixes of the last entry <= path,
    // within the part it shares with `path`.
    auto upper = std::upper_bound(prefixes_.begin(), prefixes_.end(), path,
                                  [](std::string_view p, const std::string& e) { return p < e; });
    int32_t i = static_cast<int32_t>(upper - prefixes_.begin()) - 1;
    if (i >= 0) {
      const std::string& last = prefixes_[static_cast<size_t>(i)];
      const size_t limit = std::min(last.size(), path.size());
      size_t shared = 0;
      while (shared < limit && last[shared] == path[shared]) ++shared;
      while (i >= 0 && prefixes_[static_cast<size_t>(i)].size() > shared) {
        i = prefix_parent_[static_cast<size_t>(i)];
      }
      for (; i >= 0; i = prefix_parent_[static_cast<size_t>(i)]) {
        push_path(prefix_ids_[static_cast<size_t>(i)], nullptr);
      }
    }
  }
  for (const RegexBlock& block : regex_blocks_) push_path(block.ids, &block);
  walk.path_all_ = path_total == route_count_;
}

size_t RouteIndex::next(Walk& walk, uint32_t* out, size_t capacity) const {
  if (walk.everything()) {
    size_t n = 0;
    while (n < capacity && walk.next_ < route_count_) out[n++] = walk.next_++;
    return n;
  }
  // The smallest id >= x over a side's lists. A regex block's sets are asked only when one of
  // its routes would be the answer: the block's first, and if it may match, the set of the leaf
  // holding that route; a leaf that cannot match is skipped whole. The sets answer yes or no,
  // not which regex matched (RE2::Set::Match() with a result vector allocates a SparseSet per
  // call), so a matching leaf's routes are confirmed one by one, in order, by the full check.
  const std::string_view path = walk.request_path_;
  const auto seek = [path](Walk::Cursor* lists, size_t count, uint32_t x) {
    uint32_t best = kNone;
    for (size_t i = 0; i < count; ++i) {
      Walk::Cursor& c = lists[i];
      c.it = gallop(c.it, c.end, x);
      while (c.block != nullptr && c.it != c.end && *c.it < best) {
        if (!c.block_passed) {
          if (!may_match(c.block->set.get(), path)) {
            c.it = c.end;
            break;
          }
          c.block_passed = true;
        }
        if (c.block->leaves.empty()) break;
        const size_t leaf = static_cast<size_t>(c.it - c.begin) / kRegexLeaf;
        if (leaf == c.leaf_passed) break;
        if (may_match(c.block->leaves[leaf].get(), path)) {
          c.leaf_passed = leaf;
          break;
        }
        c.it = c.begin + std::min(static_cast<size_t>(c.end - c.begin), (leaf + 1) * kRegexLeaf);
      }
      if (c.it != c.end && *c.it < best) best = *c.it;
    }
    return best;
  };

  size_t n = 0;
  uint32_t x = walk.next_;
  while (n < capacity && x < route_count_) {
    const uint32_t h = walk.host_all_ ? x : seek(walk.host_lists_, walk.host_count_, x);
    if (h == kNone) {
      x = route_count_;
      break;
    }
    const uint32_t p = walk.path_all_ ? h : seek(walk.path_lists_, walk.path_count_, h);
    if (p == kNone) {
      x = route_count_;
      break;
    }
    if (p == h) {
      out[n++] = h;
      x = h + 1;
    } else {
      x = p;
    }
  }
  walk.next_ = x;
  return n;
}

}  // namespace sluice::router
