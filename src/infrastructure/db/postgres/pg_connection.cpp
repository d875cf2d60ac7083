#include "pg_connection.hpp"

#include <charconv>
#include <cstring>

#include <poll.h>

#include <libpq-fe.h>

namespace chat::infra::pg {
namespace {

constexpr Oid kTextOid = 25;  // pg_type.oid of `text`: every parameter is sent as text

// libpq's messages span lines ("...failed: Connection refused\n\tIs the server running...");
// logs want one line.
std::string trimmed(const char* s) {
  std::string out;
  bool space = false;
  for (const char* p = s ? s : ""; *p; ++p) {
    if (*p == '\n' || *p == '\t' || *p == '\r' || *p == ' ') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out.push_back(' ');
    space = false;
    out.push_back(*p);
  }
  return out;
}

// SQLSTATEs after which the session is gone even if the socket still looks open.
bool is_connection_state(const std::string& st) {
  return st.rfind("08", 0) == 0 || st == "57P01" || st == "57P02" || st == "57P03";
}

// Highest $N in `sql`: the statement's parameter count.
int count_params(const char* sql) {
  int n = 0;
  for (const char* p = sql; *p; ++p) {
    if (*p != '$') continue;
    int v = 0;
    const char* q = p + 1;
    while (*q >= '0' && *q <= '9') v = v * 10 + (*q++ - '0');
    if (q != p + 1 && v > n) n = v;
  }
  return n;
}

void ignore_notice(void*, const char*) {}

}  // namespace

// ---------------------------------------------------------------------------------- Result

void Result::Free::operator()(pg_result* r) const { PQclear(r); }

int Result::rows() const { return r_ ? PQntuples(r_.get()) : 0; }

bool Result::is_null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }

std::string_view Result::view(int row, int col) const {
  return {PQgetvalue(r_.get(), row, col),
          static_cast<std::size_t>(PQgetlength(r_.get(), row, col))};
}

std::optional<std::string> Result::opt_text(int row, int col) const {
  if (is_null(row, col)) return std::nullopt;
  return text(row, col);
}

std::int64_t Result::int64(int row, int col) const {
  const auto v = view(row, col);
  std::int64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size())
    throw PgError("postgres: expected an integer, got '" + std::string(v) + "'", "", false);
  return out;
}

std::optional<std::int64_t> Result::opt_int64(int row, int col) const {
  if (is_null(row, col)) return std::nullopt;
  return int64(row, col);
}

std::int64_t Result::affected() const {
  const char* s = r_ ? PQcmdTuples(r_.get()) : "";
  std::int64_t out = 0;
  std::from_chars(s, s + std::strlen(s), out);
  return out;
}

std::string_view Result::command() const { return r_ ? PQcmdStatus(r_.get()) : ""; }

// ---------------------------------------------------------------------------------- Params

Params& Params::add(std::string_view v) {
  values_.push_back(v.data() ? v.data() : "");
  lengths_.push_back(static_cast<int>(v.size()));
  formats_.push_back(1);  // binary format of `text`: the raw bytes, length-delimited
  return *this;
}

Params& Params::add(std::int64_t v) {
  owned_.push_back(std::make_unique<std::string>(std::to_string(v)));
  return add(std::string_view(*owned_.back()));
}

Params& Params::add(const std::optional<std::string>& v) {
  return v ? add(std::string_view(*v)) : null();
}

Params& Params::add(const std::optional<std::int64_t>& v) { return v ? add(*v) : null(); }

Params& Params::null() {
  values_.push_back(nullptr);
  lengths_.push_back(0);
  formats_.push_back(1);
  return *this;
}

// ------------------------------------------------------------------------------ Connection

Connection::Connection(const ConnectOptions& o) {
  const std::string connect_timeout = std::to_string(o.connect_timeout_s);
  const std::string tcp_user_timeout = std::to_string(o.tcp_user_timeout_ms);
  // Later keywords win: the defaults come first, then the URL (dbname, expanded), then what
  // the adapter cannot work without.
  const char* keys[] = {"connect_timeout",  "application_name", "tcp_user_timeout",
                        "keepalives",       "keepalives_idle",  "keepalives_interval",
                        "keepalives_count", "dbname",           "client_encoding",
                        nullptr};
  const char* vals[] = {connect_timeout.c_str(),
                        o.application_name.c_str(),
                        tcp_user_timeout.c_str(),
                        "1",
                        "30",
                        "10",
                        "3",
                        o.url.c_str(),
                        "UTF8",
                        nullptr};
  conn_ = PQconnectdbParams(keys, vals, 1);
  if (!conn_) throw PgError("postgres: out of memory while connecting", "", true);
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string msg = "postgres: cannot connect: " + trimmed(PQerrorMessage(conn_));
    PQfinish(conn_);
    conn_ = nullptr;
    throw PgError(msg, "", true);
  }
  PQsetNoticeProcessor(conn_, ignore_notice, nullptr);
  const std::string setup =
      "SET statement_timeout = " + std::to_string(o.statement_timeout_ms) +
      "; SET idle_in_transaction_session_timeout = " + std::to_string(o.idle_in_tx_timeout_ms) +
      "; SET synchronous_commit = on";
  try {
    exec(setup.c_str());
  } catch (...) {
    PQfinish(conn_);
    conn_ = nullptr;
    throw;
  }
}

Connection::~Connection() {
  if (conn_) PQfinish(conn_);
}

bool Connection::ok() const { return conn_ && !broken_ && PQstatus(conn_) == CONNECTION_OK; }

bool Connection::alive() {
  if (!ok()) return false;
  // A session ended by the server sends an error then closes: reading stops at each, so read
  // while there is something to read (never blocking: poll with no wait).
  for (int i = 0; i < 4; ++i) {
    pollfd p{PQsocket(conn_), POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) break;
    if (PQconsumeInput(conn_) != 1 || PQstatus(conn_) != CONNECTION_OK) {
      broken_ = true;
      break;
    }
  }
  return !broken_;
}

int Connection::socket() const { return conn_ ? PQsocket(conn_) : -1; }

void Connection::consume_input() {
  if (!ok() || PQconsumeInput(conn_) != 1 || PQstatus(conn_) != CONNECTION_OK) {
    broken_ = true;
    throw PgError("postgres: connection lost: " + trimmed(conn_ ? PQerrorMessage(conn_) : ""), "",
                  true);
  }
}

std::optional<Connection::Notification> Connection::next_notification() {
  PGnotify* n = conn_ ? PQnotifies(conn_) : nullptr;
  if (!n) return std::nullopt;
  Notification out{n->relname ? n->relname : "", n->extra ? n->extra : ""};
  PQfreemem(n);
  return out;
}

bool Connection::in_transaction() const {
  const auto s = PQtransactionStatus(conn_);
  return s == PQTRANS_INTRANS || s == PQTRANS_INERROR || s == PQTRANS_ACTIVE;
}

void Connection::fail(const char* what, const pg_result* r) {
  std::string state;
  std::string msg;
  if (r) {
    if (const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE)) state = s;
    msg = trimmed(PQresultErrorMessage(r));
  }
  if (msg.empty()) msg = trimmed(PQerrorMessage(conn_));
  if (msg.empty()) msg = "unknown error";
  const bool lost = broken_ || PQstatus(conn_) != CONNECTION_OK || is_connection_state(state);
  if (lost) broken_ = true;
  std::string w = what;
  if (w.size() > 160) w = w.substr(0, 160) + "...";
  throw PgError("postgres: " + msg + " (in: " + w + ")", state, lost);
}

Result Connection::check(pg_result* r, const char* what) {
  Result res(r);
  if (!r) fail(what);
  const auto st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail(what, r);
  return res;
}

Result Connection::exec(const char* sql) {
  ++round_trips_;
  return check(PQexec(conn_, sql), sql);
}

const std::string& Connection::prepared_name(const char* sql) {
  auto it = prepared_.find(sql);
  if (it != prepared_.end()) return it->second;
  const std::string name = "chat_" + std::to_string(prepared_.size() + 1);
  const int n = count_params(sql);
  const std::vector<Oid> types(static_cast<std::size_t>(n), kTextOid);
  ++round_trips_;
  check(PQprepare(conn_, name.c_str(), sql, n, types.data()), sql);
  return prepared_.emplace(sql, name).first->second;
}

Result Connection::query(const char* sql, const Params& p) {
  const std::string& name = prepared_name(sql);
  ++round_trips_;
  return check(PQexecPrepared(conn_, name.c_str(), p.size(), p.values(), p.lengths(),
                              p.formats(), 0),
               sql);
}

std::vector<Result> Connection::pipeline(const std::vector<Query>& qs) {
  std::vector<Result> out;
  if (qs.empty()) return out;
  if (qs.size() == 1) {
    const auto& q = qs.front();
    out.push_back(q.simple ? exec(q.sql) : query(q.sql, *q.params));
    return out;
  }
  // Statements are prepared (once per connection) before the pipeline starts.
  std::vector<const std::string*> names;
  for (const auto& q : qs) names.push_back(q.simple ? nullptr : &prepared_name(q.sql));

  if (PQenterPipelineMode(conn_) != 1) fail("pipeline");
  ++round_trips_;
  bool sent = true;
  for (std::size_t i = 0; i < qs.size() && sent; ++i) {
    const auto& q = qs[i];
    sent = q.simple ? PQsendQueryParams(conn_, q.sql, 0, nullptr, nullptr, nullptr, nullptr, 0) == 1
                    : PQsendQueryPrepared(conn_, names[i]->c_str(), q.params->size(),
                                          q.params->values(), q.params->lengths(),
                                          q.params->formats(), 0) == 1;
  }
  if (sent) sent = PQpipelineSync(conn_) == 1;
  if (!sent) {
    broken_ = true;  // the pipeline's state is unknown: this connection is done for
    fail(qs.front().sql);
  }

  // Each statement yields one result then NULL (an aborted one: PGRES_PIPELINE_ABORTED); the
  // sync point yields PGRES_PIPELINE_SYNC. A broken connection yields NULLs: give up then.
  std::optional<std::size_t> failed;
  Result failed_result;
  for (std::size_t i = 0; i < qs.size(); ++i) {
    pg_result* r = PQgetResult(conn_);
    if (!r) {
      broken_ = true;
      fail(qs[i].sql);
    }
    Result res(r);
    const auto st = PQresultStatus(r);
    for (int guard = 0; guard < 4; ++guard) {
      pg_result* extra = PQgetResult(conn_);
      if (!extra) break;
      PQclear(extra);
      if (guard == 3 || PQstatus(conn_) != CONNECTION_OK) {
        broken_ = true;
        fail(qs[i].sql);
      }
    }
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && !failed) {
      failed = i;
      failed_result = std::move(res);
      out.emplace_back();
    } else {
      out.push_back(std::move(res));
    }
  }
  pg_result* sync = PQgetResult(conn_);
  const bool synced = sync && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
  if (sync) PQclear(sync);
  if (!synced || PQexitPipelineMode(conn_) != 1) {
    broken_ = true;
    fail(qs.back().sql);
  }
  if (failed) {
    const auto st = PQresultStatus(failed_result.raw());
    // PGRES_PIPELINE_ABORTED without an earlier error cannot happen; report it as it is.
    fail(qs[*failed].sql, st == PGRES_PIPELINE_ABORTED ? nullptr : failed_result.raw());
  }
  return out;
}

// ------------------------------------------------------------------------------------ URLs

bool is_postgres_url(const std::string& url) {
  return url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
}

std::string redact_url(const std::string& url) {
  std::string out = url;
  const auto scheme = out.find("://");
  if (scheme != std::string::npos) {
    const auto start = scheme + 3;
    const auto end = out.find_first_of("/?", start);
    const auto at = out.rfind('@', end == std::string::npos ? out.size() : end);
    if (at != std::string::npos && at >= start) {
      const auto colon = out.find(':', start);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
  }
  for (std::size_t pos = 0; (pos = out.find("password=", pos)) != std::string::npos;) {
    pos += 9;
    const auto end = out.find_first_of("& ", pos);
    out.replace(pos, (end == std::string::npos ? out.size() : end) - pos, "***");
  }
  return out;
}

}  // namespace chat::infra::pg
