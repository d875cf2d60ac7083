// The router: routes of API.md, path parameters, 404 and 405 with Allow.

#include "router.hpp"

#include <gtest/gtest.h>

#include <algorithm>

namespace chat::web {
namespace {

namespace http = boost::beast::http;
using Kind = RouteMatch::Kind;

TEST(Router, MatchesEachRouteWithItsParameters) {
  struct Case {
    http::verb method;
    const char* path;
    RouteId id;
    const char* tmpl;
    std::vector<std::string> params;
  };
  const std::vector<Case> cases{
      {http::verb::post, "/api/users", RouteId::create_user, "/api/users", {}},
      {http::verb::get, "/api/users/42", RouteId::get_user, "/api/users/{user_id}", {"42"}},
      {http::verb::get, "/api/users/42/threads", RouteId::list_user_threads,
       "/api/users/{user_id}/threads", {"42"}},
      {http::verb::post, "/api/threads", RouteId::create_thread, "/api/threads", {}},
      {http::verb::get, "/api/threads/abc", RouteId::get_thread, "/api/threads/{thread_id}",
       {"abc"}},
      {http::verb::delete_, "/api/threads/abc", RouteId::delete_thread,
       "/api/threads/{thread_id}", {"abc"}},
      {http::verb::get, "/api/threads/abc/runs", RouteId::list_thread_runs,
       "/api/threads/{thread_id}/runs", {"abc"}},
      {http::verb::post, "/api/threads/abc/messages", RouteId::post_message,
       "/api/threads/{thread_id}/messages", {"abc"}},
      {http::verb::get, "/api/runs/r-1", RouteId::get_run, "/api/runs/{run_id}", {"r-1"}},
      {http::verb::post, "/api/runs/r-1/cancel", RouteId::cancel_run,
       "/api/runs/{run_id}/cancel", {"r-1"}},
      {http::verb::get, "/api/runs/r-1/events", RouteId::stream_events,
       "/api/runs/{run_id}/events", {"r-1"}},
      {http::verb::get, "/healthz", RouteId::healthz, "/healthz", {}},
  };
  for (const auto& c : cases) {
    const auto m = match_route(c.method, c.path);
    EXPECT_EQ(m.kind, Kind::found) << c.path;
    EXPECT_EQ(m.id, c.id) << c.path;
    EXPECT_EQ(m.template_path, c.tmpl) << c.path;
    EXPECT_EQ(m.params, c.params) << c.path;
  }
}

TEST(Router, WrongMethodIs405WithEveryAllowedMethod) {
  auto m = match_route(http::verb::put, "/api/threads/abc");
  EXPECT_EQ(m.kind, Kind::method_not_allowed);
  EXPECT_EQ(m.allow, "GET, DELETE");
  EXPECT_EQ(m.template_path, "/api/threads/{thread_id}");

  m = match_route(http::verb::get, "/api/users");
  EXPECT_EQ(m.kind, Kind::method_not_allowed);
  EXPECT_EQ(m.allow, "POST");

  m = match_route(http::verb::get, "/api/runs/x/cancel");
  EXPECT_EQ(m.kind, Kind::method_not_allowed);
  EXPECT_EQ(m.allow, "POST");

  m = match_route(http::verb::post, "/api/runs/x/events");
  EXPECT_EQ(m.kind, Kind::method_not_allowed);
  EXPECT_EQ(m.allow, "GET");

  m = match_route(http::verb::delete_, "/api/users/1");
  EXPECT_EQ(m.kind, Kind::method_not_allowed);
  EXPECT_EQ(m.allow, "GET");
}

TEST(Router, UnknownPathsAre404) {
  for (const char* p : {"/api", "/api/", "/api/nope", "/api/users/", "/api/users/1/", "/api//1",
                        "/api/threads/a/b", "/api/threads/a/runs/x", "/api/runs//events",
                        "/healthz/x", "/api/users/1/threads/x"}) {
    const auto m = match_route(http::verb::get, p);
    EXPECT_EQ(m.kind, Kind::not_found) << "'" << p << "'";
    EXPECT_TRUE(m.allow.empty()) << p;
  }
  EXPECT_EQ(match_route(http::verb::post, "/api/users/").kind, Kind::not_found);
}

TEST(Router, AllRoutesListsEveryRouteOfTheContract) {
  const auto routes = all_routes();
  auto has = [&](const char* method, const char* path) {
    return std::find(routes.begin(), routes.end(),
                     std::pair<std::string, std::string>(method, path)) != routes.end();
  };
  EXPECT_TRUE(has("POST", "/api/users"));
  EXPECT_TRUE(has("GET", "/api/users/{user_id}"));
  EXPECT_TRUE(has("GET", "/api/users/{user_id}/threads"));
  EXPECT_TRUE(has("POST", "/api/threads"));
  EXPECT_TRUE(has("GET", "/api/threads/{thread_id}"));
  EXPECT_TRUE(has("DELETE", "/api/threads/{thread_id}"));
  EXPECT_TRUE(has("GET", "/api/threads/{thread_id}/runs"));
  EXPECT_TRUE(has("POST", "/api/threads/{thread_id}/messages"));
  EXPECT_TRUE(has("GET", "/api/runs/{run_id}"));
  EXPECT_TRUE(has("POST", "/api/runs/{run_id}/cancel"));
  EXPECT_TRUE(has("GET", "/api/runs/{run_id}/events"));
  EXPECT_TRUE(has("GET", "/healthz"));
  // Each listed route is matched by the router as itself.
  for (const auto& [method, path] : routes) {
    std::string concrete;
    for (std::size_t i = 0; i < path.size(); ++i) {
      if (path[i] == '{') {
        concrete += "x1";
        i = path.find('}', i);
      } else {
        concrete += path[i];
      }
    }
    const auto m = match_route(http::string_to_verb(method), concrete);
    EXPECT_EQ(m.kind, Kind::found) << method << " " << concrete;
    EXPECT_EQ(m.template_path, path);
  }
}

}  // namespace
}  // namespace chat::web
