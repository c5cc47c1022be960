#include "core/stats.h"

#include <algorithm>

namespace sluice {

void Histogram::observe(double seconds) {
  auto it = std::lower_bound(kBounds.begin(), kBounds.end(), seconds);
  buckets_[static_cast<size_t>(it - kBounds.begin())].add();
  count_.add();
  sum_micros_.add(static_cast<uint64_t>(std::max(0.0, seconds) * 1e6));
}

void StatusCounters::add(unsigned status) {
  size_t i = (status >= 100 && status <= 599) ? status / 100 - 1 : 4;
  by_class[i].add();
}

}  // namespace sluice
