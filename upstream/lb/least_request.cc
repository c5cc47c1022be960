#include "upstream/lb/least_request.h"

namespace sluice::upstream::lb {

struct LeastRequestFactory::State {
  State(HostSetPtr hosts, uint64_t seed) : table(std::move(hosts)), seed(seed) {}
  HostTable table;
  uint64_t seed;
};

namespace {

// Draws per candidate before a pick scans every host instead: with a quarter of the hosts
// down, four draws all miss once in 256 picks.
constexpr int kDraws = 4;

class LeastRequest : public LoadBalancer {
 public:
  LeastRequest(std::shared_ptr<const LeastRequestFactory::State> state, uint32_t worker)
      : state_(std::move(state)), rng_(worker_seed(state_->seed, worker)) {}

  Host* pick(const PickContext& ctx) override {
    const HostTable& t = state_->table;
    const size_t n = t.size();
    if (n == 0) return nullptr;
    if (n == 1) return usable(t.hosts[0], ctx) ? t.hosts[0] : t.last_resort(ctx);
    uint32_t a = 0;
    bool found = false;
    for (int k = 0; k < kDraws && !found; ++k) {
      a = t.draw(rng_);
      found = usable(t.hosts[a], ctx);
    }
    if (found) {
      for (int k = 0; k < kDraws; ++k) {
        uint32_t b = t.draw_except(rng_, a);
        if (!usable(t.hosts[b], ctx)) continue;
        // active_a / weight_a <= active_b / weight_b, without division; ties to the first draw.
        uint64_t cost_a = uint64_t{t.hosts[a]->active_requests()} * t.weights[b];
        uint64_t cost_b = uint64_t{t.hosts[b]->active_requests()} * t.weights[a];
        return cost_b < cost_a ? t.hosts[b] : t.hosts[a];
      }
    }
    return t.scan_least(rng_.next(), ctx);
  }

 private:
  std::shared_ptr<const LeastRequestFactory::State> state_;
  Rng rng_;
};

}  // namespace

LeastRequestFactory::LeastRequestFactory(HostSetPtr hosts, uint64_t seed)
    : state_(std::make_shared<const State>(std::move(hosts), seed)) {}

LoadBalancerPtr LeastRequestFactory::create(uint32_t worker, uint32_t /*workers*/) const {
  return std::make_unique<LeastRequest>(state_, worker);
}

}  // namespace sluice::upstream::lb
