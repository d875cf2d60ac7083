#pragma once
/// What a database adapter reports for /metrics: failures and the shape of its group commits.
/// Every backend (SQLite, PostgreSQL) can implement DbStatsSource beside the app::Database port;
/// the web layer's metrics read it through this interface only.

#include <cstdint>

#include "infrastructure/histogram.hpp"

namespace chat::infra {

struct DbStats {
  /// Failed transactions or jobs (a failed batch counts once, then each job retried alone).
  std::uint64_t errors = 0;
  /// Write jobs per committed transaction.
  Histogram batch_size{Histogram::size_bounds()};
  /// BEGIN to COMMIT returned, per committed transaction, in seconds.
  Histogram commit_seconds{Histogram::latency_bounds()};
};

/// Thread safety: implementations are safe to call from any thread.
class DbStatsSource {
 public:
  virtual ~DbStatsSource() = default;
  /// A consistent snapshot.
  virtual DbStats db_stats() const = 0;
};

}  // namespace chat::infra
