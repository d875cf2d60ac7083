#include "router.hpp"

#include <array>

namespace chat::web {
namespace {

namespace http = boost::beast::http;

struct Route {
  http::verb method;
  std::string_view path;
  RouteId id;
};

constexpr std::array kRoutes{
    Route{http::verb::post, "/api/users", RouteId::create_user},
    Route{http::verb::get, "/api/users/{user_id}", RouteId::get_user},
    Route{http::verb::get, "/api/users/{user_id}/threads", RouteId::list_user_threads},
    Route{http::verb::post, "/api/threads", RouteId::create_thread},
    Route{http::verb::get, "/api/threads/{thread_id}", RouteId::get_thread},
    Route{http::verb::delete_, "/api/threads/{thread_id}", RouteId::delete_thread},
    Route{http::verb::get, "/api/threads/{thread_id}/runs", RouteId::list_thread_runs},
    Route{http::verb::post, "/api/threads/{thread_id}/cancel", RouteId::cancel_thread_runs},
    Route{http::verb::post, "/api/threads/{thread_id}/messages", RouteId::post_message},
    Route{http::verb::get, "/api/runs/{run_id}", RouteId::get_run},
    Route{http::verb::post, "/api/runs/{run_id}/cancel", RouteId::cancel_run},
    Route{http::verb::get, "/api/runs/{run_id}/events", RouteId::stream_events},
    Route{http::verb::get, "/healthz", RouteId::healthz},
    Route{http::verb::get, "/readyz", RouteId::readyz},
    Route{http::verb::get, "/metrics", RouteId::metrics},
    Route{http::verb::get, "/openapi.json", RouteId::openapi},
    Route{http::verb::get, "/docs", RouteId::docs},
    Route{http::verb::get, "/docs/{file}", RouteId::docs_asset},
    Route{http::verb::get, "/", RouteId::playground},
    Route{http::verb::get, "/assets/{file}", RouteId::asset},
};

std::vector<std::string_view> split(std::string_view p) {
  std::vector<std::string_view> out;
  if (!p.empty() && p.front() == '/') p.remove_prefix(1);
  while (true) {
    auto slash = p.find('/');
    out.push_back(p.substr(0, slash));
    if (slash == std::string_view::npos) break;
    p.remove_prefix(slash + 1);
  }
  return out;
}

bool match(std::string_view tmpl, std::string_view path, std::vector<std::string>* params) {
  auto t = split(tmpl);
  auto p = split(path);
  if (t.size() != p.size()) return false;
  std::vector<std::string> got;
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (!t[i].empty() && t[i].front() == '{') {
      if (p[i].empty()) return false;
      got.emplace_back(p[i]);
    } else if (t[i] != p[i]) {
      return false;
    }
  }
  if (params) *params = std::move(got);
  return true;
}

}  // namespace

RouteMatch match_route(http::verb method, std::string_view path) {
  RouteMatch m;
  for (const auto& r : kRoutes) {
    std::vector<std::string> params;
    if (!match(r.path, path, &params)) continue;
    if (r.method == method) {
      m.kind = RouteMatch::Kind::found;
      m.id = r.id;
      m.template_path = std::string(r.path);
      m.params = std::move(params);
      return m;
    }
    m.kind = RouteMatch::Kind::method_not_allowed;
    m.template_path = std::string(r.path);
    if (!m.allow.empty()) m.allow += ", ";
    m.allow += std::string(http::to_string(r.method));
  }
  return m;
}

std::vector<std::pair<std::string, std::string>> all_routes() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& r : kRoutes)
    out.emplace_back(std::string(http::to_string(r.method)), std::string(r.path));
  return out;
}

}  // namespace chat::web
