#pragma once
// SQL of the PostgreSQL backend, as named constants. Every parameter is sent as text (see
// pg_connection.hpp) and cast where it is used. Domain timestamps are milliseconds since the
// epoch; columns are timestamptz, converted both ways in SQL with millisecond precision
// (to_timestamp rounds to the microsecond, extract(epoch) is exact numeric since PG 14).

namespace chat::infra::pg::sql {

#define CHAT_PG_MS(col) "(extract(epoch FROM " col ") * 1000)::bigint"
#define CHAT_PG_TS(param) "to_timestamp(" param "::bigint / 1000.0)"

inline constexpr const char* kInsertUser =
    "INSERT INTO users(name, created_at) VALUES($1, " CHAT_PG_TS("$2") ") RETURNING id";
inline constexpr const char* kFindUser =
    "SELECT id, name, " CHAT_PG_MS("created_at") " FROM users WHERE id = $1::bigint";
inline constexpr const char* kFindUserByName =
    "SELECT id, name, " CHAT_PG_MS("created_at") " FROM users WHERE name = $1";

inline constexpr const char* kSetApiKeyHash =
    "UPDATE users SET api_key_hash = $2 WHERE id = $1::bigint";
inline constexpr const char* kFindUserByApiKeyHash =
    "SELECT id, name, " CHAT_PG_MS("created_at") " FROM users WHERE api_key_hash = $1";

inline constexpr const char* kInsertThread =
    "INSERT INTO threads(id, user_id, title, created_at) "
    "VALUES($1::uuid, $2::bigint, $3, " CHAT_PG_TS("$4") ")";
inline constexpr const char* kFindThread =
    "SELECT id, user_id, title, " CHAT_PG_MS("created_at") " FROM threads WHERE id = $1::uuid";
// Newest first by insertion order (`no`), as on SQLite; a NULL limit means no limit.
inline constexpr const char* kListThreads =
    "SELECT id, user_id, title, " CHAT_PG_MS("created_at") " FROM threads "
    "WHERE user_id = $1::bigint ORDER BY no DESC LIMIT $2::bigint";
inline constexpr const char* kListThreadsBefore =
    "SELECT id, user_id, title, " CHAT_PG_MS("created_at") " FROM threads "
    "WHERE user_id = $1::bigint "
    "AND no < (SELECT no FROM threads WHERE id = $3::uuid AND user_id = $1::bigint) "
    "ORDER BY no DESC LIMIT $2::bigint";
// Messages, runs, run events and idempotency keys go with it (ON DELETE CASCADE).
inline constexpr const char* kDeleteThread = "DELETE FROM threads WHERE id = $1::uuid";

inline constexpr const char* kInsertMessage =
    "INSERT INTO messages(id, thread_id, role, content, created_at, run_id) "
    "VALUES($1::uuid, $2::uuid, $3, $4, " CHAT_PG_TS("$5") ", $6::uuid)";
// Conversation order: runs in creation order, each user message before its reply. Messages
// without a run first, as SQLite sorts NULLs.
inline constexpr const char* kListMessages =
    "SELECT m.id, m.thread_id, m.role, m.content, " CHAT_PG_MS("m.created_at") ", m.run_id "
    "FROM messages m LEFT JOIN runs r ON r.id = m.run_id WHERE m.thread_id = $1::uuid "
    "ORDER BY r.no NULLS FIRST, m.role = 'assistant', m.no";

#define CHAT_PG_RUN_COLUMNS                                                              \
  "r.id, r.thread_id, r.message_id, r.status, " CHAT_PG_MS("r.created_at") ", "          \
  CHAT_PG_MS("r.started_at") ", " CHAT_PG_MS("r.finished_at") ", r.error, "              \
  "COALESCE(r.events_pruned_seq, "                                                       \
  "(SELECT COALESCE(MAX(e.seq), 0) FROM run_events e WHERE e.run_id = r.id)), "          \
  "(r.events_pruned_seq IS NOT NULL)::int, r.webhook"

inline constexpr const char* kInsertRun =
    "INSERT INTO runs(id, thread_id, message_id, status, created_at, webhook, started_at) "
    "VALUES($1::uuid, $2::uuid, $3::uuid, $4, " CHAT_PG_TS("$5") ", $6, " CHAT_PG_TS("$7") ")";
inline constexpr const char* kFindRun =
    "SELECT " CHAT_PG_RUN_COLUMNS " FROM runs r WHERE r.id = $1::uuid";
inline constexpr const char* kListRunsByThread =
    "SELECT " CHAT_PG_RUN_COLUMNS " FROM runs r WHERE r.thread_id = $1::uuid ORDER BY r.no";
inline constexpr const char* kListRunsByStatus =
    "SELECT " CHAT_PG_RUN_COLUMNS " FROM runs r WHERE r.status = $1 ORDER BY r.no";
inline constexpr const char* kMarkRunning =
    "UPDATE runs SET status = 'running', started_at = " CHAT_PG_TS("$2") " "
    "WHERE id = $1::uuid AND status = 'queued'";
inline constexpr const char* kFinishRun =
    "UPDATE runs SET status = $2, finished_at = " CHAT_PG_TS("$3") ", error = $4 "
    "WHERE id = $1::uuid AND status IN ('queued', 'running')";

// Several instances (RunLeaseRepository). Leases run on the database's clock (clock_timestamp:
// a batch's transaction may have begun a while ago), so instances' clocks never matter.
#define CHAT_PG_LEASE(param) "clock_timestamp() + " param "::bigint * interval '1 millisecond'"
// The oldest claimable queued run, locked; rows other instances hold are skipped. A thread's
// later run is never claimable while an older one is queued or running: per-thread order and
// one run at a time per thread hold across instances without a thread lock.
inline constexpr const char* kClaimRun =
    "UPDATE runs AS r SET status = 'running', started_at = " CHAT_PG_TS("$3") ", owner = $1, "
    "lease_until = " CHAT_PG_LEASE("$2") " "
    "WHERE r.status = 'queued' AND r.no = (SELECT c.no FROM runs c WHERE c.status = 'queued' "
    "AND NOT EXISTS (SELECT 1 FROM runs o WHERE o.thread_id = c.thread_id AND o.status = 'running') "
    "AND NOT EXISTS (SELECT 1 FROM runs q WHERE q.thread_id = c.thread_id AND q.status = 'queued' "
    "AND q.no < c.no) "
    "ORDER BY c.no LIMIT 1 FOR UPDATE OF c SKIP LOCKED) "
    "RETURNING " CHAT_PG_RUN_COLUMNS;
inline constexpr const char* kRenewLeases =
    "UPDATE runs SET lease_until = " CHAT_PG_LEASE("$2") " "
    "WHERE owner = $1 AND status = 'running' RETURNING id";
// A NULL lease is a run a single-instance process left running: lapsed as well.
inline constexpr const char* kExpireLapsed =
    "UPDATE runs AS r SET status = 'error', finished_at = " CHAT_PG_TS("$1") ", error = $2 "
    "WHERE r.status = 'running' AND r.no IN (SELECT x.no FROM runs x WHERE x.status = 'running' "
    "AND (x.lease_until IS NULL OR x.lease_until < clock_timestamp()) "
    "FOR UPDATE OF x SKIP LOCKED) "
    "RETURNING " CHAT_PG_RUN_COLUMNS;
inline constexpr const char* kCancelQueued =
    "UPDATE runs SET status = 'canceled', finished_at = " CHAT_PG_TS("$2") " "
    "WHERE id = $1::uuid AND status = 'queued'";
inline constexpr const char* kReleaseLeases =
    "UPDATE runs SET lease_until = clock_timestamp() - interval '1 millisecond' "
    "WHERE owner = $1 AND status = 'running'";
#undef CHAT_PG_LEASE

#undef CHAT_PG_RUN_COLUMNS

// The buffered appends of a transaction, all in one statement: five parallel arrays (text
// literals), unnested in order. One round trip whatever the number of events and runs.
// The batch's runs are checked (and locked) once, before its rows go in: migration 0006.
inline constexpr const char* kAppendEvents =
    "WITH checked AS (SELECT lock_runs_for_events("
    "ARRAY(SELECT DISTINCT r FROM unnest($1::uuid[]) AS r))) "
    "INSERT INTO run_events(run_id, seq, type, data, created_at) "
    "SELECT u.run_id, u.seq, u.type, u.data::jsonb, to_timestamp(u.at / 1000.0) "
    "FROM checked, unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::bigint[]) "
    "AS u(run_id, seq, type, data, at)";
// data::text is jsonb's rendering ("{"a": 1}"); the repository compacts it again.
inline constexpr const char* kListEventsAfter =
    "SELECT run_id, seq, type, data::text, " CHAT_PG_MS("created_at") " FROM run_events "
    "WHERE run_id = $1::uuid AND seq > $2::bigint ORDER BY seq LIMIT $3::bigint";
inline constexpr const char* kLastSeq =
    "SELECT COALESCE(MAX(seq), 0) FROM run_events WHERE run_id = $1::uuid";

// Retention, in one transaction: mark (keeping the last seq), then delete the marked runs' events.
inline constexpr const char* kMarkPruned =
    "UPDATE runs SET events_pruned_seq = "
    "(SELECT COALESCE(MAX(e.seq), 0) FROM run_events e WHERE e.run_id = runs.id) "
    "WHERE events_pruned_seq IS NULL AND finished_at IS NOT NULL "
    "AND finished_at < " CHAT_PG_TS("$1") " AND status IN ('done', 'error', 'canceled')";
inline constexpr const char* kDeletePrunedEvents =
    "DELETE FROM run_events WHERE run_id IN (SELECT id FROM runs WHERE "
    "events_pruned_seq IS NOT NULL AND finished_at < " CHAT_PG_TS("$1") ")";

inline constexpr const char* kFindIdempotency =
    "SELECT response FROM idempotency_keys WHERE thread_id = $1::uuid AND key = $2";
inline constexpr const char* kInsertIdempotency =
    "INSERT INTO idempotency_keys(thread_id, key, response, created_at) "
    "VALUES($1::uuid, $2, $3, " CHAT_PG_TS("$4") ")";

#define CHAT_PG_DELIVERY_COLUMNS                                                          \
  "id, run_id, url, payload, attempts, " CHAT_PG_MS("next_attempt_at") ", last_error, " \
  CHAT_PG_MS("created_at") ", failed::int"

inline constexpr const char* kInsertDelivery =
    "INSERT INTO webhook_deliveries(id, run_id, url, payload, attempts, next_attempt_at, "
    "last_error, created_at, failed) VALUES($1::uuid, $2::uuid, $3, $4, $5::integer, "
    CHAT_PG_TS("$6") ", $7, " CHAT_PG_TS("$8") ", $9::int <> 0)";
inline constexpr const char* kFindDelivery =
    "SELECT " CHAT_PG_DELIVERY_COLUMNS " FROM webhook_deliveries WHERE id = $1::uuid";
// SKIP LOCKED: instances sharing the database claim disjoint deliveries without waiting.
inline constexpr const char* kClaimDeliveries =
    "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = " CHAT_PG_TS("$2")
    " WHERE no IN (SELECT no FROM webhook_deliveries WHERE NOT failed AND next_attempt_at <= "
    CHAT_PG_TS("$1") " ORDER BY next_attempt_at LIMIT $3::bigint FOR UPDATE SKIP LOCKED) "
    "RETURNING " CHAT_PG_DELIVERY_COLUMNS;
inline constexpr const char* kNextDue =
    "SELECT " CHAT_PG_MS("MIN(next_attempt_at)") " FROM webhook_deliveries WHERE NOT failed";
inline constexpr const char* kRecordDeliveryFailure =
    "UPDATE webhook_deliveries SET next_attempt_at = " CHAT_PG_TS("$2") ", last_error = $3, "
    "failed = $4::int <> 0 WHERE id = $1::uuid";
inline constexpr const char* kDeleteDelivery = "DELETE FROM webhook_deliveries WHERE id = $1::uuid";

#undef CHAT_PG_DELIVERY_COLUMNS
#undef CHAT_PG_MS
#undef CHAT_PG_TS

}  // namespace chat::infra::pg::sql
