#pragma once
/// An in-memory implementation of the repositories and the database port, for unit tests and
/// as the reference for the repository contract suite. Each job runs inline, under one mutex,
/// as its own transaction (a failing write job leaves the state as it was).
///
/// Thread safety: submit_* may be called from any thread.

#include <map>
#include <mutex>

#include "application/database.hpp"

namespace chat::infra::memory {

struct MemoryState {
  std::map<std::int64_t, domain::User> users;
  std::int64_t next_user = 1;
  std::vector<domain::Thread> threads;      ///< creation order
  std::vector<domain::Message> messages;    ///< insertion order
  std::vector<domain::Run> runs;            ///< creation order
  std::map<std::pair<std::string, std::int64_t>, domain::RunEvent> events;
  std::map<std::pair<std::string, std::string>, std::string> idempotency;
  std::map<std::int64_t, std::string> api_key_hashes;  ///< user id → hash of its API key
  std::vector<domain::WebhookDelivery> deliveries;     ///< insertion order
};

/// The repositories over a MemoryState. Not thread-safe (the database holds the lock).
class MemoryRepositories {
 public:
  explicit MemoryRepositories(MemoryState& s);
  ~MemoryRepositories();
  domain::Repositories& repos() { return repos_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  domain::Repositories repos_;
};

class MemoryDatabase final : public app::Database {
 public:
  MemoryDatabase();
  ~MemoryDatabase() override;
  std::size_t write_count() const;

 protected:
  void submit_read(ReadJob job, Done done) override;
  void submit_write(WriteJob job, Done done) override;

 private:
  mutable std::mutex mu_;
  MemoryState state_;
  MemoryRepositories repos_;
  std::size_t writes_ = 0;
};

}  // namespace chat::infra::memory
