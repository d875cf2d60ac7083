#pragma once
/// Maps (method, path) to a route of API.md. Pure and thread-safe.

#include <ostream>  // Boost 1.81's string_view needs it declared first
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/http/verb.hpp>

namespace chat::web {

enum class RouteId {
  create_user,
  get_user,
  list_user_threads,
  create_thread,
  get_thread,
  delete_thread,
  list_thread_runs,
  cancel_thread_runs,
  post_message,
  get_run,
  cancel_run,
  stream_events,
  healthz,
  readyz,
  metrics,
  openapi,
  docs,         ///< Swagger UI page
  docs_asset,   ///< its scripts and styles
  playground,   ///< the playground page at /
  asset,        ///< the playground's scripts and styles
};

struct RouteMatch {
  enum class Kind { found, not_found, method_not_allowed } kind = Kind::not_found;
  RouteId id{};
  std::string template_path;        ///< e.g. /api/runs/{run_id} (for logs and metrics)
  std::vector<std::string> params;  ///< path parameters, in order
  std::string allow;                ///< for method_not_allowed: "GET, DELETE"
};

RouteMatch match_route(boost::beast::http::verb method, std::string_view path);

/// Every (method, template) pair, for documentation checks.
std::vector<std::pair<std::string, std::string>> all_routes();

}  // namespace chat::web
