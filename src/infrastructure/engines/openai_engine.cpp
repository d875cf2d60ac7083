#include "openai_engine.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cerrno>
#include <cctype>
#include <charconv>
#include <cmath>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "sse_chunk_parser.hpp"

namespace chat::infra::engines {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

// ------------------------------------------------------------------------------ pure helpers

std::string Endpoint::host_header() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != (tls ? 443 : 80)) h += ":" + std::to_string(port);
  return h;
}

Endpoint parse_base_url(std::string_view url) {
  Endpoint e;
  const auto sep = url.find("://");
  if (sep == std::string_view::npos)
    throw std::invalid_argument("expected http://HOST[:PORT][/PATH] or https://...");
  std::string scheme(url.substr(0, sep));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (scheme == "https")
    e.tls = true;
  else if (scheme != "http")
    throw std::invalid_argument("unsupported scheme '" + scheme + "' (expected http or https)");
  std::string_view rest = url.substr(sep + 3);
  if (rest.find_first_of("?#") != std::string_view::npos)
    throw std::invalid_argument("a base URL takes no query or fragment");
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string path(slash == std::string_view::npos ? std::string_view{} : rest.substr(slash));
  if (authority.find('@') != std::string_view::npos)
    throw std::invalid_argument("a base URL takes no user info (set the API key instead)");
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) throw std::invalid_argument("unclosed '[' in the host");
    e.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') throw std::invalid_argument("unexpected text after ']'");
      port_text = after.substr(1);
    }
  } else {
    const auto colon = authority.rfind(':');
    e.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (e.host.empty()) throw std::invalid_argument("no host");
  for (char c : e.host)
    if (std::isspace(static_cast<unsigned char>(c)) || c == '/' || c == '\\')
      throw std::invalid_argument("invalid host '" + e.host + "'");
  e.port = e.tls ? 443 : 80;
  if (!port_text.empty()) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), v);
    if (ec != std::errc() || p != port_text.data() + port_text.size() || v == 0 || v > 65535)
      throw std::invalid_argument("invalid port '" + std::string(port_text) + "'");
    e.port = static_cast<std::uint16_t>(v);
  }
  while (!path.empty() && path.back() == '/') path.pop_back();
  for (char c : path)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      throw std::invalid_argument("invalid character in the path");
  e.path = path;
  return e;
}

std::string build_chat_request(const OpenAIOptions& o, const std::vector<domain::Message>& history) {
  json::object body;
  body["model"] = o.model;
  json::array messages;
  if (!o.system_prompt.empty())
    messages.push_back(json::object{{"role", "system"}, {"content", o.system_prompt}});
  for (const auto& m : history)
    messages.push_back(json::object{{"role", std::string(domain::to_string(m.role))},
                                    {"content", m.content}});
  body["messages"] = std::move(messages);
  body["stream"] = true;
  body["stream_options"] = json::object{{"include_usage", true}};
  if (o.temperature) body["temperature"] = *o.temperature;
  return json::serialize(body);
}

std::string redact(std::string text, const std::string& secret) {
  if (secret.empty()) return text;
  static const std::string kMark = "[redacted]";
  for (auto pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos + kMark.size()))
    text.replace(pos, secret.size(), kMark);
  return text;
}

namespace {

std::string ms_text(milliseconds d) { return std::to_string(d.count()) + " ms"; }

bool is_ip_literal(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// What went wrong in one attempt; `retryable` failures are tried again before the first token.
struct Failure {
  std::string message;
  bool retryable = false;
  std::optional<milliseconds> retry_after;
  bool stale = false;  ///< a reused connection the server had closed: retry at once, free
};

// One upstream connection. Created on the io_context (so it can serve any run); every
// operation on it is started from the using run's strand, where its completions also run.
struct Connection {
  Connection(asio::any_io_executor ex, bool use_tls, ssl::context& ctx) {
    if (use_tls)
      tls.emplace(ex, ctx);
    else
      plain.emplace(ex);
  }
  tcp::socket& socket() { return tls ? tls->next_layer() : *plain; }
  void close() {
    error_code ec;
    socket().shutdown(tcp::socket::shutdown_both, ec);
    socket().close(ec);
  }
  // Still open, and the server sent nothing unexpected (a close shows as a readable EOF).
  bool looks_alive() {
    if (!socket().is_open()) return false;
    char c;
    const auto n = ::recv(socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  std::optional<tcp::socket> plain;
  std::optional<ssl::stream<tcp::socket>> tls;
  beast::flat_buffer buffer;
  std::chrono::steady_clock::time_point idle_since;
  int uses = 0;
};

// Idle connections by host:port:tls. Thread-safe.
class Pool {
 public:
  static constexpr std::size_t kMaxIdlePerKey = 8;
  static constexpr auto kMaxIdle = std::chrono::seconds(30);

  std::unique_ptr<Connection> take(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = idle_.find(key);
    if (it == idle_.end()) return nullptr;
    auto& v = it->second;
    const auto now = std::chrono::steady_clock::now();
    while (!v.empty()) {
      auto c = std::move(v.back());
      v.pop_back();
      if (now - c->idle_since < kMaxIdle && c->looks_alive()) return c;
      c->close();
    }
    return nullptr;
  }

  void put(const std::string& key, std::unique_ptr<Connection> c) {
    c->idle_since = std::chrono::steady_clock::now();
    std::lock_guard lock(mu_);
    auto& v = idle_[key];
    if (v.size() >= kMaxIdlePerKey) {
      v.front()->close();
      v.erase(v.begin());
    }
    v.push_back(std::move(c));
  }

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::vector<std::unique_ptr<Connection>>> idle_;
};

// A time limit on the current phase of an attempt: when it expires, `on_expiry` closes what the
// attempt is waiting on. Lives on the run's strand, like the attempt.
// Re-arming only moves a deadline: the timer is re-set when the new deadline is earlier than
// the pending wait, else the pending wait, on waking early, waits again for the rest. A stream
// re-arms the idle limit on every read, and a timer operation per read cost more than the read.
class Watchdog {
 public:
  Watchdog(asio::any_io_executor ex, std::function<void()> on_expiry)
      : st_(std::make_shared<State>(ex, std::move(on_expiry))) {}
  ~Watchdog() {
    st_->armed = false;
    st_->timer.cancel();  // the pending handler (it holds st_) runs now and does nothing
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void arm(milliseconds d) {
    st_->fired = false;
    st_->armed = true;
    st_->deadline = steady_clock::now() + d;
    if (!st_->waiting || st_->timer.expiry() > st_->deadline) wait(st_);
  }
  /// A pending wait finds nothing armed when it wakes.
  void disarm() { st_->armed = false; }
  bool fired() const { return st_->fired; }

 private:
  struct State {
    State(asio::any_io_executor ex, std::function<void()> f)
        : timer(ex), on_expiry(std::move(f)) {}
    asio::steady_timer timer;
    std::function<void()> on_expiry;
    steady_clock::time_point deadline{};
    std::uint64_t gen = 0;  ///< the pending wait's; an older handler was superseded
    bool waiting = false;
    bool armed = false;
    bool fired = false;
  };

  static void wait(const std::shared_ptr<State>& st) {
    st->timer.expires_at(st->deadline);  // cancels a pending wait: its handler is superseded
    st->waiting = true;
    st->timer.async_wait([st, gen = ++st->gen](const error_code& ec) {
      if (gen != st->gen) return;
      st->waiting = false;
      if (ec || !st->armed) return;
      if (steady_clock::now() < st->deadline) {
        wait(st);  // re-armed since: wait for the rest
        return;
      }
      st->armed = false;
      st->fired = true;
      st->on_expiry();
    });
  }

  std::shared_ptr<State> st_;
};

std::optional<milliseconds> parse_retry_after(std::string_view v) {
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  if (v.empty()) return std::nullopt;
  double s = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), s);
  if (ec != std::errc() || p != v.data() + v.size() || !(s >= 0) || !std::isfinite(s))
    return std::nullopt;  // an HTTP date: use the back-off
  return milliseconds(static_cast<std::int64_t>(std::min(s, 86400.0) * 1000));
}

// The upstream's own words from an error body: OpenAI's error.message, or what other servers use.
std::string upstream_error_message(const std::string& body) {
  error_code ec;
  json::parse_options opts;
  opts.allow_invalid_utf8 = true;
  json::value v = json::parse(body, ec, {}, opts);
  if (!ec && v.is_object()) {
    const auto& o = v.get_object();
    for (const char* key : {"error", "detail", "message"}) {
      auto it = o.find(key);
      if (it == o.end()) continue;
      const auto& e = it->value();
      if (e.is_string()) return std::string(e.get_string());
      if (e.is_object())
        if (auto m = e.get_object().find("message"); m != e.get_object().end() && m->value().is_string())
          return std::string(m->value().get_string());
      if (!e.is_null()) return json::serialize(e);
    }
  }
  std::string text;
  for (char c : body.substr(0, 200)) text += (static_cast<unsigned char>(c) < 0x20) ? ' ' : c;
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

bool connection_lost(const error_code& ec) {
  return ec == asio::error::eof || ec == http::error::end_of_stream ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::ssl::error::stream_truncated || ec == http::error::partial_message;
}

}  // namespace

// -------------------------------------------------------------------------------------- engine

struct OpenAIEngine::Impl {
  Impl(asio::io_context& io_, OpenAIOptions o, app::Logger& l)
      : io(io_), opts(std::move(o)), endpoint(parse_base_url(opts.base_url)), log(l),
        tls_ctx(ssl::context::tls_client) {
    if (opts.model.empty()) throw std::invalid_argument("no model set");
    key = endpoint.host + ":" + std::to_string(endpoint.port) + (endpoint.tls ? ":tls" : "");
    target = endpoint.path + "/chat/completions";
    if (endpoint.tls) {
      tls_ctx.set_default_verify_paths();
      tls_ctx.set_verify_mode(ssl::verify_peer);
      tls_ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                          ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                          ssl::context::no_tlsv1_1);
    }
  }

  std::string where() const { return endpoint.host + ":" + std::to_string(endpoint.port); }

  // Per attempt: what the cancel hook and the watchdog close.
  struct Live {
    Connection* conn = nullptr;
    tcp::resolver* resolver = nullptr;
    void abort() {
      if (resolver) resolver->cancel();
      if (conn) conn->close();
    }
  };

  app::Task<std::unique_ptr<Connection>> connect(Live& live, Watchdog& wd,
                                                 std::optional<Failure>& failure) {
    auto ex = co_await asio::this_coro::executor;
    tcp::resolver resolver(ex);
    live.resolver = &resolver;
    wd.arm(opts.connect_timeout);
    auto timed_out = [&] {
      return Failure{"connecting to " + where() + " timed out after " +
                         ms_text(opts.connect_timeout) + " (connect time-out)",
                     true, std::nullopt, false};
    };
    error_code ec;
    auto results = co_await resolver.async_resolve(endpoint.host, std::to_string(endpoint.port),
                                                   asio::redirect_error(asio::use_awaitable, ec));
    live.resolver = nullptr;
    if (ec) {
      if (wd.fired()) {
        failure = timed_out();
      } else if (ec != asio::error::operation_aborted) {
        failure = Failure{"cannot resolve host '" + endpoint.host + "' (DNS failure: " +
                              ec.message() + ")",
                          ec == asio::error::host_not_found_try_again, std::nullopt, false};
      }
      co_return nullptr;
    }
    auto conn = std::make_unique<Connection>(io.get_executor(), endpoint.tls, tls_ctx);
    live.conn = conn.get();
    co_await asio::async_connect(conn->socket(), results, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      live.conn = nullptr;
      if (wd.fired())
        failure = timed_out();
      else if (ec == asio::error::connection_refused)
        failure = Failure{"connection to " + where() + " refused", true, std::nullopt, false};
      else if (ec != asio::error::operation_aborted)
        failure = Failure{"cannot connect to " + where() + ": " + ec.message(), true, std::nullopt,
                          false};
      co_return nullptr;
    }
    conn->socket().set_option(tcp::no_delay(true), ec);
    if (auto* tls = conn->tls ? &*conn->tls : nullptr) {
      if (!is_ip_literal(endpoint.host))
        SSL_set_tlsext_host_name(tls->native_handle(), endpoint.host.c_str());
      tls->set_verify_mode(ssl::verify_peer);
      tls->set_verify_callback(ssl::host_name_verification(endpoint.host));
      co_await tls->async_handshake(ssl::stream_base::client,
                                    asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        live.conn = nullptr;
        if (wd.fired()) {
          failure = timed_out();
        } else if (ec != asio::error::operation_aborted) {
          std::string why = ec.message();
          const long verify = SSL_get_verify_result(tls->native_handle());
          if (verify != X509_V_OK)
            why += " (" + std::string(X509_verify_cert_error_string(verify)) + ")";
          failure = Failure{"TLS handshake with " + where() + " failed: " + why, false,
                            std::nullopt, false};
        }
        co_return nullptr;
      }
    }
    wd.disarm();
    live.conn = nullptr;
    co_return conn;
  }

  // One request/response on `conn`. Returns a failure, or nothing on success or cancel.
  template <class Stream>
  app::Task<std::optional<Failure>> exchange(Stream& stream, Connection& conn,
                                             Watchdog& wd, const std::string& body,
                                             app::EngineSink& sink, bool& emitted, bool& reusable) {
    reusable = false;
    http::request<http::string_body> req{http::verb::post, target, 11};
    req.set(http::field::host, endpoint.host_header());
    req.set(http::field::user_agent, "chatbot-sse-api");
    req.set(http::field::content_type, "application/json");
    req.set(http::field::accept, "text/event-stream");
    if (!opts.api_key.empty()) req.set(http::field::authorization, "Bearer " + opts.api_key);
    req.keep_alive(true);
    req.body() = body;
    req.prepare_payload();

    const bool reused = conn.uses > 0;
    ++conn.uses;
    error_code ec;
    wd.arm(opts.first_byte_timeout);
    co_await http::async_write(stream, req, asio::redirect_error(asio::use_awaitable, ec));
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(boost::none);
    if (!ec)
      co_await http::async_read_header(stream, conn.buffer, parser,
                                       asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (sink.canceled()) co_return std::nullopt;
      if (wd.fired())
        co_return Failure{"no response from " + where() + " within " +
                              ms_text(opts.first_byte_timeout) + " (first-byte time-out)",
                          false, std::nullopt, false};
      if (reused && !parser.got_some() && connection_lost(ec))
        co_return Failure{"the reused connection was closed by the server", true, std::nullopt,
                          true};
      co_return Failure{"upstream connection to " + where() + " failed before a response: " +
                            ec.message(),
                        false, std::nullopt, false};
    }

    auto& res = parser.get();
    const unsigned status = res.result_int();
    char buf[16384];

    // Reads some of the body into `buf` under the idle time-out; returns bytes read.
    auto read_some = [&](error_code& rec) -> app::Task<std::size_t> {
      res.body().data = buf;
      res.body().size = sizeof buf;
      wd.arm(opts.idle_timeout);
      co_await http::async_read_some(stream, conn.buffer, parser,
                                     asio::redirect_error(asio::use_awaitable, rec));
      if (rec == http::error::need_buffer) rec = {};
      // A read brings many chunks, and the parser stops after each chunk header and body:
      // parse the rest of what is buffered here, not one trip through the scheduler a chunk.
      // (eager(true) would not do: it stops only when `buf` is full, holding back a slow
      // stream.) An incomplete element (need_more) waits for the next read.
      while (!rec && res.body().size > 0 && conn.buffer.size() > 0 && !parser.is_done()) {
        error_code pec;
        const std::size_t used = parser.put(conn.buffer.data(), pec);
        conn.buffer.consume(used);
        if (pec == http::error::need_more || pec == http::error::need_buffer) break;
        if (pec) rec = pec;
        if (used == 0) break;
      }
      co_return sizeof buf - res.body().size;
    };

    if (status != 200) {
      // The upstream's explanation: a bounded read of its body.
      std::string text;
      while (!parser.is_done() && text.size() < 65536) {
        const std::size_t n = co_await read_some(ec);
        text.append(buf, n);
        if (ec) break;
      }
      wd.disarm();
      if (sink.canceled()) co_return std::nullopt;
      reusable = !ec && parser.is_done() && parser.keep_alive();
      std::string msg = "upstream answered HTTP " + std::to_string(status);
      if (!res.reason().empty()) msg += " " + std::string(res.reason());
      const std::string detail = upstream_error_message(text);
      if (!detail.empty()) msg += ": " + detail;
      const bool retry = status == 429 || status >= 500;
      std::optional<milliseconds> after;
      if (auto it = res.find(http::field::retry_after); it != res.end())
        after = parse_retry_after(std::string_view(it->value().data(), it->value().size()));
      co_return Failure{std::move(msg), retry, after, false};
    }

    SseChunkParser sse;
    std::vector<StreamItem> items;
    bool saw_data = false;
    while (!parser.is_done()) {
      const std::size_t n = co_await read_some(ec);
      if (sink.canceled()) co_return std::nullopt;
      if (n > 0) {
        items.clear();
        // A read holds many chunks: what came before a bad one is still the reply's.
        std::optional<Failure> bad;
        try {
          sse.feed(std::string_view(buf, n), items);
        } catch (const ChunkError& e) {
          bad = Failure{"malformed chunk from upstream: " + std::string(e.what()), false,
                        std::nullopt, false};
        } catch (const StreamErrorReported& e) {
          bad = Failure{"upstream reported an error mid-stream: " + std::string(e.what()), false,
                        std::nullopt, false};
        }
        saw_data = true;
        for (auto& it : items) {
          if (sink.canceled()) co_return std::nullopt;
          switch (it.kind) {
            case StreamItem::Kind::text:
              emitted = true;
              if (!sink.try_token(it.text)) co_await sink.token(it.text);
              break;
            case StreamItem::Kind::tool_call:
              emitted = true;
              co_await sink.tool_start(it.text, it.input_json);
              co_await sink.tool_end(it.text, "{}");
              break;
            case StreamItem::Kind::usage:
              sink.set_usage(std::move(it.text));
              break;
            case StreamItem::Kind::done:
              break;
          }
        }
        if (sink.canceled()) co_return std::nullopt;
        if (bad) co_return bad;
      }
      if (ec) break;
      if (sse.done() && !parser.is_done()) {
        // [DONE] came: the body's end is due at once. Do not hold the run for it; a body that
        // does not end soon only costs the connection.
        wd.arm(std::min(opts.idle_timeout, milliseconds(500)));
        while (!parser.is_done() && !ec) {
          res.body().data = buf;
          res.body().size = sizeof buf;
          co_await http::async_read_some(stream, conn.buffer, parser,
                                         asio::redirect_error(asio::use_awaitable, ec));
          if (ec == http::error::need_buffer) ec = {};
        }
        wd.disarm();
        reusable = !ec && parser.keep_alive();
        co_return std::nullopt;
      }
    }
    wd.disarm();
    if (sink.canceled()) co_return std::nullopt;
    if (ec && !sse.done()) {
      if (wd.fired())
        co_return Failure{"upstream stream idle for more than " + ms_text(opts.idle_timeout) +
                              (saw_data ? "" : " before the first chunk") + " (idle time-out)",
                          false, std::nullopt, false};
      if (connection_lost(ec))
        co_return Failure{"upstream closed the connection mid-stream, without [DONE]", false,
                          std::nullopt, false};
      co_return Failure{"reading the upstream stream failed: " + ec.message(), false,
                        std::nullopt, false};
    }
    items.clear();
    std::optional<Failure> end_failure;
    try {
      sse.finish(items);  // throws unless [DONE] came
    } catch (const ChunkError&) {
      end_failure = Failure{"upstream stream ended without [DONE] (the reply may be incomplete)",
                            false, std::nullopt, false};
    } catch (const StreamErrorReported& e) {
      end_failure = Failure{"upstream reported an error mid-stream: " + std::string(e.what()),
                            false, std::nullopt, false};
    }
    if (end_failure) {
      for (auto& it : items)  // the partial reply's last characters, before the error
        if (it.kind == StreamItem::Kind::text) co_await sink.token(it.text);
      co_return end_failure;
    }
    reusable = !ec && parser.keep_alive();
    co_return std::nullopt;
  }

  app::Task<std::optional<Failure>> attempt(const std::string& body, app::EngineSink& sink,
                                            bool& emitted) {
    auto ex = co_await asio::this_coro::executor;
    Live live;
    Watchdog wd(ex, [&live] { live.abort(); });
    sink.on_cancel([&live] { live.abort(); });
    struct HookGuard {
      app::EngineSink& s;
      ~HookGuard() { s.on_cancel({}); }
    } guard{sink};

    for (;;) {
      std::unique_ptr<Connection> conn = pool.take(key);
      if (!conn) {
        std::optional<Failure> f;
        conn = co_await connect(live, wd, f);
        if (!conn) {
          if (!f && !sink.canceled())
            f = Failure{"connecting to " + where() + " was aborted", true, std::nullopt, false};
          co_return f;
        }
      }
      if (sink.canceled()) co_return std::nullopt;
      live.conn = conn.get();
      bool reusable = false;
      std::optional<Failure> f;
      if (conn->tls)
        f = co_await exchange(*conn->tls, *conn, wd, body, sink, emitted, reusable);
      else
        f = co_await exchange(*conn->plain, *conn, wd, body, sink, emitted, reusable);
      live.conn = nullptr;
      if (reusable && !sink.canceled())
        pool.put(key, std::move(conn));
      else
        conn->close();
      if (f && f->stale && !emitted) continue;  // a fresh connection, not a new attempt
      co_return f;
    }
  }

  asio::io_context& io;
  OpenAIOptions opts;
  Endpoint endpoint;
  app::Logger& log;
  ssl::context tls_ctx;
  std::string key;
  std::string target;
  Pool pool;
};

OpenAIEngine::OpenAIEngine(asio::io_context& io, OpenAIOptions options, app::Logger& log)
    : impl_(std::make_unique<Impl>(io, std::move(options), log)) {}

OpenAIEngine::~OpenAIEngine() = default;

app::Task<void> OpenAIEngine::run(const app::EngineRequest& request, app::EngineSink& sink) {
  Impl& im = *impl_;
  const std::string body = build_chat_request(im.opts, request.history);
  const int attempts = 1 + std::max(0, im.opts.retries);
  bool emitted = false;
  for (int n = 1;; ++n) {
    if (sink.canceled()) co_return;
    std::optional<Failure> f = co_await im.attempt(body, sink, emitted);
    if (!f || sink.canceled()) co_return;
    std::string msg = redact(f->message, im.opts.api_key);
    if (!f->retryable || emitted || n >= attempts) {
      if (n > 1) msg += " (after " + std::to_string(n) + " attempts)";
      throw app::EngineError(msg);
    }
    milliseconds delay = f->retry_after ? *f->retry_after : milliseconds(250 << (n - 1));
    delay = std::min(delay, im.opts.max_retry_delay);
    im.log.warn("run " + request.run_id + ": openai attempt " + std::to_string(n) + " failed (" +
                msg + "); retrying in " + ms_text(delay));
    co_await sink.sleep(delay);
  }
}

}  // namespace chat::infra::engines
