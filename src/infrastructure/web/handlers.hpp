#pragma once
/// The pure request handler: one parsed request in, one outcome out (a response, or an event
/// stream for the session to write). No sockets here; the session owns I/O, limits and
/// timeouts.
///
/// Thread safety: call concurrently from any I/O coroutine; the executor argument is the
/// caller's strand (live events are delivered there).

#include <optional>

#include <boost/asio/any_io_executor.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "application/chat_service.hpp"
#include "cors.hpp"
#include "problem.hpp"
#include "router.hpp"

namespace chat::web {

using Request = http::request<http::string_body>;

struct Outcome {
  Response response;
  std::optional<app::RunEventStream> stream;  ///< set: write an SSE stream instead
  std::string route;                          ///< route template, for logs and metrics
  /// Headers for the stream's response head (CORS); already set on `response` otherwise.
  std::vector<std::pair<std::string, std::string>> stream_headers;
};

class Metrics;

/// Who may call what (CHATBOT_AUTH). Keys compared in constant time; never logged.
struct AuthPolicy {
  bool api_keys = false;      ///< api_key mode: /api needs a user's key (users: the admin key)
  std::string admin_key;      ///< for POST /api/users in api_key mode
  std::string metrics_token;  ///< non-empty: /metrics needs it as a Bearer token
};

struct HandlerContext {
  app::ChatService& service;
  app::Database* database = nullptr;  ///< for /readyz; null: not ready
  const Metrics* metrics = nullptr;   ///< for /metrics; null: 503
  std::size_t max_json_depth = 32;    ///< nesting of arrays and objects in a body; deeper: 422
  std::size_t max_json_string_bytes = 65536;  ///< any string or key in a body; longer: 422
  CorsPolicy cors;                    ///< default: no cross-origin access
  AuthPolicy auth;                    ///< default: none (the seed's open API)
};

app::Task<Outcome> handle_request(HandlerContext& ctx, const Request& req,
                                  boost::asio::any_io_executor ex);

/// Decodes %XX escapes and '+' (as a space) of a query-string component; a malformed escape is
/// kept as it is.
std::string percent_decode(std::string_view s);

/// The decoded value of the first parameter `name` of a query string (without the '?'); empty
/// for a parameter without '='; nothing when absent.
std::optional<std::string> query_param(std::string_view query, std::string_view name);
/// `target` with the value of any `access_token` query parameter replaced by "***" (for logs).
std::string redact_target(std::string_view target);

/// Parses a Last-Event-ID value: absent, empty, negative, non-numeric or overflowing → 0.
std::int64_t parse_last_event_id(std::string_view v);

}  // namespace chat::web
