#pragma once
/// Small ports of the core: time, ids and the engine that writes replies.

#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "application/task.hpp"
#include "domain/entities.hpp"

namespace chat::app {

/// Thread safety: implementations are safe to call from any thread.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual domain::Timestamp now() = 0;
};

/// Thread safety: implementations are safe to call from any thread.
class IdGenerator {
 public:
  virtual ~IdGenerator() = default;
  /// A random UUID v4, lowercase canonical form.
  virtual std::string uuid() = 0;
};

/// API keys (CHATBOT_AUTH=api_key): made at random, stored only as a one-way hash.
/// Thread safety: implementations are safe to call from any thread.
class KeyService {
 public:
  virtual ~KeyService() = default;
  /// A new random key, shown once to its owner.
  virtual std::string new_key() = 0;
  /// The stored form of a key (e.g. hex SHA-256); equal keys give equal hashes.
  virtual std::string hash(const std::string& key) = 0;
};

/// Where the core reports what it cannot hand back to a caller (failures in background work).
/// Thread safety: safe to call from any thread.
class Logger {
 public:
  virtual ~Logger() = default;
  virtual void info(const std::string& msg) = 0;
  virtual void warn(const std::string& msg) = 0;
  virtual void error(const std::string& msg) = 0;
};

/// What an engine gets: the conversation so far (the run's user message last among the users').
struct EngineRequest {
  std::string run_id;
  std::vector<domain::Message> history;
};

/// Where an engine writes. Each call returns once the event is durable. Used from the run's
/// own executor only. When the run is canceled, `canceled()` turns true and pending `sleep`s
/// return at once; the engine should return soon after.
class EngineSink {
 public:
  virtual ~EngineSink() = default;
  /// `input_json` / `output_json`: JSON objects as text.
  virtual Task<void> tool_start(const std::string& tool, const std::string& input_json) = 0;
  virtual Task<void> tool_end(const std::string& tool, const std::string& output_json) = 0;
  virtual Task<void> token(const std::string& text) = 0;
  /// `token(text)` without suspending, when the sink can take it at once; false when it cannot
  /// (the caller then awaits `token(text)`, which waits or reports why). A fast stream pays no
  /// coroutine per token this way.
  virtual bool try_token(const std::string& text) {
    (void)text;
    return false;
  }
  /// Waits `d`, or less if the run is canceled.
  virtual Task<void> sleep(std::chrono::milliseconds d) = 0;
  virtual bool canceled() const = 0;
  /// Registers `f` to run (on the run's executor) when the run is canceled, e.g. to close an
  /// upstream connection. Replaces any earlier hook; pass {} to clear.
  virtual void on_cancel(std::function<void()> f) = 0;
  /// What the reply cost, as a JSON object (e.g. the upstream's token counts); the run's
  /// `final` event carries the last one set as "usage". Not set: no "usage" field.
  virtual void set_usage(std::string usage_json) = 0;
};

/// Thrown by an engine for a failure it wants reported to the client as the run's error.
struct EngineError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Writes a reply. Shared by all runs; implementations are safe to use from several runs at once.
class Engine {
 public:
  virtual ~Engine() = default;
  /// Streams the reply through `sink`. Returns normally on success or cancel; throws
  /// EngineError (or any exception) on failure.
  virtual Task<void> run(const EngineRequest& request, EngineSink& sink) = 0;
};

}  // namespace chat::app
