#pragma once
// SQL of the SQLite backend, as named constants.

#include <string>

namespace chat::infra::sqlite::sql {

inline constexpr const char* kInsertUser =
    "INSERT INTO users(name, created_at) VALUES(?1, ?2)";
inline constexpr const char* kFindUser = "SELECT id, name, created_at FROM users WHERE id = ?1";
inline constexpr const char* kFindUserByName =
    "SELECT id, name, created_at FROM users WHERE name = ?1";

inline constexpr const char* kSetApiKeyHash = "UPDATE users SET api_key_hash = ?2 WHERE id = ?1";
inline constexpr const char* kFindUserByApiKeyHash =
    "SELECT id, name, created_at FROM users WHERE api_key_hash = ?1";

inline constexpr const char* kInsertThread =
    "INSERT INTO threads(id, user_id, title, created_at) VALUES(?1, ?2, ?3, ?4)";
inline constexpr const char* kFindThread =
    "SELECT id, user_id, title, created_at FROM threads WHERE id = ?1";
inline constexpr const char* kListThreads =
    "SELECT id, user_id, title, created_at FROM threads WHERE user_id = ?1 "
    "ORDER BY no DESC LIMIT ?2";
inline constexpr const char* kListThreadsBefore =
    "SELECT id, user_id, title, created_at FROM threads WHERE user_id = ?1 "
    "AND no < (SELECT no FROM threads WHERE id = ?3 AND user_id = ?1) ORDER BY no DESC LIMIT ?2";
inline constexpr const char* kDeleteThread = "DELETE FROM threads WHERE id = ?1";

inline constexpr const char* kInsertMessage =
    "INSERT INTO messages(id, thread_id, role, content, created_at, run_id) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6)";
// Conversation order: runs in creation order, each user message before its reply.
inline constexpr const char* kListMessages =
    "SELECT m.id, m.thread_id, m.role, m.content, m.created_at, m.run_id FROM messages m "
    "LEFT JOIN runs r ON r.id = m.run_id WHERE m.thread_id = ?1 "
    "ORDER BY r.no, m.role = 'assistant', m.no";

#define CHAT_RUN_COLUMNS                                                                   \
  "r.id, r.thread_id, r.message_id, r.status, r.created_at, r.started_at, r.finished_at, " \
  "r.error, COALESCE(r.events_pruned_seq, "                                                  \
  "(SELECT COALESCE(MAX(e.seq), 0) FROM run_events e WHERE e.run_id = r.id)), "               \
  "r.events_pruned_seq IS NOT NULL, r.webhook"

inline constexpr const char* kInsertRun =
    "INSERT INTO runs(id, thread_id, message_id, status, created_at, webhook, started_at) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)";
inline constexpr const char* kFindRun = "SELECT " CHAT_RUN_COLUMNS " FROM runs r WHERE r.id = ?1";
inline constexpr const char* kListRunsByThread =
    "SELECT " CHAT_RUN_COLUMNS " FROM runs r WHERE r.thread_id = ?1 ORDER BY r.no";
inline constexpr const char* kListRunsByStatus =
    "SELECT " CHAT_RUN_COLUMNS " FROM runs r WHERE r.status = ?1 ORDER BY r.no";
inline constexpr const char* kMarkRunning =
    "UPDATE runs SET status = 'running', started_at = ?2 WHERE id = ?1 AND status = 'queued'";
inline constexpr const char* kFinishRun =
    "UPDATE runs SET status = ?2, finished_at = ?3, error = ?4 "
    "WHERE id = ?1 AND status IN ('queued', 'running')";

#undef CHAT_RUN_COLUMNS

inline constexpr const char* kAppendEvent =
    "INSERT INTO run_events(run_id, seq, type, data, created_at) VALUES(?1, ?2, ?3, ?4, ?5)";
/// kAppendEvent for `Rows` events at once (parameters numbered row after row): a batch costs
/// one statement per 32 events (then per 8 of the rest) instead of one per event.
template <int Rows>
inline const char* append_events_sql() {
  static const std::string sql = [] {
    std::string q = "INSERT INTO run_events(run_id, seq, type, data, created_at) VALUES";
    for (int i = 0; i < Rows; ++i) q += i == 0 ? "(?,?,?,?,?)" : ",(?,?,?,?,?)";
    return q;
  }();
  return sql.c_str();  // stable: the statement cache is keyed by this pointer
}
inline constexpr const char* kListEventsAfter =
    "SELECT run_id, seq, type, data, created_at FROM run_events WHERE run_id = ?1 AND seq > ?2 "
    "ORDER BY seq LIMIT ?3";
inline constexpr const char* kLastSeq =
    "SELECT COALESCE(MAX(seq), 0) FROM run_events WHERE run_id = ?1";

// Retention, in one transaction: mark (keeping the last seq), then delete the marked runs' events.
inline constexpr const char* kMarkPruned =
    "UPDATE runs SET events_pruned_seq = "
    "(SELECT COALESCE(MAX(e.seq), 0) FROM run_events e WHERE e.run_id = runs.id) "
    "WHERE events_pruned_seq IS NULL AND finished_at IS NOT NULL AND finished_at < ?1 "
    "AND status IN ('done', 'error', 'canceled')";
inline constexpr const char* kDeletePrunedEvents =
    "DELETE FROM run_events WHERE run_id IN (SELECT id FROM runs WHERE "
    "events_pruned_seq IS NOT NULL AND finished_at < ?1)";

inline constexpr const char* kFindIdempotency =
    "SELECT response FROM idempotency_keys WHERE thread_id = ?1 AND key = ?2";
inline constexpr const char* kInsertIdempotency =
    "INSERT INTO idempotency_keys(thread_id, key, response, created_at) VALUES(?1, ?2, ?3, ?4)";

#define CHAT_DELIVERY_COLUMNS \
  "id, run_id, url, payload, attempts, next_attempt_at, last_error, created_at, failed"

inline constexpr const char* kInsertDelivery =
    "INSERT INTO webhook_deliveries(id, run_id, url, payload, attempts, next_attempt_at, "
    "last_error, created_at, failed) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
inline constexpr const char* kFindDelivery =
    "SELECT " CHAT_DELIVERY_COLUMNS " FROM webhook_deliveries WHERE id = ?1";
// One writer at a time on SQLite: the UPDATE alone makes the claim exclusive.
inline constexpr const char* kClaimDeliveries =
    "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ?2 "
    "WHERE no IN (SELECT no FROM webhook_deliveries WHERE failed = 0 AND next_attempt_at <= ?1 "
    "ORDER BY next_attempt_at, no LIMIT ?3) RETURNING " CHAT_DELIVERY_COLUMNS;
inline constexpr const char* kNextDue =
    "SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE failed = 0";
inline constexpr const char* kRecordDeliveryFailure =
    "UPDATE webhook_deliveries SET next_attempt_at = ?2, last_error = ?3, failed = ?4 "
    "WHERE id = ?1";
inline constexpr const char* kDeleteDelivery = "DELETE FROM webhook_deliveries WHERE id = ?1";

#undef CHAT_DELIVERY_COLUMNS

}  // namespace chat::infra::sqlite::sql
