#include "pg_repositories.hpp"

#include "pg_json.hpp"
#include "pg_sql.hpp"

namespace chat::infra::pg {
namespace {

using namespace chat::domain;

User read_user(const Result& r, int i) { return User{r.int64(i, 0), r.text(i, 1), r.int64(i, 2)}; }

Thread read_thread(const Result& r, int i) {
  return Thread{r.text(i, 0), r.int64(i, 1), r.opt_text(i, 2), r.int64(i, 3)};
}

Run read_run(const Result& r, int i) {
  Run run;
  run.id = r.text(i, 0);
  run.thread_id = r.text(i, 1);
  run.message_id = r.text(i, 2);
  run.status = parse_run_status(r.view(i, 3)).value_or(RunStatus::error);
  run.created_at = r.int64(i, 4);
  run.started_at = r.opt_int64(i, 5);
  run.finished_at = r.opt_int64(i, 6);
  run.error = r.opt_text(i, 7);
  run.last_seq = r.int64(i, 8);
  run.events_pruned = r.int64(i, 9) != 0;
  run.webhook = r.opt_text(i, 10);
  return run;
}

WebhookDelivery read_delivery(const Result& r, int i) {
  WebhookDelivery d;
  d.id = r.text(i, 0);
  d.run_id = r.text(i, 1);
  d.url = r.text(i, 2);
  d.payload = r.text(i, 3);
  d.attempts = r.int64(i, 4);
  d.next_attempt_at = r.int64(i, 5);
  d.last_error = r.opt_text(i, 6);
  d.created_at = r.int64(i, 7);
  d.failed = r.int64(i, 8) != 0;
  return d;
}

// SQLite treats a negative LIMIT as none; so does a NULL LIMIT here.
std::optional<std::int64_t> limit_of(int limit) {
  return limit < 0 ? std::nullopt : std::optional<std::int64_t>(limit);
}

class Users final : public UserRepository {
 public:
  explicit Users(Session& s) : s_(s) {}
  User insert(const std::string& name, Timestamp at) override {
    auto r = s_.query(sql::kInsertUser, Params().add(name).add(at));
    return User{r.int64(0, 0), name, at};
  }
  std::optional<User> find(std::int64_t id) override {
    auto r = s_.query(sql::kFindUser, Params().add(id));
    if (r.rows() == 0) return std::nullopt;
    return read_user(r, 0);
  }
  std::optional<User> find_by_name(const std::string& name) override {
    auto r = s_.query(sql::kFindUserByName, Params().add(name));
    if (r.rows() == 0) return std::nullopt;
    return read_user(r, 0);
  }
  void set_api_key_hash(std::int64_t id, const std::string& hash) override {
    s_.query(sql::kSetApiKeyHash, Params().add(id).add(hash));
  }
  std::optional<User> find_by_api_key_hash(const std::string& hash) override {
    auto r = s_.query(sql::kFindUserByApiKeyHash, Params().add(hash));
    if (r.rows() == 0) return std::nullopt;
    return read_user(r, 0);
  }

 private:
  Session& s_;
};

class Threads final : public ThreadRepository {
 public:
  explicit Threads(Session& s) : s_(s) {}
  void insert(const Thread& t) override {
    s_.query(sql::kInsertThread,
             Params().add(t.id).add(t.user_id).add(t.title).add(t.created_at));
  }
  std::optional<Thread> find(const std::string& id) override {
    if (!is_uuid(id)) return std::nullopt;
    auto r = s_.query(sql::kFindThread, Params().add(id));
    if (r.rows() == 0) return std::nullopt;
    return read_thread(r, 0);
  }
  std::vector<Thread> list_by_user(std::int64_t user_id, const std::optional<std::string>& before,
                                   int limit) override {
    std::vector<Thread> out;
    if (before && !is_uuid(*before)) return out;  // an unknown cursor gives nothing
    Params p;
    p.add(user_id).add(limit_of(limit));
    if (before) p.add(*before);
    auto r = s_.query(before ? sql::kListThreadsBefore : sql::kListThreads, p);
    out.reserve(static_cast<std::size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) out.push_back(read_thread(r, i));
    return out;
  }
  bool remove(const std::string& id) override {
    if (!is_uuid(id)) return false;
    return s_.query(sql::kDeleteThread, Params().add(id)).affected() > 0;
  }

 private:
  Session& s_;
};

class Messages final : public MessageRepository {
 public:
  explicit Messages(Session& s) : s_(s) {}
  void insert(const Message& m) override {
    s_.query(sql::kInsertMessage, Params()
                                      .add(m.id)
                                      .add(m.thread_id)
                                      .add(to_string(m.role))
                                      .add(m.content)
                                      .add(m.created_at)
                                      .add(m.run_id));
  }
  std::vector<Message> list_by_thread(const std::string& thread_id) override {
    std::vector<Message> out;
    if (!is_uuid(thread_id)) return out;
    auto r = s_.query(sql::kListMessages, Params().add(thread_id));
    out.reserve(static_cast<std::size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i)
      out.push_back(Message{r.text(i, 0), r.text(i, 1),
                            parse_role(r.view(i, 2)).value_or(Role::user), r.text(i, 3),
                            r.int64(i, 4), r.opt_text(i, 5)});
    return out;
  }

 private:
  Session& s_;
};

class Runs final : public RunRepository {
 public:
  explicit Runs(Session& s) : s_(s) {}
  void insert(const Run& r) override {
    s_.query(sql::kInsertRun, Params()
                                  .add(r.id)
                                  .add(r.thread_id)
                                  .add(r.message_id)
                                  .add(to_string(r.status))
                                  .add(r.created_at)
                                  .add(r.webhook)
                                  .add(r.started_at));
  }
  std::optional<Run> find(const std::string& id) override {
    if (!is_uuid(id)) return std::nullopt;
    auto r = s_.query(sql::kFindRun, Params().add(id));
    if (r.rows() == 0) return std::nullopt;
    return read_run(r, 0);
  }
  std::vector<Run> list_by_thread(const std::string& thread_id) override {
    if (!is_uuid(thread_id)) return {};
    return list(s_.query(sql::kListRunsByThread, Params().add(thread_id)));
  }
  std::vector<Run> list_by_status(RunStatus status) override {
    return list(s_.query(sql::kListRunsByStatus, Params().add(to_string(status))));
  }
  bool mark_running(const std::string& id, Timestamp at) override {
    if (!is_uuid(id)) return false;
    return s_.query(sql::kMarkRunning, Params().add(id).add(at)).affected() > 0;
  }
  bool finish(const std::string& id, RunStatus status, Timestamp at,
              const std::optional<std::string>& error) override {
    if (!is_uuid(id)) return false;
    return s_.query(sql::kFinishRun,
                    Params().add(id).add(to_string(status)).add(at).add(error))
               .affected() > 0;
  }

 private:
  static std::vector<Run> list(const Result& r) {
    std::vector<Run> out;
    out.reserve(static_cast<std::size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) out.push_back(read_run(r, i));
    return out;
  }
  Session& s_;
};

class Events final : public RunEventRepository {
 public:
  explicit Events(Session& s) : s_(s) {}
  void append(const RunEvent& e) override { s_.append_event(e); }
  std::vector<RunEvent> list_after(const std::string& run_id, std::int64_t after,
                                   int limit) override {
    std::vector<RunEvent> out;
    if (!is_uuid(run_id)) return out;
    auto r = s_.query(sql::kListEventsAfter, Params().add(run_id).add(after).add(limit_of(limit)));
    out.reserve(static_cast<std::size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i)
      out.push_back(RunEvent{r.text(i, 0), r.int64(i, 1),
                             parse_event_type(r.view(i, 2)).value_or(EventType::state),
                             compact_json(r.view(i, 3)), r.int64(i, 4)});
    return out;
  }
  std::int64_t last_seq(const std::string& run_id) override {
    if (!is_uuid(run_id)) return 0;
    auto r = s_.query(sql::kLastSeq, Params().add(run_id));
    return r.rows() > 0 ? r.int64(0, 0) : 0;
  }  std::int64_t prune_ended_before(Timestamp cutoff) override {
    const auto runs = s_.query(sql::kMarkPruned, Params().add(cutoff)).affected();
    if (runs > 0) s_.query(sql::kDeletePrunedEvents, Params().add(cutoff));
    return runs;
  }


 private:
  Session& s_;
};

class Leases final : public RunLeaseRepository {
 public:
  explicit Leases(Session& s) : s_(s) {}
  std::optional<Run> claim_next(const std::string& owner, std::int64_t lease_ms,
                                Timestamp at) override {
    auto r = s_.query(sql::kClaimRun, Params().add(owner).add(lease_ms).add(at));
    if (r.rows() == 0) return std::nullopt;
    return read_run(r, 0);
  }
  std::vector<std::string> renew(const std::string& owner, std::int64_t lease_ms) override {
    auto r = s_.query(sql::kRenewLeases, Params().add(owner).add(lease_ms));
    std::vector<std::string> out;
    out.reserve(static_cast<std::size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) out.push_back(r.text(i, 0));
    return out;
  }
  std::vector<Run> expire_lapsed(Timestamp at, const std::string& error) override {
    auto r = s_.query(sql::kExpireLapsed, Params().add(at).add(error));
    std::vector<Run> out;
    out.reserve(static_cast<std::size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) out.push_back(read_run(r, i));
    return out;
  }
  bool cancel_queued(const std::string& id, Timestamp at) override {
    if (!is_uuid(id)) return false;
    return s_.query(sql::kCancelQueued, Params().add(id).add(at)).affected() > 0;
  }
  void release(const std::string& owner) override {
    s_.query(sql::kReleaseLeases, Params().add(owner));
  }

 private:
  Session& s_;
};

class Idempotency final : public IdempotencyRepository {
 public:
  explicit Idempotency(Session& s) : s_(s) {}
  std::optional<std::string> find(const std::string& thread_id, const std::string& key) override {
    if (!is_uuid(thread_id)) return std::nullopt;
    auto r = s_.query(sql::kFindIdempotency, Params().add(thread_id).add(key));
    if (r.rows() == 0) return std::nullopt;
    return r.text(0, 0);
  }
  void insert(const std::string& thread_id, const std::string& key, const std::string& response,
              Timestamp at) override {
    s_.query(sql::kInsertIdempotency, Params().add(thread_id).add(key).add(response).add(at));
  }

 private:
  Session& s_;
};

class Webhooks final : public WebhookRepository {
 public:
  explicit Webhooks(Session& s) : s_(s) {}
  void insert(const WebhookDelivery& d) override {
    s_.query(sql::kInsertDelivery, Params()
                                       .add(d.id)
                                       .add(d.run_id)
                                       .add(d.url)
                                       .add(d.payload)
                                       .add(d.attempts)
                                       .add(d.next_attempt_at)
                                       .add(d.last_error)
                                       .add(d.created_at)
                                       .add(std::int64_t{d.failed ? 1 : 0}));
    s_.note_webhook_queued();
  }
  std::optional<WebhookDelivery> find(const std::string& id) override {
    if (!is_uuid(id)) return std::nullopt;
    auto r = s_.query(sql::kFindDelivery, Params().add(id));
    if (r.rows() == 0) return std::nullopt;
    return read_delivery(r, 0);
  }
  std::vector<WebhookDelivery> claim_due(Timestamp now, Timestamp lease_until,
                                         int limit) override {
    auto r = s_.query(sql::kClaimDeliveries,
                      Params().add(now).add(lease_until).add(std::int64_t{limit}));
    std::vector<WebhookDelivery> out;
    out.reserve(static_cast<std::size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) out.push_back(read_delivery(r, i));
    return out;
  }
  std::optional<Timestamp> next_due() override {
    auto r = s_.query(sql::kNextDue, Params());
    if (r.rows() == 0) return std::nullopt;
    return r.opt_int64(0, 0);
  }
  void record_failure(const std::string& id, Timestamp next_attempt_at, const std::string& error,
                      bool give_up) override {
    if (!is_uuid(id)) return;
    s_.query(sql::kRecordDeliveryFailure, Params()
                                              .add(id)
                                              .add(next_attempt_at)
                                              .add(error)
                                              .add(std::int64_t{give_up ? 1 : 0}));
  }
  bool remove(const std::string& id) override {
    if (!is_uuid(id)) return false;
    return s_.query(sql::kDeleteDelivery, Params().add(id)).affected() > 0;
  }

 private:
  Session& s_;
};

}  // namespace

bool is_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

struct PgRepositories::Impl {
  explicit Impl(Session& s)
      : users(s), threads(s), messages(s), runs(s), events(s), idem(s), webhooks(s), leases(s) {}
  Users users;
  Threads threads;
  Messages messages;
  Runs runs;
  Events events;
  Idempotency idem;
  Webhooks webhooks;
  Leases leases;
};

PgRepositories::PgRepositories(Session& s)
    : impl_(std::make_unique<Impl>(s)),
      repos_{impl_->users, impl_->threads, impl_->messages, impl_->runs,
             impl_->events, impl_->idem,    impl_->webhooks, &impl_->leases} {}

PgRepositories::~PgRepositories() = default;

}  // namespace chat::infra::pg
