#include "problem.hpp"

#include <boost/json/serialize.hpp>

namespace chat::web {

Response json_response(http::status status, const boost::json::value& body) {
  Response res{status, 11};
  res.set(http::field::content_type, "application/json");
  res.body() = boost::json::serialize(body);
  res.prepare_payload();
  return res;
}

Response problem(http::status status, const std::string& detail, boost::json::object extra) {
  boost::json::object body;
  body["type"] = "about:blank";
  body["title"] = std::string(http::obsolete_reason(status));
  body["status"] = static_cast<int>(status);
  body["detail"] = detail;
  for (auto& kv : extra) body[kv.key()] = kv.value();
  Response res{status, 11};
  res.set(http::field::content_type, "application/problem+json");
  res.body() = boost::json::serialize(body);
  res.prepare_payload();
  return res;
}

Response validation_problem(const std::vector<std::string>& loc, const std::string& msg) {
  boost::json::array l;
  for (const auto& s : loc) l.emplace_back(s);
  boost::json::object err;
  err["loc"] = std::move(l);
  err["msg"] = msg;
  boost::json::object extra;
  extra["errors"] = boost::json::array{std::move(err)};
  return problem(http::status::unprocessable_entity, msg, std::move(extra));
}

Response error_response(const domain::Error& e) {
  switch (e.code) {
    case domain::ErrorCode::not_found:
      return problem(http::status::not_found, e.detail);
    case domain::ErrorCode::gone:
      return problem(http::status::gone, e.detail);
    case domain::ErrorCode::conflict: {
      boost::json::object extra;
      for (const auto& [k, v] : e.extra) extra[k] = v;
      return problem(http::status::conflict, e.detail, std::move(extra));
    }
    case domain::ErrorCode::invalid: {
      std::vector<std::string> loc;
      if (e.field == "Idempotency-Key")
        loc = {"header", "idempotency-key"};
      else if (e.field == "limit" || e.field == "before" || e.field == "status")
        loc = {"query", e.field};
      else
        loc = {"body", e.field};
      return validation_problem(loc, e.detail);
    }
  }
  return problem(http::status::internal_server_error, "internal error");
}

}  // namespace chat::web
