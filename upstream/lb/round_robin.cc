#include "upstream/lb/round_robin.h"

#include <algorithm>
#include <numeric>

namespace sluice::upstream::lb {

struct RoundRobinFactory::State {
  explicit State(HostSetPtr hosts, uint64_t seed) : table(std::move(hosts)), seed(seed) {}
  HostTable table;
  std::vector<uint32_t> sequence;
  // How far a pick walks the sequence before it draws among the usable hosts instead: far
  // enough to cross a run of unavailable hosts, short enough that a mostly-down cluster with
  // a long period doesn't cost a full period per request.
  size_t max_walk = 0;
  uint64_t seed;
};

namespace {

// Weights as the sequence uses them: divided by their gcd, and scaled down to about `cap` in
// total if still above it.
std::vector<uint64_t> sequence_weights(const std::vector<uint32_t>& weights, uint64_t cap) {
  uint64_t g = 0;
  for (uint32_t w : weights) g = std::gcd(g, static_cast<uint64_t>(w));
  std::vector<uint64_t> out;
  out.reserve(weights.size());
  uint64_t total = 0;
  for (uint32_t w : weights) {
    out.push_back(w / g);
    total += w / g;
  }
  if (total > cap) {
    for (uint64_t& w : out) {
      w = std::max<uint64_t>(1, static_cast<uint64_t>(uint128{w} * cap / total));
    }
  }
  return out;
}

// nginx's smooth weighted round robin: each step adds every host's weight to its current
// value, takes the largest (the first on ties) and subtracts the total from it.
std::vector<uint32_t> nginx_sequence(const std::vector<uint64_t>& weights, uint64_t total) {
  std::vector<uint32_t> sequence;
  sequence.reserve(total);
  std::vector<int64_t> current(weights.size(), 0);
  for (uint64_t step = 0; step < total; ++step) {
    size_t best = 0;
    for (size_t i = 0; i < weights.size(); ++i) {
      current[i] += static_cast<int64_t>(weights[i]);
      if (current[i] > current[best]) best = i;
    }
    current[best] -= static_cast<int64_t>(total);
    sequence.push_back(static_cast<uint32_t>(best));
  }
  return sequence;
}

// Stride scheduling (earliest virtual deadline first): host i's k-th turn of a period is due at
// (k + 1/2) / w_i, turns are taken in order of due time (the first host on ties). As smooth for
// each host as nginx's and with the same counts per period, in O(total log hosts).
std::vector<uint32_t> stride_sequence(const std::vector<uint64_t>& weights, uint64_t total) {
  struct Turn {
    uint64_t twice_k_plus_1;
    uint64_t weight;
    uint32_t host;
  };
  // A heap's "less" is "due later", so the top is the earliest.
  auto later = [](const Turn& a, const Turn& b) {
    uint128 da = uint128{a.twice_k_plus_1} * b.weight;
    uint128 db = uint128{b.twice_k_plus_1} * a.weight;
    return da != db ? da > db : a.host > b.host;
  };
  std::vector<Turn> heap;
  heap.reserve(weights.size());
  for (size_t i = 0; i < weights.size(); ++i) {
    heap.push_back({1, weights[i], static_cast<uint32_t>(i)});
  }
  std::make_heap(heap.begin(), heap.end(), later);
  std::vector<uint32_t> sequence;
  sequence.reserve(total);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    Turn& turn = heap.back();
    sequence.push_back(turn.host);
    turn.twice_k_plus_1 += 2;
    if (turn.twice_k_plus_1 < 2 * turn.weight) {
      std::push_heap(heap.begin(), heap.end(), later);
    } else {
      heap.pop_back();
    }
  }
  return sequence;
}

// nginx's algorithm costs entries x hosts to build: above this (thousands of hosts of unequal
// weights, about 10 ms), stride scheduling's.
constexpr uint64_t kNginxBuildBudget = uint64_t{1} << 24;

std::vector<uint32_t> build_sequence(const std::vector<uint64_t>& weights) {
  const uint64_t total = std::accumulate(weights.begin(), weights.end(), uint64_t{0});
  if (total == weights.size()) {
    // All equal: both algorithms give the hosts in order.
    std::vector<uint32_t> sequence(weights.size());
    std::iota(sequence.begin(), sequence.end(), 0u);
    return sequence;
  }
  if (uint128{total} * weights.size() <= kNginxBuildBudget) return nginx_sequence(weights, total);
  return stride_sequence(weights, total);
}

class RoundRobin : public LoadBalancer {
 public:
  RoundRobin(std::shared_ptr<const RoundRobinFactory::State> state, uint32_t worker,
             uint32_t workers)
      : state_(std::move(state)), rng_(worker_seed(state_->seed, worker)) {
    cursor_ = static_cast<size_t>(uint64_t{worker} * state_->sequence.size() / workers);
  }

  Host* pick(const PickContext& ctx) override {
    const std::vector<uint32_t>& seq = state_->sequence;
    const HostTable& table = state_->table;
    if (seq.empty()) return nullptr;
    for (size_t k = 0; k < state_->max_walk; ++k) {
      Host* h = table.hosts[seq[cursor_]];
      if (++cursor_ == seq.size()) cursor_ = 0;
      if (usable(h, ctx)) return h;
    }
    return table.scan_weighted(rng_, ctx);
  }

 private:
  std::shared_ptr<const RoundRobinFactory::State> state_;
  size_t cursor_;
  Rng rng_;
};

}  // namespace

RoundRobinFactory::RoundRobinFactory(HostSetPtr hosts, uint64_t seed) {
  auto state = std::make_shared<State>(std::move(hosts), seed);
  const size_t n = state->table.size();
  if (n != 0) {
    // With more hosts than the cap, every host still appears once.
    state->sequence =
        build_sequence(sequence_weights(state->table.weights, std::max<uint64_t>(kMaxSequence, n)));
    state->max_walk = std::min(state->sequence.size(), 2 * n + 16);
  }
  state_ = std::move(state);
}

LoadBalancerPtr RoundRobinFactory::create(uint32_t worker, uint32_t workers) const {
  workers = std::max<uint32_t>(workers, 1);
  return std::make_unique<RoundRobin>(state_, worker % workers, workers);
}

const std::vector<uint32_t>& RoundRobinFactory::sequence() const { return state_->sequence; }

}  // namespace sluice::upstream::lb
