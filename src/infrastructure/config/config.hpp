#pragma once
/// The binary's settings: command-line flags over environment variables over defaults.
/// A bad value throws ConfigError naming the setting; main prints it and exits with status 2.

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace chat::infra {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Config {
  std::string command;  ///< serve | migrate | help | version
  std::string host = "127.0.0.1";
  std::uint16_t port = 8000;
  std::string database_url = "sqlite:data/chatbot.db";
  std::string engine = "demo";
  std::int64_t demo_token_delay_ms = 50;
  std::int64_t demo_tool_delay_ms = 100;
  bool demo_token_timestamps = false;  ///< benchmarks: tokens carry their append time
  double ping_interval_s = 15;
  std::size_t max_body_bytes = 1048576;
  std::size_t max_content_bytes = 32768;
  std::size_t max_header_bytes = 16384;
  std::size_t max_header_count = 100;
  std::size_t max_url_bytes = 8192;
  std::size_t max_json_depth = 32;
  std::size_t max_json_string_bytes = 65536;
  std::size_t max_connections = 0;  ///< 0: as many as the open-files limit allows
  double idle_timeout_s = 60;
  double header_timeout_s = 10;
  double body_timeout_s = 30;
  std::size_t max_concurrent_runs = 256;
  std::size_t subscriber_queue = 4096;
  std::string openai_base_url = "https://api.openai.com/v1";
  std::string openai_api_key;  ///< never logged
  std::string openai_model;
  std::string openai_system_prompt;
  std::optional<double> openai_temperature;
  double openai_connect_timeout_s = 10;
  double openai_first_byte_timeout_s = 120;
  double openai_idle_timeout_s = 60;
  int openai_retries = 2;
  std::string log_level = "info";
  std::string log_format = "text";
  bool migrate = true;
  int io_threads = 0;  ///< 0: one per core
  std::string sqlite_synchronous = "full";
  double shutdown_grace_s = 5;
  std::string cors_origins;  ///< "*" or a comma list of origins; empty: no CORS
  std::string auth = "none";  ///< none | api_key
  std::string admin_key;      ///< api_key mode: creates users; never logged
  std::string metrics_token;  ///< non-empty: /metrics needs it; never logged
  std::int64_t event_retention_ms = 0;  ///< 0: keep events forever
  std::string webhook_url;     ///< for runs without their own; empty: none (validated)
  std::string webhook_secret;  ///< signs every webhook; empty: webhooks off; never logged
  std::int64_t webhook_retry_base_ms = 1000;
  int webhook_max_attempts = 20;
  double webhook_timeout_s = 10;
  std::string instances = "single";     ///< single | multi (several instances, PostgreSQL)
  std::int64_t run_lease_ms = 10000;    ///< multi: how long a run's claim holds unrenewed
};

/// Parses argv (without argv[0]) and the environment.
Config parse_config(const std::vector<std::string>& args);

/// The text of `chatbot --help`.
std::string help_text();

}  // namespace chat::infra
