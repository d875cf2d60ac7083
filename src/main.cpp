// The composition root: reads the configuration, builds the adapters, injects them, runs.

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <thread>

#include <sys/resource.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>
#include <spdlog/spdlog.h>

#include "application/chat_service.hpp"
#include "application/event_hub.hpp"
#include "application/run_executor.hpp"
#include "application/remote_events.hpp"
#include "application/run_scheduler.hpp"
#include "application/webhooks.hpp"
#include "infrastructure/config/config.hpp"
#include "infrastructure/db/db_stats.hpp"
#include "infrastructure/db/sqlite/sqlite_database.hpp"
#include "infrastructure/db/sqlite/sqlite_migrations.hpp"
#include "infrastructure/db/postgres/pg_database.hpp"
#include "infrastructure/db/postgres/pg_event_bus.hpp"
#include "infrastructure/db/postgres/pg_migrations.hpp"
#include "infrastructure/engines/demo_engine.hpp"
#include "infrastructure/engines/openai_engine.hpp"
#include "infrastructure/crypto.hpp"
#include "infrastructure/system.hpp"
#include "infrastructure/web/http_server.hpp"
#include "infrastructure/webhooks/webhook_worker.hpp"
#include "infrastructure/thread_name.hpp"

namespace {

using namespace chat;

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "chatbot: %s\n", msg.c_str());
  return 2;
}

// The adapter the URL names: PostgreSQL for postgresql:// and postgres://, else SQLite.
// `instance`: several instances (PostgreSQL only): this one's id, named in its NOTIFYs.
std::unique_ptr<app::Database> open_database(const infra::Config& cfg, bool migrate,
                                             const std::string& instance = {}) {
  if (infra::pg::is_postgres_url(cfg.database_url)) {
    infra::pg::PgOptions o;
    o.connect.url = cfg.database_url;
    o.migrate = migrate;
    o.notify_instance = instance;
    try {
      return std::make_unique<infra::pg::PgDatabase>(o);
    } catch (const std::exception& e) {
      throw infra::ConfigError("cannot open the database (--database/DATABASE_URL " +
                               infra::pg::redact_url(cfg.database_url) + "): " + e.what());
    }
  }
  auto path = infra::sqlite::sqlite_path_from_url(cfg.database_url);
  if (!path) throw infra::ConfigError("invalid database URL '" + cfg.database_url + "'");
  infra::sqlite::SqliteOptions o;
  o.path = *path;
  o.migrate = migrate;
  o.synchronous_full = cfg.sqlite_synchronous == "full";
  try {
    return std::make_unique<infra::sqlite::SqliteDatabase>(o);
  } catch (const std::exception& e) {
    throw infra::ConfigError("invalid database (--database/DATABASE_URL " + cfg.database_url +
                             "): " + e.what());
  }
}

// The connection limit the open-files limit allows: the soft limit is raised to the hard one,
// and a few descriptors stay for the database, the listener and the engine's connections, so
// that a flood of clients meets the 503 and never an accept() failing for lack of descriptors.
// `wanted` 0: as many connections as the open-files limit allows (raised to its hard limit).
std::size_t connection_limit(std::size_t wanted) {
  constexpr rlim_t kReserve = 64;
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return wanted;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  if (wanted == 0) {  // the default: every descriptor the process may open, less the reserve
    if (rl.rlim_cur == RLIM_INFINITY) return 1'000'000;
    return rl.rlim_cur > 2 * kReserve ? rl.rlim_cur - kReserve : rl.rlim_cur / 2;
  }
  if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= wanted + kReserve) return wanted;
  const std::size_t allowed = rl.rlim_cur > 2 * kReserve ? rl.rlim_cur - kReserve : rl.rlim_cur / 2;
  spdlog::warn("--max-connections {} lowered to {}: the open-files limit is {}", wanted, allowed,
               static_cast<unsigned long long>(rl.rlim_cur));
  return allowed;
}

std::chrono::milliseconds seconds_ms(double s) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000 + 0.5));
}

std::unique_ptr<app::Engine> make_engine(const infra::Config& cfg, boost::asio::io_context& io,
                                         app::Logger& log) {
  if (cfg.engine == "openai") {
    infra::engines::OpenAIOptions o;
    o.base_url = cfg.openai_base_url;
    o.api_key = cfg.openai_api_key;
    o.model = cfg.openai_model;
    o.system_prompt = cfg.openai_system_prompt;
    o.temperature = cfg.openai_temperature;
    o.connect_timeout = seconds_ms(cfg.openai_connect_timeout_s);
    o.first_byte_timeout = seconds_ms(cfg.openai_first_byte_timeout_s);
    o.idle_timeout = seconds_ms(cfg.openai_idle_timeout_s);
    o.retries = cfg.openai_retries;
    if (o.model.empty())
      throw infra::ConfigError(
          "missing --openai-model/CHATBOT_OPENAI_MODEL (required with --engine openai)");
    try {
      infra::engines::parse_base_url(o.base_url);
    } catch (const std::invalid_argument& e) {
      throw infra::ConfigError("invalid --openai-base-url/CHATBOT_OPENAI_BASE_URL '" +
                               o.base_url + "': " + e.what());
    }
    spdlog::info("openai engine: model {} at {} ({})", o.model, o.base_url,
                 o.api_key.empty() ? "no API key" : "API key set");
    return std::make_unique<infra::engines::OpenAIEngine>(io, std::move(o), log);
  }
  return std::make_unique<infra::engines::DemoEngine>(
      infra::engines::DemoOptions{std::chrono::milliseconds(cfg.demo_token_delay_ms),
                                  std::chrono::milliseconds(cfg.demo_tool_delay_ms),
                                  cfg.demo_token_timestamps});
}

// A secret a person types into a config file: long enough to resist guessing, and free of
// characters that break an Authorization header.
bool is_secret_shaped(const std::string& k) {
  if (k.size() < 32 || k.size() > 256) return false;
  for (unsigned char c : k)
    if (!std::isalnum(c) && c != '.' && c != '_' && c != '~' && c != '+' && c != '/' &&
        c != '=' && c != '-')
      return false;
  return true;
}

web::AuthPolicy auth_policy(const infra::Config& cfg) {
  web::AuthPolicy a;
  a.api_keys = cfg.auth == "api_key";
  if (a.api_keys) {
    if (cfg.admin_key.empty())
      throw infra::ConfigError(
          "missing --admin-key/CHATBOT_ADMIN_KEY (required with CHATBOT_AUTH=api_key)");
    if (!is_secret_shaped(cfg.admin_key))
      throw infra::ConfigError(
          "invalid --admin-key/CHATBOT_ADMIN_KEY (expected 32 to 256 characters of A-Z a-z 0-9 "
          ". _ ~ + / = -)");
    a.admin_key = cfg.admin_key;
  }
  if (!cfg.metrics_token.empty() && !is_secret_shaped(cfg.metrics_token))
    throw infra::ConfigError(
        "invalid --metrics-token/CHATBOT_METRICS_TOKEN (expected 32 to 256 characters of A-Z "
        "a-z 0-9 . _ ~ + / = -)");
  a.metrics_token = cfg.metrics_token;
  return a;
}

int serve(const infra::Config& cfg) {
  const auto auth = auth_policy(cfg);  // refused before anything opens
  const bool multi = cfg.instances == "multi";
  if (multi && !infra::pg::is_postgres_url(cfg.database_url))
    throw infra::ConfigError(
        "--instances/CHATBOT_INSTANCES multi needs a PostgreSQL --database/DATABASE_URL");
  infra::RandomIds ids;
  // Several instances: a new id at every start, so a restarted process never takes its dead
  // predecessor's leases for its own.
  const std::string instance_id = multi ? ids.uuid() : std::string();
  auto db = open_database(cfg, cfg.migrate, instance_id);

  boost::asio::io_context io;
  infra::SystemClock clock;
  infra::SpdLogger log;
  app::EventHub hub(cfg.subscriber_queue);
  auto engine_ptr = make_engine(cfg, io, log);
  app::Engine& engine = *engine_ptr;
  app::RunExecutor executor(*db, hub, engine, clock, ids, log);
  app::RunScheduler scheduler(io, executor, cfg.max_concurrent_runs);
  app::Limits limits;
  limits.max_content_bytes = cfg.max_content_bytes;
  limits.subscriber_queue = cfg.subscriber_queue;
  app::ChatService service(*db, hub, scheduler, clock, ids, limits);
  std::unique_ptr<app::RemoteEventFeed> feed;
  // Before the bus: its handler wakes the worker (set below when webhooks are on; the bus
  // thread starts after that and is stopped before either goes).
  std::unique_ptr<infra::webhooks::WebhookWorker> webhook_worker;
  std::unique_ptr<infra::pg::PgEventBus> bus;
  if (multi) {
    feed = std::make_unique<app::RemoteEventFeed>(*db, hub, io.get_executor(), log);
    infra::pg::ConnectOptions co;
    co.url = cfg.database_url;
    infra::pg::PgEventBus::Handlers h;
    h.events = [&feed](const std::vector<app::RemoteEventFeed::Change>& c) { feed->runs_changed(c); };
    h.catch_up = [&feed] { feed->catch_up_all(); };
    h.runs_queued = [&scheduler] { scheduler.wake(); };
    h.cancel = [&scheduler](const std::string& run_id) { scheduler.cancel_local(run_id); };
    h.webhooks_queued = [&webhook_worker] {
      if (webhook_worker) webhook_worker->wake();
    };
    bus = std::make_unique<infra::pg::PgEventBus>(co, instance_id, std::move(h));
    app::RunScheduler::ClusterOptions copts;
    copts.instance_id = instance_id;
    copts.lease = std::chrono::milliseconds(cfg.run_lease_ms);
    copts.bus = bus.get();
    copts.log = &log;
    scheduler.enable_cluster(copts);
  }
  infra::OpenSslKeys keys;
  if (auth.api_keys) service.set_key_service(keys);

  // Webhooks: on with a signing secret. The outbox rows are written by the core; the worker
  // sends them, woken by each commit that queues one (several instances: also by the others').
  std::unique_ptr<app::WebhookOutbox> outbox;
  if (!cfg.webhook_secret.empty()) {
    infra::webhooks::WebhookWorkerOptions wo;
    wo.key = infra::webhook_key(cfg.webhook_secret).value_or(cfg.webhook_secret);
    wo.retry_base = std::chrono::milliseconds(cfg.webhook_retry_base_ms);
    wo.max_attempts = cfg.webhook_max_attempts;
    wo.timeout = seconds_ms(cfg.webhook_timeout_s);
    webhook_worker = std::make_unique<infra::webhooks::WebhookWorker>(io, *db, clock, log, wo);
    std::optional<std::string> default_url;
    if (!cfg.webhook_url.empty()) default_url = cfg.webhook_url;
    outbox = std::make_unique<app::WebhookOutbox>(
        ids, default_url, [w = webhook_worker.get()] { w->wake(); });
    executor.set_webhooks(*outbox);
    service.set_webhooks(*outbox);
    spdlog::info("webhooks on ({}), signed; retries from {} ms, at most {} attempts",
                 default_url ? "CHATBOT_WEBHOOK_URL for runs without their own"
                             : "runs that name a webhook",
                 cfg.webhook_retry_base_ms, cfg.webhook_max_attempts);
  }

  web::ServerOptions sopts;
  sopts.max_body_bytes = cfg.max_body_bytes;
  sopts.max_header_bytes = cfg.max_header_bytes;
  sopts.max_header_count = cfg.max_header_count;
  sopts.max_url_bytes = cfg.max_url_bytes;
  sopts.max_json_depth = cfg.max_json_depth;
  // A message's content is a JSON string: the string limit never cuts below the content limit.
  sopts.max_json_string_bytes = std::max(cfg.max_json_string_bytes, cfg.max_content_bytes);
  sopts.max_connections = connection_limit(cfg.max_connections);
  sopts.idle_timeout = seconds_ms(cfg.idle_timeout_s);
  sopts.header_timeout = seconds_ms(cfg.header_timeout_s);
  sopts.body_timeout = seconds_ms(cfg.body_timeout_s);
  sopts.ping_interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(cfg.ping_interval_s));
  try {
    sopts.cors = web::CorsPolicy::parse(cfg.cors_origins);
  } catch (const std::invalid_argument& e) {
    throw infra::ConfigError(std::string("invalid --cors-origins/CHATBOT_CORS_ORIGINS: ") +
                             e.what());
  }
  sopts.auth = auth;
  web::Metrics metrics;
  web::add_core_collectors(metrics, hub, scheduler);
  if (auto* stats = dynamic_cast<const infra::DbStatsSource*>(db.get()))
    web::add_database_collector(metrics, *stats);
  if (webhook_worker)
    metrics.add_collector([w = webhook_worker.get()](web::MetricsWriter& mw) {
      mw.family("chatbot_webhook_deliveries_total", "counter",
                "Webhook attempts since start, by outcome: delivered (2xx), failed (retried "
                "later), given_up (the last attempt failed; the delivery is kept as failed).");
      mw.sample("chatbot_webhook_deliveries_total", {{"outcome", "delivered"}},
                static_cast<double>(w->delivered()));
      mw.sample("chatbot_webhook_deliveries_total", {{"outcome", "failed"}},
                static_cast<double>(w->failed_attempts() - w->given_up()));
      mw.sample("chatbot_webhook_deliveries_total", {{"outcome", "given_up"}},
                static_cast<double>(w->given_up()));
    });
  if (bus)
    metrics.add_collector([b = bus.get()](web::MetricsWriter& mw) {
      mw.family("chatbot_event_bus_connected", "gauge",
                "1 while this instance LISTENs to the others (several instances), else 0.");
      mw.sample("chatbot_event_bus_connected", {}, b->connected() ? 1 : 0);
      mw.family("chatbot_event_bus_reconnects_total", "counter",
                "Times the LISTEN connection was made again after it was lost.");
      mw.sample("chatbot_event_bus_reconnects_total", {}, static_cast<double>(b->reconnects()));
      mw.family("chatbot_event_bus_notifications_total", "counter",
                "Notifications received from PostgreSQL since start, by channel (this "
                "instance's own included).");
      for (std::size_t i = 0; i < infra::pg::PgEventBus::kChannels.size(); ++i)
        mw.sample("chatbot_event_bus_notifications_total",
                  {{"channel", infra::pg::PgEventBus::kChannels[i]}},
                  static_cast<double>(b->received(i)));
    });
  web::HttpServer server(io, service, log, sopts, {db.get(), &metrics});
  std::uint16_t port = 0;
  try {
    port = server.listen(cfg.host, cfg.port);
  } catch (const std::exception& e) {
    throw infra::ConfigError("cannot listen on --host/--port " + cfg.host + ":" +
                             std::to_string(cfg.port) + ": " + e.what());
  }

  // Runs a previous process left behind: `running` ones are finalized, `queued` ones resume.
  // Several instances: only lapsed leases are finalized (by the lease loop), never all runs.
  auto queued = boost::asio::co_spawn(io, executor.recover(multi), boost::asio::use_future);
  std::vector<std::thread> threads;
  const int n = cfg.io_threads > 0 ? cfg.io_threads
                                   : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  auto work = boost::asio::make_work_guard(io);
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&io, i] {
      chat::infra::name_this_thread("io-" + std::to_string(i + 1));
      io.run();
    });
  for (auto& [thread_id, run_id] : queued.get()) scheduler.enqueue(thread_id, run_id);
  if (multi) {
    bus->start();
    scheduler.start_cluster();
  }

  if (cfg.event_retention_ms > 0) {
    // Often enough that nothing outlives the retention by much, never more than once a second.
    const auto every = std::chrono::milliseconds(
        std::clamp<std::int64_t>(cfg.event_retention_ms / 4, 1000, 60000));
    boost::asio::co_spawn(io,
                          service.run_retention(std::chrono::milliseconds(cfg.event_retention_ms),
                                                every, log),
                          boost::asio::detached);
  }
  if (webhook_worker) webhook_worker->start();  // also sends what a previous process left
  server.start();
  spdlog::info("chatbot {} serving on http://{}:{} (database {}, engine {}{})", CHAT_VERSION,
               cfg.host, port, infra::pg::redact_url(cfg.database_url), cfg.engine,
               multi ? ", one of several instances: " + instance_id : std::string());

  // Shutdown: stop accepting, give running runs a grace period, then cancel them, end the
  // streams, flush the writer.
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  std::promise<void> stop_requested;
  signals.async_wait([&](const boost::system::error_code&, int sig) {
    spdlog::info("signal {}: shutting down", sig);
    stop_requested.set_value();
  });
  stop_requested.get_future().wait();
  server.stop();
  const auto grace = std::chrono::duration<double>(cfg.shutdown_grace_s);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (scheduler.running() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  scheduler.shutdown();
  const auto hard = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (scheduler.running() > 0 && std::chrono::steady_clock::now() < hard)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (multi) {
    // What did not end in time is finalized by another instance at its next lease tick.
    auto released = boost::asio::co_spawn(io, executor.release(instance_id), boost::asio::use_future);
    if (released.wait_for(std::chrono::seconds(2)) == std::future_status::ready) try {
        released.get();
      } catch (const std::exception& e) {
        spdlog::warn("could not release run leases: {}", e.what());
      }
    bus->stop();
  }
  hub.close_all();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  work.reset();
  io.stop();
  for (auto& t : threads) t.join();
  db.reset();  // drains the writer, stops the database threads
  spdlog::info("stopped");
  return 0;
}

int run(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  infra::Config cfg;
  try {
    cfg = infra::parse_config(args);
  } catch (const infra::ConfigError& e) {
    return usage_error(e.what());
  }
  if (cfg.command == "help") {
    std::cout << infra::help_text();
    return 0;
  }
  if (cfg.command == "version") {
    std::cout << "chatbot " << CHAT_VERSION << "\n";
    return 0;
  }
  infra::setup_logging(cfg.log_level, cfg.log_format);
  try {
    if (cfg.command == "migrate") {
      auto db = open_database(cfg, true);
      std::cout << "database is at schema version "
                << (infra::pg::is_postgres_url(cfg.database_url)
                        ? infra::pg::latest_migration()
                        : infra::sqlite::latest_migration())
                << "\n";
      return 0;
    }
    return serve(cfg);
  } catch (const infra::ConfigError& e) {
    return usage_error(e.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "chatbot: fatal: %s\n", e.what());
    return 1;
  }
}
