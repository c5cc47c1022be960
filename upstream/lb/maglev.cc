#include "upstream/lb/maglev.h"

#include <algorithm>

namespace sluice::upstream::lb {

struct MaglevFactory::State {
  State(HostSetPtr hosts, uint64_t seed) : table(std::move(hosts)), seed(seed) {}
  HostTable table;
  std::vector<uint32_t> slots;
  uint64_t seed;
};

namespace {

// Slots a pick probes past unusable hosts before it scans the hosts instead (as ring_hash's
// walk: neighbouring slots belong to unrelated hosts).
constexpr size_t kMaxProbe = 256;

class Maglev : public LoadBalancer {
 public:
  Maglev(std::shared_ptr<const MaglevFactory::State> state, uint32_t worker)
      : state_(std::move(state)), rng_(worker_seed(state_->seed, worker)) {}

  Host* pick(const PickContext& ctx) override {
    const MaglevFactory::State& s = *state_;
    if (s.slots.empty()) return nullptr;
    const uint64_t hash = ctx.hash ? *ctx.hash : rng_.next();
    auto slot = static_cast<uint32_t>(hash % MaglevFactory::kTableSize);
    for (size_t k = 0; k < kMaxProbe; ++k) {
      Host* h = s.table.hosts[s.slots[slot]];
      if (usable(h, ctx)) return h;
      if (++slot == MaglevFactory::kTableSize) slot = 0;
    }
    // Still a function of the hash, so a key keeps its fallback host.
    return s.table.scan_from(mix64(hash), ctx);
  }

 private:
  std::shared_ptr<const MaglevFactory::State> state_;
  Rng rng_;
};

}  // namespace

MaglevFactory::MaglevFactory(HostSetPtr hosts, uint64_t seed) {
  auto state = std::make_shared<State>(std::move(hosts), seed);
  const HostTable& t = state->table;
  if (t.size() != 0) {
    constexpr uint32_t kEmpty = UINT32_MAX;
    struct Builder {
      uint64_t pos;     // the next slot of this host's permutation
      uint64_t skip;    // in [1, kTableSize): the permutation's stride
      uint64_t target;  // the round weight x rounds must reach for the host's next turn
    };
    std::vector<Builder> builders;
    builders.reserve(t.size());
    for (Host* h : t.hosts) {
      // Functions of the name alone: a host keeps its permutation across host sets.
      builders.push_back(
          {xxhash64(h->name(), 0) % kTableSize, xxhash64(h->name(), 1) % (kTableSize - 1) + 1, 0});
    }
    const uint64_t max_weight = *std::max_element(t.weights.begin(), t.weights.end());
    std::vector<uint32_t> slots(kTableSize, kEmpty);
    uint32_t filled = 0;
    for (uint64_t round = 1; filled < kTableSize; ++round) {
      for (size_t i = 0; i < t.size() && filled < kTableSize; ++i) {
        Builder& b = builders[i];
        if (round * t.weights[i] < b.target) continue;
        b.target += max_weight;
        while (slots[b.pos] != kEmpty) b.pos = (b.pos + b.skip) % kTableSize;
        slots[b.pos] = static_cast<uint32_t>(i);
        b.pos = (b.pos + b.skip) % kTableSize;
        ++filled;
      }
    }
    state->slots = std::move(slots);
  }
  state_ = std::move(state);
}

LoadBalancerPtr MaglevFactory::create(uint32_t worker, uint32_t /*workers*/) const {
  return std::make_unique<Maglev>(state_, worker);
}

const std::vector<uint32_t>& MaglevFactory::table() const { return state_->slots; }

}  // namespace sluice::upstream::lb
