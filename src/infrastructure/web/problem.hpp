#pragma once
/// RFC 9457 problem responses: the one place where outcomes become HTTP statuses.

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/object.hpp>

#include "domain/errors.hpp"

namespace chat::web {

namespace http = boost::beast::http;
using Response = http::response<http::string_body>;

/// A problem+json response; `extra` members are added to the body.
Response problem(http::status status, const std::string& detail,
                 boost::json::object extra = {});
/// 422 with `errors: [{loc, msg}]`.
Response validation_problem(const std::vector<std::string>& loc, const std::string& msg);
/// Maps a use-case error: not_found → 404, conflict → 409, invalid → 422 (loc from `field`).
Response error_response(const domain::Error& e);
/// A JSON response with `body` serialized compactly.
Response json_response(http::status status, const boost::json::value& body);

}  // namespace chat::web
