#pragma once
/// The load generator's own minimal HTTP/1.1 client and SSE reader over raw TCP (Boost.Asio
/// coroutines): keep-alive requests with Content-Length or chunked responses, and event
/// streams with either a raw body (until the server closes) or a chunked one.
///
/// Streams read reactor-style (wait until readable, then drain the socket into one scratch
/// buffer per thread), so an idle stream holds no read buffer: 19,000 of them cost little here.
/// Everything runs on one thread's io_context; nothing here is thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace lg {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

/// http://HOST:PORT[/...] with a numeric IPv4 host or "localhost".
struct Target {
  std::string host;
  std::uint16_t port = 0;
  tcp::endpoint endpoint;
};
Target parse_url(const std::string& url);

/// Connects a socket, from `source` (port chosen at connect) when given. Throws on failure.
asio::awaitable<tcp::socket> connect_to(const tcp::endpoint& ep,
                                        const std::optional<asio::ip::address>& source);

struct Response {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  ///< names lowercased
  std::string body;
  std::string header(std::string_view name) const;
};

/// Decodes a chunked transfer coding incrementally.
class ChunkDecoder {
 public:
  /// Consumes bytes from `in` (the whole of it unless the last chunk ended), appending the
  /// decoded body to `out`. Returns true once the terminating chunk and trailer were read.
  bool feed(std::string_view& in, std::string& out);
  bool done() const { return st_ == State::done; }

 private:
  enum class State { size, data, data_end, trailer, done };
  State st_ = State::size;
  std::size_t left_ = 0;
  std::string line_;
};

/// One keep-alive connection for ordinary requests; reconnects when the server closed it.
class HttpClient {
 public:
  HttpClient(asio::any_io_executor ex, Target t, std::optional<asio::ip::address> source = {});
  /// `body` is sent as application/json when not empty (or when method is POST).
  asio::awaitable<Response> request(std::string_view method, std::string_view target,
                                    std::string_view body = {},
                                    std::string_view extra_headers = {});
  void close();
  /// false: every request says "Connection: close" and gets a fresh connection (for servers
  /// that serve one connection's requests one at a time, background work included).
  static inline bool keep_alive = true;

 private:
  asio::awaitable<Response> attempt(const std::string& raw, bool& sent_on_reused);
  asio::any_io_executor ex_;
  Target t_;
  std::optional<asio::ip::address> source_;
  std::optional<tcp::socket> sock_;
  std::string buf_;
};

/// One SSE frame. Views are valid during the callback only.
struct SseFrame {
  std::int64_t id = -1;           ///< -1: no id line
  std::string_view event;         ///< empty: a comment-only block
  std::string_view data;          ///< first data line
  std::string_view comment;       ///< first comment line, without ':' and one space
};

/// Splits an event-stream body into frames (blocks ended by an empty line).
class SseParser {
 public:
  /// Calls `on_frame(frame)` for each complete frame; returns false as soon as it does.
  template <class F>
  bool feed(std::string_view bytes, F&& on_frame);
  std::size_t buffered() const { return pending_.size(); }

 private:
  static void parse_block(std::string_view block, SseFrame& f);
  std::string pending_;
};

/// What a stream reader is told. Return false from on_frame to stop reading (and close).
class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  /// The response head arrived. `now_us`: CLOCK_REALTIME at receipt.
  virtual void on_head(int status, std::int64_t now_us) = 0;
  /// One frame; `recv_us`: CLOCK_REALTIME when the read that completed it returned.
  virtual bool on_frame(const SseFrame& f, std::int64_t recv_us) = 0;
};

struct StreamEnd {
  int status = 0;            ///< HTTP status (0: none arrived)
  bool stopped = false;      ///< the handler returned false
  bool eof = false;          ///< the server ended the stream
  std::string error;         ///< a socket error, if any
};

/// Sends `GET target` on `sock` (with Last-Event-ID when >= 0) and reads the stream until the
/// handler stops it, the server ends it, or an error. A non-200 response's body is discarded.
asio::awaitable<StreamEnd> read_stream(tcp::socket& sock, const Target& t,
                                       std::string_view target, std::int64_t last_event_id,
                                       StreamHandler& h);

// ------------------------------------------------------------------------------------------

template <class F>
bool SseParser::feed(std::string_view bytes, F&& on_frame) {
  std::string_view data;
  const bool own = !pending_.empty();
  if (own) {
    pending_.append(bytes);
    data = pending_;
  } else {
    data = bytes;
  }
  std::size_t pos = 0;
  bool go_on = true;
  while (go_on) {
    const auto end = data.find("\n\n", pos);
    if (end == std::string_view::npos) break;
    SseFrame f;
    parse_block(data.substr(pos, end - pos), f);
    pos = end + 2;
    go_on = on_frame(f);
  }
  if (own) {
    pending_.erase(0, pos);
  } else if (pos < data.size()) {
    pending_.assign(data.substr(pos));
  }
  if (!go_on) pending_.clear();
  return go_on;
}

}  // namespace lg
