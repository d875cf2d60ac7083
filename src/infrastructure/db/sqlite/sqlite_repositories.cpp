#include "sqlite_repositories.hpp"

#include "sqlite_sql.hpp"

namespace chat::infra::sqlite {
namespace {

using namespace chat::domain;

// Resets a statement when a read is done, so no implicit read transaction stays open.
struct Reset {
  Statement& s;
  ~Reset() { s.reset(); }
};

User read_user(const Statement& s) { return User{s.int64(0), s.text(1), s.int64(2)}; }

Thread read_thread(const Statement& s) {
  return Thread{s.text(0), s.int64(1), s.opt_text(2), s.int64(3)};
}

Run read_run(const Statement& s) {
  Run r;
  r.id = s.text(0);
  r.thread_id = s.text(1);
  r.message_id = s.text(2);
  r.status = parse_run_status(s.text(3)).value_or(RunStatus::error);
  r.created_at = s.int64(4);
  r.started_at = s.opt_int64(5);
  r.finished_at = s.opt_int64(6);
  r.error = s.opt_text(7);
  r.last_seq = s.int64(8);
  r.events_pruned = s.int64(9) != 0;
  r.webhook = s.opt_text(10);
  return r;
}

WebhookDelivery read_delivery(const Statement& s) {
  WebhookDelivery d;
  d.id = s.text(0);
  d.run_id = s.text(1);
  d.url = s.text(2);
  d.payload = s.text(3);
  d.attempts = s.int64(4);
  d.next_attempt_at = s.int64(5);
  d.last_error = s.opt_text(6);
  d.created_at = s.int64(7);
  d.failed = s.int64(8) != 0;
  return d;
}

class Users final : public UserRepository {
 public:
  explicit Users(Connection& c) : c_(c) {}
  User insert(const std::string& name, Timestamp at) override {
    c_.prepare(sql::kInsertUser).bind(1, name).bind(2, at).run();
    return User{c_.last_insert_rowid(), name, at};
  }
  std::optional<User> find(std::int64_t id) override {
    auto& s = c_.prepare(sql::kFindUser).bind(1, id);
    Reset r{s};
    if (!s.step()) return std::nullopt;
    return read_user(s);
  }
  std::optional<User> find_by_name(const std::string& name) override {
    auto& s = c_.prepare(sql::kFindUserByName).bind(1, name);
    Reset r{s};
    if (!s.step()) return std::nullopt;
    return read_user(s);
  }
  void set_api_key_hash(std::int64_t id, const std::string& hash) override {
    c_.prepare(sql::kSetApiKeyHash).bind(1, id).bind(2, hash).run();
  }
  std::optional<User> find_by_api_key_hash(const std::string& hash) override {
    auto& s = c_.prepare(sql::kFindUserByApiKeyHash).bind(1, hash);
    Reset r{s};
    if (!s.step()) return std::nullopt;
    return read_user(s);
  }

 private:
  Connection& c_;
};

class Threads final : public ThreadRepository {
 public:
  explicit Threads(Connection& c) : c_(c) {}
  void insert(const Thread& t) override {
    c_.prepare(sql::kInsertThread).bind(1, t.id).bind(2, t.user_id).bind(3, t.title)
        .bind(4, t.created_at).run();
  }
  std::optional<Thread> find(const std::string& id) override {
    auto& s = c_.prepare(sql::kFindThread).bind(1, id);
    Reset r{s};
    if (!s.step()) return std::nullopt;
    return read_thread(s);
  }
  std::vector<Thread> list_by_user(std::int64_t user_id, const std::optional<std::string>& before,
                                   int limit) override {
    auto& s = before ? c_.prepare(sql::kListThreadsBefore).bind(3, *before)
                     : c_.prepare(sql::kListThreads);
    s.bind(1, user_id).bind(2, std::int64_t{limit});
    Reset r{s};
    std::vector<Thread> out;
    while (s.step()) out.push_back(read_thread(s));
    return out;
  }
  bool remove(const std::string& id) override {
    c_.prepare(sql::kDeleteThread).bind(1, id).run();
    return c_.changes() > 0;
  }

 private:
  Connection& c_;
};

class Messages final : public MessageRepository {
 public:
  explicit Messages(Connection& c) : c_(c) {}
  void insert(const Message& m) override {
    c_.prepare(sql::kInsertMessage).bind(1, m.id).bind(2, m.thread_id).bind(3, to_string(m.role))
        .bind(4, m.content).bind(5, m.created_at).bind(6, m.run_id).run();
  }
  std::vector<Message> list_by_thread(const std::string& thread_id) override {
    auto& s = c_.prepare(sql::kListMessages).bind(1, thread_id);
    Reset r{s};
    std::vector<Message> out;
    while (s.step())
      out.push_back(Message{s.text(0), s.text(1), parse_role(s.text(2)).value_or(Role::user),
                            s.text(3), s.int64(4), s.opt_text(5)});
    return out;
  }

 private:
  Connection& c_;
};

class Runs final : public RunRepository {
 public:
  explicit Runs(Connection& c) : c_(c) {}
  void insert(const Run& r) override {
    c_.prepare(sql::kInsertRun).bind(1, r.id).bind(2, r.thread_id).bind(3, r.message_id)
        .bind(4, to_string(r.status)).bind(5, r.created_at).bind(6, r.webhook)
        .bind(7, r.started_at).run();
  }
  std::optional<Run> find(const std::string& id) override {
    auto& s = c_.prepare(sql::kFindRun).bind(1, id);
    Reset r{s};
    if (!s.step()) return std::nullopt;
    return read_run(s);
  }
  std::vector<Run> list_by_thread(const std::string& thread_id) override {
    return list(c_.prepare(sql::kListRunsByThread).bind(1, thread_id));
  }
  std::vector<Run> list_by_status(RunStatus status) override {
    return list(c_.prepare(sql::kListRunsByStatus).bind(1, to_string(status)));
  }
  bool mark_running(const std::string& id, Timestamp at) override {
    c_.prepare(sql::kMarkRunning).bind(1, id).bind(2, at).run();
    return c_.changes() > 0;
  }
  bool finish(const std::string& id, RunStatus status, Timestamp at,
              const std::optional<std::string>& error) override {
    c_.prepare(sql::kFinishRun).bind(1, id).bind(2, to_string(status)).bind(3, at)
        .bind(4, error).run();
    return c_.changes() > 0;
  }

 private:
  static std::vector<Run> list(Statement& s) {
    Reset r{s};
    std::vector<Run> out;
    while (s.step()) out.push_back(read_run(s));
    return out;
  }
  Connection& c_;
};

class Events final : public RunEventRepository {
 public:
  explicit Events(Connection& c) : c_(c) {}
  void append(const RunEvent& e) override {
    c_.prepare(sql::kAppendEvent).bind(1, e.run_id).bind(2, e.seq).bind(3, to_string(e.type))
        .bind(4, e.data).bind(5, e.created_at).run();
  }
  void append_all(const std::vector<std::shared_ptr<const RunEvent>>& events) override {
    std::size_t i = append_rows<32>(events, 0);
    i = append_rows<8>(events, i);
    for (; i < events.size(); ++i) append(*events[i]);
  }
  std::vector<RunEvent> list_after(const std::string& run_id, std::int64_t after,
                                   int limit) override {
    auto& s = c_.prepare(sql::kListEventsAfter).bind(1, run_id).bind(2, after)
                  .bind(3, std::int64_t{limit});
    Reset r{s};
    std::vector<RunEvent> out;
    while (s.step())
      out.push_back(RunEvent{s.text(0), s.int64(1),
                             parse_event_type(s.text(2)).value_or(EventType::state), s.text(3),
                             s.int64(4)});
    return out;
  }
  std::int64_t last_seq(const std::string& run_id) override {
    auto& s = c_.prepare(sql::kLastSeq).bind(1, run_id);
    Reset r{s};
    return s.step() ? s.int64(0) : 0;
  }
  std::int64_t prune_ended_before(Timestamp cutoff) override {
    c_.prepare(sql::kMarkPruned).bind(1, cutoff).run();
    const std::int64_t runs = c_.changes();
    if (runs > 0) c_.prepare(sql::kDeletePrunedEvents).bind(1, cutoff).run();
    return runs;
  }

 private:
  Connection& c_;
  // Appends events[from...] in statements of Rows events while Rows are left; returns where
  // it stopped.
  template <int Rows>
  std::size_t append_rows(const std::vector<std::shared_ptr<const RunEvent>>& events,
                          std::size_t from) {
    std::size_t i = from;
    for (; i + Rows <= events.size(); i += Rows) {
      auto& s = c_.prepare(sql::append_events_sql<Rows>());
      Reset r{s};  // the bindings point into `events`
      for (int k = 0; k < Rows; ++k) {
        const RunEvent& e = *events[i + static_cast<std::size_t>(k)];
        const int at = k * 5;
        s.bind_unowned(at + 1, e.run_id).bind(at + 2, e.seq)
            .bind_unowned(at + 3, to_string(e.type)).bind_unowned(at + 4, e.data)
            .bind(at + 5, e.created_at);
      }
      s.run();
    }
    return i;
  }
};

class Idempotency final : public IdempotencyRepository {
 public:
  explicit Idempotency(Connection& c) : c_(c) {}
  std::optional<std::string> find(const std::string& thread_id, const std::string& key) override {
    auto& s = c_.prepare(sql::kFindIdempotency).bind(1, thread_id).bind(2, key);
    Reset r{s};
    if (!s.step()) return std::nullopt;
    return s.text(0);
  }
  void insert(const std::string& thread_id, const std::string& key, const std::string& response,
              Timestamp at) override {
    c_.prepare(sql::kInsertIdempotency).bind(1, thread_id).bind(2, key).bind(3, response)
        .bind(4, at).run();
  }

 private:
  Connection& c_;
};

class Webhooks final : public WebhookRepository {
 public:
  explicit Webhooks(Connection& c) : c_(c) {}
  void insert(const WebhookDelivery& d) override {
    c_.prepare(sql::kInsertDelivery).bind(1, d.id).bind(2, d.run_id).bind(3, d.url)
        .bind(4, d.payload).bind(5, d.attempts).bind(6, d.next_attempt_at).bind(7, d.last_error)
        .bind(8, d.created_at).bind(9, std::int64_t{d.failed ? 1 : 0}).run();
  }
  std::optional<WebhookDelivery> find(const std::string& id) override {
    auto& s = c_.prepare(sql::kFindDelivery).bind(1, id);
    Reset r{s};
    if (!s.step()) return std::nullopt;
    return read_delivery(s);
  }
  std::vector<WebhookDelivery> claim_due(Timestamp now, Timestamp lease_until,
                                         int limit) override {
    auto& s = c_.prepare(sql::kClaimDeliveries).bind(1, now).bind(2, lease_until)
                  .bind(3, std::int64_t{limit});
    Reset r{s};
    std::vector<WebhookDelivery> out;
    while (s.step()) out.push_back(read_delivery(s));
    return out;
  }
  std::optional<Timestamp> next_due() override {
    auto& s = c_.prepare(sql::kNextDue);
    Reset r{s};
    if (!s.step()) return std::nullopt;
    return s.opt_int64(0);
  }
  void record_failure(const std::string& id, Timestamp next_attempt_at, const std::string& error,
                      bool give_up) override {
    c_.prepare(sql::kRecordDeliveryFailure).bind(1, id).bind(2, next_attempt_at).bind(3, error)
        .bind(4, std::int64_t{give_up ? 1 : 0}).run();
  }
  bool remove(const std::string& id) override {
    c_.prepare(sql::kDeleteDelivery).bind(1, id).run();
    return c_.changes() > 0;
  }

 private:
  Connection& c_;
};

}  // namespace

struct SqliteRepositories::Impl {
  explicit Impl(Connection& c)
      : users(c), threads(c), messages(c), runs(c), events(c), idem(c), webhooks(c) {}
  Users users;
  Threads threads;
  Messages messages;
  Runs runs;
  Events events;
  Idempotency idem;
  Webhooks webhooks;
};

SqliteRepositories::SqliteRepositories(Connection& c)
    : impl_(std::make_unique<Impl>(c)),
      repos_{impl_->users, impl_->threads, impl_->messages, impl_->runs,
             impl_->events, impl_->idem,    impl_->webhooks, nullptr} {}

SqliteRepositories::~SqliteRepositories() = default;

}  // namespace chat::infra::sqlite
