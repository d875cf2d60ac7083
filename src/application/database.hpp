#pragma once
/// The database port. The core never calls a repository on an I/O thread: it hands a job to
/// `read` or `write`, which run it on a database thread and resume the awaiting coroutine on
/// its own executor when it is done.
///
/// Writes are group-committed: the adapter runs many queued write jobs in one transaction, and
/// only after COMMIT returns does it run their `after_commit` hooks (e.g. publishing events to
/// subscribers) and resume their callers. A job may be run more than once (when a batch fails
/// the adapter retries each job alone), so it must depend only on the database state it reads.
///
/// Thread safety: `read`/`write` may be called from any thread. Cancellation: none; a job once
/// submitted runs to completion. Exceptions thrown by a job (or the backend) propagate to the
/// awaiting coroutine.

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "application/task.hpp"
#include "domain/repositories.hpp"

namespace chat::app {

/// The database refuses to store anything, for a reason only its operator can fix: it is full
/// (disk or quota) or read-only. Adapters throw it instead of their own error so that clients
/// are told what happened (nothing was written) rather than "try again".
struct StorageRefused : std::runtime_error {
  enum class Why { full, read_only };
  StorageRefused(Why w, const std::string& what) : std::runtime_error(what), why(w) {}
  Why why;
};

/// A copy of `e` that shares no state with it: the exception object and its message are new
/// (copying a std::runtime_error would share its refcounted string). Adapters fail each job
/// from their database threads with such a copy and keep no reference to it, so no exception
/// is shared between threads (its refcount lives in uninstrumented libstdc++, where
/// ThreadSanitizer cannot see the atomics and reports the last release as a race). Adapters
/// copy their own error types themselves and leave the rest to this: StorageRefused and the
/// standard logic errors keep their type; any other exception arrives as a std::runtime_error
/// with its message (the core tells failures apart by type only for StorageRefused).
inline std::exception_ptr detached_copy(const std::exception_ptr& e) {
  if (!e) return e;
  try {
    std::rethrow_exception(e);
  } catch (const StorageRefused& x) {
    return std::make_exception_ptr(StorageRefused(x.why, std::string(x.what())));
  } catch (const std::invalid_argument& x) {
    return std::make_exception_ptr(std::invalid_argument(std::string(x.what())));
  } catch (const std::out_of_range& x) {
    return std::make_exception_ptr(std::out_of_range(std::string(x.what())));
  } catch (const std::logic_error& x) {
    return std::make_exception_ptr(std::logic_error(std::string(x.what())));
  } catch (const std::exception& x) {
    return std::make_exception_ptr(std::runtime_error(std::string(x.what())));
  } catch (...) {
    return e;
  }
}

/// What a write job sees: the repositories inside the open batch transaction.
class WriteTx {
 public:
  explicit WriteTx(domain::Repositories& repos) : repos_(repos) {}
  domain::Repositories& repos() { return repos_; }
  /// `f` runs on the writer thread right after the batch commits; dropped on rollback.
  void after_commit(std::function<void()> f) { hooks_.push_back(std::move(f)); }
  std::vector<std::function<void()>>& hooks() { return hooks_; }

 private:
  domain::Repositories& repos_;
  std::vector<std::function<void()>> hooks_;
};

class Database {
 public:
  using ReadJob = std::function<void(domain::Repositories&)>;
  using WriteJob = std::function<void(WriteTx&)>;
  using Done = std::function<void(std::exception_ptr)>;

  virtual ~Database() = default;

  /// Runs `fn(Repositories&)` on a reader connection; returns its result.
  template <class F>
  Task<std::invoke_result_t<F&, domain::Repositories&>> read(F fn) {
    using R = std::invoke_result_t<F&, domain::Repositories&>;
    if constexpr (std::is_void_v<R>) {
      co_await run_job([&](Done done) {
        submit_read([&fn](domain::Repositories& r) { fn(r); }, std::move(done));
      });
    } else {
      std::optional<R> out;
      co_await run_job([&](Done done) {
        submit_read([&fn, &out](domain::Repositories& r) { out.emplace(fn(r)); }, std::move(done));
      });
      co_return std::move(*out);
    }
  }

  /// Runs `fn(WriteTx&)` in the next group-commit batch; returns its result after COMMIT.
  template <class F>
  Task<std::invoke_result_t<F&, WriteTx&>> write(F fn) {
    using R = std::invoke_result_t<F&, WriteTx&>;
    if constexpr (std::is_void_v<R>) {
      co_await run_job([&](Done done) {
        submit_write([&fn](WriteTx& tx) { fn(tx); }, std::move(done));
      });
    } else {
      std::optional<R> out;
      co_await run_job([&](Done done) {
        submit_write([&fn, &out](WriteTx& tx) { out.emplace(fn(tx)); }, std::move(done));
      });
      co_return std::move(*out);
    }
  }

 protected:
  /// `done` is called exactly once, on any thread, after the job ran (and, for writes, after
  /// its batch committed and its hooks ran) or failed.
  virtual void submit_read(ReadJob job, Done done) = 0;
  virtual void submit_write(WriteJob job, Done done) = 0;

 private:
  template <class Submit>
  static Task<void> run_job(Submit submit) {
    co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&,
                                         void(std::exception_ptr)>(
        [&submit](auto handler) {
          auto ex = boost::asio::get_associated_executor(handler);
          auto h = std::make_shared<decltype(handler)>(std::move(handler));
          // `e` is moved on, never copied: the database thread keeps no reference to the
          // exception the awaiting coroutine gets (see detached_copy).
          submit([h, ex](std::exception_ptr e) {
            boost::asio::post(ex, [h, e = std::move(e)]() mutable { (*h)(std::move(e)); });
          });
        },
        boost::asio::use_awaitable);
  }
};

}  // namespace chat::app
