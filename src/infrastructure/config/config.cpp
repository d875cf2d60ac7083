#include "config.hpp"

#include <charconv>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>

#include "application/webhooks.hpp"
#include "infrastructure/crypto.hpp"

namespace chat::infra {
namespace {

struct Setting {
  const char* flag;
  const char* env;
  const char* alt_env;
  const char* help;
  std::function<void(Config&, const std::string&, const std::string&)> apply;
  bool is_switch = false;
};

std::int64_t parse_int(const std::string& v, const std::string& name, std::int64_t lo,
                       std::int64_t hi) {
  std::int64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size() || out < lo || out > hi)
    throw ConfigError("invalid " + name + ": '" + v + "' (expected an integer from " +
                      std::to_string(lo) + " to " + std::to_string(hi) + ")");
  return out;
}

double parse_seconds(const std::string& v, const std::string& name, double lo) {
  char* end = nullptr;
  const double d = std::strtod(v.c_str(), &end);
  if (v.empty() || end != v.c_str() + v.size() || !(d >= lo) || d > 86400)
    throw ConfigError("invalid " + name + ": '" + v + "' (expected seconds, e.g. 15 or 0.5)");
  return d;
}

// "45s", "90m", "12h", "30d": a positive integer and one unit.
std::int64_t parse_duration_ms(const std::string& v, const std::string& name) {
  const auto bad = [&] {
    return ConfigError("invalid " + name + ": '" + v +
                       "' (expected a positive number of s, m, h or d, e.g. 30d or 12h)");
  };
  if (v.size() < 2) throw bad();
  std::int64_t unit = 0;
  switch (v.back()) {
    case 's': unit = 1000; break;
    case 'm': unit = 60 * 1000; break;
    case 'h': unit = 3600 * 1000; break;
    case 'd': unit = 86400 * 1000; break;
    default: throw bad();
  }
  std::int64_t n = 0;
  const char* end = v.data() + v.size() - 1;
  auto [p, ec] = std::from_chars(v.data(), end, n);
  if (ec != std::errc() || p != end || n < 1 || n > 100 * 365 * 86400LL * 1000 / unit) throw bad();
  return n * unit;
}

std::string one_of(const std::string& v, const std::string& name,
                   std::initializer_list<const char*> allowed) {
  std::string list;
  for (const char* a : allowed) {
    if (v == a) return v;
    list += list.empty() ? a : std::string(", ") + a;
  }
  throw ConfigError("invalid " + name + ": '" + v + "' (expected one of: " + list + ")");
}

const std::vector<Setting>& settings() {
  static const std::vector<Setting> s = {
      {"--host", "CHATBOT_HOST", nullptr, "address to listen on (default 127.0.0.1)",
       [](Config& c, const std::string& v, const std::string& n) {
         if (v.empty()) throw ConfigError("invalid " + n + ": empty");
         c.host = v;
       }},
      {"--port", "CHATBOT_PORT", nullptr, "TCP port (default 8000; 0 picks a free one)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.port = static_cast<std::uint16_t>(parse_int(v, n, 0, 65535));
       }},
      {"--database", "DATABASE_URL", nullptr,
       "sqlite:PATH | sqlite::memory: | postgresql://user:pw@host:port/db "
       "(default sqlite:data/chatbot.db)",
       [](Config& c, const std::string& v, const std::string& n) {
         const bool sqlite = v.rfind("sqlite:", 0) == 0 && v.size() > 7;
         const bool postgres = (v.rfind("postgresql://", 0) == 0 && v.size() > 13) ||
                               (v.rfind("postgres://", 0) == 0 && v.size() > 11);
         if (!sqlite && !postgres)
           throw ConfigError("invalid " + n + ": '" + v +
                             "' (expected sqlite:PATH, sqlite::memory: or "
                             "postgresql://user:pw@host:port/db)");
         c.database_url = v;
       }},
      {"--engine", "CHATBOT_ENGINE", nullptr, "demo | openai (default demo)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.engine = one_of(v, n, {"demo", "openai"});
       }},
      {"--demo-token-delay-ms", "CHATBOT_DEMO_TOKEN_DELAY_MS", nullptr,
       "demo engine: delay between tokens in ms (default 50)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.demo_token_delay_ms = parse_int(v, n, 0, 600000);
       }},
      {"--demo-tool-delay-ms", "CHATBOT_DEMO_TOOL_DELAY_MS", nullptr,
       "demo engine: duration of the pretend tool step in ms (default 100)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.demo_tool_delay_ms = parse_int(v, n, 0, 600000);
       }},
      {"--demo-token-timestamps", "CHATBOT_DEMO_TOKEN_TIMESTAMPS", nullptr,
       "demo engine, for benchmarks: each token's text starts with \"\xE2\x8F\xB1<microseconds "
       "since the epoch, CLOCK_REALTIME> \", the time the engine appended it (the environment "
       "variable takes 1/true or 0/false; default off)",
       [](Config& c, const std::string& v, const std::string& n) {
         if (v.empty() || v == "1" || v == "true")
           c.demo_token_timestamps = true;
         else if (v == "0" || v == "false")
           c.demo_token_timestamps = false;
         else
           throw ConfigError("invalid " + n + ": '" + v + "' (expected 1, true, 0 or false)");
       },
       true},
      {"--ping-interval-s", "CHATBOT_PING_INTERVAL_S", nullptr,
       "seconds between ': ping' comments on an idle event stream (default 15)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.ping_interval_s = parse_seconds(v, n, 0.05);
       }},
      {"--max-body-bytes", "CHATBOT_MAX_BODY_BYTES", nullptr,
       "largest request body accepted; larger gets 413 (default 1048576)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.max_body_bytes = static_cast<std::size_t>(parse_int(v, n, 64, 1 << 30));
       }},
      {"--max-content-bytes", "CHATBOT_MAX_CONTENT_BYTES", nullptr,
       "largest message content in bytes; larger gets 422 (default 32768)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.max_content_bytes = static_cast<std::size_t>(parse_int(v, n, 1, 1 << 30));
       }},
      {"--max-header-bytes", "CHATBOT_MAX_HEADER_BYTES", nullptr,
       "largest request head (request line and header fields); larger gets 431 (default 16384)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.max_header_bytes = static_cast<std::size_t>(parse_int(v, n, 1024, 1 << 24));
       }},
      {"--max-header-count", "CHATBOT_MAX_HEADER_COUNT", nullptr,
       "most header fields in a request; more gets 431 (default 100)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.max_header_count = static_cast<std::size_t>(parse_int(v, n, 8, 100000));
       }},
      {"--max-url-bytes", "CHATBOT_MAX_URL_BYTES", nullptr,
       "longest request target (path and query); longer gets 414 (default 8192)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.max_url_bytes = static_cast<std::size_t>(parse_int(v, n, 256, 1 << 24));
       }},
      {"--max-json-depth", "CHATBOT_MAX_JSON_DEPTH", nullptr,
       "deepest nesting of arrays and objects in a JSON body; deeper gets 422 (default 32)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.max_json_depth = static_cast<std::size_t>(parse_int(v, n, 2, 10000));
       }},
      {"--max-json-string-bytes", "CHATBOT_MAX_JSON_STRING_BYTES", nullptr,
       "longest string or key in a JSON body, in bytes; longer gets 422 (default 65536; never "
       "below --max-content-bytes)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.max_json_string_bytes = static_cast<std::size_t>(parse_int(v, n, 16, 1 << 30));
       }},
      {"--max-connections", "CHATBOT_MAX_CONNECTIONS", nullptr,
       "open HTTP connections at most; one more gets a 503 problem and is closed (default: "
       "as many as the open-files limit allows, less 64 descriptors kept for the database and "
       "logs; a larger value is lowered to that)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.max_connections = static_cast<std::size_t>(parse_int(v, n, 1, 10000000));
       }},
      {"--idle-timeout-s", "CHATBOT_IDLE_TIMEOUT_S", nullptr,
       "seconds a connection may stay open without starting a request (default 60)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.idle_timeout_s = parse_seconds(v, n, 0.05);
       }},
      {"--header-timeout-s", "CHATBOT_HEADER_TIMEOUT_S", nullptr,
       "seconds from a request's first byte to the end of its head; slower is closed "
       "(default 10)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.header_timeout_s = parse_seconds(v, n, 0.05);
       }},
      {"--body-timeout-s", "CHATBOT_BODY_TIMEOUT_S", nullptr,
       "seconds from the end of a request's head to the end of its body; slower is closed "
       "(default 30)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.body_timeout_s = parse_seconds(v, n, 0.05);
       }},
      {"--max-concurrent-runs", "CHATBOT_MAX_CONCURRENT_RUNS", nullptr,
       "runs executing at once in this process (default 256)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.max_concurrent_runs = static_cast<std::size_t>(parse_int(v, n, 1, 1000000));
       }},
      {"--subscriber-queue", "CHATBOT_SUBSCRIBER_QUEUE", nullptr,
       "events buffered per stream before a slow client is disconnected (default 4096)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.subscriber_queue = static_cast<std::size_t>(parse_int(v, n, 1, 1 << 24));
       }},
      {"--openai-base-url", "CHATBOT_OPENAI_BASE_URL", nullptr,
       "openai engine: base URL as OpenAI clients take it (default https://api.openai.com/v1; "
       "Ollama: http://localhost:11434/v1)",
       [](Config& c, const std::string& v, const std::string&) { c.openai_base_url = v; }},
      {"--openai-api-key", "CHATBOT_OPENAI_API_KEY", "OPENAI_API_KEY",
       "openai engine: API key (never logged)",
       [](Config& c, const std::string& v, const std::string&) { c.openai_api_key = v; }},
      {"--openai-model", "CHATBOT_OPENAI_MODEL", nullptr, "openai engine: model name",
       [](Config& c, const std::string& v, const std::string&) { c.openai_model = v; }},
      {"--openai-system-prompt", "CHATBOT_OPENAI_SYSTEM_PROMPT", nullptr,
       "openai engine: system prompt sent before the thread's messages (default none)",
       [](Config& c, const std::string& v, const std::string&) { c.openai_system_prompt = v; }},
      {"--openai-temperature", "CHATBOT_OPENAI_TEMPERATURE", nullptr,
       "openai engine: sampling temperature, 0 to 2 (default: the server's)",
       [](Config& c, const std::string& v, const std::string& n) {
         char* end = nullptr;
         const double d = std::strtod(v.c_str(), &end);
         if (v.empty() || end != v.c_str() + v.size() || !(d >= 0) || d > 2)
           throw ConfigError("invalid " + n + ": '" + v + "' (expected a number from 0 to 2)");
         c.openai_temperature = d;
       }},
      {"--openai-connect-timeout-s", "CHATBOT_OPENAI_CONNECT_TIMEOUT_S", nullptr,
       "openai engine: seconds to resolve, connect and finish the TLS handshake (default 10)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.openai_connect_timeout_s = parse_seconds(v, n, 0.001);
       }},
      {"--openai-first-byte-timeout-s", "CHATBOT_OPENAI_FIRST_BYTE_TIMEOUT_S", nullptr,
       "openai engine: seconds from sending the request to the response's head (default 120)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.openai_first_byte_timeout_s = parse_seconds(v, n, 0.001);
       }},
      {"--openai-idle-timeout-s", "CHATBOT_OPENAI_IDLE_TIMEOUT_S", nullptr,
       "openai engine: longest silence between two chunks of the stream, in seconds "
       "(default 60)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.openai_idle_timeout_s = parse_seconds(v, n, 0.001);
       }},
      {"--openai-retries", "CHATBOT_OPENAI_RETRIES", nullptr,
       "openai engine: extra attempts before the first token on connect errors, 429 and 5xx "
       "(default 2)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.openai_retries = static_cast<int>(parse_int(v, n, 0, 10));
       }},
      {"--log-level", "CHATBOT_LOG_LEVEL", nullptr,
       "trace | debug | info | warn | error | off (default info)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.log_level = one_of(v, n, {"trace", "debug", "info", "warn", "error", "off"});
       }},
      {"--log-format", "CHATBOT_LOG_FORMAT", nullptr, "text | json (default text)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.log_format = one_of(v, n, {"text", "json"});
       }},
      {"--io-threads", "CHATBOT_IO_THREADS", nullptr, "I/O threads (default: one per core)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.io_threads = static_cast<int>(parse_int(v, n, 1, 256));
       }},
      {"--sqlite-synchronous", "CHATBOT_SQLITE_SYNCHRONOUS", nullptr,
       "full | normal: SQLite durability (WAL either way; default full: a commit survives "
       "power loss)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.sqlite_synchronous = one_of(v, n, {"full", "normal"});
       }},
      {"--shutdown-grace-s", "CHATBOT_SHUTDOWN_GRACE_S", nullptr,
       "on SIGTERM/SIGINT, seconds running runs get to finish before they are canceled "
       "(default 5)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.shutdown_grace_s = parse_seconds(v, n, 0);
       }},
      {"--cors-origins", "CHATBOT_CORS_ORIGINS", nullptr,
       "browser origins allowed to call the API: * or a comma list such as "
       "https://app.example.com,http://localhost:5173 (default none)",
       [](Config& c, const std::string& v, const std::string&) { c.cors_origins = v; }},
      {"--auth", "CHATBOT_AUTH", nullptr,
       "none | api_key: with api_key, POST /api/users needs the admin key and every other /api "
       "request a user's API key (default none)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.auth = one_of(v, n, {"none", "api_key"});
       }},
      {"--admin-key", "CHATBOT_ADMIN_KEY", nullptr,
       "api_key mode: the key that creates users, 32 to 256 characters of A-Z a-z 0-9 . _ ~ + / "
       "= - (never logged)",
       [](Config& c, const std::string& v, const std::string&) { c.admin_key = v; }},
      {"--metrics-token", "CHATBOT_METRICS_TOKEN", nullptr,
       "when set, GET /metrics needs Authorization: Bearer <token> (never logged)",
       [](Config& c, const std::string& v, const std::string&) { c.metrics_token = v; }},
      {"--event-retention", "CHATBOT_EVENT_RETENTION", nullptr,
       "delete the events of runs that ended longer ago than this: <n>s, <n>m, <n>h or <n>d, "
       "e.g. 30d (default: keep forever)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.event_retention_ms = parse_duration_ms(v, n);
       }},
      {"--webhook-url", "CHATBOT_WEBHOOK_URL", nullptr,
       "http:// or https:// URL that every run's ending is POSTed to, unless the run names its "
       "own \"webhook\" (needs --webhook-secret; default none)",
       [](Config& c, const std::string& v, const std::string& n) {
         std::string why;
         if (!app::parse_http_url(v, &why))
           throw ConfigError("invalid " + n + ": '" + v + "' " + why);
         c.webhook_url = v;
       }},
      {"--webhook-secret", "CHATBOT_WEBHOOK_SECRET", nullptr,
       "signs webhooks as Standard Webhooks do: whsec_<base64 key> (the key is the decoded "
       "bytes) or any other string of at least 16 characters (its bytes are the key); turns "
       "webhooks on (never logged)",
       [](Config& c, const std::string& v, const std::string& n) {
         const auto key = webhook_key(v);
         if (!key)
           throw ConfigError("invalid " + n + ": a whsec_ secret must be base64 after the prefix");
         if (key->size() < 16 || key->size() > 1024)
           throw ConfigError("invalid " + n + ": the key must be 16 to 1024 bytes (got " +
                             std::to_string(key->size()) + ")");
         for (unsigned char ch : v)
           if (ch <= 0x20 || ch == 0x7f)
             throw ConfigError("invalid " + n + ": no spaces or control characters");
         c.webhook_secret = v;
       }},
      {"--webhook-retry-base-ms", "CHATBOT_WEBHOOK_RETRY_BASE_MS", nullptr,
       "webhooks: delay before the first retry in ms, doubled for each further one (capped at "
       "5 minutes, ±25 % jitter; default 1000)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.webhook_retry_base_ms = parse_int(v, n, 1, 300000);
       }},
      {"--webhook-max-attempts", "CHATBOT_WEBHOOK_MAX_ATTEMPTS", nullptr,
       "webhooks: attempts before a delivery is given up (kept as failed; default 20)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.webhook_max_attempts = static_cast<int>(parse_int(v, n, 1, 1000));
       }},
      {"--webhook-timeout-s", "CHATBOT_WEBHOOK_TIMEOUT_S", nullptr,
       "webhooks: seconds an attempt may take to connect and get the response head (default 10)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.webhook_timeout_s = parse_seconds(v, n, 0.05);
       }},
      {"--instances", "CHATBOT_INSTANCES", nullptr,
       "single | multi: with multi, several instances share one PostgreSQL database (runs "
       "claimed with a lease, events and cancels across instances by LISTEN/NOTIFY; README: "
       "Running several instances) (default single)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.instances = one_of(v, n, {"single", "multi"});
       }},
      {"--run-lease", "CHATBOT_RUN_LEASE", nullptr,
       "multi: an instance that stops renewing its runs' lease (it died) has them finalized "
       "with error \"executor lost\" by another after this long: <n>s or <n>m (default 10s)",
       [](Config& c, const std::string& v, const std::string& n) {
         c.run_lease_ms = parse_duration_ms(v, n);
       }},
      {"--no-migrate", nullptr, nullptr, "serve: do not apply pending migrations at start",
       [](Config& c, const std::string&, const std::string&) { c.migrate = false; }, true},
  };
  return s;
}

}  // namespace

Config parse_config(const std::vector<std::string>& args) {
  Config c;
  std::size_t i = 0;
  if (!args.empty()) {
    const auto& a = args[0];
    if (a == "--help" || a == "-h" || a == "help") {
      c.command = "help";
      return c;
    }
    if (a == "--version" || a == "-V" || a == "version") {
      c.command = "version";
      return c;
    }
    if (a == "serve" || a == "migrate") {
      c.command = a;
      i = 1;
    }
  }
  if (c.command.empty()) {
    if (!args.empty() && args[0].rfind("-", 0) != 0)
      throw ConfigError("unknown command '" + args[0] + "' (expected serve or migrate)");
    c.command = "serve";
  }

  // Environment first, then flags override.
  for (const auto& s : settings()) {
    if (!s.env) continue;
    const char* v = std::getenv(s.env);
    std::string name = s.env;
    if ((!v || !*v) && s.alt_env) {
      v = std::getenv(s.alt_env);
      name = s.alt_env;
    }
    if (v && *v) s.apply(c, v, name);
  }
  for (; i < args.size(); ++i) {
    std::string flag = args[i];
    if (flag == "--help" || flag == "-h") {
      c.command = "help";
      return c;
    }
    std::optional<std::string> inline_value;
    if (auto eq = flag.find('='); eq != std::string::npos && flag.rfind("--", 0) == 0) {
      inline_value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    }
    const Setting* found = nullptr;
    for (const auto& s : settings())
      if (flag == s.flag) found = &s;
    if (!found) throw ConfigError("unknown option '" + flag + "' (see chatbot --help)");
    if (found->is_switch) {
      found->apply(c, "", flag);
      continue;
    }
    std::string value;
    if (inline_value) {
      value = *inline_value;
    } else {
      if (i + 1 >= args.size()) throw ConfigError("missing value for " + flag);
      value = args[++i];
    }
    found->apply(c, value, flag);
  }
  // A webhook nobody could verify is worse than none.
  if (c.command == "serve" && !c.webhook_url.empty() && c.webhook_secret.empty())
    throw ConfigError(
        "--webhook-url/CHATBOT_WEBHOOK_URL needs --webhook-secret/CHATBOT_WEBHOOK_SECRET "
        "to sign the webhooks");
  return c;
}

std::string help_text() {
  std::string out =
      "chatbot - the Chatbot SSE API server\n\n"
      "Usage:\n"
      "  chatbot serve   [options]   apply pending migrations, then serve HTTP\n"
      "  chatbot migrate [--database URL]   apply pending migrations and exit\n"
      "  chatbot --help | --version\n\n"
      "Options (each also read from the environment variable shown; flag > environment > "
      "default):\n";
  for (const auto& s : settings()) {
    std::string line = "  " + std::string(s.flag);
    if (!s.is_switch) line += " VALUE";
    if (s.env) {
      line += "  [" + std::string(s.env);
      if (s.alt_env) line += " or " + std::string(s.alt_env);
      line += "]";
    }
    out += line + "\n      " + s.help + "\n";
  }
  out += "\nA bad value is refused at start with one line naming the setting, exit status 2.\n";
  return out;
}

}  // namespace chat::infra
