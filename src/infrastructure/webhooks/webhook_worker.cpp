#include "webhook_worker.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <random>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "application/webhooks.hpp"
#include "infrastructure/crypto.hpp"

namespace chat::infra::webhooks {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using std::chrono::milliseconds;

std::chrono::milliseconds retry_delay(const WebhookWorkerOptions& o, std::int64_t attempts,
                                      double jitter) {
  const double base = static_cast<double>(o.retry_base.count());
  const double cap = static_cast<double>(o.retry_max.count());
  const double exp = std::min<double>(static_cast<double>(std::max<std::int64_t>(attempts, 1) - 1), 40);
  const double d = std::min(cap, base * std::pow(2.0, exp)) * (0.75 + 0.5 * jitter);
  return milliseconds(static_cast<std::int64_t>(std::max(1.0, d)));
}

namespace {

// Closes what an attempt waits on when its deadline passes. Shared with the timer's handler, so
// the handler never touches a finished attempt.
struct Deadline {
  tcp::resolver* resolver = nullptr;
  tcp::socket* socket = nullptr;
  bool fired = false;
  void fire() {
    fired = true;
    error_code ec;
    if (resolver) resolver->cancel();
    if (socket) socket->close(ec);
  }
};

bool is_ip_literal(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

struct WebhookWorker::Impl {
  Impl(asio::io_context& io_, app::Database& db_, app::Clock& clock_, app::Logger& log_,
       WebhookWorkerOptions o)
      : io(io_), db(db_), clock(clock_), log(log_), opts(std::move(o)),
        strand(asio::make_strand(io_)), timer(strand), tls_ctx(ssl::context::tls_client),
        rng(std::random_device{}()) {
    tls_ctx.set_default_verify_paths();
    tls_ctx.set_verify_mode(ssl::verify_peer);
    tls_ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                        ssl::context::no_tlsv1_1);
  }

  double jitter() {
    std::lock_guard lock(rng_mu);
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  }

  asio::io_context& io;
  app::Database& db;
  app::Clock& clock;
  app::Logger& log;
  WebhookWorkerOptions opts;
  asio::strand<asio::io_context::executor_type> strand;  // the loop and its timer
  asio::steady_timer timer;
  ssl::context tls_ctx;
  std::atomic<bool> woken{false};
  std::atomic<int> in_flight{0};
  std::mutex rng_mu;
  std::mt19937_64 rng;
};

WebhookWorker::WebhookWorker(asio::io_context& io, app::Database& db, app::Clock& clock,
                             app::Logger& log, WebhookWorkerOptions options)
    : impl_(std::make_unique<Impl>(io, db, clock, log, std::move(options))) {}

WebhookWorker::~WebhookWorker() = default;

void WebhookWorker::wake() {
  impl_->woken.store(true);
  // On the loop's strand: the cancel cannot fall between the loop's check and its wait.
  asio::post(impl_->strand, [impl = impl_.get()] { impl->timer.cancel(); });
}

void WebhookWorker::start() {
  asio::co_spawn(impl_->strand, run(), [this](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      impl_->log.error(std::string("webhooks: the delivery worker stopped: ") + ex.what());
    }
  });
}

app::Task<void> WebhookWorker::run() {
  auto& m = *impl_;
  // A lease outlasts an attempt, so a live attempt is never claimed twice.
  const auto lease = m.opts.timeout.count() + 5000;
  for (;;) {
    m.woken.store(false);
    const int room = m.opts.max_in_flight - m.in_flight.load();
    std::vector<domain::WebhookDelivery> due;
    std::optional<domain::Timestamp> next;
    std::string failure;
    if (room > 0) {
      try {
        const auto now = m.clock.now();
        due = co_await m.db.write([&](app::WriteTx& tx) {
          return tx.repos().webhooks.claim_due(now, now + lease, room);
        });
        if (due.empty())
          next = co_await m.db.read([](domain::Repositories& r) { return r.webhooks.next_due(); });
      } catch (const std::exception& e) {
        failure = e.what();
      }
    }
    if (!due.empty()) {
      for (auto& d : due) {
        m.in_flight.fetch_add(1);
        asio::co_spawn(asio::make_strand(m.io), deliver(std::move(d)), [this](std::exception_ptr e) {
          if (!e) return;
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            impl_->log.error(std::string("webhooks: delivery failed: ") + ex.what());
          }
        });
      }
      continue;  // more may be due
    }
    if (m.woken.load()) continue;
    if (!failure.empty()) {
      m.log.warn("webhooks: cannot read the outbox, trying again in 1 s: " + failure);
      m.timer.expires_after(std::chrono::seconds(1));
    } else if (room <= 0 || !next) {
      m.timer.expires_at(asio::steady_timer::time_point::max());  // until wake()
    } else {
      // Already due yet not claimed (another instance holds it): look again soon, not at once.
      const auto wait = *next - m.clock.now();
      m.timer.expires_after(milliseconds(wait > 0 ? wait : 100));
    }
    error_code ec;
    co_await m.timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

app::Task<void> WebhookWorker::deliver(domain::WebhookDelivery d) {
  auto& m = *impl_;
  std::optional<std::string> error;
  try {
    error = co_await attempt(d);
  } catch (const std::exception& e) {
    error = std::string("attempt failed: ") + e.what();
  }
  const auto now = m.clock.now();
  const bool give_up = error && d.attempts >= m.opts.max_attempts;
  const auto delay = retry_delay(m.opts, d.attempts, m.jitter());
  std::string target = d.url;
  if (auto u = app::parse_http_url(d.url)) target = u->host_header();  // no path: it may hold a token
  try {
    co_await m.db.write([&](app::WriteTx& tx) {
      if (!error)
        tx.repos().webhooks.remove(d.id);
      else
        tx.repos().webhooks.record_failure(d.id, now + delay.count(), *error, give_up);
    });
  } catch (const std::exception& e) {
    // The lease ends and the delivery is tried again (a delivered one, once more).
    m.log.warn("webhooks: delivery " + d.id + ": cannot record the outcome: " + e.what());
  }
  if (!error) {
    delivered_.fetch_add(1, std::memory_order_relaxed);
    m.log.info("webhooks: run " + d.run_id + " delivered to " + target + " (attempt " +
               std::to_string(d.attempts) + ")");
  } else {
    failed_attempts_.fetch_add(1, std::memory_order_relaxed);
    if (give_up) {
      given_up_.fetch_add(1, std::memory_order_relaxed);
      m.log.error("webhooks: run " + d.run_id + " to " + target + ": giving up after " +
                  std::to_string(d.attempts) + " attempts: " + *error + " (delivery " + d.id +
                  " kept as failed)");
    } else {
      m.log.warn("webhooks: run " + d.run_id + " to " + target + ": attempt " +
                 std::to_string(d.attempts) + " failed: " + *error + "; next in " +
                 std::to_string(delay.count()) + " ms");
    }
  }
  m.in_flight.fetch_sub(1);
  wake();
}

app::Task<std::optional<std::string>> WebhookWorker::attempt(const domain::WebhookDelivery& d) {
  auto& m = *impl_;
  std::string why;
  auto url = app::parse_http_url(d.url, &why);
  if (!url) co_return "invalid URL: " + why;
  const std::string where = url->host_header();
  const auto timeout_text = std::to_string(m.opts.timeout.count()) + " ms";

  auto ex = co_await asio::this_coro::executor;
  auto dl = std::make_shared<Deadline>();
  asio::steady_timer timer(ex);
  timer.expires_after(m.opts.timeout);
  timer.async_wait([dl](const error_code& ec) {
    if (!ec) dl->fire();
  });
  struct Disarm {  // whatever way the attempt ends, the deadline no longer applies
    asio::steady_timer& t;
    std::shared_ptr<Deadline> dl;
    ~Disarm() {
      dl->resolver = nullptr;
      dl->socket = nullptr;
      t.cancel();
    }
  } disarm{timer, dl};
  auto timed_out = [&] { return "no response from " + where + " within " + timeout_text; };

  error_code ec;
  tcp::resolver resolver(ex);
  dl->resolver = &resolver;
  auto endpoints = co_await resolver.async_resolve(url->host, std::to_string(url->port),
                                                   asio::redirect_error(asio::use_awaitable, ec));
  dl->resolver = nullptr;
  if (dl->fired) co_return timed_out();
  if (ec) co_return "cannot resolve host '" + url->host + "': " + ec.message();

  std::optional<tcp::socket> plain;
  std::optional<ssl::stream<tcp::socket>> tls;
  if (url->tls)
    tls.emplace(ex, m.tls_ctx);
  else
    plain.emplace(ex);
  tcp::socket& sock = tls ? tls->next_layer() : *plain;
  dl->socket = &sock;
  co_await asio::async_connect(sock, endpoints, asio::redirect_error(asio::use_awaitable, ec));
  if (dl->fired) co_return timed_out();
  if (ec == asio::error::connection_refused) co_return "connection to " + where + " refused";
  if (ec) co_return "cannot connect to " + where + ": " + ec.message();
  sock.set_option(tcp::no_delay(true), ec);

  const auto ts = m.clock.now() / 1000;
  http::request<http::string_body> req{http::verb::post, url->target, 11};
  req.set(http::field::host, url->host_header());
  req.set(http::field::user_agent, "chatbot-webhooks");
  req.set(http::field::content_type, "application/json");
  req.set("webhook-id", d.id);
  req.set("webhook-timestamp", std::to_string(ts));
  req.set("webhook-signature", webhook_signature(m.opts.key, d.id, ts, d.payload));
  req.keep_alive(false);
  req.body() = d.payload;
  req.prepare_payload();

  beast::flat_buffer buffer;
  http::response_parser<http::empty_body> parser;
  if (tls) {
    if (!is_ip_literal(url->host)) SSL_set_tlsext_host_name(tls->native_handle(), url->host.c_str());
    tls->set_verify_mode(ssl::verify_peer);
    tls->set_verify_callback(ssl::host_name_verification(url->host));
    co_await tls->async_handshake(ssl::stream_base::client,
                                  asio::redirect_error(asio::use_awaitable, ec));
    if (dl->fired) co_return timed_out();
    if (ec) {
      std::string reason = ec.message();
      const long verify = SSL_get_verify_result(tls->native_handle());
      if (verify != X509_V_OK) reason += " (" + std::string(X509_verify_cert_error_string(verify)) + ")";
      co_return "TLS handshake with " + where + " failed: " + reason;
    }
    co_await http::async_write(*tls, req, asio::redirect_error(asio::use_awaitable, ec));
    if (!ec)
      co_await http::async_read_header(*tls, buffer, parser,
                                       asio::redirect_error(asio::use_awaitable, ec));
  } else {
    co_await http::async_write(*plain, req, asio::redirect_error(asio::use_awaitable, ec));
    if (!ec)
      co_await http::async_read_header(*plain, buffer, parser,
                                       asio::redirect_error(asio::use_awaitable, ec));
  }
  dl->socket = nullptr;
  error_code ignored;
  sock.close(ignored);  // Connection: close; the body of the answer is not needed
  if (dl->fired) co_return timed_out();
  if (ec) co_return "no valid response from " + where + ": " + ec.message();
  const unsigned status = parser.get().result_int();
  if (status >= 200 && status < 300) co_return std::nullopt;
  std::string msg = "HTTP " + std::to_string(status);
  if (!parser.get().reason().empty()) msg += " " + std::string(parser.get().reason());
  co_return msg;
}

}  // namespace chat::infra::webhooks
