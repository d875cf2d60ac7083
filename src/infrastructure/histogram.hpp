#pragma once
/// A fixed-bucket histogram in the shape Prometheus exposes (`le` upper bounds, +Inf implied).
///
/// Thread safety: none; the owner guards it (they all update it under a lock they already hold).

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace chat::infra {

class Histogram {
 public:
  /// `bounds`: ascending upper bounds of the finite buckets.
  explicit Histogram(std::vector<double> bounds)
      : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

  void observe(double v) {
    // First bucket whose bound is >= v (Prometheus buckets are `le`); past the end: +Inf.
    auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
    ++counts_[static_cast<std::size_t>(it - bounds_.begin())];
    sum_ += v;
    ++count_;
  }

  const std::vector<double>& bounds() const { return bounds_; }
  /// Per bucket (not cumulative); the last one is the +Inf bucket.
  const std::vector<std::uint64_t>& counts() const { return counts_; }
  double sum() const { return sum_; }
  std::uint64_t count() const { return count_; }

  /// Upper bounds in seconds for request-like latencies: 0.5 ms to 10 s.
  static std::vector<double> latency_bounds() {
    return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  }
  /// Powers of two from 1 to 4096, for counts such as jobs per batch.
  static std::vector<double> size_bounds() {
    std::vector<double> b;
    for (double v = 1; v <= 4096; v *= 2) b.push_back(v);
    return b;
  }

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> counts_;
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

}  // namespace chat::infra
