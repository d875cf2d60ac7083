#include "application/chat_service.hpp"

#include <algorithm>
#include <cctype>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "application/run_executor.hpp"

namespace chat::app {

using domain::Error;
using domain::Result;
using domain::RunStatus;

std::size_t utf8_length(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

std::string trim(std::string_view s) {
  auto is_space = [](unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  std::size_t b = 0, e = s.size();
  while (b < e && is_space(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && is_space(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

bool is_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(s[i]))) {
      return false;
    }
  }
  return true;
}

std::optional<MultitaskStrategy> parse_multitask_strategy(std::string_view s) {
  if (s == "enqueue") return MultitaskStrategy::enqueue;
  if (s == "reject") return MultitaskStrategy::reject;
  if (s == "interrupt") return MultitaskStrategy::interrupt;
  return std::nullopt;
}

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// U+0000 is refused in stored text: PostgreSQL cannot store it, and no chat needs it. Refused
// the same way on every backend.
bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }
std::string no_nul_message(const char* field) {
  return std::string(field) + " must not contain NUL characters (U+0000)";
}

// Path ids: anything that is not a UUID addresses nothing (404, never 500).
std::optional<std::string> normalize_id(const std::string& id) {
  if (!is_uuid(id)) return std::nullopt;
  return lower(id);
}

}  // namespace

Task<Result<CreateUserOutcome>> ChatService::create_user(std::string name) {
  name = trim(name);
  if (name.empty()) co_return domain::invalid("name", "name must not be blank");
  if (has_nul(name)) co_return domain::invalid("name", no_nul_message("name"));
  if (utf8_length(name) > limits_.max_name_chars)
    co_return domain::invalid("name", "name must be at most " +
                                          std::to_string(limits_.max_name_chars) + " characters");
  const auto now = clock_.now();
  std::optional<std::string> key, hash;
  if (keys_) {
    key = keys_->new_key();
    hash = keys_->hash(*key);
  }
  co_return co_await db_.write([&](WriteTx& tx) -> CreateUserOutcome {
    auto& users = tx.repos().users;
    if (auto existing = users.find_by_name(name)) return {*existing, false, std::nullopt};
    auto u = users.insert(name, now);
    if (hash) users.set_api_key_hash(u.id, *hash);
    return {std::move(u), true, key};
  });
}

Task<ChatService::Access> ChatService::access(std::string api_key, OwnedBy what,
                                              std::string id) {
  if (!keys_ || api_key.empty()) co_return Access{};
  const auto hash = keys_->hash(api_key);
  std::optional<std::string> key;
  if (what != OwnedBy::nothing) key = normalize_id(id);
  co_return co_await db_.read([&](domain::Repositories& r) {
    Access a;
    if (auto u = r.users.find_by_api_key_hash(hash)) a.caller = u->id;
    if (!a.caller || !key) return a;
    std::optional<std::string> thread_id = *key;
    if (what == OwnedBy::run) {
      auto run = r.runs.find(*key);
      thread_id = run ? std::optional<std::string>(run->thread_id) : std::nullopt;
    }
    if (thread_id)
      if (auto t = r.threads.find(*thread_id)) a.owner = t->user_id;
    return a;
  });
}

Task<Result<domain::User>> ChatService::get_user(std::int64_t user_id) {
  auto u = co_await db_.read([&](domain::Repositories& r) { return r.users.find(user_id); });
  if (!u) co_return domain::not_found("User not found");
  co_return *u;
}

Task<Result<ThreadPage>> ChatService::list_user_threads(std::int64_t user_id,
                                                        std::optional<std::string> before,
                                                        int limit) {
  if (limit < 1 || limit > 200) co_return domain::invalid("limit", "limit must be 1 to 200");
  if (before) {
    if (!is_uuid(*before)) co_return domain::invalid("before", "before must be a thread id");
    before = lower(*before);
  }
  auto page = co_await db_.read([&](domain::Repositories& r) -> std::optional<ThreadPage> {
    if (!r.users.find(user_id)) return std::nullopt;
    ThreadPage p;
    p.threads = r.threads.list_by_user(user_id, before, limit + 1);
    if (p.threads.size() > static_cast<std::size_t>(limit)) {
      p.threads.resize(static_cast<std::size_t>(limit));
      p.next = p.threads.back().id;
    }
    return p;
  });
  if (!page) co_return domain::not_found("User not found");
  co_return std::move(*page);
}

Task<Result<domain::Thread>> ChatService::create_thread(std::int64_t user_id,
                                                        std::optional<std::string> title) {
  if (title && has_nul(*title)) co_return domain::invalid("title", no_nul_message("title"));
  if (title && utf8_length(*title) > limits_.max_title_chars)
    co_return domain::invalid("title", "title must be at most " +
                                           std::to_string(limits_.max_title_chars) + " characters");
  domain::Thread t{ids_.uuid(), user_id, std::move(title), clock_.now()};
  const bool ok = co_await db_.write([&](WriteTx& tx) {
    if (!tx.repos().users.find(user_id)) return false;
    tx.repos().threads.insert(t);
    return true;
  });
  if (!ok) co_return domain::not_found("User not found");
  co_return t;
}

Task<Result<ThreadDetail>> ChatService::get_thread(std::string thread_id) {
  auto id = normalize_id(thread_id);
  if (!id) co_return domain::not_found("Thread not found");
  auto d = co_await db_.read([&](domain::Repositories& r) -> std::optional<ThreadDetail> {
    auto t = r.threads.find(*id);
    if (!t) return std::nullopt;
    return ThreadDetail{*t, r.messages.list_by_thread(*id)};
  });
  // Shown oldest first; the repository's conversation order breaks ties (same millisecond).
  if (d)
    std::stable_sort(d->messages.begin(), d->messages.end(),
                     [](const auto& a, const auto& b) { return a.created_at < b.created_at; });
  if (!d) co_return domain::not_found("Thread not found");
  co_return std::move(*d);
}

Task<Result<std::vector<domain::Run>>> ChatService::list_thread_runs(std::string thread_id) {
  auto id = normalize_id(thread_id);
  if (!id) co_return domain::not_found("Thread not found");
  auto runs = co_await db_.read(
      [&](domain::Repositories& r) -> std::optional<std::vector<domain::Run>> {
        if (!r.threads.find(*id)) return std::nullopt;
        return r.runs.list_by_thread(*id);
      });
  if (!runs) co_return domain::not_found("Thread not found");
  co_return std::move(*runs);
}

Task<Result<RunPage>> ChatService::list_thread_runs(std::string thread_id, RunFilter f) {
  if (f.limit && (*f.limit < 1 || *f.limit > 200))
    co_return domain::invalid("limit", "limit must be 1 to 200");
  if (f.before) {
    if (!is_uuid(*f.before)) co_return domain::invalid("before", "before must be a run id");
    f.before = lower(*f.before);
  }
  auto all = co_await list_thread_runs(std::move(thread_id));
  if (!all) co_return all.error();
  // A thread holds few runs next to its messages; filtering here keeps one query per backend.
  auto& runs = all.value();
  if (f.before) {
    auto at = std::find_if(runs.begin(), runs.end(),
                           [&](const domain::Run& r) { return r.id == *f.before; });
    if (at == runs.end())
      runs.clear();  // an unknown cursor gives nothing, as for threads
    else
      runs.erase(at, runs.end());
  }
  RunPage page;
  for (auto& r : runs)
    if (!f.status || r.status == *f.status) page.runs.push_back(std::move(r));
  if (f.limit && page.runs.size() > static_cast<std::size_t>(*f.limit)) {
    page.runs.erase(page.runs.begin(),
                    page.runs.end() - static_cast<std::ptrdiff_t>(*f.limit));
    page.next = page.runs.front().id;
  }
  co_return page;
}

Task<Result<std::vector<std::string>>> ChatService::cancel_thread_runs(std::string thread_id) {
  auto runs = co_await list_thread_runs(std::move(thread_id));
  if (!runs) co_return runs.error();
  std::vector<std::string> canceled;
  for (const auto& run : runs.value()) {
    if (domain::is_terminal(run.status)) continue;
    auto st = co_await cancel_run(run.id);
    if (st && st.value() == RunStatus::canceled) canceled.push_back(run.id);
  }
  co_return canceled;
}

Task<Result<bool>> ChatService::delete_thread(std::string thread_id) {
  auto id = normalize_id(thread_id);
  if (!id) co_return domain::not_found("Thread not found");
  auto runs = co_await list_thread_runs(*id);
  if (!runs) co_return runs.error();
  // Active runs are canceled first, so no executor writes into a deleted thread.
  for (const auto& run : runs.value())
    if (!domain::is_terminal(run.status)) co_await cancel_run(run.id);
  const bool removed =
      co_await db_.write([&](WriteTx& tx) { return tx.repos().threads.remove(*id); });
  if (!removed) co_return domain::not_found("Thread not found");
  co_return true;
}

Task<Result<PostedMessage>> ChatService::post_message(std::string thread_id, std::string content,
                                                      std::optional<std::string> key,
                                                      PostOptions options) {
  auto id = normalize_id(thread_id);
  if (!id) co_return domain::not_found("Thread not found");
  if (trim(content).empty()) co_return domain::invalid("content", "content must not be blank");
  if (has_nul(content)) co_return domain::invalid("content", no_nul_message("content"));
  if (content.size() > limits_.max_content_bytes)
    co_return domain::invalid("content", "content must be at most " +
                                             std::to_string(limits_.max_content_bytes) +
                                             " bytes");
  if (key && (key->empty() || key->size() > limits_.max_idempotency_key))
    co_return domain::invalid("Idempotency-Key", "Idempotency-Key must be 1 to " +
                                                     std::to_string(limits_.max_idempotency_key) +
                                                     " characters");
  if (options.webhook) {
    if (!webhooks_)
      co_return domain::invalid("webhook",
                                "webhooks need CHATBOT_WEBHOOK_SECRET: this service has no "
                                "secret to sign them with");
    std::string why;
    if (!parse_http_url(*options.webhook, &why))
      co_return domain::invalid("webhook", "webhook " + why);
  }
  if (options.strategy == MultitaskStrategy::interrupt) {
    // A repeat of an earlier request must not cancel the run that request created.
    std::optional<std::string> stored;
    if (key)
      stored = co_await db_.read(
          [&](domain::Repositories& r) { return r.idempotency.find(*id, *key); });
    if (!stored) {
      auto runs = co_await list_thread_runs(*id);
      if (!runs) co_return runs.error();
      // Canceled as usual; the scheduler starts the new run once they have ended.
      for (const auto& run : runs.value())
        if (!domain::is_terminal(run.status)) co_await cancel_run(run.id);
    }
  }
  const auto now = clock_.now();
  PostedMessage fresh{ids_.uuid(), ids_.uuid(), *id, RunStatus::queued};
  std::optional<std::string> active;  // for `reject`: the run that is in the way
  // A run whose thread is idle starts in this transaction: one commit fewer before its first
  // token (the executor then only reads what it needs).
  bool reserved = false;
  std::optional<PostedMessage> posted;
  std::exception_ptr failed;
  try {
    posted = co_await db_.write([&](WriteTx& tx) -> std::optional<PostedMessage> {
      auto& r = tx.repos();
      active.reset();
      if (!r.threads.find(*id)) return std::nullopt;
      if (key) {
        if (auto stored = r.idempotency.find(*id, *key)) {
          const auto sp = stored->find(' ');
          return PostedMessage{stored->substr(0, sp), stored->substr(sp + 1), *id,
                               RunStatus::queued};
        }
      }
      if (options.strategy == MultitaskStrategy::reject) {
        for (const auto& run : r.runs.list_by_thread(*id))
          if (!domain::is_terminal(run.status)) {
            active = run.id;
            return std::nullopt;
          }
      }
      if (!reserved) reserved = scheduler_.reserve_start(fresh.thread_id, fresh.run_id);
      domain::Run run{fresh.run_id, *id, fresh.message_id, RunStatus::queued, now,
                      std::nullopt,  std::nullopt, std::nullopt, 0};
      if (reserved) {
        run.status = RunStatus::running;
        run.started_at = now;
      }
      run.webhook = options.webhook;
      r.runs.insert(run);
      r.messages.insert(
          domain::Message{fresh.message_id, *id, domain::Role::user, content, now, fresh.run_id});
      if (key) r.idempotency.insert(*id, *key, fresh.run_id + " " + fresh.message_id, now);
      if (reserved) {
        append_started(tx, hub_, fresh.run_id, 1, now);
        tx.after_commit(
            [this, fresh] { scheduler_.start_reserved(fresh.thread_id, fresh.run_id); });
      } else {
        tx.after_commit([this, fresh] { scheduler_.enqueue(fresh.thread_id, fresh.run_id); });
      }
      return fresh;
    });
  } catch (...) {
    failed = std::current_exception();
  }
  if (reserved && (failed || !posted || posted->run_id != fresh.run_id))
    scheduler_.release_reserved(fresh.thread_id, fresh.run_id);  // not committed
  if (failed) std::rethrow_exception(failed);
  if (active)
    co_return domain::conflict("The thread has an active run (multitask_strategy is reject)",
                               "run_id", *active);
  if (!posted) co_return domain::not_found("Thread not found");
  co_return std::move(*posted);
}

Task<Result<domain::Run>> ChatService::get_run(std::string run_id) {
  auto id = normalize_id(run_id);
  if (!id) co_return domain::not_found("Run not found");
  auto run = co_await db_.read([&](domain::Repositories& r) { return r.runs.find(*id); });
  if (!run) co_return domain::not_found("Run not found");
  co_return std::move(*run);
}

Task<Result<RunStatus>> ChatService::cancel_run(std::string run_id) {
  auto run = co_await get_run(std::move(run_id));
  if (!run) co_return run.error();
  if (domain::is_terminal(run->status)) co_return run->status;
  if (run->status == RunStatus::queued) {
    const auto now = clock_.now();
    const std::string id = run->id;
    auto status = co_await db_.write([&](WriteTx& tx) -> std::optional<RunStatus> {
      auto& r = tx.repos();
      auto cur = r.runs.find(id);
      if (!cur) return std::nullopt;
      if (cur->status != RunStatus::queued) return cur->status;
      // Several instances: another one may claim the run meanwhile; cancel only a queued run.
      if (r.leases && !r.leases->cancel_queued(id, now)) {
        auto again = r.runs.find(id);
        if (!again) return std::nullopt;
        return again->status;
      }
      if (!r.leases) r.runs.finish(id, RunStatus::canceled, now, std::nullopt);
      auto events = terminal_events(id, cur->last_seq, RunStatus::canceled, "", "", "", now);
      const auto last_seq = events.back().seq;
      append_and_publish(tx, hub_, std::move(events));
      if (webhooks_)
        webhooks_->run_ended(
            tx, ended_view(*cur, RunStatus::canceled, now, std::nullopt, last_seq), now);
      return RunStatus::canceled;
    });
    if (!status) co_return domain::not_found("Run not found");
    if (*status == RunStatus::canceled) {
      scheduler_.remove_queued(run->thread_id, id);
      co_return RunStatus::canceled;
    }
    if (domain::is_terminal(*status)) co_return *status;
    run->status = *status;
  }
  co_return co_await cancel_running(run.value());
}

// Signals the executor and waits (bounded) for the run's `done`, so the answer tells the truth.
Task<RunStatus> ChatService::cancel_running(const domain::Run& run) {
  auto ex = co_await boost::asio::this_coro::executor;
  auto sub = hub_.subscribe(run.id, ex, 1 << 16);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::vector<EventPtr> got;
  bool requested = false;
  while (std::chrono::steady_clock::now() < deadline) {
    auto cur = co_await get_run(run.id);
    if (!cur) co_return RunStatus::canceled;  // deleted meanwhile
    if (domain::is_terminal(cur->status)) co_return cur->status;
    // Repeated while waiting: with several instances the request goes over the bus, and the
    // instance that just claimed the run may not have had it registered the first time.
    if (!requested || scheduler_.clustered()) scheduler_.request_cancel(run.id);
    requested = true;
    co_await sub->wait(std::chrono::milliseconds(250));
    got.clear();
    sub->drain(got);
  }
  co_return RunStatus::canceled;  // requested; the executor (or recovery) will finish it
}

Task<Result<StreamOpen>> ChatService::open_stream(std::string run_id, std::int64_t after_seq,
                                                  boost::asio::any_io_executor ex) {
  auto id = normalize_id(run_id);
  if (!id) co_return domain::not_found("Run not found");
  // Subscribe before reading: whatever commits after this point arrives live, whatever
  // committed before is in the stored backlog; the stream drops the overlap by seq.
  auto sub = hub_.subscribe(*id, std::move(ex), limits_.subscriber_queue);
  auto run = co_await db_.read([&](domain::Repositories& r) { return r.runs.find(*id); });
  if (!run) co_return domain::not_found("Run not found");
  // Never a silent empty stream: the client learns the events are gone.
  if (run->events_pruned)
    co_return domain::gone(
        "The events of this run were pruned (CHATBOT_EVENT_RETENTION); the run and its "
        "messages remain");
  StreamOpen out;
  if (domain::is_terminal(run->status) && run->last_seq <= after_seq) co_return out;
  out.stream.emplace(db_, std::move(sub), *id, std::max<std::int64_t>(0, after_seq));
  co_return out;
}

Task<std::int64_t> ChatService::prune_events(std::chrono::milliseconds retention) {
  const domain::Timestamp cutoff = clock_.now() - retention.count();
  co_return co_await db_.write(
      [&](WriteTx& tx) { return tx.repos().events.prune_ended_before(cutoff); });
}

Task<void> ChatService::run_retention(std::chrono::milliseconds retention,
                                      std::chrono::milliseconds every, Logger& log) {
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor);
  for (;;) {
    timer.expires_after(every);
    boost::system::error_code ec;
    co_await timer.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    if (ec) co_return;
    std::string failure;
    std::int64_t pruned = 0;
    try {
      pruned = co_await prune_events(retention);
    } catch (const std::exception& e) {
      failure = e.what();  // e.g. the database is down: try again next time
    }
    if (!failure.empty()) log.warn("retention: pruning failed: " + failure);
    if (pruned > 0) log.info("retention: pruned the events of " + std::to_string(pruned) + " runs");
  }
}

Task<RunEventStream::Step> RunEventStream::next(std::chrono::steady_clock::duration idle_timeout) {
  constexpr int kPage = 1000;
  if (ended_) co_return Step{StepKind::end, {}};
  bool waited = false;
  for (;;) {
    if (replaying_) {
      auto page = co_await db_->read([&](domain::Repositories& r) {
        return r.events.list_after(run_id_, last_sent_, kPage);
      });
      if (page.size() < static_cast<std::size_t>(kPage)) replaying_ = false;
      if (!page.empty()) {
        Step s{StepKind::events, {}};
        s.events.reserve(page.size());
        for (auto& e : page) {
          if (e.type == domain::EventType::done) ended_ = true;
          s.events.push_back(std::make_shared<const domain::RunEvent>(std::move(e)));
        }
        last_sent_ = s.events.back()->seq;
        co_return s;
      }
    }
    live_.clear();
    sub_->drain(live_);
    Step s{StepKind::events, {}};
    for (auto& e : live_) {
      if (e->seq <= last_sent_) continue;  // already replayed
      if (e->seq != last_sent_ + 1) {      // cannot happen with subscribe-first; be safe
        replaying_ = true;
        break;
      }
      last_sent_ = e->seq;
      if (e->type == domain::EventType::done) ended_ = true;
      s.events.push_back(std::move(e));
    }
    live_.clear();
    if (!s.events.empty()) co_return s;
    if (replaying_) continue;
    if (sub_->closed()) co_return Step{StepKind::overflow, {}};
    if (waited) co_return Step{StepKind::idle, {}};
    co_await sub_->wait(idle_timeout);
    waited = true;
  }
}

}  // namespace chat::app
