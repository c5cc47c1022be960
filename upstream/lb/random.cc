#include "upstream/lb/random.h"

namespace sluice::upstream::lb {

struct RandomFactory::State {
  State(HostSetPtr hosts, uint64_t seed) : table(std::move(hosts)), seed(seed) {}
  HostTable table;
  uint64_t seed;
};

namespace {

// Draws before a pick scans the usable hosts instead (see least_request.cc).
constexpr int kDraws = 4;

class Random : public LoadBalancer {
 public:
  Random(std::shared_ptr<const RandomFactory::State> state, uint32_t worker)
      : state_(std::move(state)), rng_(worker_seed(state_->seed, worker)) {}

  Host* pick(const PickContext& ctx) override {
    const HostTable& t = state_->table;
    if (t.size() == 0) return nullptr;
    for (int k = 0; k < kDraws; ++k) {
      Host* h = t.hosts[t.draw(rng_)];
      if (usable(h, ctx)) return h;
    }
    return t.scan_weighted(rng_, ctx);
  }

 private:
  std::shared_ptr<const RandomFactory::State> state_;
  Rng rng_;
};

}  // namespace

RandomFactory::RandomFactory(HostSetPtr hosts, uint64_t seed)
    : state_(std::make_shared<const State>(std::move(hosts), seed)) {}

LoadBalancerPtr RandomFactory::create(uint32_t worker, uint32_t /*workers*/) const {
  return std::make_unique<Random>(state_, worker);
}

}  // namespace sluice::upstream::lb
