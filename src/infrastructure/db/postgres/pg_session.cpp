#include "pg_session.hpp"

#include <algorithm>

#include "pg_sql.hpp"

namespace chat::infra::pg {
namespace {

constexpr const char* kBegin = "BEGIN";
constexpr const char* kCommit = "COMMIT";
constexpr const char* kNotifyEvents = "SELECT pg_notify('chatbot_events', $1)";
constexpr const char* kNotifyWebhooks = "SELECT pg_notify('chatbot_webhooks', $1)";

// One element of an array literal, double-quoted: any text survives (commas, braces, quotes,
// backslashes, the word NULL).
void append_element(std::string& arr, std::string_view v) {
  arr.push_back(arr.empty() ? '{' : ',');
  arr.push_back('"');
  for (char c : v) {
    if (c == '"' || c == '\\') arr.push_back('\\');
    arr.push_back(c);
  }
  arr.push_back('"');
}

void append_bare(std::string& arr, std::string_view v) {
  arr.push_back(arr.empty() ? '{' : ',');
  arr.append(v);
}

}  // namespace

void Session::begin() {
  discard();
  tx_runs_.clear();
  tx_webhook_ = false;
  tx_wanted_ = true;
  tx_sent_ = false;
  commit_sent_ = false;
}

void Session::append_event(const domain::RunEvent& e) {
  append_element(run_ids_, e.run_id);
  append_bare(seqs_, std::to_string(e.seq));
  append_element(types_, domain::to_string(e.type));
  append_element(datas_, e.data);
  append_bare(ats_, std::to_string(e.created_at));
  ++events_;
  if (!notify_instance_.empty() && tx_wanted_) {
    auto [it, fresh] = tx_runs_.try_emplace(e.run_id, e.seq, e.seq);
    if (!fresh) {
      it->second.first = std::min(it->second.first, e.seq);
      it->second.second = std::max(it->second.second, e.seq);
    }
  }
}

std::string Session::notify_payload() const {
  std::string p = notify_instance_;
  p += '|';
  const std::size_t head = p.size();
  for (const auto& [run, seqs] : tx_runs_) {
    if (p.size() > head) p += ',';
    p += run;
    p += ':';
    p += std::to_string(seqs.first);
    p += ':';
    p += std::to_string(seqs.second);
    if (p.size() > kMaxNotifyPayload) {
      p.resize(head);
      p += '*';  // listeners re-read every run they have subscribers for
      break;
    }
  }
  return p;
}

void Session::discard() noexcept {
  events_ = 0;
  run_ids_.clear();
  seqs_.clear();
  types_.clear();
  datas_.clear();
  ats_.clear();
}

void Session::take_deferred(std::vector<Query>& qs, Params& p) {
  if (tx_wanted_ && !tx_sent_) {
    qs.push_back(Query{kBegin, nullptr, true});
    tx_sent_ = true;
  }
  if (events_ > 0) {
    for (auto* arr : {&run_ids_, &seqs_, &types_, &datas_, &ats_}) arr->push_back('}');
    p.add(run_ids_).add(seqs_).add(types_).add(datas_).add(ats_);
    qs.push_back(Query{sql::kAppendEvents, &p, false});
  }
}

Result Session::query(const char* sql, const Params& params) {
  std::vector<Query> qs;
  Params deferred;
  take_deferred(qs, deferred);
  if (qs.empty()) return c_.query(sql, params);
  qs.push_back(Query{sql, &params, false});
  auto clear = [this] { discard(); };
  try {
    auto results = c_.pipeline(qs);
    clear();
    return std::move(results.back());
  } catch (...) {
    clear();
    throw;
  }
}

void Session::flush() {
  std::vector<Query> qs;
  Params deferred;
  take_deferred(qs, deferred);
  if (qs.empty()) return;
  try {
    c_.pipeline(qs);
  } catch (...) {
    discard();
    throw;
  }
  discard();
}

void Session::commit() {
  if (!tx_wanted_) {
    flush();
    return;
  }
  if (!tx_sent_ && events_ == 0) {  // nothing was sent and nothing is deferred: no round trip
    tx_wanted_ = false;
    return;
  }
  std::vector<Query> qs;
  Params deferred;
  take_deferred(qs, deferred);
  tx_wanted_ = false;
  tx_sent_ = false;
  std::string payload;
  Params notify;
  if (!tx_runs_.empty()) {
    payload = notify_payload();
    notify.add(payload);
    qs.push_back(Query{kNotifyEvents, &notify, false});
    tx_runs_.clear();
  }
  Params notify_webhooks;
  if (tx_webhook_) {
    notify_webhooks.add(notify_instance_);
    qs.push_back(Query{kNotifyWebhooks, &notify_webhooks, false});
    tx_webhook_ = false;
  }
  qs.push_back(Query{kCommit, nullptr, true});
  commit_sent_ = true;
  std::vector<Result> results;
  try {
    results = c_.pipeline(qs);
  } catch (...) {
    discard();
    rollback();
    throw;
  }
  discard();
  // COMMIT of a transaction that failed earlier answers ROLLBACK; never take that for success.
  const auto& r = results.back();
  if (r.command() != "COMMIT")
    throw PgError("postgres: the transaction was rolled back at COMMIT", "", false);
}

void Session::rollback() noexcept {
  discard();
  tx_runs_.clear();
  tx_webhook_ = false;
  tx_wanted_ = false;
  tx_sent_ = false;
  try {
    if (c_.ok() && c_.in_transaction()) c_.exec("ROLLBACK");
  } catch (...) {
    // The connection is broken (the server rolls back by itself) or already clean.
  }
}

}  // namespace chat::infra::pg
