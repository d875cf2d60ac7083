#include "net.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <stdexcept>

#include <boost/asio/connect.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <netinet/in.h>
#include <sys/socket.h>

#include "util.hpp"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

namespace lg {

using asio::use_awaitable;

Target parse_url(const std::string& url) {
  std::string rest = url;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  if (auto slash = rest.find('/'); slash != std::string::npos) rest = rest.substr(0, slash);
  const auto colon = rest.rfind(':');
  Target t;
  t.host = colon == std::string::npos ? rest : rest.substr(0, colon);
  t.port = colon == std::string::npos
               ? 80
               : static_cast<std::uint16_t>(std::atoi(rest.c_str() + colon + 1));
  const std::string ip = t.host == "localhost" ? "127.0.0.1" : t.host;
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(ip, ec);
  if (ec || t.port == 0) throw std::invalid_argument("unsupported URL '" + url + "' (want http://IP:PORT)");
  t.endpoint = tcp::endpoint(addr, t.port);
  return t;
}

asio::awaitable<tcp::socket> connect_to(const tcp::endpoint& ep,
                                        const std::optional<asio::ip::address>& source) {
  tcp::socket s(co_await asio::this_coro::executor);
  s.open(ep.protocol());
  if (source) {
    // Let connect() pick the port, so the 4-tuple (not the port alone) must be unique.
    int one = 1;
    ::setsockopt(s.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    s.bind(tcp::endpoint(*source, 0));
  }
  co_await s.async_connect(ep, use_awaitable);
  s.set_option(tcp::no_delay(true));
  co_return s;
}

std::string Response::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return v;
  return {};
}

bool ChunkDecoder::feed(std::string_view& in, std::string& out) {
  while (!in.empty() && st_ != State::done) {
    switch (st_) {
      case State::size:
      case State::trailer: {
        const auto nl = in.find('\n');
        if (nl == std::string_view::npos) {
          line_.append(in);
          in = {};
          break;
        }
        line_.append(in.substr(0, nl));
        in.remove_prefix(nl + 1);
        if (!line_.empty() && line_.back() == '\r') line_.pop_back();
        if (st_ == State::trailer) {
          if (line_.empty()) st_ = State::done;
        } else {
          left_ = std::strtoul(line_.c_str(), nullptr, 16);
          st_ = left_ == 0 ? State::trailer : State::data;
        }
        line_.clear();
        break;
      }
      case State::data: {
        const auto n = std::min(left_, in.size());
        out.append(in.substr(0, n));
        in.remove_prefix(n);
        left_ -= n;
        if (left_ == 0) st_ = State::data_end;
        break;
      }
      case State::data_end:
        if (in.front() == '\n') st_ = State::size;
        in.remove_prefix(1);
        break;
      case State::done:
        break;
    }
  }
  return st_ == State::done;
}

namespace {

// Parses a response head (up to the blank line, excluded). Returns false if malformed.
bool parse_head(std::string_view head, Response& r) {
  auto eol = head.find("\r\n");
  std::string_view status_line = head.substr(0, eol);
  if (status_line.size() < 12 || status_line.substr(0, 5) != "HTTP/") return false;
  r.status = std::atoi(std::string(status_line.substr(9, 3)).c_str());
  std::size_t pos = eol == std::string_view::npos ? head.size() : eol + 2;
  while (pos < head.size()) {
    auto e = head.find("\r\n", pos);
    if (e == std::string_view::npos) e = head.size();
    std::string_view line = head.substr(pos, e - pos);
    pos = e + 2;
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name(line.substr(0, colon));
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\r')) value.remove_suffix(1);
    r.headers.emplace_back(std::move(name), std::string(value));
  }
  return true;
}

bool is_chunked(const Response& r) {
  std::string te = r.header("transfer-encoding");
  std::transform(te.begin(), te.end(), te.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return te.find("chunked") != std::string::npos;
}

}  // namespace

HttpClient::HttpClient(asio::any_io_executor ex, Target t, std::optional<asio::ip::address> source)
    : ex_(std::move(ex)), t_(std::move(t)), source_(std::move(source)) {}

void HttpClient::close() {
  if (sock_) {
    boost::system::error_code ec;
    sock_->close(ec);
  }
  sock_.reset();
  buf_.clear();
}

asio::awaitable<Response> HttpClient::request(std::string_view method, std::string_view target,
                                              std::string_view body,
                                              std::string_view extra_headers) {
  std::string raw;
  raw.reserve(160 + body.size());
  raw.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: ");
  raw.append(t_.host).append(":").append(std::to_string(t_.port)).append("\r\n");
  raw.append(extra_headers);
  if (!keep_alive) raw.append("Connection: close\r\n");
  if (!body.empty() || method == "POST") {
    raw.append("Content-Type: application/json\r\nContent-Length: ");
    raw.append(std::to_string(body.size())).append("\r\n");
  }
  raw.append("\r\n").append(body);
  bool reused = false;
  try {
    co_return co_await attempt(raw, reused);
  } catch (const std::exception&) {
    // A keep-alive connection the server had closed: one retry on a fresh connection.
    if (!reused) throw;
  }
  close();
  co_return co_await attempt(raw, reused);
}

asio::awaitable<Response> HttpClient::attempt(const std::string& raw, bool& reused) {
  reused = sock_.has_value();
  if (!sock_) {
    sock_.emplace(co_await connect_to(t_.endpoint, source_));
    buf_.clear();
  }
  tcp::socket& s = *sock_;
  try {
    co_await asio::async_write(s, asio::buffer(raw), use_awaitable);
    char tmp[16384];
    std::size_t head_end;
    while ((head_end = buf_.find("\r\n\r\n")) == std::string::npos) {
      const auto n = co_await s.async_read_some(asio::buffer(tmp), use_awaitable);
      buf_.append(tmp, n);
    }
    reused = false;  // an answer came: no retry from here on
    Response r;
    if (!parse_head(std::string_view(buf_).substr(0, head_end), r))
      throw std::runtime_error("malformed response head");
    buf_.erase(0, head_end + 4);
    bool close_after = false;
    {
      std::string c = r.header("connection");
      std::transform(c.begin(), c.end(), c.begin(),
                     [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
      close_after = c.find("close") != std::string::npos;
    }
    const std::string cl = r.header("content-length");
    if (is_chunked(r)) {
      ChunkDecoder dec;
      for (;;) {
        std::string_view in(buf_);
        const bool done = dec.feed(in, r.body);
        buf_.erase(0, buf_.size() - in.size());
        if (done) break;
        const auto n = co_await s.async_read_some(asio::buffer(tmp), use_awaitable);
        buf_.append(tmp, n);
      }
    } else if (!cl.empty() || r.status == 204 || r.status == 304) {
      const std::size_t len = cl.empty() ? 0 : std::strtoul(cl.c_str(), nullptr, 10);
      while (buf_.size() < len) {
        const auto n = co_await s.async_read_some(asio::buffer(tmp), use_awaitable);
        buf_.append(tmp, n);
      }
      r.body = buf_.substr(0, len);
      buf_.erase(0, len);
    } else {
      // Until the server closes.
      boost::system::error_code ec;
      for (;;) {
        const auto n = co_await s.async_read_some(asio::buffer(tmp),
                                                  asio::redirect_error(use_awaitable, ec));
        if (ec) break;
        buf_.append(tmp, n);
      }
      r.body = std::move(buf_);
      buf_.clear();
      close_after = true;
    }
    if (close_after || !keep_alive) close();
    co_return r;
  } catch (...) {
    close();
    throw;
  }
}

void SseParser::parse_block(std::string_view block, SseFrame& f) {
  std::size_t pos = 0;
  while (pos <= block.size()) {
    auto e = block.find('\n', pos);
    if (e == std::string_view::npos) e = block.size();
    std::string_view line = block.substr(pos, e - pos);
    pos = e + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (line.front() == ':') {
      line.remove_prefix(1);
      if (!line.empty() && line.front() == ' ') line.remove_prefix(1);
      if (f.comment.empty()) f.comment = line;
      continue;
    }
    const auto colon = line.find(':');
    std::string_view name = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (name == "id") {
      std::int64_t v = 0;
      for (char c : value) {
        if (c < '0' || c > '9') break;
        v = v * 10 + (c - '0');
      }
      f.id = v;
    } else if (name == "event") {
      f.event = value;
    } else if (name == "data") {
      if (f.data.empty()) f.data = value;
    }
  }
}

asio::awaitable<StreamEnd> read_stream(tcp::socket& sock, const Target& t,
                                       std::string_view target, std::int64_t last_event_id,
                                       StreamHandler& h) {
  StreamEnd end;
  std::string req;
  req.append("GET ").append(target).append(" HTTP/1.1\r\nHost: ").append(t.host);
  req.append(":").append(std::to_string(t.port)).append("\r\nAccept: text/event-stream\r\n");
  if (last_event_id >= 0) req.append("Last-Event-ID: ").append(std::to_string(last_event_id)).append("\r\n");
  req.append("\r\n");
  boost::system::error_code ec;
  co_await asio::async_write(sock, asio::buffer(req), asio::redirect_error(use_awaitable, ec));
  if (ec) {
    end.error = ec.message();
    co_return end;
  }
  sock.non_blocking(true);

  // One scratch buffer per thread: used only between a wake-up and the next wait.
  thread_local std::vector<char> scratch(1 << 16);
  std::string head;          // until the head is complete
  bool have_head = false;
  bool chunked = false;
  bool sse = false;          // 200: frames go to the parser; else the body is discarded
  ChunkDecoder dec;
  std::string decoded;
  SseParser parser;

  for (;;) {
    co_await sock.async_wait(tcp::socket::wait_read, asio::redirect_error(use_awaitable, ec));
    if (ec) {
      end.error = ec.message();
      co_return end;
    }
    for (;;) {
      const std::size_t n = sock.read_some(asio::buffer(scratch), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) break;
      if (ec) {
        if (ec == asio::error::eof) end.eof = true;
        else end.error = ec.message();
        co_return end;
      }
      const std::int64_t now = realtime_us();
      std::string_view in(scratch.data(), n);
      if (!have_head) {
        head.append(in);
        const auto he = head.find("\r\n\r\n");
        if (he == std::string::npos) continue;
        Response r;
        parse_head(std::string_view(head).substr(0, he), r);
        have_head = true;
        end.status = r.status;
        chunked = is_chunked(r);
        sse = r.status == 200;
        h.on_head(r.status, now);
        if (!sse) {
          // Not a stream (404, 204...): nothing more of interest.
          co_return end;
        }
        const std::string rest = head.substr(he + 4);
        head.clear();
        head.shrink_to_fit();
        in = rest;
        bool go;
        if (chunked) {
          decoded.clear();
          dec.feed(in, decoded);
          go = parser.feed(decoded, [&](const SseFrame& f) { return h.on_frame(f, now); });
        } else {
          go = parser.feed(in, [&](const SseFrame& f) { return h.on_frame(f, now); });
        }
        if (!go || dec.done()) {
          end.stopped = !go;
          end.eof = dec.done();
          co_return end;
        }
        continue;
      }
      bool go;
      if (chunked) {
        decoded.clear();
        dec.feed(in, decoded);
        go = parser.feed(decoded, [&](const SseFrame& f) { return h.on_frame(f, now); });
      } else {
        go = parser.feed(in, [&](const SseFrame& f) { return h.on_frame(f, now); });
      }
      if (!go) {
        end.stopped = true;
        co_return end;
      }
      if (dec.done()) {
        end.eof = true;
        co_return end;
      }
    }
  }
}

}  // namespace lg
