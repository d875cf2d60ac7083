#include "memory_database.hpp"

#include <algorithm>
#include <stdexcept>

namespace chat::infra::memory {
namespace {

using namespace chat::domain;

std::int64_t last_seq_of(MemoryState& s, const std::string& run_id) {
  auto it = s.events.lower_bound({run_id, INT64_MAX});
  if (it == s.events.begin()) return 0;
  --it;
  return it->first.first == run_id ? it->first.second : 0;
}

class Users final : public UserRepository {
 public:
  explicit Users(MemoryState& s) : s_(s) {}
  User insert(const std::string& name, Timestamp at) override {
    for (auto& [id, u] : s_.users)
      if (u.name == name) throw std::runtime_error("UNIQUE constraint failed: users.name");
    User u{s_.next_user++, name, at};
    s_.users[u.id] = u;
    return u;
  }
  std::optional<User> find(std::int64_t id) override {
    auto it = s_.users.find(id);
    if (it == s_.users.end()) return std::nullopt;
    return it->second;
  }
  std::optional<User> find_by_name(const std::string& name) override {
    for (auto& [id, u] : s_.users)
      if (u.name == name) return u;
    return std::nullopt;
  }
  void set_api_key_hash(std::int64_t id, const std::string& hash) override {
    s_.api_key_hashes[id] = hash;
  }
  std::optional<User> find_by_api_key_hash(const std::string& hash) override {
    for (auto& [id, h] : s_.api_key_hashes)
      if (h == hash) return find(id);
    return std::nullopt;
  }

 private:
  MemoryState& s_;
};

class Threads final : public ThreadRepository {
 public:
  explicit Threads(MemoryState& s) : s_(s) {}
  void insert(const Thread& t) override {
    if (!s_.users.count(t.user_id)) throw std::runtime_error("FOREIGN KEY constraint failed");
    if (find(t.id)) throw std::runtime_error("UNIQUE constraint failed: threads.id");
    s_.threads.push_back(t);
  }
  std::optional<Thread> find(const std::string& id) override {
    for (auto& t : s_.threads)
      if (t.id == id) return t;
    return std::nullopt;
  }
  std::vector<Thread> list_by_user(std::int64_t user_id, const std::optional<std::string>& before,
                                   int limit) override {
    std::vector<Thread> out;
    bool open = !before;
    for (auto it = s_.threads.rbegin(); it != s_.threads.rend(); ++it) {
      if (it->user_id != user_id) continue;
      if (!open) {
        if (it->id == *before) open = true;
        continue;
      }
      if (static_cast<int>(out.size()) >= limit) break;
      out.push_back(*it);
    }
    return out;
  }
  bool remove(const std::string& id) override {
    auto it = std::find_if(s_.threads.begin(), s_.threads.end(),
                           [&](const Thread& t) { return t.id == id; });
    if (it == s_.threads.end()) return false;
    s_.threads.erase(it);
    std::erase_if(s_.messages, [&](const Message& m) { return m.thread_id == id; });
    for (auto& r : s_.runs)
      if (r.thread_id == id) {
        std::erase_if(s_.events, [&](const auto& kv) { return kv.first.first == r.id; });
        std::erase_if(s_.deliveries,
                      [&](const WebhookDelivery& d) { return d.run_id == r.id; });
      }
    std::erase_if(s_.runs, [&](const Run& r) { return r.thread_id == id; });
    std::erase_if(s_.idempotency, [&](const auto& kv) { return kv.first.first == id; });
    return true;
  }

 private:
  MemoryState& s_;
};

class Runs final : public RunRepository {
 public:
  explicit Runs(MemoryState& s) : s_(s) {}
  void insert(const Run& r) override {
    if (!Threads(s_).find(r.thread_id)) throw std::runtime_error("FOREIGN KEY constraint failed");
    s_.runs.push_back(r);
    s_.runs.back().last_seq = 0;
  }
  std::optional<Run> find(const std::string& id) override {
    for (auto& r : s_.runs)
      if (r.id == id) return with_seq(r);
    return std::nullopt;
  }
  std::vector<Run> list_by_thread(const std::string& thread_id) override {
    std::vector<Run> out;
    for (auto& r : s_.runs)
      if (r.thread_id == thread_id) out.push_back(with_seq(r));
    return out;
  }
  std::vector<Run> list_by_status(RunStatus status) override {
    std::vector<Run> out;
    for (auto& r : s_.runs)
      if (r.status == status) out.push_back(with_seq(r));
    return out;
  }
  bool mark_running(const std::string& id, Timestamp at) override {
    for (auto& r : s_.runs)
      if (r.id == id && r.status == RunStatus::queued) {
        r.status = RunStatus::running;
        r.started_at = at;
        return true;
      }
    return false;
  }
  bool finish(const std::string& id, RunStatus status, Timestamp at,
              const std::optional<std::string>& error) override {
    for (auto& r : s_.runs)
      if (r.id == id && !is_terminal(r.status)) {
        r.status = status;
        r.finished_at = at;
        r.error = error;
        return true;
      }
    return false;
  }

 private:
  Run with_seq(Run r) {
    if (!r.events_pruned) r.last_seq = last_seq_of(s_, r.id);
    return r;
  }
  MemoryState& s_;
};

class Messages final : public MessageRepository {
 public:
  explicit Messages(MemoryState& s) : s_(s) {}
  void insert(const Message& m) override {
    if (!Threads(s_).find(m.thread_id)) throw std::runtime_error("FOREIGN KEY constraint failed");
    s_.messages.push_back(m);
  }
  std::vector<Message> list_by_thread(const std::string& thread_id) override {
    auto run_index = [&](const Message& m) {
      for (std::size_t i = 0; i < s_.runs.size(); ++i)
        if (m.run_id && s_.runs[i].id == *m.run_id) return static_cast<std::int64_t>(i);
      return std::int64_t{-1};
    };
    std::vector<std::pair<std::tuple<std::int64_t, int, std::size_t>, Message>> keyed;
    for (std::size_t i = 0; i < s_.messages.size(); ++i) {
      const auto& m = s_.messages[i];
      if (m.thread_id != thread_id) continue;
      keyed.push_back({{run_index(m), m.role == Role::assistant ? 1 : 0, i}, m});
    }
    std::sort(keyed.begin(), keyed.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<Message> out;
    for (auto& [k, m] : keyed) out.push_back(std::move(m));
    return out;
  }

 private:
  MemoryState& s_;
};

class Events final : public RunEventRepository {
 public:
  explicit Events(MemoryState& s) : s_(s) {}
  void append(const RunEvent& e) override {
    if (!Runs(s_).find(e.run_id)) throw std::runtime_error("FOREIGN KEY constraint failed");
    if (!s_.events.emplace(std::make_pair(e.run_id, e.seq), e).second)
      throw std::runtime_error("UNIQUE constraint failed: run_events.run_id, run_events.seq");
  }
  std::vector<RunEvent> list_after(const std::string& run_id, std::int64_t after,
                                   int limit) override {
    std::vector<RunEvent> out;
    for (auto it = s_.events.upper_bound({run_id, after});
         it != s_.events.end() && it->first.first == run_id &&
         static_cast<int>(out.size()) < limit;
         ++it)
      out.push_back(it->second);
    return out;
  }
  std::int64_t last_seq(const std::string& run_id) override { return last_seq_of(s_, run_id); }
  std::int64_t prune_ended_before(Timestamp cutoff) override {
    std::int64_t n = 0;
    for (auto& r : s_.runs) {
      if (r.events_pruned || !is_terminal(r.status) || !r.finished_at || *r.finished_at >= cutoff)
        continue;
      r.last_seq = last_seq_of(s_, r.id);
      r.events_pruned = true;
      std::erase_if(s_.events, [&](const auto& kv) { return kv.first.first == r.id; });
      ++n;
    }
    return n;
  }

 private:
  MemoryState& s_;
};

class Idempotency final : public IdempotencyRepository {
 public:
  explicit Idempotency(MemoryState& s) : s_(s) {}
  std::optional<std::string> find(const std::string& thread_id, const std::string& key) override {
    auto it = s_.idempotency.find({thread_id, key});
    if (it == s_.idempotency.end()) return std::nullopt;
    return it->second;
  }
  void insert(const std::string& thread_id, const std::string& key, const std::string& response,
              Timestamp) override {
    if (!s_.idempotency.emplace(std::make_pair(thread_id, key), response).second)
      throw std::runtime_error("UNIQUE constraint failed: idempotency_keys");
  }

 private:
  MemoryState& s_;
};

class Webhooks final : public WebhookRepository {
 public:
  explicit Webhooks(MemoryState& s) : s_(s) {}
  void insert(const WebhookDelivery& d) override {
    if (!Runs(s_).find(d.run_id)) throw std::runtime_error("FOREIGN KEY constraint failed");
    if (find(d.id)) throw std::runtime_error("UNIQUE constraint failed: webhook_deliveries.id");
    s_.deliveries.push_back(d);
  }
  std::optional<WebhookDelivery> find(const std::string& id) override {
    for (auto& d : s_.deliveries)
      if (d.id == id) return d;
    return std::nullopt;
  }
  std::vector<WebhookDelivery> claim_due(Timestamp now, Timestamp lease_until,
                                         int limit) override {
    std::vector<WebhookDelivery*> due;
    for (auto& d : s_.deliveries)
      if (!d.failed && d.next_attempt_at <= now) due.push_back(&d);
    std::stable_sort(due.begin(), due.end(), [](auto* a, auto* b) {
      return a->next_attempt_at < b->next_attempt_at;
    });
    std::vector<WebhookDelivery> out;
    for (auto* d : due) {
      if (static_cast<int>(out.size()) >= limit) break;
      d->attempts += 1;
      d->next_attempt_at = lease_until;
      out.push_back(*d);
    }
    return out;
  }
  std::optional<Timestamp> next_due() override {
    std::optional<Timestamp> best;
    for (auto& d : s_.deliveries)
      if (!d.failed && (!best || d.next_attempt_at < *best)) best = d.next_attempt_at;
    return best;
  }
  void record_failure(const std::string& id, Timestamp next_attempt_at, const std::string& error,
                      bool give_up) override {
    for (auto& d : s_.deliveries)
      if (d.id == id) {
        d.next_attempt_at = next_attempt_at;
        d.last_error = error;
        d.failed = give_up;
      }
  }
  bool remove(const std::string& id) override {
    return std::erase_if(s_.deliveries, [&](const WebhookDelivery& d) { return d.id == id; }) > 0;
  }

 private:
  MemoryState& s_;
};

}  // namespace

struct MemoryRepositories::Impl {
  explicit Impl(MemoryState& s)
      : users(s), threads(s), messages(s), runs(s), events(s), idem(s), webhooks(s) {}
  Users users;
  Threads threads;
  Messages messages;
  Runs runs;
  Events events;
  Idempotency idem;
  Webhooks webhooks;
};

MemoryRepositories::MemoryRepositories(MemoryState& s)
    : impl_(std::make_unique<Impl>(s)),
      repos_{impl_->users, impl_->threads, impl_->messages, impl_->runs,
             impl_->events, impl_->idem,    impl_->webhooks, nullptr} {}

MemoryRepositories::~MemoryRepositories() = default;

MemoryDatabase::MemoryDatabase() : repos_(state_) {}
MemoryDatabase::~MemoryDatabase() = default;

std::size_t MemoryDatabase::write_count() const {
  std::lock_guard lock(mu_);
  return writes_;
}

void MemoryDatabase::submit_read(ReadJob job, Done done) {
  std::exception_ptr err;
  {
    std::lock_guard lock(mu_);
    try {
      job(repos_.repos());
    } catch (...) {
      err = std::current_exception();
    }
  }
  done(std::move(err));  // moved: this thread keeps no reference (app::detached_copy)
}

void MemoryDatabase::submit_write(WriteJob job, Done done) {
  std::exception_ptr err;
  std::vector<std::function<void()>> hooks;
  {
    std::lock_guard lock(mu_);
    MemoryState before = state_;  // rollback copy; fine at test sizes
    try {
      app::WriteTx tx(repos_.repos());
      job(tx);
      hooks = std::move(tx.hooks());
      ++writes_;
    } catch (...) {
      state_ = std::move(before);
      err = std::current_exception();
    }
  }
  for (auto& h : hooks) h();
  done(std::move(err));  // moved: this thread keeps no reference (app::detached_copy)
}

}  // namespace chat::infra::memory
