#include "http_server.hpp"
#include "sse_frame.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

#include "application/database.hpp"

namespace chat::web {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

struct HttpServer::Impl {
  Impl(asio::io_context& io_, app::ChatService& svc, app::Logger& lg, ServerOptions o,
       std::atomic<std::size_t>& streams, std::atomic<std::size_t>& connections,
       app::Database* db, Metrics& m)
      : io(io_),
        ctx{svc, db, &m, o.max_json_depth, o.max_json_string_bytes, o.cors, o.auth},
        log(lg),
        opts(o),
        acceptor(asio::make_strand(io_)),
        open_streams(streams),
        open_connections(connections),
        metrics(m) {}

  asio::io_context& io;
  HandlerContext ctx;
  app::Logger& log;
  ServerOptions opts;
  // On a strand: the accept loop and stop()'s close run on any io thread, never at once.
  tcp::acceptor acceptor;
  std::atomic<std::size_t>& open_streams;
  std::atomic<std::size_t>& open_connections;
  Metrics& metrics;

  asio::awaitable<void> accept_loop();
  void start_session(tcp::socket sock);
  /// Connections taken per accept wake-up at most (the rest wait for the next round).
  static constexpr int kAcceptBurst = 256;
  /// SO_SNDBUF of an event stream (Linux doubles it): ~1 s of a fast replay on a 100 ms link.
  static constexpr int kStreamSendBuffer = 128 * 1024;
  /// Over the connection limit: a 503 problem, then close.
  asio::awaitable<void> refuse(tcp::socket sock);
  asio::awaitable<void> session(beast::tcp_stream stream);

  /// What an event stream's coroutine keeps of the request that opened it.
  struct StreamInfo {
    std::string method;
    std::string route;
    std::string request_id;
    std::vector<std::pair<std::string, std::string>> headers;  ///< for the response head
    std::chrono::steady_clock::time_point started;
  };
  asio::awaitable<void> stream_session(beast::tcp_stream stream, app::RunEventStream events,
                                       StreamInfo info);

  /// The completion of a connection's coroutine: logs what ended it by an exception.
  auto log_failure(const char* what) {
    return [this, what](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        log.warn(what + std::string(ex.what()));
      }
    };
  }

  /// Counts a connection closed when the coroutine that owns it ends (return or exception),
  /// unless it handed the connection over to another.
  struct ConnectionCount {
    Impl& impl;
    bool handed_off = false;
    ~ConnectionCount() {
      if (handed_off) return;
      --impl.open_connections;
      impl.metrics.connection_closed();
    }
  };
};

namespace {

// A request id from the client is echoed if it is short and printable; else we make one.
std::string request_id_of(const Request& req, app::IdGenerator* ids) {
  if (auto it = req.find("X-Request-Id"); it != req.end()) {
    auto v = it->value();
    bool ok = !v.empty() && v.size() <= 200;
    for (char c : v)
      if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e) ok = false;
    if (ok) return std::string(v);
  }
  return ids ? ids->uuid() : std::string();
}

}  // namespace

// Thread-safe random UUIDs for request ids (the web layer's own; the core has its port).
class RequestIds final : public app::IdGenerator {
 public:
  std::string uuid() override;
};

std::string RequestIds::uuid() {
  thread_local std::uint64_t state = [] {
    return static_cast<std::uint64_t>(
               std::chrono::steady_clock::now().time_since_epoch().count()) ^
           reinterpret_cast<std::uintptr_t>(&state);
  }();
  auto next = [&] {
    state += 0x9E3779B97F4A7C15ull;
    std::uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  const std::uint64_t a = next(), b = next();
  char buf[37];
  std::snprintf(buf, sizeof buf, "%08x-%04x-4%03x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0xfff),
                static_cast<unsigned>(((b >> 48) & 0x3fff) | 0x8000),
                static_cast<unsigned long long>(b & 0xffffffffffffull));
  return buf;
}

HttpServer::HttpServer(asio::io_context& io, app::ChatService& service, app::Logger& log,
                       ServerOptions opts, ServerOperations ops)
    : metrics_(ops.metrics ? ops.metrics : &own_metrics_),
      impl_(std::make_unique<Impl>(io, service, log, opts, open_streams_, open_connections_,
                                   ops.database, *metrics_)) {}

HttpServer::~HttpServer() = default;

std::uint16_t HttpServer::listen(const std::string& host, std::uint16_t port) {
  tcp::resolver resolver(impl_->io);
  auto results = resolver.resolve(host, std::to_string(port),
                                  tcp::resolver::passive | tcp::resolver::numeric_service);
  tcp::endpoint ep = results.begin()->endpoint();
  auto& a = impl_->acceptor;
  a.open(ep.protocol());
  a.set_option(asio::socket_base::reuse_address(true));
  a.bind(ep);
  a.listen(asio::socket_base::max_listen_connections);
  return a.local_endpoint().port();
}

void HttpServer::start() {
  asio::co_spawn(impl_->acceptor.get_executor(), impl_->accept_loop(),
                 [this](std::exception_ptr e) {
                   if (!e) return;
                   try {
                     std::rethrow_exception(e);
                   } catch (const std::exception& ex) {
                     impl_->log.error(std::string("accept loop ended: ") + ex.what());
                   }
                 });
}

void HttpServer::stop() {
  asio::post(impl_->acceptor.get_executor(), [this] {
    boost::system::error_code ec;
    impl_->acceptor.close(ec);
  });
}

asio::awaitable<void> HttpServer::Impl::accept_loop() {
  // Non-blocking, so that each wake-up takes every connection the kernel has queued: one
  // accept per trip through the io_context would let a flood of connections (slowloris
  // reconnecting) keep the backlog full, and a well-behaved client would wait behind it.
  boost::system::error_code ec;
  acceptor.non_blocking(true, ec);
  for (;;) {
    tcp::socket sock(asio::make_strand(io));
    co_await acceptor.async_accept(sock, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      // Out of descriptors and the like: back off a little instead of spinning.
      log.warn("accept failed: " + ec.message());
      asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(50));
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    start_session(std::move(sock));
    for (int more = 0; more < kAcceptBurst; ++more) {
      tcp::socket next(asio::make_strand(io));
      acceptor.accept(next, ec);
      if (ec) break;  // would_block: the backlog is empty (anything else: the next round says)
      start_session(std::move(next));
    }
  }
}

void HttpServer::Impl::start_session(tcp::socket sock) {
  boost::system::error_code ec;
  sock.set_option(tcp::no_delay(true), ec);
  auto ex = sock.get_executor();
  // Counted here, before the session starts, so a burst cannot overshoot the limit.
  if (open_connections.load() >= opts.max_connections) {
    metrics.connection_refused();
    asio::co_spawn(ex, refuse(std::move(sock)), asio::detached);
    return;
  }
  ++open_connections;
  metrics.connection_opened();
  asio::co_spawn(ex, session(beast::tcp_stream(std::move(sock))),
                 log_failure("connection ended by error: "));
}

asio::awaitable<void> HttpServer::Impl::refuse(tcp::socket sock) {
  beast::tcp_stream stream(std::move(sock));
  Response res = problem(http::status::service_unavailable,
                         "too many connections (limit " + std::to_string(opts.max_connections) +
                             "); retry later");
  res.set(http::field::retry_after, "1");
  res.keep_alive(false);
  // The request is not read: answering at once keeps what a refused client costs small.
  stream.expires_after(std::chrono::seconds(2));
  boost::system::error_code ec;
  co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  stream.close();
}

asio::awaitable<void> HttpServer::Impl::session(beast::tcp_stream stream) {
  static RequestIds ids;
  // Whatever way the session ends (return or exception), the connection is counted closed,
  // unless an event stream took it over.
  ConnectionCount closed{*this};
  beast::flat_buffer buffer;
  auto ex = co_await asio::this_coro::executor;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(opts.max_header_bytes));
    parser.body_limit(opts.max_body_bytes);
    boost::system::error_code ec;
    if (buffer.size() == 0) {
      // Idle: no byte of the next request yet.
      stream.expires_after(opts.idle_timeout);
      const auto n = co_await stream.async_read_some(
          buffer.prepare(4096), asio::redirect_error(asio::use_awaitable, ec));
      if (ec == beast::error::timeout) metrics.connection_timed_out(Metrics::Deadline::idle);
      if (ec) break;
      buffer.commit(n);
    }
    // The whole head must arrive within the header deadline, however slowly it trickles in.
    stream.expires_after(opts.header_timeout);
    co_await http::async_read_header(stream, buffer, parser,
                                     asio::redirect_error(asio::use_awaitable, ec));
    const auto started = std::chrono::steady_clock::now();
    auto fail = [&](http::status st, const std::string& detail) -> asio::awaitable<void> {
      Response res = problem(st, detail);
      res.set("X-Request-Id", request_id_of(parser.get(), &ids));
      res.keep_alive(false);
      boost::system::error_code wec;
      stream.expires_after(opts.write_timeout);
      co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, wec));
      metrics.observe_request(http::to_string(parser.get().method()), "unparsed",
                              res.result_int(), std::chrono::steady_clock::now() - started);
    };
    if (ec == http::error::body_limit) {  // Content-Length over the limit, seen in the header
      co_await fail(http::status::payload_too_large,
                    "request body exceeds " + std::to_string(opts.max_body_bytes) + " bytes");
      break;
    }
    if (ec == http::error::header_limit) {
      // Beast parses the request line as soon as it is whole: without a target, the request
      // line alone is over the limit, i.e. the URL.
      if (parser.get().target().empty())
        co_await fail(http::status::uri_too_long,
                      "request target longer than " + std::to_string(opts.max_url_bytes) +
                          " bytes");
      else
        co_await fail(http::status::request_header_fields_too_large,
                      "request headers exceed " + std::to_string(opts.max_header_bytes) +
                          " bytes");
      break;
    }
    if (ec == beast::error::timeout) metrics.connection_timed_out(Metrics::Deadline::header);
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::eof || ec == asio::error::connection_reset ||
        ec == asio::error::operation_aborted)
      break;
    if (ec) {
      co_await fail(http::status::bad_request, "malformed HTTP request: " + ec.message());
      break;
    }
    auto& hdr = parser.get();
    if (hdr.target().size() > opts.max_url_bytes) {
      co_await fail(http::status::uri_too_long,
                    "request target longer than " + std::to_string(opts.max_url_bytes) + " bytes");
      break;
    }
    if (const auto fields = static_cast<std::size_t>(std::distance(hdr.begin(), hdr.end()));
        fields > opts.max_header_count) {
      co_await fail(http::status::request_header_fields_too_large,
                    "request has " + std::to_string(fields) + " header fields; the limit is " +
                        std::to_string(opts.max_header_count));
      break;
    }
    if (auto cl = parser.content_length(); cl && *cl > opts.max_body_bytes) {
      co_await fail(http::status::payload_too_large,
                    "request body exceeds " + std::to_string(opts.max_body_bytes) + " bytes");
      break;
    }
    if (beast::iequals(hdr[http::field::expect], "100-continue")) {
      http::response<http::empty_body> cont{http::status::continue_, 11};
      co_await http::async_write(stream, cont, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
    }
    if (!parser.is_done()) {
      stream.expires_after(opts.body_timeout);
      co_await http::async_read(stream, buffer, parser,
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec == beast::error::timeout) metrics.connection_timed_out(Metrics::Deadline::body);
      if (ec == http::error::body_limit) {
        co_await fail(http::status::payload_too_large,
                      "request body exceeds " + std::to_string(opts.max_body_bytes) + " bytes");
        break;
      }
      if (ec == beast::error::timeout || ec == asio::error::eof ||
          ec == http::error::end_of_stream || ec == asio::error::connection_reset)
        break;
      if (ec) {
        co_await fail(http::status::bad_request, "malformed HTTP request: " + ec.message());
        break;
      }
    }
    Request req = parser.release();
    const std::string request_id = request_id_of(req, &ids);

    Outcome out;
    try {
      out = co_await handle_request(ctx, req, ex);
    } catch (const app::StorageRefused& e) {
      // Retrying does not help until the operator acts: say what is wrong.
      log.error("request " + request_id + " " + std::string(req.method_string()) + " " +
                redact_target(req.target()) + " refused by the database: " + e.what());
      out.response =
          e.why == app::StorageRefused::Why::full
              ? problem(http::status::insufficient_storage,
                        "The database is full (disk or quota); nothing was stored")
              : problem(http::status::service_unavailable,
                        "The database is read-only; nothing was stored");
      out.route = "error";
    } catch (const std::exception& e) {
      log.error("request " + request_id + " " + std::string(req.method_string()) + " " +
                redact_target(req.target()) + " failed: " + e.what());
      out.response = problem(http::status::service_unavailable,
                             "The service could not complete the request; try again");
      out.route = "error";
    }

    if (out.stream) {
      spdlog::info("{} {} 200 {} stream-open {}", req.method_string(), out.route, request_id,
                   redact_target(req.target()));
      metrics.observe_request(http::to_string(req.method()), out.route, 200,
                              std::chrono::steady_clock::now() - started);
      ++open_streams;
      metrics.stream_opened();
      // A stream may stay open for hours: it goes on in a coroutine of its own that holds the
      // socket and the subscription only. This frame (the parser, the request, the response,
      // the read buffer) ends here.
      closed.handed_off = true;
      asio::co_spawn(ex,
                     stream_session(std::move(stream), std::move(*out.stream),
                                    StreamInfo{std::string(req.method_string()),
                                               std::move(out.route), request_id,
                                               std::move(out.stream_headers), started}),
                     log_failure("stream ended by error: "));
      co_return;
    }

    Response& res = out.response;
    res.set("X-Request-Id", request_id);
    res.keep_alive(req.keep_alive());
    if (!res.has_content_length() && res.result() != http::status::no_content &&
        res.result() != http::status::not_modified)
      res.prepare_payload();
    stream.expires_after(opts.write_timeout);
    co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
    spdlog::info("{} {} {} {} {}us", req.method_string(), out.route, res.result_int(), request_id,
                 us);
    metrics.observe_request(http::to_string(req.method()), out.route, res.result_int(),
                            std::chrono::microseconds(us));
    if (ec || !res.keep_alive()) break;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream.close();
}

asio::awaitable<void> HttpServer::Impl::stream_session(beast::tcp_stream stream,
                                                        app::RunEventStream events,
                                                        StreamInfo info) {
  // One frame for the whole stream (no nested writer coroutine): idle streams are most of a
  // busy server's connections, and each byte here is multiplied by them.
  ConnectionCount closed{*this};
  std::string buf =
      "HTTP/1.1 200 OK\r\n"
      "Content-Type: text/event-stream; charset=utf-8\r\n"
      "Cache-Control: no-cache\r\n"
      "X-Accel-Buffering: no\r\n"
      "Connection: close\r\n"
      "X-Request-Id: " +
      info.request_id + "\r\n";
  for (const auto& [k, v] : info.headers) buf += k + ": " + v + "\r\n";
  info.headers = {};
  buf +=
      "\r\n"
      "retry: 3000\n"
      ": connected\n\n";
  boost::system::error_code ec;
  // A fixed send buffer instead of the kernel's autotuning (up to 4 MiB on Linux): a client
  // that stops reading then holds at most this much kernel memory, and its queue overflows
  // (it is dropped and resumes with Last-Event-ID) after a bounded number of events.
  stream.socket().set_option(asio::socket_base::send_buffer_size(kStreamSendBuffer), ec);
  std::uint64_t frames = 0;  // events in `buf`
  std::uint64_t sent = 0;
  for (bool more = true; more;) {
    if (!buf.empty()) {
      stream.expires_after(opts.write_timeout);
      co_await asio::async_write(stream, asio::buffer(buf),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      // Not kept while waiting: an idle stream (most of them) then holds no buffer at all.
      std::string().swap(buf);
      if (frames) metrics.add_delivered(frames);
      sent += frames;
      frames = 0;
    }
    auto step = co_await events.next(opts.ping_interval);
    switch (step.kind) {
      case app::RunEventStream::StepKind::events:
        for (const auto& e : step.events) append_sse_frame(buf, *e);
        frames = step.events.size();
        break;
      case app::RunEventStream::StepKind::idle:
        buf = ": ping\n\n";
        break;
      case app::RunEventStream::StepKind::end:
        more = false;
        break;
      case app::RunEventStream::StepKind::overflow:
        metrics.slow_disconnect();
        spdlog::info("stream {}: subscriber too slow, disconnected at seq {}", info.request_id,
                     events.last_sent());
        more = false;
        break;
    }
  }
  // The stream's own line when it ends: same fields, its whole duration, what it carried.
  spdlog::info("{} {} 200 {} {}us stream-closed events={}", info.method, info.route,
               info.request_id,
               std::chrono::duration_cast<std::chrono::microseconds>(
                   std::chrono::steady_clock::now() - info.started)
                   .count(),
               sent);
  metrics.stream_closed();
  --open_streams;
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream.close();
}

}  // namespace chat::web
