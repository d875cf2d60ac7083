// fake_openai: a scripted OpenAI-compatible upstream for the end-to-end tests of the `openai`
// engine. It answers every request but its control endpoints with the next scripted response,
// byte for byte as scripted (chunks, delays, status, headers, malformed data, abrupt close, no
// [DONE]), and records what it received and when each client closed its connection.
//
//   fake_openai [--host 127.0.0.1] [--port 0] [--tls-dir DIR]
//
// Prints one line when ready: `ready port=P` (+ ` tls_port=T cert=DIR/cert.pem` with --tls-dir:
// a TLS listener with a fresh self-signed certificate for "localhost", its PEM written there).
//
// Control endpoints (plain JSON):
//   POST /_control/script  {"responses":[R...], "default": R?}  replaces the queue of responses
//   POST /_control/reset   clears the queue and the record
//   GET  /_control/log     {"requests":[{conn,method,target,headers,body,t}],
//                           "connections":[{id,tls,opened,closed,closed_by}]}
//                          (times: CLOCK_MONOTONIC seconds, as Python's time.monotonic())
// A response R:
//   {"status":200, "reason":"OK", "headers":{...}, "head_delay_ms":0,
//    "json":{...} | "body":"..."            a whole body (Content-Length), or
//    "chunks":[ITEM...]                      a chunked body, one HTTP chunk per item,
//    "end":"normal"|"close"|"hang",          after the chunks: terminating chunk / abrupt close
//                                            without it / stay silent until the client leaves
//    "keep_alive":true}
//   ITEM: {"data": <JSON value or string>}   `data: <compact JSON or the string>\n\n`
//         {"raw": "text"} | {"hex": "e282"}  exact bytes
//         "delay_ms": N                      wait before the item (alone: only a pause)
//         "repeat": N                        the item N times
//         "interval_us": N                   with repeat: the n-th copy is due N*n µs after the
//                                            first (a rate; a late one is sent at once)
//         "stamp": true                      "{{t}}" in the bytes becomes the send time (µs)
//
// Single-threaded: one io_context, no locks.

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <deque>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

double mono() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct ConnRecord {
  int id = 0;
  bool tls = false;
  double opened = 0;
  std::optional<double> closed;
  std::string closed_by;
  int api_requests = 0;
};

struct State {
  std::deque<json::object> script;
  std::optional<json::object> fallback;
  json::array requests;
  std::vector<std::shared_ptr<ConnRecord>> conns;
  int next_conn = 0;
};

State g;

std::string from_hex(const std::string& h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) out += static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16));
  return out;
}

std::string item_bytes(const json::object& it) {
  if (auto d = it.find("data"); d != it.end()) {
    std::string payload = d->value().is_string() ? std::string(d->value().get_string())
                                                 : json::serialize(d->value());
    return "data: " + payload + "\n\n";
  }
  if (auto r = it.find("raw"); r != it.end()) return std::string(r->value().as_string());
  if (auto h = it.find("hex"); h != it.end()) return from_hex(std::string(h->value().as_string()));
  return {};
}

std::int64_t int_or(const json::object& o, const char* key, std::int64_t dflt) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_number() ? it->value().to_number<std::int64_t>() : dflt;
}

json::value log_json() {
  json::array conns;
  for (const auto& c : g.conns) {
    if (c->api_requests == 0) continue;
    json::object o;
    o["id"] = c->id;
    o["tls"] = c->tls;
    o["opened"] = c->opened;
    o["closed"] = c->closed ? json::value(*c->closed) : json::value(nullptr);
    o["closed_by"] = c->closed_by.empty() ? json::value(nullptr) : json::value(c->closed_by);
    o["requests"] = c->api_requests;
    conns.push_back(std::move(o));
  }
  return json::object{{"requests", g.requests}, {"connections", std::move(conns)}};
}

template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(Stream s, bool tls) : stream_(std::move(s)), wake_(stream_.get_executor()), delay_(stream_.get_executor()) {
    rec_ = std::make_shared<ConnRecord>();
    rec_->id = ++g.next_conn;
    rec_->tls = tls;
    rec_->opened = mono();
    g.conns.push_back(rec_);
  }

  asio::awaitable<void> start() {
    auto self = this->shared_from_this();
    if constexpr (!std::is_same_v<Stream, tcp::socket>) {
      error_code ec;
      co_await stream_.async_handshake(ssl::stream_base::server, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        mark_closed("handshake_failed");
        co_return;
      }
    }
    asio::co_spawn(stream_.get_executor(), self->writer(), asio::detached);
    co_await reader();
  }

 private:
  tcp::socket& sock() {
    if constexpr (std::is_same_v<Stream, tcp::socket>)
      return stream_;
    else
      return stream_.next_layer();
  }

  void mark_closed(const char* by) {
    if (!rec_->closed) {
      rec_->closed = mono();
      rec_->closed_by = by;
    }
  }

  void close_now(const char* by) {
    mark_closed(by);
    error_code ec;
    sock().shutdown(tcp::socket::shutdown_both, ec);
    sock().close(ec);
    peer_gone_ = true;
    wake_.cancel();
    delay_.cancel();
  }

  asio::awaitable<void> reader() {
    beast::flat_buffer buf;
    for (;;) {
      http::request_parser<http::string_body> p;
      p.body_limit(64u << 20);
      error_code ec;
      co_await http::async_read(stream_, buf, p, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec != http::error::end_of_stream && ec != asio::error::eof && !peer_gone_ && !rec_->closed &&
            ec != asio::error::operation_aborted && ec != asio::error::connection_reset && p.got_some()) {
          // Not HTTP (e.g. a TLS ClientHello on the plain port): answer as servers do, then close.
          static const std::string bad = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
          error_code wec;
          co_await asio::async_write(stream_, asio::buffer(bad), asio::redirect_error(asio::use_awaitable, wec));
          close_now("server");
          co_return;
        }
        mark_closed("client");
        peer_gone_ = true;
        wake_.cancel();
        delay_.cancel();
        co_return;
      }
      queue_.push_back(p.release());
      wake_.cancel();
    }
  }

  asio::awaitable<void> writer() {
    auto self = this->shared_from_this();
    for (;;) {
      while (queue_.empty() && !peer_gone_) {
        wake_.expires_after(std::chrono::hours(24));
        error_code ec;
        co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      if (peer_gone_ || queue_.empty()) co_return;
      auto req = std::move(queue_.front());
      queue_.pop_front();
      const bool keep = co_await handle(req);
      if (!keep || peer_gone_) {
        if (!peer_gone_) close_now("server");
        co_return;
      }
    }
  }

  asio::awaitable<bool> send(const std::string& bytes) {
    error_code ec;
    co_await asio::async_write(stream_, asio::buffer(bytes), asio::redirect_error(asio::use_awaitable, ec));
    co_return !ec && !peer_gone_;
  }

  asio::awaitable<bool> pause(std::int64_t ms) {
    if (ms <= 0) co_return !peer_gone_;
    delay_.expires_after(std::chrono::milliseconds(ms));
    error_code ec;
    co_await delay_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    co_return !peer_gone_;
  }

  asio::awaitable<bool> respond_json(unsigned status, const std::string& body) {
    std::string head = "HTTP/1.1 " + std::to_string(status) + (status == 200 ? " OK" : " Error") +
                       "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                       "\r\n\r\n";
    co_return co_await send(head + body);
  }

  // Returns whether the connection stays open.
  asio::awaitable<bool> handle(http::request<http::string_body>& req) {
    const std::string target(req.target());
    if (target.rfind("/_control/", 0) == 0) {
      if (target == "/_control/log") co_return co_await respond_json(200, json::serialize(log_json()));
      if (target == "/_control/reset") {
        g.script.clear();
        g.fallback.reset();
        g.requests.clear();
        // Closed connections go; open ones (a client's pooled connection) stay, uncounted.
        g.conns.erase(std::remove_if(g.conns.begin(), g.conns.end(),
                                     [](const auto& c) { return c->closed.has_value(); }),
                      g.conns.end());
        for (auto& c : g.conns) c->api_requests = 0;
        co_return co_await respond_json(200, "{\"ok\":true}");
      }
      if (target == "/_control/script") {
        error_code ec;
        json::value v = json::parse(req.body(), ec);
        if (ec || !v.is_object()) co_return co_await respond_json(400, "{\"error\":\"bad script\"}");
        g.script.clear();
        if (auto* rs = v.get_object().if_contains("responses"))
          for (auto& r : rs->as_array()) g.script.push_back(r.as_object());
        if (auto* d = v.get_object().if_contains("default"); d && d->is_object())
          g.fallback = d->as_object();
        else
          g.fallback.reset();
        co_return co_await respond_json(200, "{\"ok\":true}");
      }
      co_return co_await respond_json(404, "{\"error\":\"unknown control\"}");
    }

    ++rec_->api_requests;
    json::object headers;
    for (const auto& f : req) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      headers[name] = std::string(f.value());
    }
    g.requests.push_back(json::object{{"conn", rec_->id},
                                      {"method", std::string(req.method_string())},
                                      {"target", target},
                                      {"headers", std::move(headers)},
                                      {"body", req.body()},
                                      {"t", mono()}});

    json::object r;
    if (!g.script.empty()) {
      r = std::move(g.script.front());
      g.script.pop_front();
    } else if (g.fallback) {
      r = *g.fallback;
    } else {
      r = json::object{{"status", 500},
                       {"json", json::object{{"error", json::object{{"message", "fake_openai: nothing scripted"}}}}}};
    }

    const auto status = int_or(r, "status", 200);
    std::string reason = "OK";
    if (auto* rs = r.if_contains("reason")) reason = std::string(rs->as_string());
    else if (status != 200) reason = "Status";
    const bool keep_alive = !r.contains("keep_alive") || r.at("keep_alive").as_bool();
    std::string head = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
    bool has_ct = false;
    if (auto* hs = r.if_contains("headers"))
      for (const auto& kv : hs->as_object()) {
        std::string k(kv.key());
        if (beast::iequals(k, "content-type")) has_ct = true;
        head += k + ": " + std::string(kv.value().as_string()) + "\r\n";
      }
    if (!keep_alive) head += "Connection: close\r\n";

    if (!co_await pause(int_or(r, "head_delay_ms", 0))) co_return false;

    std::optional<std::string> whole;
    if (auto* j = r.if_contains("json")) whole = json::serialize(*j);
    if (auto* b = r.if_contains("body")) whole = std::string(b->as_string());
    if (whole) {
      if (!has_ct) head += std::string("Content-Type: ") + (r.contains("json") ? "application/json" : "text/plain") + "\r\n";
      head += "Content-Length: " + std::to_string(whole->size()) + "\r\n\r\n";
      if (!co_await send(head + *whole)) co_return false;
      co_return keep_alive;
    }

    if (!has_ct) head += "Content-Type: text/event-stream\r\n";
    head += "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";
    if (!co_await send(head)) co_return false;
    if (auto* cs = r.if_contains("chunks")) {
      for (const auto& iv : cs->as_array()) {
        const auto& it = iv.as_object();
        const auto repeat = int_or(it, "repeat", 1);
        const bool stamp = it.contains("stamp") && it.at("stamp").as_bool();
        const std::string bytes = item_bytes(it);
        const auto interval = std::chrono::microseconds(int_or(it, "interval_us", 0));
        const auto t0 = std::chrono::steady_clock::now();
        for (std::int64_t n = 0; n < repeat; ++n) {
          if (!co_await pause(int_or(it, "delay_ms", 0))) co_return false;
          if (interval.count() > 0 && n > 0) {  // on a schedule: a late chunk does not delay the next
            delay_.expires_at(t0 + n * interval);
            error_code ec;
            co_await delay_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            if (peer_gone_) co_return false;
          }
          if (bytes.empty()) continue;
          std::string b = bytes;
          if (stamp)
            for (auto pos = b.find("{{t}}"); pos != std::string::npos; pos = b.find("{{t}}", pos))
              b.replace(pos, 5, std::to_string(static_cast<long long>(mono() * 1e6)));
          char size[32];
          std::snprintf(size, sizeof size, "%zx\r\n", b.size());
          if (!co_await send(size + b + "\r\n")) co_return false;
        }
      }
    }
    std::string end = "normal";
    if (auto* e = r.if_contains("end")) end = std::string(e->as_string());
    if (end == "close") co_return false;
    if (end == "hang") {
      while (!peer_gone_) co_await pause(3600 * 1000);
      co_return false;
    }
    if (!co_await send("0\r\n\r\n")) co_return false;
    co_return keep_alive;
  }

  Stream stream_;
  asio::steady_timer wake_;
  asio::steady_timer delay_;
  std::deque<http::request<http::string_body>> queue_;
  bool peer_gone_ = false;
  std::shared_ptr<ConnRecord> rec_;
};

asio::awaitable<void> accept_loop(tcp::acceptor& acc, ssl::context* tls) {
  for (;;) {
    error_code ec;
    tcp::socket s = co_await acc.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) continue;
    s.set_option(tcp::no_delay(true), ec);
    auto ex = s.get_executor();
    if (tls) {
      auto sess = std::make_shared<Session<ssl::stream<tcp::socket>>>(ssl::stream<tcp::socket>(std::move(s), *tls), true);
      asio::co_spawn(ex, sess->start(), asio::detached);
    } else {
      auto sess = std::make_shared<Session<tcp::socket>>(std::move(s), false);
      asio::co_spawn(ex, sess->start(), asio::detached);
    }
  }
}

// A self-signed certificate for "localhost" (P-256), its PEM written to `cert_path`.
void make_tls_context(ssl::context& ctx, const std::string& cert_path) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (!key) throw std::runtime_error("EVP_EC_gen failed");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), static_cast<long>(std::time(nullptr)));
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600L * 24 * 30);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_subject_alt_name, "DNS:localhost"},
                            std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
    if (!ext) throw std::runtime_error("X509V3_EXT_conf_nid failed");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (!X509_sign(x, key, EVP_sha256())) throw std::runtime_error("X509_sign failed");
  FILE* f = std::fopen(cert_path.c_str(), "w");
  if (!f) throw std::runtime_error("cannot write " + cert_path);
  PEM_write_X509(f, x);
  std::fclose(f);
  SSL_CTX_use_certificate(ctx.native_handle(), x);
  SSL_CTX_use_PrivateKey(ctx.native_handle(), key);
  X509_free(x);
  EVP_PKEY_free(key);
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  unsigned short port = 0;
  std::string tls_dir;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--host") host = argv[i + 1];
    else if (a == "--port") port = static_cast<unsigned short>(std::stoi(argv[i + 1]));
    else if (a == "--tls-dir") tls_dir = argv[i + 1];
    else {
      std::cerr << "unknown option " << a << "\n";
      return 2;
    }
  }
  try {
    asio::io_context io;
    tcp::acceptor plain(io, tcp::endpoint(asio::ip::make_address(host), port));
    asio::co_spawn(io, accept_loop(plain, nullptr), asio::detached);
    std::string line = "ready port=" + std::to_string(plain.local_endpoint().port());
    std::optional<ssl::context> ctx;
    std::optional<tcp::acceptor> secure;
    if (!tls_dir.empty()) {
      ctx.emplace(ssl::context::tls_server);
      const std::string cert = tls_dir + "/cert.pem";
      make_tls_context(*ctx, cert);
      secure.emplace(io, tcp::endpoint(asio::ip::make_address(host), 0));
      asio::co_spawn(io, accept_loop(*secure, &*ctx), asio::detached);
      line += " tls_port=" + std::to_string(secure->local_endpoint().port()) + " cert=" + cert;
    }
    std::cout << line << std::endl;
    io.run();
  } catch (const std::exception& e) {
    std::cerr << "fake_openai: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
