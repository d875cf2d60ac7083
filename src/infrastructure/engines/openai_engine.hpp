#pragma once
/// The `openai` engine: streams a reply from any OpenAI-compatible Chat Completions endpoint
/// (OpenAI, vLLM, llama.cpp's server, Ollama, LM Studio) with `stream: true`.
///
/// POST {base_url}/chat/completions over HTTP/1.1 (http:// or https:// with the system's CA
/// store, SNI and hostname verification), the thread's history as `messages` (system prompt
/// first), each `choices[0].delta.content` a token, `tool_calls` deltas as tool_start/tool_end,
/// `usage` handed to the sink for the final event.
///
/// Failures throw app::EngineError with a message that says what happened (never the API key).
/// Connect errors, 429 and 5xx are retried before the first token only (honouring Retry-After,
/// bounded). Cancel closes the upstream connection at once (through the sink's cancel hook).
///
/// Thread safety: one engine serves all runs at once; each run's coroutine runs on its own
/// strand. Idle connections are kept in a small pool keyed by host:port:tls and reused across
/// runs. The engine must outlive the io_context's threads.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "application/ports.hpp"

namespace boost::asio {
class io_context;
}

namespace chat::infra::engines {

struct OpenAIOptions {
  std::string base_url = "https://api.openai.com/v1";
  std::string api_key;  ///< sent as `Authorization: Bearer`; empty: no header
  std::string model;
  std::string system_prompt;  ///< empty: none
  std::optional<double> temperature;
  std::chrono::milliseconds connect_timeout{10'000};     ///< DNS + TCP + TLS handshake
  std::chrono::milliseconds first_byte_timeout{120'000};  ///< request sent → response head
  std::chrono::milliseconds idle_timeout{60'000};         ///< longest silence inside the body
  int retries = 2;  ///< extra attempts before the first token (connect errors, 429, 5xx)
  std::chrono::milliseconds max_retry_delay{10'000};  ///< cap on Retry-After and back-off
};

/// Where the engine sends its request, from a base URL such as https://api.openai.com/v1.
struct Endpoint {
  bool tls = false;
  std::string host;  ///< without brackets for IPv6
  std::uint16_t port = 0;
  std::string path;  ///< the base path without a trailing slash, e.g. "/v1"
  /// The Host header value (brackets for IPv6, the port when not the scheme's default).
  std::string host_header() const;
};

/// Parses a base URL (http:// or https://, no user info, query or fragment). Throws
/// std::invalid_argument saying what is wrong.
Endpoint parse_base_url(std::string_view url);

/// The JSON body of the request for `history` (exposed for unit tests).
std::string build_chat_request(const OpenAIOptions& o, const std::vector<domain::Message>& history);

/// `text` with every occurrence of `secret` replaced by "[redacted]".
std::string redact(std::string text, const std::string& secret);

class OpenAIEngine final : public app::Engine {
 public:
  /// Throws std::invalid_argument if the options are unusable (bad base URL, no model).
  OpenAIEngine(boost::asio::io_context& io, OpenAIOptions options, app::Logger& log);
  ~OpenAIEngine() override;
  OpenAIEngine(const OpenAIEngine&) = delete;
  OpenAIEngine& operator=(const OpenAIEngine&) = delete;

  app::Task<void> run(const app::EngineRequest& request, app::EngineSink& sink) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace chat::infra::engines
