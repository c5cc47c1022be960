#include "upstream/lb/ring_hash.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <utility>
#include <vector>

namespace sluice::upstream::lb {

struct RingHashFactory::State {
  State(HostSetPtr hosts, uint64_t seed) : table(std::move(hosts)), seed(seed) {}
  HostTable table;
  // The ring, sorted by point: points[i] is owned by host owners[i].
  std::vector<uint64_t> points;
  std::vector<uint32_t> owners;
  // An index by the top `bits` bits of a hash: the points of bucket b are
  // [starts[b], starts[b + 1]), about four, so a pick reads one index entry and a few points
  // instead of binary-searching a ring that outgrows the caches.
  std::vector<uint32_t> starts;
  int bits = 0;

  size_t bucket(uint64_t hash) const {
    return bits == 0 ? 0 : static_cast<size_t>(hash >> (64 - bits));
  }
  uint64_t seed;
};

namespace {

// Points a pick walks past unusable hosts before it scans the hosts instead: with 90 % of the
// hosts down, 256 points all miss about once in 10^12 picks.
constexpr size_t kMaxWalk = 256;

class RingHash : public LoadBalancer {
 public:
  RingHash(std::shared_ptr<const RingHashFactory::State> state, uint32_t worker)
      : state_(std::move(state)), rng_(worker_seed(state_->seed, worker)) {}

  Host* pick(const PickContext& ctx) override {
    const RingHashFactory::State& s = *state_;
    const size_t size = s.points.size();
    if (size == 0) return nullptr;
    const uint64_t hash = ctx.hash ? *ctx.hash : rng_.next();
    const size_t b = s.bucket(hash);
    size_t i = s.starts[b];
    // The first point at or after the hash: in its bucket, or else the next bucket's first.
    while (i < s.starts[b + 1] && s.points[i] < hash) ++i;
    if (i == size) i = 0;
    const size_t walk = std::min(size, kMaxWalk);
    for (size_t k = 0; k < walk; ++k) {
      Host* h = s.table.hosts[s.owners[i]];
      if (usable(h, ctx)) return h;
      if (++i == size) i = 0;
    }
    // Still a function of the hash, so a key keeps its fallback host.
    return s.table.scan_from(mix64(hash), ctx);
  }

 private:
  std::shared_ptr<const RingHashFactory::State> state_;
  Rng rng_;
};

}  // namespace

RingHashFactory::RingHashFactory(HostSetPtr hosts, uint64_t seed) {
  auto state = std::make_shared<State>(std::move(hosts), seed);
  const HostTable& t = state->table;
  if (t.size() != 0) {
    const uint32_t min_weight = *std::min_element(t.weights.begin(), t.weights.end());
    const double scale = std::min(static_cast<double>(kPointsPerHost) / min_weight,
                                  static_cast<double>(kMaxPoints) / t.total_weight);
    std::vector<uint64_t> counts(t.size());
    uint64_t total = 0;
    for (size_t i = 0; i < t.size(); ++i) {
      counts[i] = std::max<uint64_t>(1, std::llround(t.weights[i] * scale));
      total += counts[i];
    }
    // Counting sort by bucket straight into the two arrays, then each bucket (a few points)
    // sorted on its own: O(points), and no third copy of the ring (at a million points the
    // build's cost is mostly the first touch of its pages).
    state->bits = std::max(0, static_cast<int>(std::bit_width(total)) - 2);
    const size_t buckets = size_t{1} << state->bits;
    std::vector<uint32_t> starts(buckets + 1, 0);
    // The points are a splitmix64 stream seeded by the name's hash: a function of the name
    // alone, not of the host's position in the set.
    auto for_each_point = [&](auto&& f) {
      for (size_t i = 0; i < t.size(); ++i) {
        uint64_t x = xxhash64(t.hosts[i]->name(), 0);
        for (uint64_t k = 0; k < counts[i]; ++k) {
          x += 0x9E3779B97F4A7C15ULL;
          f(mix64(x), static_cast<uint32_t>(i));
        }
      }
    };
    for_each_point([&](uint64_t point, uint32_t) { ++starts[state->bucket(point) + 1]; });
    for (size_t b = 0; b < buckets; ++b) starts[b + 1] += starts[b];
    std::vector<uint64_t>& points = state->points;
    std::vector<uint32_t>& owners = state->owners;
    points.resize(starts.back());
    owners.resize(starts.back());
    std::vector<uint32_t> next(starts.begin(), starts.end() - 1);
    for_each_point([&](uint64_t point, uint32_t owner) {
      uint32_t at = next[state->bucket(point)]++;
      points[at] = point;
      owners[at] = owner;
    });
    // Insertion sort of each bucket, by point then owner (equal points, 2^-64 apart, still get
    // an order that does not depend on the build).
    for (size_t b = 0; b < buckets; ++b) {
      for (uint32_t i = starts[b] + 1; i < starts[b + 1]; ++i) {
        const uint64_t point = points[i];
        const uint32_t owner = owners[i];
        uint32_t j = i;
        for (; j > starts[b] && std::pair(points[j - 1], owners[j - 1]) > std::pair(point, owner);
             --j) {
          points[j] = points[j - 1];
          owners[j] = owners[j - 1];
        }
        points[j] = point;
        owners[j] = owner;
      }
    }
    state->starts = std::move(starts);
  }
  state_ = std::move(state);
}

LoadBalancerPtr RingHashFactory::create(uint32_t worker, uint32_t /*workers*/) const {
  return std::make_unique<RingHash>(state_, worker);
}

size_t RingHashFactory::ring_size() const { return state_->points.size(); }

}  // namespace sluice::upstream::lb
