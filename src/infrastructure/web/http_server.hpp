#pragma once
/// The HTTP/1.1 server: an accept loop and one coroutine per connection on its own strand.
/// Each connection reads with a deadline (slow or idle clients are dropped), enforces header
/// and body limits, hands parsed requests to `handle_request`, and writes responses or an
/// event stream.
///
/// Ownership: owned by main; must outlive the io_context's run. Thread safety: start/stop from
/// any thread. Cancellation: `stop()` closes the acceptor; open streams end when the hub is
/// closed; idle connections end at their deadline or when the io_context stops.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "handlers.hpp"
#include "metrics.hpp"

namespace chat::web {

/// Limits and time-outs of every connection (README "Limits"). Over a size limit the client gets
/// a problem (413, 414, 431) and the connection is closed; past a time-out it is closed.
struct ServerOptions {
  std::size_t max_body_bytes = 1048576;
  std::size_t max_header_bytes = 16384;  ///< request line + header fields
  std::size_t max_header_count = 100;    ///< header fields
  std::size_t max_url_bytes = 8192;      ///< request target
  std::size_t max_connections = 10000;   ///< beyond it: 503 problem and close
  std::size_t max_json_depth = 32;       ///< request bodies (HandlerContext)
  std::size_t max_json_string_bytes = 65536;
  std::chrono::steady_clock::duration ping_interval = std::chrono::seconds(15);
  /// Time allowed for the first byte of a request (a new connection's, or the next one on a
  /// kept-alive connection).
  std::chrono::steady_clock::duration idle_timeout = std::chrono::seconds(60);
  /// From a request's first byte to the end of its head (slowloris).
  std::chrono::steady_clock::duration header_timeout = std::chrono::seconds(10);
  /// From the end of the head to the end of the body.
  std::chrono::steady_clock::duration body_timeout = std::chrono::seconds(30);
  std::chrono::steady_clock::duration write_timeout = std::chrono::seconds(30);  ///< a client that accepts no bytes for this long goes
  CorsPolicy cors;  ///< cross-origin access (default: none)
  AuthPolicy auth;  ///< authentication (default: none)
};

/// What the operations endpoints look at. Both must outlive the server.
struct ServerOperations {
  app::Database* database = nullptr;  ///< /readyz queries it; null: /readyz answers 503
  Metrics* metrics = nullptr;         ///< requests are recorded here; null: the server's own
};

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, app::ChatService& service, app::Logger& log,
             ServerOptions opts, ServerOperations ops = {});
  ~HttpServer();

  /// Binds and listens; throws on failure. Returns the bound port.
  std::uint16_t listen(const std::string& host, std::uint16_t port);
  /// Starts accepting.
  void start();
  /// Stops accepting new connections.
  void stop();

  std::size_t open_streams() const { return open_streams_.load(); }
  std::size_t open_connections() const { return open_connections_.load(); }
  /// Where requests are recorded (the one given in ServerOperations, or the server's own).
  Metrics& metrics() { return *metrics_; }

 private:
  Metrics own_metrics_;
  Metrics* metrics_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<std::size_t> open_streams_{0};
  std::atomic<std::size_t> open_connections_{0};
};

}  // namespace chat::web
