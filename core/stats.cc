#include "core/stats.h"

#include <algorithm>

namespace sluice {

void Histogram::observe(double seconds) {
  auto it = std::lower_bound(kBounds.begin(), kBounds.end(), seconds);
  buckets_[static_cast<size_t>(it - kBounds.begin())].add();
  count_.add();
  sum_micros_.add(static_cast<uint64_t>(std::max(0.0, seconds) * 1e6));
}

void StatusCounters::add(unsigned status) { by_class[status_class_index(status)].add(); }

}  // namespace sluice
