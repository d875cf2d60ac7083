#include "handlers.hpp"

#include <cctype>
#include <charconv>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <spdlog/spdlog.h>

#include "embedded_assets.hpp"
#include "json_mapping.hpp"
#include "metrics.hpp"

namespace chat::web {
namespace {

namespace json = boost::json;
using domain::Result;

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_json_content_type(std::string_view ct) {
  auto semi = ct.find(';');
  std::string type = lower_ascii(ct.substr(0, semi));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  return type == "application/json" ||
         (type.rfind("application/", 0) == 0 && type.size() > 5 &&
          type.compare(type.size() - 5, 5, "+json") == 0);
}

// The first string or key longer than `max` bytes, with where it is; null when none.
const json::value* long_string(const json::value& v, std::size_t max, std::vector<std::string>& loc) {
  if (v.is_string()) return v.as_string().size() > max ? &v : nullptr;
  if (v.is_array()) {
    const auto& a = v.as_array();
    for (std::size_t i = 0; i < a.size(); ++i) {
      loc.push_back(std::to_string(i));
      if (auto* p = long_string(a[i], max, loc)) return p;
      loc.pop_back();
    }
  } else if (v.is_object()) {
    for (const auto& kv : v.as_object()) {
      if (kv.key().size() > max) {
        loc.emplace_back("(a key)");  // not echoed: it is the overlong string
        return &v;
      }
      loc.emplace_back(kv.key());
      if (auto* p = long_string(kv.value(), max, loc)) return p;
      loc.pop_back();
    }
  }
  return nullptr;
}

/// The JSON object body of a request, or a 422 response.
std::variant<json::object, Response> json_body(const HandlerContext& ctx, const Request& req) {
  if (!is_json_content_type(req[http::field::content_type]))
    return validation_problem({"header", "content-type"},
                              "Content-Type must be application/json");
  if (req.body().empty()) return validation_problem({"body"}, "a JSON object body is required");
  json::parse_options opts;
  opts.max_depth = ctx.max_json_depth;
  boost::system::error_code ec;
  json::value v = json::parse(req.body(), ec, {}, opts);
  if (ec == json::error::too_deep)
    return validation_problem({"body"}, "JSON nested deeper than the limit of " +
                                            std::to_string(ctx.max_json_depth) + " levels");
  if (ec) return validation_problem({"body"}, "malformed JSON: " + ec.message());
  if (!v.is_object()) return validation_problem({"body"}, "the body must be a JSON object");
  std::vector<std::string> loc{"body"};
  if (long_string(v, ctx.max_json_string_bytes, loc))
    return validation_problem(loc, "a JSON string longer than the limit of " +
                                       std::to_string(ctx.max_json_string_bytes) + " bytes");
  return std::move(v.as_object());
}

std::optional<std::int64_t> parse_int64(std::string_view s) {
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

/// The token of `Authorization: Bearer <token>`, or empty.
std::string bearer_token(const Request& req) {
  auto it = req.find(http::field::authorization);
  if (it == req.end()) return {};
  std::string_view v = it->value();
  if (v.size() < 7 || lower_ascii(v.substr(0, 7)) != "bearer ") return {};
  v.remove_prefix(7);
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  return std::string(v);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size() || a.empty()) return false;
  unsigned char d = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

// Keys this service issues: "cbk_" and 43 base64url characters; anything else is not looked up.
bool is_api_key_shaped(std::string_view t) {
  if (t.size() != 47 || t.substr(0, 4) != "cbk_") return false;
  for (char c : t.substr(4))
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  return true;
}

Response unauthorized(const std::string& detail) {
  Response r = problem(http::status::unauthorized, detail);
  r.set(http::field::www_authenticate, "Bearer");
  return r;
}

template <class T>
Response respond(const Result<T>& r, http::status ok_status) {
  if (!r) return error_response(r.error());
  return json_response(ok_status, to_json(r.value()));
}

app::Task<Response> create_user(HandlerContext& ctx, const Request& req) {
  auto body = json_body(ctx, req);
  if (auto* res = std::get_if<Response>(&body)) co_return std::move(*res);
  auto& obj = std::get<json::object>(body);
  auto* name = obj.if_contains("name");
  if (!name) co_return validation_problem({"body", "name"}, "field required");
  if (!name->is_string()) co_return validation_problem({"body", "name"}, "name must be a string");
  auto r = co_await ctx.service.create_user(std::string(name->as_string()));
  if (!r) co_return error_response(r.error());
  if (!r->created) {
    json::object extra{{"user_id", r->user.id}, {"name", r->user.name}};
    co_return problem(http::status::conflict, "User already exists", std::move(extra));
  }
  auto body_out = to_json(r->user);
  if (r->api_key) body_out.as_object()["api_key"] = *r->api_key;
  co_return json_response(http::status::created, body_out);
}

app::Task<Response> create_thread(HandlerContext& ctx, const Request& req,
                                  std::optional<std::int64_t> caller) {
  auto body = json_body(ctx, req);
  if (auto* res = std::get_if<Response>(&body)) co_return std::move(*res);
  auto& obj = std::get<json::object>(body);
  auto* uid = obj.if_contains("user_id");
  if (!uid) co_return validation_problem({"body", "user_id"}, "field required");
  std::int64_t user_id = 0;
  if (uid->is_int64()) {
    user_id = uid->as_int64();
  } else if (uid->is_uint64()) {
    co_return problem(http::status::not_found, "User not found");
  } else {
    co_return validation_problem({"body", "user_id"}, "user_id must be an integer");
  }
  // Another user's id is answered as if it did not exist.
  if (caller && *caller != user_id) co_return problem(http::status::not_found, "User not found");
  std::optional<std::string> title;
  if (auto* t = obj.if_contains("title"); t && !t->is_null()) {
    if (!t->is_string()) co_return validation_problem({"body", "title"}, "title must be a string");
    title = std::string(t->as_string());
  }
  co_return respond(co_await ctx.service.create_thread(user_id, std::move(title)),
                    http::status::created);
}

app::Task<Response> post_message(HandlerContext& ctx, const Request& req, const std::string& id) {
  // 404 for an unknown thread comes before body checks only when the id is malformed.
  if (!app::is_uuid(id)) co_return problem(http::status::not_found, "Thread not found");
  auto body = json_body(ctx, req);
  if (auto* res = std::get_if<Response>(&body)) co_return std::move(*res);
  auto& obj = std::get<json::object>(body);
  auto* content = obj.if_contains("content");
  if (!content) co_return validation_problem({"body", "content"}, "field required");
  if (!content->is_string())
    co_return validation_problem({"body", "content"}, "content must be a string");
  app::PostOptions options;
  if (auto* ms = obj.if_contains("multitask_strategy"); ms && !ms->is_null()) {
    std::optional<app::MultitaskStrategy> st;
    if (ms->is_string())
      st = app::parse_multitask_strategy(
          std::string_view(ms->as_string().data(), ms->as_string().size()));
    if (!st)
      co_return validation_problem({"body", "multitask_strategy"},
                                   "multitask_strategy must be one of enqueue, reject, interrupt");
    options.strategy = *st;
  }
  if (auto* wh = obj.if_contains("webhook"); wh && !wh->is_null()) {
    if (!wh->is_string())
      co_return validation_problem({"body", "webhook"},
                                   "webhook must be a string: an http:// or https:// URL");
    options.webhook = std::string(wh->as_string());
  }
  std::optional<std::string> key;
  if (auto it = req.find("Idempotency-Key"); it != req.end()) key = std::string(it->value());
  co_return respond(co_await ctx.service.post_message(id, std::string(content->as_string()),
                                                      std::move(key), options),
                    http::status::created);
}

app::Task<Response> list_user_threads(HandlerContext& ctx, std::int64_t user_id,
                                      std::string_view query) {
  int limit = 50;
  if (auto l = query_param(query, "limit")) {
    auto v = parse_int64(*l);
    if (!v || *v < 1 || *v > 200)
      co_return validation_problem({"query", "limit"}, "limit must be an integer from 1 to 200");
    limit = static_cast<int>(*v);
  }
  std::optional<std::string> before;
  if (auto b = query_param(query, "before"); b && !b->empty()) before = *b;
  auto r = co_await ctx.service.list_user_threads(user_id, std::move(before), limit);
  if (!r) co_return error_response(r.error());
  json::array threads;
  for (const auto& t : r->threads) threads.push_back(to_json(t));
  json::value next = nullptr;
  if (r->next) next = *r->next;
  co_return json_response(http::status::ok,
                          json::object{{"threads", std::move(threads)}, {"next", next}});
}

app::Task<Response> list_thread_runs(HandlerContext& ctx, const std::string& thread_id,
                                     std::string_view query) {
  app::RunFilter f;
  if (auto st = query_param(query, "status"); st && !st->empty()) {
    f.status = domain::parse_run_status(*st);
    if (!f.status)
      co_return validation_problem(
          {"query", "status"}, "status must be one of queued, running, done, error, canceled");
  }
  if (auto l = query_param(query, "limit")) {
    auto v = parse_int64(*l);
    if (!v || *v < 1 || *v > 200)
      co_return validation_problem({"query", "limit"}, "limit must be an integer from 1 to 200");
    f.limit = static_cast<int>(*v);
  }
  if (auto b = query_param(query, "before"); b && !b->empty()) f.before = *b;
  auto r = co_await ctx.service.list_thread_runs(thread_id, std::move(f));
  if (!r) co_return error_response(r.error());
  json::array runs;
  for (const auto& run : r->runs) runs.push_back(to_json(run));
  json::value next = nullptr;
  if (r->next) next = *r->next;
  co_return json_response(http::status::ok,
                          json::object{{"runs", std::move(runs)}, {"next", next}});
}

// 200 when the database answers a trivial query; 503 when it throws (the cause is logged).
app::Task<Response> readiness(HandlerContext& ctx) {
  if (!ctx.database) co_return problem(http::status::service_unavailable, "No database to check");
  std::optional<std::string> failure;
  try {
    co_await ctx.database->read([](domain::Repositories& r) { (void)r.users.find(0); });
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (failure) {
    spdlog::warn("readiness: the database does not answer: {}", *failure);
    co_return problem(http::status::service_unavailable, "The database does not answer");
  }
  co_return json_response(http::status::ok, json::object{{"status", "ok"}, {"database", "ok"}});
}

Response metrics_response(const HandlerContext& ctx) {
  if (!ctx.metrics) return problem(http::status::service_unavailable, "Metrics are not enabled");
  Response res{http::status::ok, 11};
  res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
  res.set(http::field::cache_control, "no-store");
  res.body() = ctx.metrics->render();
  res.prepare_payload();
  return res;
}

bool etag_matches(std::string_view if_none_match, std::string_view etag) {
  if (if_none_match == "*") return true;
  // A list of entity tags; weak ones (W/"...") compare by their opaque part.
  while (!if_none_match.empty()) {
    auto comma = if_none_match.find(',');
    auto tag = if_none_match.substr(0, comma);
    while (!tag.empty() && tag.front() == ' ') tag.remove_prefix(1);
    while (!tag.empty() && tag.back() == ' ') tag.remove_suffix(1);
    if (tag.rfind("W/", 0) == 0) tag.remove_prefix(2);
    if (tag == etag) return true;
    if (comma == std::string_view::npos) break;
    if_none_match.remove_prefix(comma + 1);
  }
  return false;
}

/// An embedded file (OpenAPI, Swagger UI, the playground), revalidated by ETag.
Response asset_response(const Request& req, std::string_view path) {
  const StaticAsset* a = find_asset(path);
  if (!a) return problem(http::status::not_found, "Not Found");
  const bool fresh = etag_matches(req[http::field::if_none_match], a->etag);
  Response res{fresh ? http::status::not_modified : http::status::ok, 11};
  res.set(http::field::etag, a->etag);
  // Always revalidate (cheap with the ETag), so a new build's assets are picked up at once.
  res.set(http::field::cache_control, "no-cache");
  if (fresh) return res;
  res.set(http::field::content_type, a->content_type);
  res.set("X-Content-Type-Options", "nosniff");
  if (!a->csp.empty()) {
    res.set("Content-Security-Policy", a->csp);
    res.set("Referrer-Policy", "no-referrer");
  }
  res.body().assign(a->body.data(), a->body.size());
  res.prepare_payload();
  return res;
}

}  // namespace

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size()) {
      unsigned v = 0;  // unsigned: from_chars would take "-1" as a signed number (found by fuzzing)
      auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (ec == std::errc() && p == s.data() + i + 3) {
        out.push_back(static_cast<char>(v));
        i += 2;
      } else {
        out.push_back('%');
      }
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string redact_target(std::string_view target) {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return std::string(target);
  std::string out(target.substr(0, q + 1));
  std::string_view rest = target.substr(q + 1);
  bool first = true;
  while (true) {
    const auto amp = rest.find('&');
    auto part = rest.substr(0, amp);
    if (!first) out += '&';
    first = false;
    const auto eq = part.find('=');
    if (percent_decode(part.substr(0, eq)) == "access_token")
      out += "access_token=***";
    else
      out += part;
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return out;
}

std::optional<std::string> query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    auto amp = query.find('&');
    auto part = query.substr(0, amp);
    auto eq = part.find('=');
    if (percent_decode(part.substr(0, eq)) == name)
      return eq == std::string_view::npos ? std::string() : percent_decode(part.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

std::int64_t parse_last_event_id(std::string_view v) {
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  auto n = parse_int64(v);
  if (!n || *n < 0) return 0;
  return *n;
}

namespace {

app::Task<Outcome> dispatch(HandlerContext& ctx, const Request& req,
                            boost::asio::any_io_executor ex) {
  const std::string_view target = req.target();
  const auto qpos = target.find('?');
  const std::string_view path = target.substr(0, qpos);
  const std::string_view query =
      qpos == std::string_view::npos ? std::string_view() : target.substr(qpos + 1);

  auto m = match_route(req.method(), path);
  Outcome out{Response{}, std::nullopt, m.template_path, {}};
  if (m.kind == RouteMatch::Kind::not_found) {
    out.route = "unmatched";
    out.response = problem(http::status::not_found, "Not Found");
    co_return out;
  }
  if (m.kind == RouteMatch::Kind::method_not_allowed) {
    out.response = problem(http::status::method_not_allowed, "Method Not Allowed");
    out.response.set(http::field::allow, m.allow);
    co_return out;
  }

  auto& svc = ctx.service;
  auto user_id_param = [&]() -> std::optional<std::int64_t> {
    auto v = parse_int64(m.params.at(0));
    if (!v || *v < 1) return std::nullopt;
    return v;
  };

  // Authentication and per-user scoping (api_key mode): anything of another user is 404,
  // exactly as if it did not exist.
  std::optional<std::int64_t> caller;
  if (m.id == RouteId::metrics && !ctx.auth.metrics_token.empty() &&
      !constant_time_equal(bearer_token(req), ctx.auth.metrics_token)) {
    out.response = unauthorized("A valid metrics token is required");
    co_return out;
  }
  if (ctx.auth.api_keys && path.rfind("/api/", 0) == 0) {
    if (m.id == RouteId::create_user) {
      if (!constant_time_equal(bearer_token(req), ctx.auth.admin_key)) {
        out.response = unauthorized("Creating users needs the admin key");
        co_return out;
      }
    } else {
      std::string token = bearer_token(req);
      // Browsers' EventSource sends no headers: the stream alone takes ?access_token=.
      if (token.empty() && m.id == RouteId::stream_events)
        token = query_param(query, "access_token").value_or("");
      // What the route names, and what it says when that is not the caller's.
      using OwnedBy = app::ChatService::OwnedBy;
      OwnedBy what = OwnedBy::nothing;
      const char* missing = nullptr;
      switch (m.id) {
        case RouteId::get_user:
        case RouteId::list_user_threads:
          missing = "User not found";
          break;
        case RouteId::get_thread:
        case RouteId::delete_thread:
        case RouteId::list_thread_runs:
        case RouteId::cancel_thread_runs:
        case RouteId::post_message:
          what = OwnedBy::thread;
          missing = "Thread not found";
          break;
        case RouteId::get_run:
        case RouteId::cancel_run:
        case RouteId::stream_events:
          what = OwnedBy::run;
          missing = "Run not found";
          break;
        default:
          break;
      }
      std::optional<std::int64_t> owner;
      if (is_api_key_shaped(token)) {
        std::string id;
        if (what != OwnedBy::nothing) id = m.params[0];
        auto access = co_await svc.access(token, what, std::move(id));
        caller = access.caller;
        if (what != OwnedBy::nothing) owner = access.owner;
        else if (missing) owner = user_id_param();
      }
      if (!caller) {
        out.response = unauthorized("A valid API key is required");
        co_return out;
      }
      if (missing && owner != caller) {
        out.response = problem(http::status::not_found, missing);
        co_return out;
      }
    }
  }

  switch (m.id) {
    case RouteId::healthz:
      out.response = json_response(http::status::ok, json::object{{"status", "ok"}});
      break;
    case RouteId::readyz:
      out.response = co_await readiness(ctx);
      break;
    case RouteId::metrics:
      out.response = metrics_response(ctx);
      break;
    case RouteId::openapi:
    case RouteId::docs:
    case RouteId::docs_asset:
    case RouteId::playground:
    case RouteId::asset:
      out.response = asset_response(req, path);
      break;
    case RouteId::create_user:
      out.response = co_await create_user(ctx, req);
      break;
    case RouteId::get_user: {
      // No co_await inside ?: — GCC 12 miscompiles it.
      auto id = user_id_param();
      if (!id) {
        out.response = problem(http::status::not_found, "User not found");
        break;
      }
      out.response = respond(co_await svc.get_user(*id), http::status::ok);
      break;
    }
    case RouteId::list_user_threads: {
      auto id = user_id_param();
      if (!id) {
        out.response = problem(http::status::not_found, "User not found");
        break;
      }
      out.response = co_await list_user_threads(ctx, *id, query);
      break;
    }
    case RouteId::create_thread:
      out.response = co_await create_thread(ctx, req, caller);
      break;
    case RouteId::get_thread:
      out.response = respond(co_await svc.get_thread(m.params[0]), http::status::ok);
      break;
    case RouteId::delete_thread: {
      auto r = co_await svc.delete_thread(m.params[0]);
      if (!r) {
        out.response = error_response(r.error());
      } else {
        out.response = Response{http::status::no_content, 11};
      }
      break;
    }
    case RouteId::list_thread_runs:
      out.response = co_await list_thread_runs(ctx, m.params[0], query);
      break;
    case RouteId::cancel_thread_runs: {
      auto r = co_await svc.cancel_thread_runs(m.params[0]);
      if (!r) {
        out.response = error_response(r.error());
      } else {
        json::array ids;
        for (const auto& id : r.value()) ids.emplace_back(id);
        out.response = json_response(http::status::ok, json::object{{"canceled", std::move(ids)}});
      }
      break;
    }
    case RouteId::post_message:
      out.response = co_await post_message(ctx, req, m.params[0]);
      break;
    case RouteId::get_run:
      out.response = respond(co_await svc.get_run(m.params[0]), http::status::ok);
      break;
    case RouteId::cancel_run: {
      auto r = co_await svc.cancel_run(m.params[0]);
      if (!r) {
        out.response = error_response(r.error());
      } else {
        out.response = json_response(
            http::status::ok,
            json::object{{"ok", true}, {"status", std::string(domain::to_string(r.value()))}});
      }
      break;
    }
    case RouteId::stream_events: {
      std::int64_t after = 0;
      // The header wins; an empty header counts as absent.
      if (auto it = req.find("Last-Event-ID"); it != req.end() && !it->value().empty())
        after = parse_last_event_id(it->value());
      else if (auto q = query_param(query, "last_event_id"))
        after = parse_last_event_id(*q);
      auto r = co_await svc.open_stream(m.params[0], after, ex);
      if (!r) {
        out.response = error_response(r.error());
      } else if (!r->stream) {
        out.response = Response{http::status::no_content, 11};
      } else {
        out.stream.emplace(std::move(*r->stream));
      }
      break;
    }
  }
  co_return out;
}

}  // namespace

app::Task<Outcome> handle_request(HandlerContext& ctx, const Request& req,
                                  boost::asio::any_io_executor ex) {
  const std::string_view origin = req[http::field::origin];
  if (ctx.cors.enabled() && req.method() == http::verb::options &&
      req.find(http::field::access_control_request_method) != req.end()) {
    Outcome pre{Response{}, std::nullopt, "preflight", {}};
    if (auto h = ctx.cors.preflight_headers(origin)) {
      pre.response = Response{http::status::no_content, 11};
      for (auto& [k, v] : *h) pre.response.set(k, v);
    } else {
      pre.response = problem(http::status::forbidden, "Origin not allowed");
    }
    co_return pre;
  }
  Outcome out = co_await dispatch(ctx, req, std::move(ex));
  if (ctx.cors.enabled()) {
    auto h = ctx.cors.response_headers(origin);
    for (const auto& [k, v] : h) out.response.set(k, v);
    if (out.stream) out.stream_headers = std::move(h);
  }
  co_return out;
}

}  // namespace chat::web
