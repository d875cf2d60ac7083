#pragma once
/// The `demo` engine: no network, deterministic. A pretend tool step, then a reply that quotes
/// the user's last message word by word, with a configurable delay between tokens. The reply
/// always holds non-ASCII characters, so UTF-8 is exercised end to end, and names the turn, so
/// a client can see that the run saw the thread's history.
///
/// Thread safety: stateless; shared by all runs.

#include <chrono>

#include "application/ports.hpp"

namespace chat::infra::engines {

struct DemoOptions {
  std::chrono::milliseconds token_delay{50};
  std::chrono::milliseconds tool_delay{100};
  /// Benchmarks only: each token's text starts with "\u23F1<CLOCK_REALTIME microseconds> ",
  /// the time the engine appended it, so a client can measure append-to-receipt latency.
  bool token_timestamps = false;
};

class DemoEngine final : public app::Engine {
 public:
  explicit DemoEngine(DemoOptions o) : o_(o) {}
  app::Task<void> run(const app::EngineRequest& request, app::EngineSink& sink) override;

  /// The tokens of the reply to `history` (exposed for unit tests).
  static std::vector<std::string> reply_tokens(const std::vector<domain::Message>& history);

 private:
  DemoOptions o_;
};

}  // namespace chat::infra::engines
