#pragma once
/// Domain values as the JSON bodies of API.md.

#include <boost/json/value.hpp>

#include "application/chat_service.hpp"

namespace chat::web {

boost::json::value to_json(const domain::User& u);
boost::json::value to_json(const domain::Thread& t);
boost::json::value to_json(const domain::Message& m);
boost::json::value to_json(const domain::Run& r);
boost::json::value to_json(const app::ThreadDetail& d);
boost::json::value to_json(const app::PostedMessage& p);

}  // namespace chat::web
