// Last-Event-ID and query strings. The input is split at its first newline: the header value and
// the query string. Checked against reference implementations written here from API.md (not
// from the code under test): the resume point, percent-decoding, the parameter found; then the
// event stream of the existing run must start right after the resume point and end with `done`,
// and the threads list must answer 200 or a 4xx problem.
#include <charconv>

#include <spdlog/spdlog.h>

#include "fuzz_world.hpp"

namespace http = boost::beast::http;

namespace {

// API.md: absent, empty, negative or non-numeric → 0. Spaces around the number are allowed
// (a header value's optional whitespace).
std::int64_t reference_last_event_id(std::string_view v) {
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  if (v.empty()) return 0;
  std::int64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return 0;
    if (n > (INT64_MAX - (c - '0')) / 10) return 0;  // overflow → 0
    n = n * 10 + (c - '0');
  }
  return n;
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded: '+' is a space, %XX two hex digits, anything else literal.
std::string reference_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::optional<std::string> reference_param(std::string_view q, std::string_view name) {
  std::size_t start = 0;
  while (start <= q.size()) {
    auto end = q.find('&', start);
    if (end == std::string_view::npos) end = q.size();
    auto part = q.substr(start, end - start);
    auto eq = part.find('=');
    if (reference_decode(part.substr(0, eq)) == name)
      return eq == std::string_view::npos ? std::string() : reference_decode(part.substr(eq + 1));
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace chat;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto nl = in.find('\n');
  const std::string_view header = in.substr(0, nl);
  const std::string_view query = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);

  const auto after = web::parse_last_event_id(header);
  if (after != reference_last_event_id(header))
    fuzz::fail("Last-Event-ID '" + std::string(header) + "' parsed as " + std::to_string(after));
  for (const char* name : {"last_event_id", "limit", "before"}) {
    if (web::query_param(query, name) != reference_param(query, name))
      fuzz::fail(std::string("query parameter ") + name + " of '" + std::string(query) + "'");
  }
  if (web::percent_decode(query) != reference_decode(query))
    fuzz::fail("percent-decoding of '" + std::string(query) + "'");

  // Both through the real handlers; header and query as a client would send them (a header
  // value cannot hold CR, LF or NUL; a request target has no spaces or controls).
  const bool header_ok = header.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
  bool query_ok = true;
  for (unsigned char c : query)
    if (c <= 0x20 || c >= 0x7f || c == '#') query_ok = false;
  if (!query_ok) return 0;
  fuzz::World world;
  web::Request req{http::verb::get, "/api/runs/" + world.run_id() + "/events?" + std::string(query), 11};
  std::int64_t expected = 0;
  if (header_ok && !header.empty()) {
    req.set("Last-Event-ID", header);
    // Beast keeps the value as given; the handler trims the spaces it allows.
    expected = reference_last_event_id(req["Last-Event-ID"]);
    if (req["Last-Event-ID"].empty()) {
      auto q = reference_param(query, "last_event_id");
      expected = q ? reference_last_event_id(*q) : 0;
    }
  } else {
    auto q = reference_param(query, "last_event_id");
    expected = q ? reference_last_event_id(*q) : 0;
  }
  const auto h = fuzz::handle(world, req);
  if (h.streamed) {
    if (!h.seqs.empty() && h.seqs.front() != expected + 1)
      fuzz::fail("stream resumed at " + std::to_string(h.seqs.front()) + ", expected " +
                 std::to_string(expected + 1));
  } else if (h.status != 204) {
    fuzz::fail("the event stream answered " + std::to_string(h.status));
  }
  web::Request list{http::verb::get, "/api/users/1/threads?" + std::string(query), 11};
  const auto l = fuzz::handle(world, list);
  if (l.status != 200 && l.status != 422 && l.status != 404)
    fuzz::fail("threads list answered " + std::to_string(l.status));
  world.settle();
  return 0;
}
