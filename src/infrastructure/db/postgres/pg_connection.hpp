#pragma once
/// A thin RAII layer over one libpq connection: connect with time-outs, simple queries,
/// prepared statements (prepared once per connection, on first use) and pipelines of them (one
/// round trip for several statements). Parameters travel as text values in libpq's binary
/// format, i.e. as raw bytes with a length: nothing is ever spliced into SQL, and a value is
/// never cut at a NUL byte (the server rejects one instead).
///
/// Not thread-safe: a Connection belongs to one thread at a time. Every call blocks; the
/// database adapter makes them on its own threads only. Errors throw PgError; once the
/// connection is broken `ok()` turns false and the owner replaces the connection.

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

struct pg_conn;
struct pg_result;

namespace chat::infra::pg {

struct PgError : std::runtime_error {
  PgError(const std::string& what, std::string state, bool lost)
      : std::runtime_error(what), sqlstate(std::move(state)), connection_lost(lost) {}
  std::string sqlstate;  ///< e.g. "23505"; empty when the server sent none
  bool connection_lost;  ///< the connection is unusable (or never came up)
};

/// Connection settings. `url` is anything libpq takes (postgresql://... or key=value); its own
/// parameters win over the defaults below.
struct ConnectOptions {
  std::string url;
  int connect_timeout_s = 5;            ///< libpq connect_timeout
  int statement_timeout_ms = 30000;     ///< server-side statement_timeout of the session
  int idle_in_tx_timeout_ms = 60000;    ///< idle_in_transaction_session_timeout
  int tcp_user_timeout_ms = 15000;      ///< a silent peer breaks the connection after this
  std::string application_name = "chatbot";
};

/// Owns one PGresult.
class Result {
 public:
  Result() = default;
  explicit Result(pg_result* r) : r_(r) {}
  int rows() const;
  bool is_null(int row, int col) const;
  std::string_view view(int row, int col) const;
  std::string text(int row, int col) const { return std::string(view(row, col)); }
  std::optional<std::string> opt_text(int row, int col) const;
  std::int64_t int64(int row, int col) const;
  std::optional<std::int64_t> opt_int64(int row, int col) const;
  /// Rows changed by an INSERT/UPDATE/DELETE.
  std::int64_t affected() const;
  /// The command tag, e.g. "COMMIT" or "INSERT 0 3".
  std::string_view command() const;
  pg_result* raw() const { return r_.get(); }

 private:
  struct Free {
    void operator()(pg_result* r) const;
  };
  std::unique_ptr<pg_result, Free> r_;
};

/// Parameter values of one statement ($1, $2, ... in order). Text values are referenced, not
/// copied: they must outlive the call that uses the Params.
class Params {
 public:
  Params& add(std::string_view v);
  Params& add(const std::string& v) { return add(std::string_view(v)); }
  Params& add(const char* v) { return add(std::string_view(v)); }
  Params& add(std::int64_t v);
  Params& add(const std::optional<std::string>& v);
  Params& add(const std::optional<std::int64_t>& v);
  Params& null();
  int size() const { return static_cast<int>(values_.size()); }
  const char* const* values() const { return values_.data(); }
  const int* lengths() const { return lengths_.data(); }
  const int* formats() const { return formats_.data(); }

 private:
  std::vector<std::unique_ptr<std::string>> owned_;  // stable addresses for numbers
  std::vector<const char*> values_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
};

/// One statement of a pipeline: a prepared statement (by its SQL) or, with `simple`, a
/// parameterless command such as BEGIN.
struct Query {
  const char* sql;
  const Params* params = nullptr;
  bool simple = false;
};

class Connection {
 public:
  /// Connects and sets the session up (time-outs, UTF-8, synchronous_commit on). Throws
  /// PgError (connection_lost = true) when it cannot.
  explicit Connection(const ConnectOptions& o);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// False once the connection broke; the owner must replace it.
  bool ok() const;
  /// ok(), after reading whatever the server sent while the connection sat idle (without
  /// blocking): a server that went away, or ended this session, is noticed here rather than
  /// halfway through the next transaction.
  bool alive();

  /// A simple-protocol command (may hold several statements; no parameters).
  Result exec(const char* sql);
  /// A prepared statement: `sql` is prepared on this connection the first time it is used
  /// (cached by its address, so pass named constants).
  Result query(const char* sql, const Params& p);
  /// Runs `qs` in one round trip (libpq pipeline mode) and returns their results in order.
  /// If one fails, the ones after it do not run and the first error is thrown.
  std::vector<Result> pipeline(const std::vector<Query>& qs);

  /// LISTEN support. The socket to wait on for notifications.
  int socket() const;
  /// Reads whatever the server sent, without blocking; throws PgError (connection_lost) if
  /// the connection broke.
  void consume_input();
  struct Notification {
    std::string channel;
    std::string payload;
  };
  /// The next notification consume_input() received, if any.
  std::optional<Notification> next_notification();

  /// Transaction status as libpq sees it: true inside a transaction block (also a failed one).
  bool in_transaction() const;

  /// Round trips to the server so far (statements and pipelines; preparing counts too).
  std::uint64_t round_trips() const { return round_trips_; }

 private:
  const std::string& prepared_name(const char* sql);
  [[noreturn]] void fail(const char* what, const pg_result* r = nullptr);
  Result check(pg_result* r, const char* what);

  pg_conn* conn_ = nullptr;
  bool broken_ = false;
  std::uint64_t round_trips_ = 0;  // set when the protocol state is unknown (e.g. a pipeline cut short)
  std::unordered_map<const char*, std::string> prepared_;
};

/// True for postgresql:// and postgres:// URLs.
bool is_postgres_url(const std::string& url);

/// `url` with any password replaced by "***", for logs and messages.
std::string redact_url(const std::string& url);

}  // namespace chat::infra::pg
