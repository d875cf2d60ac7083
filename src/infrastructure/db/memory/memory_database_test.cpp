// The in-memory backend: the repository contract, and the database port's write semantics.

#include "memory_database.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

#include "testkit/async.hpp"
#include "testkit/repository_contract.hpp"

namespace chat::infra::memory {
namespace {

class MemoryBackend final : public testkit::RepoBackend {
 public:
  domain::Repositories& repos() override { return repos_.repos(); }

 private:
  MemoryState state_;
  MemoryRepositories repos_{state_};
};

testkit::RepoBackendFactory memory_backend() {
  return {"memory", [] { return std::make_unique<MemoryBackend>(); }};
}

}  // namespace

CHAT_REPOSITORY_CONTRACT(Memory, memory_backend());

namespace {

using testkit::IoRunner;
using testkit::run_sync;

TEST(MemoryDatabase, WriteReturnsTheJobsResultAfterItsHooksRan) {
  IoRunner io(1);
  MemoryDatabase db;
  bool hook_ran = false;
  auto id = run_sync(io.io(), db.write([&](app::WriteTx& tx) {
    tx.after_commit([&] { hook_ran = true; });
    return tx.repos().users.insert("alice", 1).id;
  }));
  EXPECT_TRUE(hook_ran);
  EXPECT_GT(id, 0);
  EXPECT_EQ(db.write_count(), 1u);
  auto name = run_sync(io.io(), db.read([&](domain::Repositories& r) {
    return r.users.find(id).value().name;
  }));
  EXPECT_EQ(name, "alice");
}

TEST(MemoryDatabase, AFailingWriteLeavesNothingAndRunsNoHook) {
  IoRunner io(1);
  MemoryDatabase db;
  bool hook_ran = false;
  EXPECT_THROW(run_sync(io.io(), db.write([&](app::WriteTx& tx) {
                 tx.repos().users.insert("alice", 1);
                 tx.after_commit([&] { hook_ran = true; });
                 throw std::runtime_error("job failed");
               })),
               std::runtime_error);
  EXPECT_FALSE(hook_ran);
  EXPECT_EQ(db.write_count(), 0u);
  auto found = run_sync(io.io(), db.read([](domain::Repositories& r) {
    return r.users.find_by_name("alice").has_value();
  }));
  EXPECT_FALSE(found);
  // The name is free again.
  EXPECT_NO_THROW(run_sync(io.io(), db.write([](app::WriteTx& tx) {
    tx.repos().users.insert("alice", 2);
  })));
}

TEST(MemoryDatabase, AFailingReadPropagates) {
  IoRunner io(1);
  MemoryDatabase db;
  EXPECT_THROW(run_sync(io.io(), db.read([](domain::Repositories&) -> int {
                 throw std::logic_error("read failed");
               })),
               std::logic_error);
}

}  // namespace
}  // namespace chat::infra::memory
